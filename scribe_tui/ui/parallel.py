"""The TUI of a parallel run (``investigate --investigators N``): the investigators as a
list, the selected one's notebook and agent pane, then the aggregate.

The run (:class:`~scribe_tui.agent.parallel.ParallelRun`) goes in an async worker,
as one investigation does in :mod:`scribe_tui.app`; the worker never touches widgets.
Each event arrives as an :class:`InvestigatorEvent` (an :class:`AgentEvent` that names
its investigator) and goes to that investigator's own panes and row; each investigation's
controls arrive as an :class:`InvestigatorStarted`. The person's message goes to the
selected investigator, to another with ``@i2 TEXT``, or to every running one with
``@all TEXT``; Esc, F2, F4 and F6 act on the selected one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from scribe_tui import events as ev
from scribe_tui.agent.controls import InvestigationControls
from scribe_tui.agent.external import cells_as_events
from scribe_tui.agent.status_board import StatusBoard
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_FOR_REASON, EXIT_INTERRUPTED
from scribe_tui.runtime.notebook import Notebook, NotebookError
from scribe_tui.ui.agent_pane import AgentPane
from scribe_tui.ui.investigation import AgentEvent, InvestigationStarted
from scribe_tui.ui.investigator_steering import PLACEHOLDER, InvestigatorSteering, Lane
from scribe_tui.ui.investigators import AGGREGATE, InvestigatorList, InvestigatorRow
from scribe_tui.ui.memory import restore_collector, tune_collector
from scribe_tui.ui.notebook import NotebookPane
from scribe_tui.ui.panes import InvestigationPanes
from scribe_tui.ui.prompt import PromptInput
from scribe_tui.ui.status import HOST_FIELDS, StatusBar

__all__ = ["InvestigatorEvent", "InvestigatorStarted", "InvestigatorsApp"]

MIN_SIZE = (80, 24)
QUIT_CLEANUP_S = 15.0


class InvestigatorEvent(AgentEvent):
    """An event of investigator ``who`` (``aggregate`` for the aggregator)."""

    def __init__(self, who: str, event: ev.Event) -> None:
        super().__init__(event)
        self.who = who


class InvestigatorStarted(InvestigationStarted):
    """Investigator ``who``'s investigation exists; its controls work from now on."""

    def __init__(self, who: str, controls: InvestigationControls) -> None:
        super().__init__(controls)  # type: ignore[arg-type]
        self.who = who


class ParallelSource(Protocol):
    """What the app runs: :class:`~scribe_tui.agent.parallel.ParallelRun` or a stand-in."""

    folder: Path
    members: Sequence[Any]  # each with ``id`` and ``strategy``
    on_event: Callable[[str, ev.Event], None]
    on_start: Callable[[str, Any], None]
    on_host: Any

    async def run(self) -> Any:
        """Run the investigators, then the aggregator; returns the aggregate's outcome."""

    def stop(self) -> None:
        """Stop every running investigation now (each saved, resumable)."""


