"""The notebook tools the agent calls: sessions of one kernel and one notebook each.

``NotebookTools.call`` never raises for bad input: every problem comes back as a
``ToolResult(is_error=True)`` whose single line tells the model what to do instead.
Every cell change is saved before the call returns, and streamed to ``on_event`` so a
front end can show the notebook growing.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scribe_tui import techniques
from scribe_tui.claims import claim_of, load_direction, read_components, read_layers
from scribe_tui.events import CellAdded, CellExecuting, CellUpdated, Event, KernelStarted
from scribe_tui.runtime.kernel import ExecutionResult, KernelError, KernelSession, SandboxFactory
from scribe_tui.runtime.nblock import NotebookLock
from scribe_tui.runtime.notebook import (
    DEFAULT_IMAGE_CAP,
    DEFAULT_TEXT_CAP,
    Notebook,
    NotebookError,
    cap_outputs,
    discard_notebook,
    files_folder,
)
from scribe_tui.techniques.components import parse_component
from scribe_tui.tools.rendering import (
    DEFAULT_TOKEN_BUDGET,
    MAX_IMAGES,
    error_line,
    render_outputs,
    status_line,
)
from scribe_tui.tools.schemas import TOOL_DEFINITIONS, ToolInputError, parse_arguments

log = logging.getLogger(__name__)

DEFAULT_SETUP = """\
# Session setup: common imports, and what this kernel can compute with.
import json
import math
import os
import random
import sys
from pathlib import Path

print(f"Python {sys.version.split()[0]}")
try:
    import torch
except ImportError:
    print("torch: not installed")
else:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}; device: {device}")
"""

# Live output events are at most this frequent: a chatty cell must not flood the UI.
_LIVE_INTERVAL = 0.1
# Seconds a cell runs before its code is saved ahead of its outputs.
_EARLY_SAVE_AFTER = 0.1


@dataclass
class ToolResult:
    """A tool's answer as Anthropic ``tool_result`` content blocks (text and images)."""

    content: list[dict[str, Any]]
    is_error: bool = False

    @property
    def text(self) -> str:
        """The text blocks joined (images left out)."""
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text")


@dataclass
class Session:
    """One kernel and the notebook it writes to."""

    id: str
    notebook: Notebook
    kernel: KernelSession
    concluded: bool = False
    # Keeps "append a cell, run it" atomic so cells sit in the order they ran.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # Keeps other scribe-tui processes off the notebook while the session lives.
    hold: NotebookLock | None = field(default=None, repr=False)
    # The kernel's connection file as last announced (a replaced kernel has a new one).
    connection_file: str | None = None
    # The MCP client that started it (see CALLER); None: the run's own agent.
    owner: str | None = None


CALLER: ContextVar[str | None] = ContextVar("scribe_tools_caller", default=None)
"""Who makes the current tool call: an MCP client's own key, set around its calls, or None
(the run's agent, and the person, who may steer any session). A client sees, names and
reaches only the sessions it started."""
MAX_SESSIONS_PER_CLIENT = 4
"""Live sessions one MCP client may hold (each is a kernel)."""


@dataclass
class _Run:
    """A finished cell: the kernel's result and the outputs as stored in the notebook."""

    index: int
    result: ExecutionResult
    outputs: list[dict[str, Any]]


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def _error(text: str) -> ToolResult:
    return ToolResult(_text(text), is_error=True)


