"""An investigation whose agent lives outside this process: an MCP client calling our tools.

:class:`ExternalInvestigation` runs every tool call an outside agent makes through the
notebook tools and gives the person watching the controls our own loop gives them
(:class:`~scribe_tui.agent.controls.InvestigationControls`), at the only boundaries
there are, the tool calls:

- ``pause`` holds the agent's next tool call until ``resume``; ``interrupt`` also
  interrupts the running cell.
- A person's messages, and what their own cells did, are appended to the next tool
  result (the agent reads nothing else of ours).
- Every ``checkpoint_every`` ``execute_code`` calls (or when a person asks) the
  checkpoint prompt is appended to that call's result; the agent's next
  ``add_markdown`` is its answer.

Front ends follow one notebook, the newest session's: cell events of other notebooks
are not passed on, and :class:`~scribe_tui.events.NotebookOpened` (followed by
the notebook's cells) announces a switch. :meth:`replay` is what a front end attaching
mid-run needs to catch up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from scribe_tui.agent.checkpoints import (
    CheckpointState,
    checkpoint_prompt,
    decision_message,
    looks_like_checkpoint,
)
from scribe_tui.agent.controls import EventSink
from scribe_tui.agent.conversation import text_block
from scribe_tui.agent.dispatch import Dispatcher
from scribe_tui.agent.steering import PERSON_PREFIX, Steering, person_message
from scribe_tui.agent.transcript import Transcript
from scribe_tui.events import (
    CellAdded,
    CellExecuting,
    CellUpdated,
    CheckpointAnswered,
    CheckpointDecided,
    CheckpointRequested,
    Concluded,
    Event,
    MessageDelivered,
    MessageQueued,
    NotebookOpened,
    Paused,
    Resumed,
    Status,
)
from scribe_tui.runtime.notebook import Notebook
from scribe_tui.tools import NotebookTools, ToolResult

__all__ = ["ExternalInvestigation", "cells_as_events"]

_CELL_EVENTS = (CellAdded, CellExecuting, CellUpdated)


class _Unrecorded(Transcript):
    """No transcript file: the outside agent keeps its own conversation; the notebook is ours."""

    def attach(self, path: Any) -> None:
        return None

    def write(self, kind: str, **fields: Any) -> None:
        return None


class ExternalInvestigation:
    """An outside agent's tool calls, gated by a person's controls; see the module doc.

    The caller owns ``tools`` and closes them. Calls may arrive concurrently (several
    MCP clients); they run one at a time, in arrival order.
    """

    def __init__(
        self, tools: NotebookTools, *, checkpoint_every: int = 10, sandbox: str = ""
    ) -> None:
        self.tools = tools
        self.sandbox = sandbox
        self.steering = Steering()
        self.checkpoints = CheckpointState(every=checkpoint_every)
        self.experiments = 0
        self.conclusion: Concluded | None = None
        self._sinks: list[EventSink] = []
        self._notes: list[dict[str, Any]] = []  # what a person's cells did, for the next result
        self._history: list[Event] = []  # checkpoints and the conclusion, for late front ends
        self._calls = 0
        self._in_flight = 0
        self._announced = False  # a Paused event went out for the pause in force
        self._followed: str | None = None  # the notebook front ends show
        self._started = time.monotonic()
        self.dispatcher = Dispatcher(tools, _Unrecorded(), self._on_dispatch, lambda: None)

    # -- the agent's side --------------------------------------------------------------

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        """Run one tool call (after any pause); never raises for a failing tool."""
        await self._held(name)
        self._calls += 1
        self._in_flight += 1
        try:
            block = {"id": f"call_{self._calls}", "name": name, "input": dict(arguments or {})}
            # No session started behind its back: the tools' own answer says what to do.
            used, result, _cell = await self.dispatcher.agent_call(block, None, start_session=False)
        finally:
            self._in_flight -= 1
        self._after_call(name, used, result)
        self._follow()
        result = self._with_news(result)
        if self.steering.pause_reason is not None:
            self._announce(self.steering.pause_reason)
        self._emit(self.status())
        return result

    async def _held(self, name: str) -> None:
        """Wait while a person has the run paused; says so, so they know the agent waits."""
        if self.steering.pause_reason is None:
            return
        self._emit(Paused(reason=f"holding the agent's {name} call until you resume"))
        self._announced = True
        self._emit(self.status())
        while self.steering.pause_reason is not None:
            await self.steering.wait()

    def _after_call(self, name: str, arguments: Mapping[str, Any], result: ToolResult) -> None:
        """Count an experiment; take in a checkpoint's answer or a conclusion (as the loop)."""
        if name == "execute_code":
            self.experiments += 1
            self.checkpoints.check(self.experiments)
        if result.is_error:
            return
        if name == "add_markdown":
            content = str(arguments.get("content", ""))
            if not looks_like_checkpoint(content):
                return  # a note, not the checkpoint (e.g. the agent answering the person)
            if self.checkpoints.pending is not None:
                number = self.checkpoints.answered(content, confirm=False)
            else:
                number = self.checkpoints.volunteered(self.experiments, content, confirm=False)
            self._remember(CheckpointAnswered(number=number, content=content))
        elif name == "conclude":
            self.conclusion = Concluded(
                answer=str(arguments["answer"]),
                confidence=float(arguments["confidence"]),
                evidence=str(arguments["evidence"]),
            )
            self._remember(self.conclusion)

    def _with_news(self, result: ToolResult) -> ToolResult:
        """The result, then the person's cells, their messages and a due checkpoint request."""
        content = [*result.content, *self._notes]
        self._notes.clear()
        queued = self.steering.queued[:]
        self.steering.queued.clear()
        content += [text_block(text) for text in queued]
        if queued:
            self._emit(MessageDelivered(texts=[t.removeprefix(PERSON_PREFIX) for t in queued]))
        if self.checkpoints.due:
            content.append(text_block(checkpoint_prompt()))
            number = self.checkpoints.sent(self.experiments)
            self._remember(CheckpointRequested(number=number, experiments=self.experiments))
        return ToolResult(content, result.is_error)

    # -- controls (InvestigationControls) ----------------------------------------------

    def subscribe(self, sink: EventSink) -> None:
        """Deliver every future event to ``sink``."""
        self._sinks.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        """Stop delivering events to ``sink`` (a watcher that went away)."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def pause(self) -> None:
        """Hold the agent's next tool call until :meth:`resume`."""
        self.steering.pause("paused")
        if not self._in_flight:
            self._announce("paused")

    def resume(self) -> None:
        """Let held and later calls run."""
        paused = self.steering.pause_reason is not None
        self.steering.resume()
        self._announced = False
        if paused:
            self._emit(Resumed())
            self._emit(self.status())

    def interrupt(self) -> None:
        """Interrupt the running cell now, and hold the next call."""
        self.steering.pause("interrupted")
        self.dispatcher.interrupt_cells()
        if not self._in_flight:
            self._announce("interrupted")

    def send(self, text: str) -> None:
        """Queue a message; it is appended to the agent's next tool result."""
        self.steering.queued.append(person_message(text))
        self._emit(MessageQueued(text=text, queued=len(self.steering.queued)))

    def request_checkpoint(self) -> None:
        """Append the checkpoint prompt to the agent's next tool result."""
        self.checkpoints.ask()

    def decide_checkpoint(
        self, number: int, decision: Literal["approve", "pivot", "continue"], message: str = ""
    ) -> None:
        """A pivot or a message reaches the agent with its next tool result."""
        self._remember(CheckpointDecided(number=number, decision=decision, message=message))
        said = decision_message(number, decision, message)
        if said is not None:
            self.send(said)
        self.checkpoints.decided(number)

    async def edit_cell(self, index: int, code: str) -> None:
        """Replace code cell ``index`` with a person's code and re-run it; tell the agent."""
        self._notes += await self.dispatcher.person_edit_cell(index, code)

    async def run_code(self, code: str) -> None:
        """Append and run a person's own code cell; tell the agent."""
        self._notes += await self.dispatcher.person_run_code(code)

    # -- what front ends see -------------------------------------------------------------

    def status(self) -> Status:
        """The agent's side of the status bar (the host's is the status board's)."""
        if self.steering.pause_reason is not None:
            state = "paused"
        else:
            state = "concluded" if self.conclusion is not None else "running"
        return Status(
            agent_state=state,
            elapsed=time.monotonic() - self._started,
            queued=len(self.steering.queued),
            sandbox=self.sandbox,
        )

    def replay(self) -> list[Event]:
        """What a front end attaching now needs: the followed notebook, checkpoints, state."""
        events = self._notebook_events()
        events += self._history
        if self.steering.pause_reason is not None:
            events.append(Paused(reason=self.steering.pause_reason))
        events.append(self.status())
        return events

    @property
    def notebook_path(self) -> str | None:
        """The notebook front ends follow (the newest session's), if any."""
        return self._followed

    def open_notebooks(self) -> list[str]:
        """Every notebook a live session writes to."""
        return [str(s.notebook.path.resolve()) for s in self.tools.sessions.values()]

    def _notebook_events(self) -> list[Event]:
        session = self.tools.sessions.get(self.dispatcher.session_id or "")
        if self._followed is None or session is None:
            return []
        return [NotebookOpened(path=self._followed), *cells_as_events(session.notebook)]

    def _follow(self) -> None:
        """After a call: if it opened a newer session, front ends switch to its notebook."""
        path = self.dispatcher.notebook_path
        if path is None or str(path.resolve()) == self._followed:
            return
        self._followed = str(path.resolve())
        for event in self._notebook_events():
            self._emit(event)

    def _on_dispatch(self, event: Event) -> None:
        """Events from the dispatcher: cell events only for the followed notebook."""
        if isinstance(event, _CELL_EVENTS) and not self._is_followed(event):
            return
        self._emit(event)

    def _is_followed(self, event: CellAdded | CellExecuting | CellUpdated) -> bool:
        session = self.tools.sessions.get(self.dispatcher.session_id or "")
        if session is None or self._followed is None:
            return False
        cells = session.notebook.cells
        return event.index < len(cells) and cells[event.index]["id"] == event.cell_id

    def _announce(self, reason: str) -> None:
        if not self._announced:
            self._announced = True
            self._emit(Paused(reason=reason))
            self._emit(self.status())

    def _remember(self, event: Event) -> None:
        self._history.append(event)
        self._emit(event)

    def _emit(self, event: Event) -> None:
        for sink in list(self._sinks):
            sink(event)


def cells_as_events(notebook: Notebook) -> list[Event]:
    """A notebook's cells as the events that would have shown them, outputs included."""
    events: list[Event] = []
    for index, cell in enumerate(notebook.cells):
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        author = cell.get("metadata", {}).get("scribe", {}).get("author", "agent")
        events.append(CellAdded(index, cell["id"], cell["cell_type"], source, author))
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            outputs = list(cell.get("outputs", []))
            failed = any(o.get("output_type") == "error" for o in outputs)
            count = cell.get("execution_count")
            status = "error" if failed else "ok"
            events.append(CellUpdated(index, cell["id"], source, outputs, count, status, author))
    return events
