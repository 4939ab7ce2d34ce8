"""The investigators of a parallel run as a list: one row each, then the aggregate's.

:class:`InvestigatorRow` is a row's state, advanced by the investigator's own events
(:meth:`InvestigatorRow.apply`); :class:`InvestigatorList` shows the rows and reports
the highlighted one. Neither knows the run: the app feeds them (``ui/parallel.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import DataTable

from scribe_tui import events as ev

__all__ = ["AGGREGATE", "COLUMNS", "InvestigatorList", "InvestigatorRow"]

AGGREGATE = "aggregate"
COLUMNS = ("investigator", "strategy", "state", "claim", "confidence", "cost")
STATE_STYLES = {
    "starting": "dim",
    "waiting": "dim",
    "running": "green",
    "thinking": "green",
    "paused": "bold yellow",
    "finished": "bold #5fafff",
    "out of budget": "bold #ffaf00",
    "stopped": "bold",
    "failed": "bold red",
}
#: Stop reasons (``Stopped.reason``) as a row's state.
_STOPPED = {"concluded": "finished", "budget": "out of budget", "failed": "failed"}


@dataclass
class InvestigatorRow:
    """What a row shows of one investigator (or of the aggregator)."""

    id: str
    strategy: str = ""
    state: str = "starting"
    answer: str | None = None
    confidence: float | None = None
    cost_usd: float = 0.0
    _code_cells: list[int] = field(default_factory=list, repr=False)

    @property
    def ended(self) -> bool:
        return self.state in ("finished", "out of budget", "stopped", "failed")

    def apply(self, event: ev.Event) -> None:
        """Advance the row by one of its investigator's events."""
        if self.ended and not isinstance(event, ev.Status):
            return
        match event:
            case ev.TurnStarted() | ev.ThinkingDelta() | ev.TextDelta():
                if self.state != "paused":
                    self.state = "thinking"
            case ev.CellAdded(cell_type="code", index=index):
                self._code_cells.append(index)
            case ev.CellExecuting(index=index):
                # Its number among the notebook's code cells, as the notebook shows it.
                number = self._code_cells.index(index) + 1 if index in self._code_cells else index
                self.state = f"cell {number}"
            case ev.CellUpdated(status=status) if status is not None:
                self.state = "running"
            case ev.Paused():
                self.state = "paused"
            case ev.Resumed():
                self.state = "running"
            case ev.ErrorEvent(fatal=True):
                self.state = "failed"
            case ev.Concluded(answer=answer, confidence=confidence):
                self.answer, self.confidence = answer, confidence
            case ev.Stopped(reason=reason):
                self.state = _STOPPED.get(reason, "stopped")
            case ev.Status(cost_usd=cost):
                self.cost_usd = cost

    def cells(self) -> tuple[Text, ...]:
        """The row's cells, in :data:`COLUMNS` order."""
        style = STATE_STYLES.get(self.state, "green")  # "cell 3"
        return (
            Text(self.id, style="bold"),
            Text(self.strategy, style="dim"),
            Text(self.state, style=style),
            Text(self.answer or "—", style="bold" if self.answer else "dim"),
            Text(f"{self.confidence:.2f}" if self.confidence is not None else "—", justify="right"),
            Text(f"${self.cost_usd:.2f}", justify="right"),
        )


class InvestigatorList(DataTable[Text]):
    """One row per investigator, keyed by id; the highlighted row is the selected one."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, show_cursor=True, id=id)

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, row: InvestigatorRow) -> None:
        """Add ``row``, or redraw it if it is already listed."""
        if row.id not in self.rows:
            self.add_row(*row.cells(), key=row.id)
            return
        for name, cell in zip(COLUMNS, row.cells(), strict=True):
            self.update_cell(row.id, name, cell, update_width=True)

    @property
    def selected(self) -> str | None:
        """The id of the highlighted row."""
        if not self.row_count:
            return None
        key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return key.value

    def select(self, ident: str) -> None:
        """Highlight the row of ``ident`` (the app then shows its notebook)."""
        self.move_cursor(row=self.get_row_index(ident))