class InvestigatorsApp(InvestigatorSteering):
    """Watch N investigators and their aggregate; steer the selected one, or all."""

    CSS_PATH: ClassVar[list[str]] = ["scribe.tcss", "investigators.tcss"]  # type: ignore[misc]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "interrupt", "Interrupt"),
        Binding("f2", "toggle_pause", "Pause/Resume"),
        Binding("f4", "edit_cell", "Edit cell"),
        Binding("f6", "new_cell", "New cell", show=False),
        Binding("f7", "move(-1)", "◂ Investigator"),
        Binding("f8", "move(1)", "Investigator ▸"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(
        self,
        run: ParallelSource,
        *,
        title: str,
        subject: str = "",
        cursor_blink: bool = True,
        host_status: bool = True,
    ) -> None:
        super().__init__()
        self.title = title
        self.run_source = run
        self.subject = subject
        self.outcome: Any = None
        self.failure: str | None = None
        self._cursor_blink = cursor_blink
        self._board = StatusBoard() if host_status else None
        self._worker: Worker[Any] | None = None
        self._quitting = False
        self._collector: tuple[int, int, int] | None = None
        self.lanes: dict[str, Lane] = {}
        for member in [*run.members, None]:
            ident = AGGREGATE if member is None else member.id
            row = InvestigatorRow(ident, "" if member is None else member.strategy)
            panes = InvestigationPanes(
                NotebookPane(id=f"notebook-{ident}"), AgentPane(id=f"agent-{ident}")
            )
            self.lanes[ident] = Lane(row, panes)
        self.investigators = InvestigatorList(id="investigators")
        self.prompt = PromptInput(id="prompt")
        self.prompt.placeholder = PLACEHOLDER
        self.status_bar = StatusBar(subject, id="status")

    # -- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.investigators
        first = next(iter(self.lanes))
        with Horizontal(id="main"):
            with ContentSwitcher(initial=f"notebook-{first}", id="notebooks"):
                yield from (lane.notebook for lane in self.lanes.values())
            with ContentSwitcher(initial=f"agent-{first}", id="agents"):
                yield from (lane.agent for lane in self.lanes.values())
        yield Static(id="too-small")
        yield self.prompt
        yield self.status_bar
        yield Footer()

    def on_mount(self) -> None:
        self._collector = tune_collector()
        self.investigators.border_title = f"Investigators · {self.title}"
        for lane in self.lanes.values():
            lane.notebook.border_title = f"Notebook · {lane.row.id}"
            lane.agent.border_title = f"Agent · {lane.row.id}"
        self._read_finished()
        for lane in self.lanes.values():
            if lane.row.id != AGGREGATE:
                self._list(lane)
        self.prompt.cursor_blink = self._cursor_blink
        self.prompt.focus()
        self._check_size(self.size.width, self.size.height)
        self.set_interval(1.0, self._tick)
        self._worker = self._run_parallel()

    def on_unmount(self) -> None:
        if self._collector is not None:
            restore_collector(self._collector)
        if self._board is not None:
            self._board.close()

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        main = self.screen_stack[0]
        main.set_class(small, "-too-small")
        if small:
            main.query_one("#too-small", Static).update(
                f"The terminal is {width}×{height}; the investigators need at least "
                f"{MIN_SIZE[0]}×{MIN_SIZE[1]}.\nEnlarge the window (they keep running), "
                "or press Ctrl+Q to save and quit."
            )

    def _read_finished(self) -> None:
        """A resumed aggregate's finished investigators (they do not run again): their
        claims and cells, from their notebooks."""
        claims = getattr(self.run_source, "claims", None)
        for claim in claims() if claims is not None else []:
            lane = self.lanes.get(claim.id)
            if lane is None or not claim.finished:
                continue
            lane.row.state = "finished" if claim.state == "concluded" else claim.state
            lane.row.answer, lane.row.confidence = claim.answer, claim.confidence
            lane.row.cost_usd = claim.cost_usd
            self._load_cells(lane, claim.notebook)

    def _load_cells(self, lane: Lane, notebook: Path | None) -> None:
        """Show a finished notebook's cells, as its events would have."""
        try:
            cells = cells_as_events(Notebook.load(notebook)) if notebook else []
        except NotebookError as exc:
            self.notify(str(exc), title=f"{lane.row.id}'s notebook", severity="warning")
            return
        for event in cells:
            if isinstance(event, ev.CellAdded):
                lane.notebook.add_cell(event)
            elif isinstance(event, ev.CellUpdated):
                lane.notebook.update_cell(event)

    def _list(self, lane: Lane) -> None:
        self.investigators.show(lane.row)
        lane.listed = True

    # -- the run's worker ------------------------------------------------------------

    @work(group="agent", exit_on_error=False)
    async def _run_parallel(self) -> Any:
        run, post = self.run_source, self.post_message
        run.on_event = lambda who, event: post(InvestigatorEvent(who, event))
        run.on_start = lambda who, controls: post(InvestigatorStarted(who, controls))
        if self._board is not None:
            run.on_host = self._board.host_update  # thread-safe: read on the app's clock
        return await run.run()

    def on_investigator_started(self, message: InvestigatorStarted) -> None:
        lane = self.lanes.get(message.who)
        if lane is None:
            return
        lane.controls = message.controls
        host = getattr(self.run_source, "host", None)
        if self._board is not None and host is not None:
            self._board.poll(host)  # GPU memory between events, as in the one-run TUI
        for text in lane.pending:
            message.controls.send(text)
        lane.pending.clear()
        if lane.pause_on_start:
            message.controls.pause()

    async def on_investigator_event(self, message: InvestigatorEvent) -> None:
        lane = self.lanes.get(message.who)
        if lane is None:
            return
        event = message.event
        await self._render(lane, event)
        lane.row.apply(event)
        if isinstance(event, ev.Status):
            lane.status = event
        if not lane.listed:  # the aggregator: its row once it starts
            self._list(lane)
            self.notify("The investigators have finished; the aggregator weighs their claims.")
        else:
            self.investigators.show(lane.row)
        if lane is self.selected:
            self._show_status(lane)

    async def _render(self, lane: Lane, event: ev.Event) -> None:
        """One event into its investigator's panes (as ``ScribeApp`` shows its one run's)."""
        await lane.panes.show(event)
        match event:
            case ev.CheckpointAnswered(number=number):
                await lane.agent.note(f"checkpoint {number} written (in the notebook)", "info")
            case ev.Stopped():
                await lane.agent.end_streams()

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "person" and event.state == WorkerState.ERROR:
            self.notify(f"{worker.name} failed: {worker.error}", severity="error", timeout=10)
        if worker is not self._worker:
            return
        if event.state == WorkerState.ERROR:
            self.failure = f"{type(worker.error).__name__}: {worker.error}"
            for lane in self.lanes.values():
                if lane.listed and not lane.row.ended:  # the run under them failed
                    lane.row.state = "failed"
                    self.investigators.show(lane.row)
            self._show_status(self.selected)
            self.notify(self.failure, title="The investigators failed", severity="error")
        elif event.state == WorkerState.SUCCESS:
            self.outcome = worker.result
            self._finished(self.outcome)

    def _finished(self, outcome: Any) -> None:
        """The run ended: every row from its notebook, and the verdict."""
        for claim in getattr(outcome, "claims", []):
            lane = self.lanes.get(claim.id)
            if lane is not None and claim.finished:
                lane.row.cost_usd = claim.cost_usd or lane.row.cost_usd
                self.investigators.show(lane.row)
        aggregate = self.lanes[AGGREGATE]
        if not aggregate.listed and getattr(outcome, "verdict", None) is not None:
            # A resumed aggregate whose aggregator had finished: it did not run again.
            row = aggregate.row
            row.state = "finished" if outcome.reason == "concluded" else outcome.reason
            row.answer, row.confidence = outcome.answer, outcome.confidence
            self._load_cells(aggregate, outcome.notebook)
            self._list(aggregate)
        answer = getattr(outcome, "answer", None)
        if answer is not None:
            self.notify(
                f"{answer} ({outcome.confidence:.0%}). Ctrl+Q quits.",
                title="The aggregate concluded",
                timeout=30,
            )
        else:
            reason = getattr(outcome, "reason", "stopped")
            self.notify(f"The run ended: {reason}. Ctrl+Q quits.", timeout=30)

    # -- selection and the status bar ----------------------------------------------------

    @on(DataTable.RowHighlighted, "#investigators")
    def _on_highlight(self, event: DataTable.RowHighlighted) -> None:
        lane = self.lanes.get(str(event.row_key.value))
        if lane is None:
            return
        self.query_one("#notebooks", ContentSwitcher).current = lane.notebook.id
        self.query_one("#agents", ContentSwitcher).current = lane.agent.id
        self._show_status(lane)

    def select(self, ident: str) -> None:
        """Show investigator ``ident`` (as choosing its row does)."""
        self.investigators.select(ident)

    def action_move(self, step: int) -> None:
        count = self.investigators.row_count
        if count:
            row = (self.investigators.cursor_row + step) % count
            self.investigators.move_cursor(row=row)

    def _show_status(self, lane: Lane) -> None:
        status = lane.status
        if self._board is not None:  # the shared host's state, on every investigator's bar
            host = self._board.snapshot()
            status = replace(status, **{name: getattr(host, name) for name in HOST_FIELDS})
        self.status_bar.subject = f"{self.subject} · {lane.row.id}".lstrip(" ·")
        self.status_bar.set_status(status)
        self.status_bar.set_agent_state(_bar_state(lane.row.state))

    def _tick(self) -> None:
        self._show_status(self.selected)

    # -- the prompt --------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    def _on_prompt(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.prompt.clear()
        if text:
            self.prompt.remember(text)
            self.route(text)

    # -- quitting --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quit; mid-run, stop every investigator (each has saved every step)."""
        worker = self._worker
        if worker is None or worker.is_finished:
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if self._quitting:
            return
        self._quitting = True
        self.notify("Stopping the investigators and saving…", timeout=QUIT_CLEANUP_S)
        self.run_worker(self._stop(worker), group="quit", exit_on_error=False)

    async def _stop(self, worker: Worker[Any]) -> None:
        self.run_source.stop()
        with contextlib.suppress(asyncio.TimeoutError, WorkerFailed, WorkerCancelled):
            await asyncio.wait_for(worker.wait(), QUIT_CLEANUP_S)
        if not worker.is_finished:
            worker.cancel()
        self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)

    @property
    def exit_code(self) -> int:
        """The aggregator's: 0 concluded, 1 failed, 3 out of budget, 130 stopped early."""
        if self.failure is not None:
            return EXIT_FAILED
        if self.outcome is None:
            return EXIT_INTERRUPTED
        return EXIT_FOR_REASON.get(self.outcome.reason, EXIT_FAILED)


def _bar_state(row_state: str) -> str:
    """A row's state in the status bar's words."""
    if row_state in ("starting", "paused", "failed", "stopped"):
        return row_state
    if row_state == "finished":
        return "concluded"
    if row_state == "out of budget":
        return "stopped"
    return "running"
