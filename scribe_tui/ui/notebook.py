"""The notebook pane: the evolving notebook, one widget per cell, following the newest."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from scribe_tui.events import CellAdded, CellExecuting, CellUpdated
from scribe_tui.ui.follow import FollowScroll
from scribe_tui.ui.memory import release_styles_caches
from scribe_tui.ui.render import CellModel, RenderOnce, render_cell

#: Cells kept mounted around the view, and how far past that before the far side is trimmed.
WINDOW, SLACK = 60, 20
#: Cells mounted at once, on a key press or per idle step. Each costs ~2-3 ms to lay
#: out (its code is highlighted to measure it), so a key press mounts only this many
#: and the rest of the window fills in a step at a time once the keys pause.
STEP = 6
#: Seconds of quiet after a key before the window fills in, and between fill steps.
FILL_DELAY, FILL_STEP_DELAY = 0.25, 0.05


class CellView(Static):
    """One cell; re-rendered only when its own events arrive."""

    class Clicked(Message):
        """The person clicked a cell (``chain`` 2 for a double click)."""

        def __init__(self, view: CellView, chain: int) -> None:
            super().__init__()
            self.view = view
            self.chain = chain

    def __init__(self, cell: CellModel, *, selected: bool = False) -> None:
        super().__init__(RenderOnce(render_cell(cell)), classes=self._classes_for(cell, selected))
        self.cell = cell
        self.auto_links = False  # no @click links in cells; skips a pass over every line

    @staticmethod
    def _classes_for(cell: CellModel, selected: bool) -> str:
        classes = ["cell", f"-{cell.author}", f"-{cell.cell_type}"]
        classes += ["-running"] if cell.running else []
        classes += ["-error"] if cell.status in ("error", "timeout", "died") else []
        return " ".join(classes + (["-selected"] if selected else []))

    def redraw(self) -> None:
        """Rebuild the renderable and the author/status classes from ``self.cell``."""
        self.set_classes(self._classes_for(self.cell, self.has_class("-selected")))
        self.update(RenderOnce(render_cell(self.cell)))

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked(self, event.chain))


class NotebookPane(FollowScroll, can_focus=True):
    """All cells in order, following the newest; a selection for editing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Prev cell", show=False),
        Binding("down,j", "move(1)", "Next cell", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Newest", show=False),
        Binding("enter,e", "app.edit_cell", "Edit"),
        Binding("E", "app.edit_external", "$EDITOR"),
        Binding("n", "app.new_cell", "New cell", show=False),
        Binding("o", "app.open_images", "Open image"),
        Binding("x", "toggle_expand", "Expand output"),
        Binding("i", "app.focus_prompt", "Prompt", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cells: list[CellModel] = []
        self._views: dict[int, CellView] = {}
        self._lo = self._hi = 0  # cells[lo:hi] are mounted
        self._earlier = Static(classes="window-marker")
        self._later = Static(classes="window-marker")
        self.selected: int | None = None
        self._fill_timer: Timer | None = None

    def compose(self):  # type: ignore[override]
        yield Static(
            "No cells yet: the agent is starting up.\n"
            "Cells appear here as it writes them; F6 adds one of your own.",
            id="notebook-empty",
        )
        yield self._earlier
        yield self._later

    def on_mount(self) -> None:
        self._update_markers()

    # -- events --------------------------------------------------------------

    def add_cell(self, event: CellAdded) -> None:
        """Append (or, on a replayed index, replace) a cell."""
        cell = CellModel(event.index, event.cell_id, event.cell_type, event.source, event.author)
        if event.index < len(self.cells):
            self.cells[event.index] = cell
            if event.index in self._views:
                self._views[event.index].cell = cell
            self._redraw(event.index)
            return
        while len(self.cells) < event.index:  # a gap means we joined late; keep indices true
            self._append(CellModel(len(self.cells), "", "markdown", "*(earlier cell)*", "system"))
        self._append(cell)

    def _append(self, cell: CellModel) -> None:
        if not self.cells:
            self.query_one("#notebook-empty").display = False
        at_end = self._hi == len(self.cells)
        self.cells.append(cell)
        if at_end and self._following:  # show the newest cell; trim the oldest
            self._mount_range(self._hi, self._hi + 1)
            if self._hi - self._lo > WINDOW + SLACK:
                self._unmount_range(self._lo, self._hi - WINDOW)
        elif at_end and self._hi - self._lo < WINDOW + SLACK:  # reading above: grow, within bounds
            self._mount_range(self._hi, self._hi + 1)
        self._update_markers()

    def cell_executing(self, event: CellExecuting) -> None:
        cell = self._cell(event.index)
        if cell is not None:
            cell.running, cell.status, cell.outputs = True, None, []
            self._redraw(event.index)

    def update_cell(self, event: CellUpdated) -> None:
        """Apply new source/outputs; ``status`` None means still running (live output)."""
        cell = self._cell(event.index)
        if cell is None:
            self.add_cell(CellAdded(event.index, event.cell_id, "code", event.source, event.author))
            cell = self.cells[event.index]
        if event.author == "person" and cell.author != "person" and event.source != cell.source:
            cell.edited_by_person = True
        cell.source = event.source
        cell.outputs = list(event.outputs)
        cell.execution_count = event.execution_count or cell.execution_count
        cell.status = event.status
        cell.running = event.status is None
        self._redraw(event.index)

    def _cell(self, index: int) -> CellModel | None:
        return self.cells[index] if 0 <= index < len(self.cells) else None

    def _redraw(self, index: int) -> None:
        view = self._views.get(index)
        if view is not None:  # cells outside the window render when they are mounted
            view.redraw()

    # -- the window of mounted cells ---------------------------------------------
    # Every mounted widget costs layout time on every frame, so only a window of
    # cells around what the person looks at is mounted; the rest are models.
    # A key press mounts at most STEP cells; once keys pause, the window fills in a
    # step at a time: downwards, or upwards only while the view follows the newest
    # cell (anywhere else, cells mounted above the view would shift it).

    @property
    def _following(self) -> bool:
        # Anchored content shorter than the view sits at its bottom: a negative scroll_y.
        return self.scroll_y >= self.max_scroll_y - 1 or self.scroll_y < 0

    def _mount_range(self, lo: int, hi: int) -> None:
        """Mount cells[lo:hi], which must adjoin the window (or the window is empty)."""
        views = [CellView(self.cells[i], selected=i == self.selected) for i in range(lo, hi)]
        for view in views:
            self._views[view.cell.index] = view
        if self._hi > self._lo and hi == self._lo:
            self.mount_all(views, before=self._views[hi])
            self._lo = lo
        else:
            self.mount_all(views, before=self._later)
            self._lo, self._hi = (lo if self._hi == self._lo else self._lo), hi

    def _unmount_range(self, lo: int, hi: int) -> None:
        stale = [self._views.pop(i) for i in range(lo, hi) if i in self._views]
        self.remove_children(stale)
        release_styles_caches()
        if lo == self._lo:
            self._lo = hi
        else:
            self._hi = lo

    def _show(self, index: int) -> None:
        """Make cell ``index`` mounted: grow the window by a step, or move it there."""
        if self._lo <= index < self._hi:
            return
        if index == self._lo - 1:
            self._mount_range(max(0, self._lo - STEP), self._lo)
            if self._hi - self._lo > WINDOW + SLACK:
                self._unmount_range(self._lo + WINDOW, self._hi)
        elif index == self._hi:
            self._mount_range(self._hi, min(len(self.cells), self._hi + STEP))
            if self._hi - self._lo > WINDOW + SLACK:
                self._unmount_range(self._lo, self._hi - WINDOW)
        else:  # a jump: a few cells around it now, the rest of the window after the frame
            self._unmount_range(self._lo, self._hi)
            lo = max(0, min(index - 1, len(self.cells) - STEP))
            self._lo = self._hi = lo
            self._mount_range(lo, min(len(self.cells), lo + STEP))
            self.call_after_refresh(self._fill_short_view)
        self._update_markers()

    def _schedule_fill(self, delay: float = FILL_DELAY) -> None:
        """Fill the window in once keys have paused for ``delay``: a step never delays a key."""
        if self._fill_timer is not None:
            self._fill_timer.stop()
            self._fill_timer = None
        if self._hi - self._lo < WINDOW and (self._lo > 0 or self._hi < len(self.cells)):
            self._fill_timer = self.set_timer(delay, self._fill)  # which way: decided then

    def postpone_fill(self) -> None:
        """A key was pressed somewhere: the window fills in only once the keys pause."""
        if self._fill_timer is not None:
            self._schedule_fill()

    def _fill_range(self) -> tuple[int, int] | None:
        """The next cells to mount towards a full window, where mounting moves nothing in view."""
        room = min(STEP, WINDOW - (self._hi - self._lo))
        if room <= 0:
            return None
        if self._hi < len(self.cells):  # below the view
            return self._hi, min(len(self.cells), self._hi + room)
        if self._lo > 0 and self.is_anchored and self._following:
            return max(0, self._lo - room), self._lo  # above, while the anchor holds the view
        return None

    def _fill(self) -> None:
        """The idle fill: a step, then another once the keys are still quiet."""
        self._fill_timer = None
        if self._fill_step():
            self._schedule_fill(FILL_STEP_DELAY)

    def _fill_short_view(self) -> None:
        """Cells shorter than the view leave part of it empty: fill in now, a step a frame."""
        if self.max_scroll_y == 0 and self._fill_step():
            self.call_after_refresh(self._fill_short_view)

    def _fill_step(self) -> bool:
        """Mount the next few cells towards a full window; False if there is nothing to do."""
        cells = self._fill_range()
        if cells is None:
            return False
        if cells[0] < self._lo:
            self.anchor()  # at the newest cell already: keep it in view as cells go in above
        elif self.is_anchored:
            self.release_anchor()  # the newest cells are not mounted: there is nothing to follow
        self._mount_range(*cells)
        self._update_markers()
        return True

    def _update_markers(self) -> None:
        earlier = f"▲ {self._lo} earlier cells · ↑ or Home shows them"
        later = len(self.cells) - self._hi
        newer = f"▼ {later} newer cells · ↓ or End shows them"
        for marker, shown, text in (
            (self._earlier, self._lo > 0, earlier),
            (self._later, later > 0, newer),
        ):
            marker.display = shown
            if shown and text != marker.content:  # an update re-lays out the pane
                marker.update(text)

    # -- selection -------------------------------------------------------------

    @property
    def selected_cell(self) -> CellModel | None:
        """The selected cell, or the newest code cell when none is selected."""
        if self.selected is not None:
            return self._cell(self.selected)
        return next((c for c in reversed(self.cells) if c.cell_type == "code"), None)

    def select(self, index: int | None) -> None:
        previous = self._views.get(self.selected) if self.selected is not None else None
        if previous is not None:
            previous.remove_class("-selected")
        self.selected = index
        if index is None:
            return
        self._show(index)
        self._schedule_fill()
        view = self._views[index]
        view.add_class("-selected")
        if index == len(self.cells) - 1 and self.is_anchored:
            self.anchor()  # back on the newest cell: follow again
            return
        if self.is_anchored:
            self.release_anchor()
        self.call_after_refresh(
            self.scroll_to_widget, view, animate=False, top=view.size.height > self.size.height
        )

    def code_index(self, index: int) -> int:
        """The position of cell ``index`` among code cells (what ``edit_cell`` counts)."""
        return sum(1 for c in self.cells[:index] if c.cell_type == "code")

    def action_move(self, delta: int) -> None:
        if not self.cells:
            return
        if self.selected is None:
            self.select(len(self.cells) - 1 if delta < 0 else 0)
        else:
            self.select(max(0, min(len(self.cells) - 1, self.selected + delta)))

    def action_first(self) -> None:
        if self.cells:
            self.select(0)

    def action_last(self) -> None:
        if self.cells:
            self.select(len(self.cells) - 1)

    def action_toggle_expand(self) -> None:
        cell = self.selected_cell
        if cell is not None:
            cell.expanded = not cell.expanded
            self._redraw(cell.index)

    async def on_cell_view_clicked(self, message: CellView.Clicked) -> None:
        self.focus()
        self.select(message.view.cell.index)
        if message.chain == 2:
            await self.app.run_action("edit_cell")
