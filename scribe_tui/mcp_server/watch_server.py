"""The server's side of the watch socket: events out to every watcher, their controls in.

Threads do the blocking socket work (accept, the handshake, one reader and one writer
per watcher); everything that touches the investigation runs on the server's event
loop, handed over with ``call_soon_threadsafe``. A watcher is attached on the loop in
one step (what it must catch up on, then every later event), so it misses nothing and
sees nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from scribe_tui.agent.external import ExternalInvestigation
from scribe_tui.events import Event, Status, ToolCallFinished
from scribe_tui.mcp_server.watch_protocol import (
    ServerRecord,
    hang_up,
    receive,
    send,
    write_record,
)
from scribe_tui.runtime.handshake import Gate

log = logging.getLogger(__name__)

# A watcher this far behind (a stopped terminal) is dropped rather than buffered forever.
MAX_BACKLOG = 10_000
STATUS_EVERY = 1.0  # seconds between status snapshots (device memory, host state)


class _Watcher:
    """One attached TUI: its connection and the messages waiting to be written to it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.outbox: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def event(self, event: Event) -> None:
        self.put({"op": "event", "event": event.to_dict()})

    def put(self, message: dict[str, Any] | None) -> None:
        if self.outbox.qsize() < MAX_BACKLOG:
            self.outbox.put(message)
        else:
            self.close()

    def close(self) -> None:
        hang_up(self.conn)
        self.outbox.put(None)

    def write_loop(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                send(self.conn, message)
            except OSError:
                return


class WatchServer:
    """Serves ``investigation`` to watchers over an authenticated Unix socket.

    ``status`` gives the merged status snapshot (loop and host) sent every second. The
    discovery file is rewritten when a tool call changes the set of open notebooks.
    """

    def __init__(
        self,
        investigation: ExternalInvestigation,
        *,
        model: str,
        status: Callable[[], Status],
        http: str | None = None,
    ) -> None:
        self.investigation = investigation
        self.model = model
        self.http = http
        self._status = status
        self._authkey = os.urandom(32)
        self._gate = Gate(self._authkey)
        self._watchers: list[_Watcher] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._sock_dir: str | None = None
        self._record: ServerRecord | None = None
        self._record_path: Path | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._person_tasks: set[asyncio.Task[None]] = set()

    @property
    def watchers(self) -> int:
        """How many watchers are attached."""
        return len(self._watchers)

    def start(self) -> None:
        """Listen, write the discovery file, and start accepting (call on the event loop)."""
        self._loop = asyncio.get_running_loop()
        # Under the temp dir: AF_UNIX paths are limited to ~100 bytes. mkdtemp: mode 0700.
        self._sock_dir = tempfile.mkdtemp(prefix="scribe-mcp-")
        self._listener = Listener(os.path.join(self._sock_dir, "sock"), family="AF_UNIX")
        self._record = ServerRecord(
            pid=os.getpid(),
            address=str(self._listener.address),
            authkey=self._authkey.hex(),
            started=time.time(),
            model=self.model,
            http=self.http,
        )
        self._record_path = write_record(self._record)
        self.investigation.subscribe(self._refresh)
        threading.Thread(target=self._accept_loop, name="watch-accept", daemon=True).start()
        self._ticker = asyncio.ensure_future(self._tick())

    def _refresh(self, event: Event) -> None:
        """After a tool call: rewrite the discovery file if the open notebooks changed."""
        if self._record is None or not isinstance(event, ToolCallFinished):
            return
        notebooks = self.investigation.open_notebooks()
        if notebooks != self._record.notebooks:
            self._record = ServerRecord(**{**self._record.__dict__, "notebooks": notebooks})
            write_record(self._record)

    def close(self) -> None:
        """Stop listening, detach every watcher, remove the socket and the discovery file."""
        self.investigation.unsubscribe(self._refresh)
        if self._ticker is not None:
            self._ticker.cancel()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        for watcher in self._watchers:
            self.investigation.unsubscribe(watcher.event)
            watcher.close()
        self._watchers.clear()
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
        if self._record_path is not None:
            self._record_path.unlink(missing_ok=True)

    # -- threads -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: Connection) -> None:
        # Here, not in accept(), so a silent client holds up only its own thread, for a while.
        if not self._gate.admit(conn):
            return
        watcher = _Watcher(conn)
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._attach, watcher)
        except RuntimeError:  # the loop is closed: the server is stopping
            conn.close()
            return
        threading.Thread(target=watcher.write_loop, name="watch-writer", daemon=True).start()
        while True:
            try:
                message = receive(conn)
            except (EOFError, OSError, ValueError):
                break
            try:
                self._loop.call_soon_threadsafe(self._control, watcher, message)
            except RuntimeError:
                break
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._detach, watcher)

    # -- on the event loop -----------------------------------------------------------------

    def _attach(self, watcher: _Watcher) -> None:
        watcher.put(
            {
                "op": "hello",
                "model": self.model,
                "sandbox": self.investigation.sandbox,
                "notebook": self.investigation.notebook_path,
            }
        )
        for event in self.investigation.replay():
            watcher.event(event)
        watcher.event(self._status())
        self.investigation.subscribe(watcher.event)
        self._watchers.append(watcher)

    def _detach(self, watcher: _Watcher) -> None:
        self.investigation.unsubscribe(watcher.event)
        if watcher in self._watchers:
            self._watchers.remove(watcher)
        watcher.close()

    def _control(self, watcher: _Watcher, message: dict[str, Any]) -> None:
        inv, op = self.investigation, message["op"]
        try:
            if op in ("pause", "resume", "interrupt", "request_checkpoint"):
                getattr(inv, op)()
            elif op == "send":
                inv.send(str(message["text"]))
            elif op == "decide_checkpoint":
                inv.decide_checkpoint(
                    int(message["number"]), message["decision"], str(message.get("message", ""))
                )
            elif op == "edit_cell":
                work = inv.edit_cell(int(message["index"]), str(message["code"]))
                self._person(watcher, message["id"], work)
            elif op == "run_code":
                self._person(watcher, message["id"], inv.run_code(str(message["code"])))
            else:
                log.warning("watcher sent an unknown control %r", op)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("watcher sent a malformed %r control: %s", op, exc)

    def _person(self, watcher: _Watcher, request: Any, work: Any) -> None:
        """Run a person's cell; tell the watcher when it is done (or why it failed)."""

        async def run() -> None:
            error = None
            try:
                await work
            except Exception as exc:  # reported to the person, who can fix and retry
                error = str(exc) or type(exc).__name__
            watcher.put({"op": "done", "id": request, "error": error})

        task = asyncio.ensure_future(run())
        self._person_tasks.add(task)
        task.add_done_callback(self._person_tasks.discard)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            if self._watchers:
                status = self._status()
                for watcher in list(self._watchers):
                    watcher.event(status)
