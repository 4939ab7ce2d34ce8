"""The notebook pane: the evolving notebook, one widget per cell, following the newest."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Static

from scribe_tui.agent.events import CellAdded, CellExecuting, CellUpdated
from scribe_tui.ui.follow import FollowScroll
from scribe_tui.ui.render import CellModel, render_cell

#: Cells kept mounted around the view, and how many mount or unmount at a time.
WINDOW, CHUNK = 60, 20


class CellView(Static):
    """One cell; re-rendered only when its own events arrive."""

    class Clicked(Message):
        """The person clicked a cell (``chain`` 2 for a double click)."""

        def __init__(self, view: CellView, chain: int) -> None:
            super().__init__()
            self.view = view
            self.chain = chain

    def __init__(self, cell: CellModel) -> None:
        super().__init__(classes="cell")
        self.cell = cell
        self.redraw()

    def redraw(self) -> None:
        """Rebuild the renderable and the author/status classes from ``self.cell``."""
        cell = self.cell
        self.set_classes(
            [
                "cell",
                f"-{cell.author}",
                f"-{cell.cell_type}",
                *(["-running"] if cell.running else []),
                *(["-error"] if cell.status in ("error", "timeout", "died") else []),
                *(["-selected"] if self.has_class("-selected") else []),
            ]
        )
        self.update(render_cell(cell))

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
        if at_end:  # the window shows the newest cells: extend it, and trim if following
            self._mount_range(self._hi, self._hi + 1)
            if self._hi - self._lo > WINDOW + CHUNK and self._following:
                self._unmount_range(self._lo, self._hi - WINDOW)
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

    @property
    def _following(self) -> bool:
        return self.scroll_y >= self.max_scroll_y - 1

    def _mount_range(self, lo: int, hi: int) -> None:
        """Mount cells[lo:hi], which must adjoin the window (or the window is empty)."""
        views = [CellView(self.cells[i]) for i in range(lo, hi)]
        for view in views:
            self._views[view.cell.index] = view
            view.set_class(view.cell.index == self.selected, "-selected")
        if self._hi > self._lo and hi == self._lo:
            self.mount_all(views, before=self._views[hi])
            self._lo = lo
        else:
            self.mount_all(views, before=self._later)
            self._lo, self._hi = (lo if self._hi == self._lo else self._lo), hi

    def _unmount_range(self, lo: int, hi: int) -> None:
        stale = [self._views.pop(i) for i in range(lo, hi) if i in self._views]
        self.remove_children(stale)
        if lo == self._lo:
            self._lo = hi
        else:
            self._hi = lo

    def _show(self, index: int) -> None:
        """Make cell ``index`` mounted: grow the window by a chunk, or move it there."""
        if self._lo <= index < self._hi:
            return
        if index == self._lo - 1:
            self._mount_range(max(0, self._lo - CHUNK), self._lo)
            if self._hi - self._lo > WINDOW + CHUNK:
                self._unmount_range(self._lo + WINDOW, self._hi)
        elif index == self._hi:
            self._mount_range(self._hi, min(len(self.cells), self._hi + CHUNK))
            if self._hi - self._lo > WINDOW + CHUNK:
                self._unmount_range(self._lo, self._hi - WINDOW)
        else:
            self._unmount_range(self._lo, self._hi)
            lo = max(0, min(index - WINDOW // 2, len(self.cells) - WINDOW))
            self._lo = self._hi = lo
            self._mount_range(lo, min(len(self.cells), lo + WINDOW))
        self._update_markers()

    def _update_markers(self) -> None:
        self._earlier.display = self._lo > 0
        self._earlier.update(f"▲ {self._lo} earlier cells · ↑ or Home shows them")
        later = len(self.cells) - self._hi
        self._later.display = later > 0
        self._later.update(f"▼ {later} newer cells · ↓ or End shows them")

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
