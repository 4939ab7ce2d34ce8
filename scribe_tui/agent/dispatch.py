"""Tool calls for an investigation: the agent's, the loop's own, and a person's cells.

:class:`Dispatcher` runs every call through the notebook tools, one at a time: a
person's cell never runs in the middle of one of the agent's calls. It never raises
for a failing tool (the failure becomes an error result) and announces each call
with ``ToolCallStarted`` / ``ToolCallFinished`` events, attributed to the agent, the
system (the loop's own calls) or the person.

Decisions worth knowing:

- The dispatcher follows the agent's session: when a call starts a new session, that
  session's notebook becomes the investigation's, and the transcript moves beside it
  (recorded as a ``notebook`` record once the transcript has a file).
- The agent starts its own session (the prompts tell it to). If it calls a tool that
  needs one before any exists, the dispatcher starts and initialises one for it and
  says so in that call's result.
- It notes the code cell each call added or changed, so that a result holding a cell's
  output can later shrink to a stub naming the cell, and a person's cell is reported
  to the agent by its number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scribe_tui.agent.conversation import text_block
from scribe_tui.agent.transcript import Transcript, transcript_path_for
from scribe_tui.events import (
    CellAdded,
    CellUpdated,
    ErrorEvent,
    Event,
    ToolCallFinished,
    ToolCallStarted,
)
from scribe_tui.tools import NotebookTools, ToolResult

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

NEEDS_SESSION = frozenset({"execute_code", "edit_cell", "add_markdown", "init_session", "conclude"})
# Tool results that hold a cell's output, and so may shrink to a stub naming the cell.
CELL_TOOLS = frozenset({"execute_code", "edit_cell", "init_session"})


class Dispatcher:
    """Runs an investigation's tool calls and follows the agent's session.

    It takes over ``tools.on_event`` (a handler already there is still called) until
    :meth:`release`; every event goes to ``emit``. ``write_header`` writes the
    transcript's header; it is called before the transcript first attaches to a file,
    if the transcript has no header yet.
    """

    def __init__(
        self,
        tools: NotebookTools,
        transcript: Transcript,
        emit: Callable[[Event], None],
        write_header: Callable[[], None],
    ) -> None:
        self.tools = tools
        self.transcript = transcript
        self.session_id: str | None = None
        self.notebook_path: Path | None = None
        self._emit = emit
        self._write_header = write_header
        self._lock = asyncio.Lock()
        self._touched: tuple[int, str] | None = None
        self._own_calls = 0
        self._chained = tools.on_event
        tools.on_event = self._on_tool_event

    def release(self) -> None:
        """Give ``tools.on_event`` back to the handler that was there (the tools may
        outlive the run)."""
        self.tools.on_event = self._chained

    # -- the agent's calls -------------------------------------------------------------------

    async def agent_call(
        self,
        block: dict[str, Any],
        experiment: str | None,
        *,
        start_session: bool = True,
        person_named: bool = False,
    ) -> tuple[dict[str, Any], ToolResult, int | None]:
        """Run one of the agent's tool_use blocks.

        Returns the arguments it ran with, its result and the code-cell number whose
        output the result holds (None if it holds none). ``experiment`` names the
        notebook when the agent starts a session without naming one, or always when the
        person chose it (``person_named``). Without
        ``start_session``, a call that needs a session fails as the tools answer it.
        """
        call_id, name = block["id"], block["name"]
        arguments = dict(block.get("input") or {})
        renames = name in ("start_new_session", "start_session_continue_notebook")
        if renames and experiment and (person_named or not arguments.get("experiment_name")):
            arguments["experiment_name"] = experiment
        prefix = ""
        if start_session and name in NEEDS_SESSION and not self.tools.sessions:
            prefix = await self._start_session_for_agent(name, experiment)
            arguments["session_id"] = self.session_id
        self._emit(ToolCallStarted(call_id=call_id, name=name, arguments=arguments))
        result, duration = await self._run(name, arguments, "agent")
        self._emit(
            ToolCallFinished(
                call_id=call_id,
                name=name,
                is_error=result.is_error,
                summary=_summary(result),
                duration=duration,
            )
        )
        cell = self._touched_code_cell() if name in CELL_TOOLS else None
        if prefix:
            result = ToolResult([text_block(prefix), *result.content], result.is_error)
        return arguments, result, cell

    async def _start_session_for_agent(self, needed_by: str, experiment: str | None) -> str:
        """The agent forgot to start a session: start (and initialise) one for it."""
        await self.loop_call(
            "start_new_session", {"experiment_name": experiment} if experiment else {}
        )
        if self.session_id not in self.tools.sessions:
            return ""  # it could not start; the agent's call fails and says why
        done = "" if needed_by == "init_session" else " and initialised"
        if needed_by != "init_session":
            await self.loop_call("init_session", {})
        return (
            f"[scribe-tui] No session was running, so session '{self.session_id}' was "
            f"started{done} for you (notebook {self.notebook_path}); this call ran in it. "
            f"Use session_id='{self.session_id}'."
        )

    # -- the loop's own calls ----------------------------------------------------------------

    async def loop_call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """A call the loop makes itself (shown as the system's); a failure is also reported
        as an error event."""
        if name in NEEDS_SESSION and self.session_id in self.tools.sessions:
            arguments = {"session_id": self.session_id, **arguments}
        self._own_calls += 1
        call_id = f"loop_{self._own_calls}"
        self._emit(ToolCallStarted(call_id, name, arguments, author="system"))
        result, duration = await self._run(name, arguments, "agent")
        summary = _summary(result)
        self._emit(ToolCallFinished(call_id, name, result.is_error, summary, duration))
        if result.is_error:
            self._emit(ErrorEvent(message=f"{name} failed: {summary}"))
        return result

    # -- a person's cells --------------------------------------------------------------------

    async def person_edit_cell(self, index: int, code: str) -> list[dict[str, Any]]:
        """Replace code cell ``index`` with a person's code and re-run it; returns the note
        for the agent (user blocks)."""
        result, number = await self._person_call("edit_cell", {"code": code, "cell_index": index})
        return [
            text_block(
                f"[From the person watching] They edited code cell {number} and re-ran it:\n"
                f"```python\n{code}\n```\nIts output now:"
            ),
            *result.content,
        ]

    async def person_run_code(self, code: str) -> list[dict[str, Any]]:
        """Append and run a person's own code cell; returns the note for the agent."""
        result, number = await self._person_call("execute_code", {"code": code})
        return [
            text_block(
                f"[From the person watching] They ran a cell of their own, code cell {number}:\n"
                f"```python\n{code}\n```\nIts output:"
            ),
            *result.content,
        ]

    async def _person_call(self, name: str, arguments: dict[str, Any]) -> tuple[ToolResult, int]:
        """Run a person's cell through the tools; returns the result and its code-cell number."""
        if self.session_id not in self.tools.sessions:
            raise RuntimeError(
                "No notebook session is running yet; wait for the agent to start one."
            )
        arguments = {"session_id": self.session_id, **arguments}
        self.transcript.write("steer", action=name, **arguments)
        self._own_calls += 1
        call_id = f"person_{self._own_calls}"
        self._emit(ToolCallStarted(call_id, name, arguments, author="person"))
        result, duration = await self._run(name, arguments, "person")
        self._emit(ToolCallFinished(call_id, name, result.is_error, _summary(result), duration))
        number = self._touched_code_cell()
        if result.is_error or number is None:
            raise ValueError(result.text or f"{name} failed")
        return result, number

    # -- running, and following the session --------------------------------------------------

    async def _run(
        self, name: str, arguments: dict[str, Any], author: str
    ) -> tuple[ToolResult, float]:
        """Call a tool under the lock every caller shares; never raises."""
        started = time.monotonic()
        async with self._lock:
            self._touched = None
            before = set(self.tools.sessions)
            try:
                result = await self.tools.call(name, arguments, author=author)
            except Exception as exc:  # the tools promise not to raise; don't trust it blindly
                log.exception("tool %s raised", name)
                result = ToolResult([text_block(f"{name} failed: {exc}")], is_error=True)
            if not result.is_error and set(self.tools.sessions) - before:
                self._session_started()
            else:
                self._follow_moves()
        return result, time.monotonic() - started

    def _session_started(self) -> None:
        """Follow the newest session: its notebook is the one the transcript sits beside."""
        self.session_id = list(self.tools.sessions)[-1]
        path = self.tools.sessions[self.session_id].notebook.path
        self.notebook_path = path
        if self.transcript.is_attached:
            self.transcript.write("notebook", path=str(path))
            return
        if not self.transcript.has_header:
            self._write_header()
        self.transcript.attach(_free(transcript_path_for(path)))

    def _follow_moves(self) -> None:
        """The session's notebook was saved aside (its file changed under it): follow it."""
        session = self.tools.sessions.get(self.session_id or "")
        if session is None or session.notebook.path == self.notebook_path:
            return
        self.notebook_path = session.notebook.path
        if self.transcript.is_attached:
            self.transcript.write("notebook", path=str(self.notebook_path))

    def interrupt_cells(self) -> None:
        """Interrupt every running cell, now (without waiting for the lock)."""
        # Idle kernels ignore the interrupt, so there is no need to know which cell runs.
        for session in list(self.tools.sessions.values()):
            asyncio.ensure_future(session.kernel.interrupt()).add_done_callback(_log_failure)

    def _on_tool_event(self, event: Event) -> None:
        if isinstance(event, (CellAdded, CellUpdated)):
            self._touched = (event.index, event.cell_id)
        if self._chained is not None:
            self._chained(event)
        self._emit(event)

    def _touched_code_cell(self) -> int | None:
        """The code-cell number of the cell the last call added or changed, if it was code."""
        if self._touched is None:
            return None
        index, cell_id = self._touched
        for session in self.tools.sessions.values():
            cells = session.notebook.cells
            if index < len(cells) and cells[index]["id"] == cell_id:
                code = cells[index]["cell_type"] == "code"
                return session.notebook.code_number(index) if code else None
        return None


def _summary(result: ToolResult) -> str:
    """One line for a tool call's result: its first non-empty line, shortened."""
    line = next((ln.strip() for ln in result.text.splitlines() if ln.strip()), "")
    if not line:
        line = "(image output)" if result.content else "(no output)"
    return line if len(line) <= 120 else line[:119] + "…"


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("kernel interrupt failed: %s", task.exception())


def _free(path: Path) -> Path:
    """``path``, or ``stem-2.jsonl``, ``stem-3.jsonl``, ... if it is taken."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
