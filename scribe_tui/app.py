"""The interactive front end: the Textual app that renders an investigation and steers it.

This module is the app's composition and its handlers. The investigation runs in an
async worker on the app's event loop (:mod:`scribe_tui.ui.investigation`); the worker
never touches widgets: every event the loop emits is posted as an :class:`AgentEvent`
message, and the handlers here own all state (the harlequin pattern). The person's
actions (:mod:`scribe_tui.ui.steering`) go back through
:class:`~scribe_tui.agent.controls.InvestigationControls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from scribe_tui import events as ev
from scribe_tui.exit_codes import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_FOR_REASON,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from scribe_tui.ui.agent_pane import AgentPane
from scribe_tui.ui.checkpoints import CheckpointCard, CheckpointPane
from scribe_tui.ui.commands import ScribeCommands
from scribe_tui.ui.exports import open_in_viewer, save_images
from scribe_tui.ui.investigation import (
    AgentEvent,
    InvestigationSource,
    InvestigationStarted,
    RunnableInvestigation,
    StatusSource,
    drive,
)
from scribe_tui.ui.memory import restore_collector, tune_collector
from scribe_tui.ui.notebook import NotebookPane
from scribe_tui.ui.panes import InvestigationPanes
from scribe_tui.ui.prompt import PromptInput
from scribe_tui.ui.record_actions import RecordActions
from scribe_tui.ui.status import AGENT_STATES, StatusBar, human_count, human_duration

MIN_SIZE = (80, 20)
#: On quit: how long the loop gets to stop by itself after ``interrupt``, then after cancel.
QUIT_GRACE_S, QUIT_CLEANUP_S = 2.0, 10.0


class ScribeApp(RecordActions):
    """Watch an investigation's notebook grow; pause, edit, redirect it.

    ``investigation`` is a built investigation (controls + ``run()``), an async
    factory returning one, or a factory returning an async context manager that
    yields one (and closes the kernels and host it owns on exit, quit included).
    Factories run in the worker, so slow set-up (loading the subject model) happens
    after the first frame. ``status``, if given, is polled every second for a fresh
    :class:`~scribe_tui.events.Status` (GPU memory between events).
    """

    CSS_PATH = "ui/scribe.tcss"
    COMMANDS = App.COMMANDS | {ScribeCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "interrupt", "Interrupt"),
        Binding("f2", "toggle_pause", "Pause/Resume"),
        Binding("f3", "checkpoint", "Checkpoint"),
        Binding("f4", "edit_cell", "Edit cell"),
        Binding("f5", "edit_external", "$EDITOR", show=False),
        Binding("f6", "new_cell", "New cell"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(
        self,
        investigation: InvestigationSource,
        *,
        title: str,
        notebook: Path | None = None,
        subject: str = "",
        status: StatusSource | None = None,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.title = title
        self._notebook_path = notebook
        self.controls: RunnableInvestigation | None = None
        self.stop_reason: str | None = None
        self.conclusion: ev.Concluded | None = None
        self.failure: str | None = None
        self._source = investigation
        self._status_source = status
        self._cursor_blink = cursor_blink
        self._pending: list[str] = []
        self._pause_on_start = False
        self._agent_worker: Worker[Any] | None = None
        self._quitting = False
        self._collector: tuple[int, int, int] | None = None
        self.notebook = NotebookPane(id="notebook")
        self.agent = AgentPane(id="agent")
        self.panes = InvestigationPanes(self.notebook, self.agent)
        self.checkpoints = CheckpointPane(id="checkpoints")
        self.status_bar = StatusBar(subject, id="status")
        self.prompt = PromptInput(id="prompt")

    # -- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield self.notebook
            with Vertical(id="side"):
                yield self.agent
                yield self.checkpoints
        yield Static(id="too-small")
        yield self.prompt
        yield self.status_bar
        yield Footer()

    def on_mount(self) -> None:
        self._collector = tune_collector()
        self.notebook.border_title = f"Notebook · {self.title}"
        self._show_notebook_path()
        self.agent.border_title = "Agent"
        self.checkpoints.border_title = "Checkpoints"
        self.prompt.cursor_blink = self._cursor_blink
        self.prompt.focus()
        self._check_size(self.size.width, self.size.height)
        self.set_interval(1.0, self._tick)
        self._agent_worker = self._run_investigation()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self.notebook.postpone_fill()  # its idle work must not land on a key press
        await super().on_event(event)

    def on_unmount(self) -> None:
        if self._collector is not None:
            restore_collector(self._collector)

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)
        self._show_notebook_path()

    def _check_size(self, width: int, height: int) -> None:
        """Swap the layout for a message when the terminal is too small to be useful."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        main = self.screen_stack[0]
        main.set_class(small, "-too-small")
        if small:
            main.query_one("#too-small", Static).update(
                f"The terminal is {width}×{height}; scribe-tui needs at least "
                f"{MIN_SIZE[0]}×{MIN_SIZE[1]}.\nEnlarge the window (the investigation keeps "
                "running), or press Ctrl+Q to save and quit."
            )

    def _show_notebook_path(self) -> None:
        """The notebook's path on the pane's border; the file name survives truncation."""
        if self.notebook_path is None:
            return
        path = Path(self.notebook_path)
        with contextlib.suppress(ValueError):
            path = path.resolve().relative_to(Path.cwd())
        shown = str(path)
        room = max(20, self.notebook.size.width - 6 if self.notebook.size.width else 60)
        if len(shown) > room:
            shown = "…" + shown[-(room - 1) :]
        self.notebook.border_subtitle = shown

    # -- the investigation worker -------------------------------------------------

    @work(group="agent", exit_on_error=False)
    async def _run_investigation(self) -> Any:
        return await drive(self._source, self.post_message)

    @property
    def notebook_path(self) -> Path | None:
        """The notebook being written: as given, else as the investigation reports it."""
        return self._notebook_path or getattr(self.controls, "notebook_path", None)

    def on_investigation_started(self, message: InvestigationStarted) -> None:
        self.controls = message.controls
        self._set_state("running")
        for text in self._pending:
            message.controls.send(text)
        self._pending.clear()
        if self._pause_on_start:
            message.controls.pause()

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "person" and event.state == WorkerState.ERROR:
            self.notify(f"{worker.name} failed: {worker.error}", severity="error", timeout=10)
        if worker is not self._agent_worker:
            return
        if event.state == WorkerState.ERROR:
            self.failure = f"{type(worker.error).__name__}: {worker.error}"
            self._set_state("failed")
            await self.agent.note(Text(f"The investigation failed: {self.failure}"), "error")
            self.notify(self.failure, title="Investigation failed", severity="error", timeout=30)
        elif event.state == WorkerState.SUCCESS:
            await self.agent.end_streams()
            if self.stop_reason is None:
                reason = getattr(worker.result, "reason", worker.result)
                self.stop_reason = (
                    reason
                    if isinstance(reason, str)
                    else ("concluded" if self.conclusion else "failed")
                )
            if self.status_bar.agent_state not in ("concluded", "failed"):
                self._set_state("concluded" if self.stop_reason == "concluded" else "stopped")

    # -- events -> widgets -----------------------------------------------------------

    async def on_agent_event(self, message: AgentEvent) -> None:
        event = message.event
        await self.panes.show(event)  # the notebook and the agent pane, as every TUI shows them
        match event:
            case ev.CellAdded():
                self._show_notebook_path()  # the agent may just have started a session
            case ev.KernelStarted(connection_file=path):
                self.connection_file = path  # for the help screen's attach line
            case ev.CheckpointRequested(number=number, experiments=experiments):
                self.checkpoints.card(number, experiments)
                await self.agent.note(f"checkpoint {number} requested", "info")
            case ev.CheckpointAnswered(number=number, content=content, awaiting_approval=wait):
                self.checkpoints.card(number).answered(content, wait)
                if wait:
                    self._checkpoint_waiting(self.checkpoints.card(number))
            case ev.CheckpointDecided(number=number, decision=decision, message=text):
                self.checkpoints.card(number).decided(decision, text)
                self._after_checkpoint()
                await self.agent.note(f"checkpoint {number}: {decision} {text}".rstrip(), "info")
            case ev.MessageQueued() | ev.MessageDelivered():
                self.status_bar.set_queued(self.agent.queued_count)
            case ev.Status():
                self._apply_status(event)
            case ev.Paused():
                self._set_state("paused")
            case ev.Resumed():
                self._set_state("running")
            case ev.ErrorEvent(message=text, fatal=fatal):
                self.notify(text, severity="error", timeout=10 if fatal else 5)
                if fatal:
                    self.failure = text
                    self._set_state("failed")
            case ev.Concluded(answer=answer, confidence=confidence):
                self.conclusion = event
                self._set_state("concluded")
                self.notify(
                    f"{answer} ({confidence:.0%}). Ctrl+Q quits.",
                    title="Investigation concluded",
                    timeout=15,
                )
            case ev.Stopped(reason=reason):
                self.stop_reason = reason
                if reason != "concluded":
                    self._set_state("failed" if reason == "failed" else "stopped")

    def _apply_status(self, status: ev.Status) -> None:
        self.status_bar.set_status(status)
        state = status.agent_state
        if "wait" in state:
            state = "waiting"
        settled = self.status_bar.agent_state in ("concluded", "failed")
        # A waiting checkpoint outranks a "running" snapshot taken just before it.
        stale = self.checkpoints.awaiting is not None and state == "running"
        if state in AGENT_STATES and not settled and not stale:
            self.status_bar.set_agent_state(state)

    def _tick(self) -> None:
        if self._status_source is not None:
            try:
                status = self._status_source()
            except Exception as exc:  # a broken probe must not take the UI down
                self._status_source = None
                self.notify(f"status probe stopped: {exc}", severity="warning")
            else:
                if status is not None:
                    self._apply_status(status)
                    return
        self.status_bar.redraw()

    # -- the prompt ---------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def _on_prompt(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.prompt.clear()
        if not text:
            return
        self.prompt.remember(text)
        if text.startswith("/"):
            await self._slash(text)
        else:
            self.send(text)

    # -- actions ----------------------------------------------------------------------------

    def on_checkpoint_card_decide(self, message: CheckpointCard.Decide) -> None:
        self._decide(message.decision)

    def action_open_images(self) -> None:
        cell = self.notebook.selected_cell
        images = cell.images() if cell is not None else []
        if not images:
            self.notify("The selected cell has no images.", severity="warning")
            return
        assert cell is not None
        paths = save_images(cell.index, images)
        open_in_viewer(paths)
        self.copy_to_clipboard(str(paths[0]))
        self.notify("\n".join(str(p) for p in paths), title="Saved (path copied)", timeout=10)

    def action_cost(self) -> None:
        s = self.status_bar.status
        self.notify(
            f"turn {s.turn} · {human_count(s.input_tokens)} in / "
            f"{human_count(s.output_tokens)} out tokens · ${s.cost_usd:.2f} · "
            f"{human_duration(self.status_bar.elapsed)} elapsed",
            title="Cost so far",
        )

    def action_focus_notebook(self) -> None:
        self.notebook.focus()

    def action_focus_prompt(self) -> None:
        self.prompt.focus()

    # -- quitting --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quit; mid-run, interrupt the loop and let it stop (it has saved every step)."""
        worker = self._agent_worker
        if worker is None or worker.is_finished:
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if self._quitting:
            return
        self._quitting = True
        self._set_state("stopping")
        self.notify("Interrupting the agent and saving…", timeout=QUIT_CLEANUP_S)
        self.run_worker(self._stop_investigation(worker), group="quit", exit_on_error=False)

    async def _stop_investigation(self, worker: Worker[Any]) -> None:
        if self.controls is not None:
            self.controls.interrupt()
        for stage in ("grace", "cancel"):
            with contextlib.suppress(asyncio.TimeoutError, WorkerFailed, WorkerCancelled):
                await asyncio.wait_for(
                    worker.wait(), QUIT_GRACE_S if stage == "grace" else QUIT_CLEANUP_S
                )
            if worker.is_finished:
                break
            worker.cancel()
        code = self.exit_code if self.stop_reason in ("concluded", "budget") else EXIT_INTERRUPTED
        self.exit(code, return_code=code)

    @property
    def exit_code(self) -> int:
        """0 concluded, 1 failed, 3 out of budget, 130 stopped before the end."""
        worker = self._agent_worker
        if self.failure is not None or (worker is not None and worker.state == WorkerState.ERROR):
            return EXIT_FAILED
        if worker is None or not worker.is_finished:
            return EXIT_INTERRUPTED
        return EXIT_FOR_REASON.get(
            self.stop_reason or "", EXIT_OK if self.conclusion else EXIT_FAILED
        )