class NotebookTools:
    """The agent's notebook tool set; see ``definitions()`` for what the model is told."""

    def __init__(
        self,
        notebooks_dir: Path | str = Path("notebooks"),
        *,
        setup_code: str = DEFAULT_SETUP,
        cell_timeout: float = 600.0,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        output_cap_bytes: int = DEFAULT_TEXT_CAP,
        image_cap_bytes: int = DEFAULT_IMAGE_CAP,
        max_images: int = MAX_IMAGES,
        metadata: Mapping[str, Any] | None = None,
        kernel_env: Mapping[str, str] | None = None,
        kernel_sandbox: SandboxFactory | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.notebooks_dir = Path(notebooks_dir)
        self.setup_code = setup_code
        self.cell_timeout = cell_timeout
        self.token_budget = token_budget
        self.output_cap_bytes = output_cap_bytes
        self.image_cap_bytes = image_cap_bytes
        self.max_images = max_images
        self.metadata = dict(metadata or {})
        self.kernel_env = dict(kernel_env or {})
        self.kernel_sandbox = kernel_sandbox
        self.on_event = on_event
        self._sessions: dict[str, Session] = {}
        self._ended: dict[str, tuple[str | None, Path]] = {}  # shut-down id → (owner, notebook)
        self._counter = 0
        self._closed = False
        self._handlers: dict[str, Callable[..., Any]] = {
            "start_new_session": self._start_new_session,
            "start_session_resume_notebook": self._resume,
            "start_session_continue_notebook": self._continue,
            "init_session": self._init_session,
            "execute_code": self._execute_code,
            "edit_cell": self._edit_cell,
            "add_markdown": self._add_markdown,
            "shutdown_session": self._shutdown_session,
            "conclude": self._conclude,
        }

    # -- public API -------------------------------------------------------------------

    def definitions(self) -> list[dict[str, Any]]:
        """Anthropic tool definitions (name, description, input_schema), fresh copies."""
        return copy.deepcopy(TOOL_DEFINITIONS)

    @property
    def sessions(self) -> Mapping[str, Session]:
        """The live sessions by id (read-only view)."""
        return MappingProxyType(self._sessions)

    def session(self, session_id: str | None = None) -> Session:
        """A live session of the caller's; with no id, its only live one. ToolInputError says
        what's wrong, naming only the caller's own sessions."""
        owner = CALLER.get()
        mine = {k: s for k, s in self._sessions.items() if owner is None or s.owner == owner}
        if session_id is None:
            if len(mine) == 1:
                return next(iter(mine.values()))
            if not mine:
                raise ToolInputError("No session is running; start one with start_new_session.")
            raise ToolInputError(
                f"Several sessions are running ({', '.join(mine)}); pass session_id to say which."
            )
        found = mine.get(session_id)
        if found is not None:
            return found
        ended_by, path = self._ended.get(session_id, (None, None))
        if path is not None and (owner is None or ended_by == owner):
            raise ToolInputError(
                f"Session {session_id!r} was shut down; continue its notebook with "
                f"start_session_resume_notebook(notebook_path='{path}') "
                "or start a new one with start_new_session."
            )
        live = f", or use one of: {', '.join(mine)}" if mine else ""
        raise ToolInputError(
            f"Unknown session {session_id!r}. Start one with start_new_session{live}."
        )

    async def call(
        self, name: str, arguments: Mapping[str, Any] | str | None, *, author: str = "agent"
    ) -> ToolResult:
        """Run tool ``name``; never raises for bad input or tool failures (only cancellation)."""
        try:
            if self._closed:
                raise ToolInputError("The notebook tools were closed; no more calls can run.")
            args = parse_arguments(name, arguments)
            result: ToolResult = await self._handlers[name](author=author, **args)
            return self._with_save_warnings(result)
        except ToolInputError as exc:
            return _error(str(exc))
        except (KernelError, NotebookError) as exc:
            return _error(str(exc))
        except Exception as exc:
            log.exception("tool %s failed", name)
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            return _error(
                f"{name} failed unexpectedly: {type(exc).__name__}"
                + (f": {detail}" if detail else "")
                + "; the notebook keeps everything saved so far."
            )

    async def flush(self) -> None:
        """Wait until every live notebook is on disk; raises if one could not be saved.

        Cell changes are saved in the background as they happen (see ``Notebook.save_soon``);
        call this before reading a notebook file that a call just changed.
        """
        for session in list(self._sessions.values()):
            await asyncio.to_thread(session.notebook.flush)

    async def aclose(self) -> None:
        """Shut down every kernel, mark unfinished notebooks stopped, and flush them."""
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        outcomes = await asyncio.gather(*(self._end(s) for s in sessions), return_exceptions=True)
        for session, outcome in zip(sessions, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("closing session %s failed: %s", session.id, outcome)

    async def end_sessions_of(self, owner: str) -> list[str]:
        """Shut down every session ``owner`` started (its client went away); their ids."""
        ended = [s for s in self._sessions.values() if s.owner == owner]
        for session in ended:
            del self._sessions[session.id]
            await self._end(session)
        return [s.id for s in ended]

    def take_notices(self) -> list[str]:
        """Warnings about the live notebooks' files (one saved aside, ...), each given once."""
        return [n for s in self._sessions.values() for n in s.notebook.take_notices()]

    def _with_save_warnings(self, result: ToolResult) -> ToolResult:
        """Say so while a notebook cannot be saved: the work is only in memory until it can."""
        for session in self._sessions.values():
            error = session.notebook.save_error
            if isinstance(error, NotebookError):  # its message already says all that
                result.content.append(_text(f"Warning: {error}")[0])
            elif error is not None:
                result.content.append(
                    _text(
                        f"Warning: {session.notebook.path} could not be saved ({error}); the "
                        "notebook is kept in memory and saving is retried after every change."
                    )[0]
                )
        return result

    # -- sessions ---------------------------------------------------------------------

    async def _kernel(self, notebook: Path) -> KernelSession:
        """A started kernel for ``notebook``: it works in the notebook's files folder, the one
        folder a sealed kernel may write, so the record itself stays out of its reach."""
        cwd = files_folder(notebook)
        cwd.mkdir(parents=True, exist_ok=True)
        kernel = KernelSession(
            cwd=cwd.resolve(), extra_env=self.kernel_env, sandbox=self.kernel_sandbox
        )
        try:
            await kernel.start()
        except BaseException:
            await kernel.shutdown()
            raise
        return kernel

    def _check_room(self) -> None:
        """An MCP client holds at most MAX_SESSIONS_PER_CLIENT kernels at once."""
        owner = CALLER.get()
        held = [s.id for s in self._sessions.values() if owner is not None and s.owner == owner]
        if len(held) >= MAX_SESSIONS_PER_CLIENT:
            raise ToolInputError(
                f"You have {len(held)} sessions running ({', '.join(held)}), the most one client "
                "may hold; shut one down with shutdown_session first."
            )

    def _register(
        self, notebook: Notebook, kernel: KernelSession, hold: NotebookLock | None = None
    ) -> Session:
        if hold is None:  # a notebook just created: nobody else can hold it yet
            hold = NotebookLock(notebook.path)
            hold.acquire()
        self._counter += 1
        owner = CALLER.get()
        # A client's ids are unguessable too: another client cannot even name its sessions.
        name = f"s{self._counter}" if owner is None else f"s{secrets.token_hex(4)}"
        session = Session(name, notebook, kernel, hold=hold, owner=owner)
        self._sessions[session.id] = session
        self._announce(session)
        return session

    def _announce(self, session: Session) -> None:
        """Tell front ends where to attach a console to the session's (new) kernel."""
        found = session.kernel.connection_file
        if found and found != session.connection_file:
            session.connection_file = found
            self._emit(KernelStarted(session.id, found, str(session.notebook.path)))

    async def _end(self, session: Session) -> None:
        self._ended[session.id] = (session.owner, session.notebook.path)
        try:
            await session.kernel.shutdown()
        finally:
            notebook = session.notebook
            if notebook.scribe.get("status") == "running":
                notebook.update_scribe(status="stopped", save=False)
                notebook.save_soon()
            try:
                await asyncio.to_thread(notebook.flush)
            finally:
                for notice in notebook.take_notices():  # too late for the run's event stream
                    log.warning("%s", notice)
                if session.hold is not None:
                    session.hold.release()

    def _new_notebook(self, name: str | None) -> Notebook:
        return Notebook.create(
            self.notebooks_dir,
            name,
            metadata=self.metadata,
            text_cap=self.output_cap_bytes,
            image_cap=self.image_cap_bytes,
        )

    def _load(self, path: str) -> Notebook:
        notebook = Notebook.load(
            Path(path).expanduser(), text_cap=self.output_cap_bytes, image_cap=self.image_cap_bytes
        )
        owner = CALLER.get()
        for session in self._sessions.values():
            if session.notebook.path.resolve() == notebook.path.resolve():
                which = repr(session.id) if owner is None or session.owner == owner else "another"
                raise ToolInputError(
                    f"{path} is already open in session {which}; use that session, or "
                    "fork it with start_session_continue_notebook."
                )
        return notebook

    # -- the tools --------------------------------------------------------------------

    async def _start_new_session(
        self, *, author: str, experiment_name: str | None = None
    ) -> ToolResult:
        self._check_room()
        notebook = self._new_notebook(experiment_name)
        try:
            kernel = await self._kernel(notebook.path)
        except BaseException:
            discard_notebook(notebook.path)  # a failed start leaves no empty notebook behind
            raise
        session = self._register(notebook, kernel)
        return ToolResult(
            _text(
                f"Session {session.id!r} started; notebook: {notebook.path}. "
                f"Run init_session(session_id='{session.id}') next to load the setup."
            )
        )

    async def _resume(self, *, author: str, notebook_path: str) -> ToolResult:
        self._check_room()
        notebook = self._load(notebook_path)
        hold = NotebookLock(notebook.path)
        hold.acquire()  # NotebookBusy, before a kernel starts, if another process has it
        try:
            kernel = await self._kernel(notebook.path)
        except BaseException:
            hold.release()
            raise
        session = self._register(notebook, kernel, hold)
        notebook.update_scribe(status="running", save=False)
        notebook.save_soon()
        summary = await self._restore(session)
        return ToolResult(
            _text(
                f"Resumed {notebook.path} as session {session.id!r}; new cells go to the same "
                f"notebook.\n{summary}"
            )
        )

    async def _continue(
        self, *, author: str, notebook_path: str, experiment_name: str | None = None
    ) -> ToolResult:
        self._check_room()
        parent = Notebook.load(
            Path(notebook_path).expanduser(),
            text_cap=self.output_cap_bytes,
            image_cap=self.image_cap_bytes,
        )
        fork = parent.fork(self.notebooks_dir, experiment_name, metadata=self.metadata)
        try:
            kernel = await self._kernel(fork.path)
        except BaseException:
            discard_notebook(fork.path)
            raise
        session = self._register(fork, kernel)
        summary = await self._restore(session)
        return ToolResult(
            _text(
                f"Forked {parent.path} into {fork.path} as session {session.id!r}; new cells go "
                f"to the copy, the original is unchanged.\n{summary}"
            )
        )

    async def _restore(self, session: Session) -> str:
        """Re-run in order the code cells that had run to the end; a summary naming the
        failures and the cells left out. A cell that ended in an error or an interrupt
        is not re-run: what it did was never whole, and a slow or stuck cell (one a
        person stopped) would run again."""
        notebook = session.notebook
        async with session.lock:
            indices = notebook.code_indices()
            ended = {i: why for i in indices if (why := _unfinished(notebook.cells[i]))}
            runs = await self._run_cells(session, [i for i in indices if i not in ended])
        summary = self._summarise(notebook, runs, len(indices) - len(ended), "restoring")
        if ended:
            left = ", ".join(
                f"code cell {notebook.code_number(i)} ({why})" for i, why in ended.items()
            )
            summary += f"\nNot re-run, as they had ended in an error or an interrupt: {left}."
        return summary

    async def _init_session(self, *, author: str, session_id: str | None = None) -> ToolResult:
        session = self.session(session_id)
        async with session.lock:
            index = session.notebook.add_code_cell(self.setup_code, "system", save=False)
            self._emit_added(session.notebook, index)
            run = await self._run_cell(session, index)
        blocks = self._render(session, run)
        head = f"Setup ran in code cell {session.notebook.code_number(index)}:"
        blocks = _prefix(head, blocks)
        if _runs_techniques(blocks):
            blocks.append({"type": "text", "text": techniques.describe()})
        return ToolResult(blocks)

    async def _execute_code(
        self, *, author: str, code: str, session_id: str | None = None
    ) -> ToolResult:
        session = self.session(session_id)
        async with session.lock:
            index = session.notebook.add_code_cell(code, author, save=False)
            self._emit_added(session.notebook, index)
            run = await self._run_cell(session, index)
        return ToolResult(self._render(session, run))

    async def _edit_cell(
        self,
        *,
        author: str,
        code: str,
        session_id: str | None = None,
        cell_index: int = -1,
        rerun_below: bool = False,
    ) -> ToolResult:
        session = self.session(session_id)
        notebook = session.notebook
        async with session.lock:
            try:
                index = notebook.code_index(cell_index)
            except IndexError as exc:
                raise ToolInputError(f"edit_cell: {exc}.") from None
            notebook.set_source(index, code, author, save=False)
            notebook.set_outputs(index, [], None, save=False)
            self._emit_updated(notebook, index, [])
            below = [i for i in notebook.code_indices() if i > index] if rerun_below else []
            runs = await self._run_cells(session, [index, *below])
        number = notebook.code_number(index)
        blocks = _prefix(f"Code cell {number} replaced and re-run:", self._render(session, runs[0]))
        if rerun_below:
            summary = self._summarise(notebook, runs[1:], len(below), "re-running below")
            blocks.append({"type": "text", "text": summary})
        return ToolResult(blocks)

    async def _add_markdown(
        self, *, author: str, content: str, session_id: str | None = None
    ) -> ToolResult:
        session = self.session(session_id)
        notebook = session.notebook
        index = notebook.add_markdown_cell(content, author, save=False)
        notebook.save_soon()
        self._emit_added(notebook, index)
        return ToolResult(_text(f"Markdown added as cell {index} of {notebook.path}."))

    async def _shutdown_session(self, *, author: str, session_id: str | None = None) -> ToolResult:
        session = self.session(session_id)
        del self._sessions[session.id]
        await self._end(session)
        path = session.notebook.path
        return ToolResult(_text(f"Session {session.id!r} shut down; notebook saved at {path}."))

    async def _conclude(
        self,
        *,
        author: str,
        answer: str,
        confidence: float,
        evidence: str,
        components: list[str] | None = None,
        layers: list[int] | None = None,
        direction: str | None = None,
        layer: int | None = None,
        session_id: str | None = None,
    ) -> ToolResult:
        session = self.session(session_id)
        notebook = session.notebook
        claimed = self._claimed_components(answer, components)
        structured: dict[str, Any] = {}
        if claimed is not None:
            # The Conclusion cell shows the circuit; the scorer reads it from the metadata.
            evidence = f"**Components:** {', '.join(claimed) or '(none)'}\n\n{evidence}"
            structured["components"] = claimed
        if layers is not None:
            structured["layers"] = self._claimed_layers(answer, layers)
            evidence = f"**Layers:** {', '.join(map(str, structured['layers']))}\n\n{evidence}"
        if direction is not None or layer is not None:
            structured["direction"] = self._claimed_direction(
                answer, direction, layer, notebook.path
            )
            said = structured["direction"]
            evidence = f"**Direction:** `{said['path']}` (layer {said['layer']})\n\n{evidence}"
        index = notebook.conclude(answer, float(confidence), evidence, author, save=False)
        if structured:
            notebook.update_scribe(
                save=False, conclusion={**notebook.scribe["conclusion"], **structured}
            )
        notebook.save_soon()
        self._emit_added(notebook, index)
        session.concluded = True
        # Said back so the agent sees how its answer will be scored (scribe_tui.claims).
        reading = {
            "named": "a named answer",
            "none": "none: nothing was planted",
            "unknown": "unknown: an abstention",
        }[claim_of(answer) or "unknown"]
        return ToolResult(
            _text(
                f"Concluded with confidence {confidence:.2f}, read as {reading}; "
                f"recorded in {notebook.path}."
            )
        )

    def _claimed_components(self, answer: str, components: list[str] | None) -> list[str] | None:
        """The claim's components, canonical and checked against the model's layout
        (``metadata["layout"]``: ``{"layers", "heads"}``, where the launcher knows it)."""
        if components is None:
            return None
        try:
            claimed = read_components(components)
        except ValueError as exc:
            raise ToolInputError(f"conclude: {exc}.") from None
        if claimed and claim_of(answer) != "named":
            raise ToolInputError(
                f"conclude: the answer {answer!r} claims no circuit but components are given; "
                "leave components out, or answer with the circuit."
            )
        shape = self.metadata.get("layout") or {}
        layers, heads = shape.get("layers"), shape.get("heads")
        for name in claimed:
            component = parse_component(name)
            if (layers is not None and component.layer >= layers) or (
                heads is not None and component.head is not None and component.head >= heads
            ):
                raise ToolInputError(
                    f"conclude: {name} is not in this model ({layers} layers of {heads} heads; "
                    "layers and heads count from 0)."
                )
        return claimed

    def _claimed_layers(self, answer: str, layers: list[int]) -> list[int]:
        """The claim's layers, sorted and checked against the model's layout."""
        try:
            claimed = read_layers(layers)
        except ValueError as exc:
            raise ToolInputError(f"conclude: {exc}.") from None
        if claimed and claim_of(answer) != "named":
            raise ToolInputError(
                f"conclude: the answer {answer!r} claims nothing but layers are given; "
                "leave layers out, or answer with them."
            )
        count = (self.metadata.get("layout") or {}).get("layers")
        outside = [n for n in claimed if count is not None and n >= count]
        if outside:
            raise ToolInputError(
                f"conclude: layer {outside[0]} is not in this model ({count} layers, "
                "counted from 0)."
            )
        return claimed

    def _claimed_direction(
        self, answer: str, direction: str | None, layer: int | None, notebook: Path
    ) -> dict[str, Any]:
        """The direction artifact, read now (what the scorer judges is what was concluded):
        ``{"path", "sha256", "layer", "vector"}``. The file must be in the notebook's files
        folder, the kernel's working folder."""
        if direction is None:
            raise ToolInputError(
                "conclude: layer is given without a direction; pass direction='FILE' too."
            )
        if claim_of(answer) != "named":
            raise ToolInputError(
                f"conclude: the answer {answer!r} claims no direction but one is given; "
                "leave direction out, or answer with it."
            )
        if layer is not None and (isinstance(layer, bool) or layer < 0):
            raise ToolInputError(f"conclude: layer must be a whole number from 0, not {layer!r}.")
        count = (self.metadata.get("layout") or {}).get("layers")
        if layer is not None and count is not None and layer >= count:
            raise ToolInputError(
                f"conclude: layer {layer} is not in this model ({count} layers, counted from 0)."
            )
        folder = files_folder(notebook).resolve()
        path = (folder / direction).resolve()
        if not path.is_relative_to(folder):
            raise ToolInputError(
                f"conclude: {direction!r} is outside the notebook's working folder {folder}; "
                "save the vector there (a relative path such as 'refusal.pt')."
            )
        try:
            vector = load_direction(path)
        except ValueError as exc:
            raise ToolInputError(f"conclude: {exc}.") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        relative = str(path.relative_to(folder))
        return {"path": relative, "sha256": digest, "layer": layer, "vector": vector}

    # -- running cells ----------------------------------------------------------------

    async def _run_cells(self, session: Session, indices: Iterable[int]) -> list[_Run]:
        """Run cells in order, stopping after a kernel death (later cells would fail anyway)."""
        runs = []
        for index in indices:
            run = await self._run_cell(session, index)
            runs.append(run)
            if run.result.status == "died":
                break
        return runs

    async def _run_cell(self, session: Session, index: int) -> _Run:
        """Run code cell ``index``; save and report its outputs as they come and at the end."""
        notebook, kernel = session.notebook, session.kernel
        cell = notebook.cells[index]
        self._emit(CellExecuting(index=index, cell_id=cell["id"]))
        # A cell still running after a moment is saved with its code, so a crash mid-cell
        # leaves it in the file; quick cells are saved once, with their outputs.
        early = asyncio.get_running_loop().call_later(_EARLY_SAVE_AFTER, notebook.save_soon)
        latest: list[dict[str, Any]] = []
        last_emit = 0.0

        def on_output(outputs: list[dict[str, Any]]) -> None:
            nonlocal latest, last_emit
            latest = outputs
            now = time.monotonic()
            if self.on_event is not None and now - last_emit >= _LIVE_INTERVAL:
                last_emit = now
                self._emit_updated(notebook, index, self._cap(outputs))

        try:
            result = await kernel.execute(
                cell["source"], timeout=self.cell_timeout, on_output=on_output
            )
        except BaseException:
            early.cancel()
            # Cancelled (the kernel already interrupted the cell) or the kernel is gone:
            # keep what the cell printed so far.
            stored = notebook.set_outputs(index, latest, None, save=False)
            self._emit_updated(notebook, index, stored, status="error")
            notebook.save_soon()
            raise
        early.cancel()
        if result.state_lost:
            self._announce(session)  # the kernel was replaced
        outputs = list(result.outputs)
        if result.error and not any(o.get("output_type") == "error" for o in outputs):
            # IOPub is lossy; the shell reply still says what went wrong.
            outputs.append({"output_type": "error", **result.error})
        stored = notebook.set_outputs(index, outputs, result.execution_count, save=False)
        self._emit_updated(
            notebook, index, stored, status=result.status, execution_count=result.execution_count
        )
        notebook.save_soon()
        return _Run(index, result, stored)

    def _cap(self, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return cap_outputs(outputs, text_cap=self.output_cap_bytes, image_cap=self.image_cap_bytes)

    def _render(self, session: Session, run: _Run) -> list[dict[str, Any]]:
        notebook, result = session.notebook, run.result
        return render_outputs(
            run.outputs,
            status=result.status,
            message=result.message,
            state_lost=result.state_lost,
            restarted=session.kernel.is_alive,
            timeout=self.cell_timeout,
            token_budget=self.token_budget,
            max_images=self.max_images,
            where=f"code cell {notebook.code_number(run.index)} of {notebook.path}",
        )

    def _summarise(self, notebook: Notebook, runs: list[_Run], planned: int, doing: str) -> str:
        """A count, then one line per failure: what the model needs to decide what to redo."""
        if not planned:
            return "There were no code cells to run."
        failed = [run for run in runs if run.result.status != "ok"]
        lines = [
            f"Re-ran {len(runs)} of {planned} code cells in order: "
            f"{len(runs) - len(failed)} ok, {len(failed)} failed."
        ]
        for run in failed:
            lines.append(f"- code cell {notebook.code_number(run.index)}: {self._failure(run)}")
        if len(runs) < planned:
            lines.append(
                f"Stopped {doing} because the kernel died; the {planned - len(runs)} code cells "
                "after it were not run."
            )
        return "\n".join(lines)

    @staticmethod
    def _failure(run: _Run) -> str:
        result = run.result
        if result.status == "error":
            error = result.error or next(
                (o for o in run.outputs if o.get("output_type") == "error"), {}
            )
            return error_line(error)
        return status_line(
            result.status,
            timeout=None,
            message=result.message,
            state_lost=result.state_lost,
            restarted=True,
        )

    # -- saving and events ------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("on_event handler failed for %s", event.type)

    def _emit_added(self, notebook: Notebook, index: int) -> None:
        if self.on_event is None:
            return
        cell = notebook.cells[index]
        self._emit(
            CellAdded(
                index=index,
                cell_id=cell["id"],
                cell_type=cell["cell_type"],
                source=cell["source"],
                author=_author(cell),
            )
        )

    def _emit_updated(
        self,
        notebook: Notebook,
        index: int,
        outputs: list[dict[str, Any]],
        *,
        status: str | None = None,
        execution_count: int | None = None,
    ) -> None:
        if self.on_event is None:
            return
        cell = notebook.cells[index]
        self._emit(
            CellUpdated(
                index=index,
                cell_id=cell["id"],
                source=cell["source"],
                outputs=outputs,
                execution_count=execution_count,
                status=status,
                author=_author(cell),
            )
        )


def _author(cell: Mapping[str, Any]) -> Any:
    return cell.get("metadata", {}).get("scribe", {}).get("author", "agent")


def _unfinished(cell: dict[str, Any]) -> str | None:
    """How a code cell's last run ended if not as a whole: the name of its error
    (``KeyboardInterrupt`` for an interrupt), or that it was cut off mid-run (outputs
    but no execution count). None for a cell that finished, or never ran."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return str(output.get("ename") or "an error")
    if cell.get("outputs") and cell.get("execution_count") is None:
        return "cut off mid-run"
    return None


def _runs_techniques(blocks: list[dict[str, Any]]) -> bool:
    """Whether the setup built a white-box ``client``: its line (``client.describe()``)
    says so, and black-box clients refuse ``client.run``."""
    text = "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    return "InterpClient: " in text and "(black-box" not in text


def _prefix(line: str, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put ``line`` before the first text block (or as a new first block)."""
    if blocks and blocks[0].get("type") == "text":
        return [{"type": "text", "text": f"{line}\n{blocks[0]['text']}"}, *blocks[1:]]
    return [{"type": "text", "text": line}, *blocks]
