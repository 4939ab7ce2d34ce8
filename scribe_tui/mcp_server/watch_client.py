"""The watcher's side of the watch socket: a running MCP session as the TUI drives one.

:class:`RemoteInvestigation` has the controls and ``run()`` the TUI expects of an
investigation (:class:`~scribe_tui.agent.controls.InvestigationControls`); each control
travels to the server, and the server's events come back to the subscribers. A reader
thread does the blocking reads and hands every message to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from scribe_tui.agent.controls import EventSink
from scribe_tui.events import Event, NotebookOpened, event_from_dict
from scribe_tui.mcp_server.watch_protocol import (
    WatchError,
    connect,
    find_server,
    hang_up,
    receive,
    send,
)

HELLO_TIMEOUT = 30.0  # seconds; the server answers from its event loop, which may be busy


class RemoteInvestigation:
    """A session that a ``scribe-tui mcp`` server runs, watched and steered from here.

    ``run()`` returns ``"detached"`` after :meth:`detach`, or ``"stopped"`` when the
    server goes away.
    """

    def __init__(self, conn: Connection, hello: dict[str, Any], pid: int) -> None:
        self.model = str(hello.get("model", ""))
        self.sandbox = str(hello.get("sandbox", ""))
        self.pid = pid
        self.notebook_path: Path | None = Path(hello["notebook"]) if hello.get("notebook") else None
        self._conn = conn
        self._sinks: list[EventSink] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._ended: asyncio.Future[None] | None = None
        self._detached = False

    @classmethod
    def attach(cls, notebook: Path | None = None) -> RemoteInvestigation:
        """Connect to the newest server (or the one with ``notebook`` open); WatchError if none."""
        record = find_server(notebook)
        conn = connect(record)
        try:
            if not conn.poll(HELLO_TIMEOUT):
                raise WatchError(
                    f"the scribe-tui mcp server (pid {record.pid}) did not answer; try again"
                )
            hello = receive(conn)
        except (EOFError, OSError, ValueError) as exc:
            conn.close()
            raise WatchError(
                f"the scribe-tui mcp server (pid {record.pid}) hung up: {exc}"
            ) from exc
        except BaseException:
            conn.close()
            raise
        if hello["op"] != "hello":
            conn.close()
            raise WatchError(f"the scribe-tui mcp server (pid {record.pid}) sent {hello['op']!r}")
        return cls(conn, hello, record.pid)

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, sink: EventSink) -> None:
        """Deliver every event from the server to ``sink`` (on the event loop ``run`` runs on)."""
        self._sinks.append(sink)

    async def run(self) -> str:
        """Relay the server's events until it goes away or :meth:`detach` is called."""
        loop = asyncio.get_running_loop()
        ended = self._ended = loop.create_future()

        def read() -> None:
            while True:
                try:
                    message = receive(self._conn)
                # TypeError: detach() closed the connection under this read (its handle is None).
                except (EOFError, OSError, ValueError, TypeError):
                    break
                with contextlib.suppress(RuntimeError):  # the loop closed under us
                    loop.call_soon_threadsafe(self._deliver, message)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, ended)

        threading.Thread(target=read, name="watch-reader", daemon=True).start()
        try:
            await ended
        finally:
            reason = "detached" if self._detached else "stopped"
            self.detach()
        return reason

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["op"] == "done":
            waiter = self._waiting.pop(message.get("id"), None)
            if waiter is not None and not waiter.done():
                if message.get("error"):
                    waiter.set_exception(RuntimeError(message["error"]))
                else:
                    waiter.set_result(None)
            return
        if message["op"] != "event":
            return
        event: Event = event_from_dict(message["event"])
        if isinstance(event, NotebookOpened):
            self.notebook_path = Path(event.path)
        for sink in list(self._sinks):
            sink(event)

    # -- controls (InvestigationControls) -------------------------------------------------------

    def pause(self) -> None:
        """Hold the agent's next tool call until resume."""
        self._send({"op": "pause"})

    def resume(self) -> None:
        self._send({"op": "resume"})

    def interrupt(self) -> None:
        """Interrupt the running cell; the next tool call is held."""
        self._send({"op": "interrupt"})

    def send(self, text: str) -> None:
        """A message for the agent, appended to its next tool result."""
        self._send({"op": "send", "text": text})

    def request_checkpoint(self) -> None:
        self._send({"op": "request_checkpoint"})

    def decide_checkpoint(
        self, number: int, decision: Literal["approve", "pivot", "continue"], message: str = ""
    ) -> None:
        self._send(
            {"op": "decide_checkpoint", "number": number, "decision": decision, "message": message}
        )

    async def edit_cell(self, index: int, code: str) -> None:
        """Replace code cell ``index`` and re-run it, on the server; raises if it failed."""
        await self._request({"op": "edit_cell", "index": index, "code": code})

    async def run_code(self, code: str) -> None:
        """Append and run a cell of the person's own, on the server; raises if it failed."""
        await self._request({"op": "run_code", "code": code})

    def detach(self) -> None:
        """Stop watching; the session goes on without us."""
        self._detached = True
        hang_up(self._conn)
        if self._ended is not None:
            _settle(self._ended)
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError("detached from the session"))
        self._waiting.clear()

    async def _request(self, message: dict[str, Any]) -> None:
        request = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request] = waiter
        self._send({**message, "id": request})
        await waiter

    def _send(self, message: dict[str, Any]) -> None:
        try:
            send(self._conn, message)
        except OSError as exc:
            raise RuntimeError("the scribe-tui mcp server has gone away") from exc


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