def run_app(
    investigation: InvestigationSource,
    *,
    title: str,
    notebook: Path | None = None,
    subject: str = "",
    status: StatusSource | None = None,
    on_fork: Callable[[Path], int] | None = None,
) -> int:
    """Run the TUI until the person quits; print how to resume; return the exit code.

    ``on_fork`` opens a fork the person made from a cell (this run is saved by then).
    """
    app = ScribeApp(investigation, title=title, notebook=notebook, subject=subject, status=status)
    code = app.run()
    if code is None:
        code = app.return_code if app.return_code is not None else EXIT_FAILED
    path = app.notebook_path
    where = f" Notebook: {path}" if path else ""
    if code == EXIT_INTERRUPTED:
        print("Stopped before the end; everything so far is saved." + where)
        if path:
            print(f"Resume with: scribe-tui resume {shlex.quote(str(path))}")
    elif code == EXIT_OK and app.conclusion is not None:
        c = app.conclusion
        print(f"Concluded: {c.answer} (confidence {c.confidence:.0%}).{where}")
    elif code == EXIT_BUDGET:
        print("Stopped: the budget ran out." + where)
    elif code == EXIT_FAILED:
        print(
            f"The investigation failed: {app.failure or 'see the notebook'}.{where}",
            file=sys.stderr,
        )
    if app.fork_into is not None:
        print(f"Forked into {app.fork_into}.")
        if on_fork is not None:
            return on_fork(app.fork_into)
        print(f"Continue it with: scribe-tui resume {shlex.quote(str(app.fork_into))}")
    return code
