"""Worker processes that serve one loaded model's calls side by side.

A small model on CPU is bound by the interpreter, not by arithmetic: one process serves
one call at a time however many cores the machine has, so N investigators sharing a host
wait on each other. :class:`WorkerPool` forks ``count`` workers from the host once its model
has loaded: one load, and the weights are shared copy-on-write (a technique that edits
weights in place must restore them, as everywhere, see :mod:`.executor`). A fork inherits
the host's seal (Landlock and the no-new-privileges bit), so a worker reaches exactly
what the host reaches. Each worker holds a copy of the host's
:class:`~.executor.ModelExecutor` and serves one call at a time over a pipe; the pool hands
every call to an idle worker, or keeps it waiting for one.

Calls are stateless (the executor restores the model after each), so any worker may
serve any session. A cancel reaches the worker running the call. A call that ignores its
cancel is ended with its worker (:meth:`WorkerPool.stop_stuck`), and the others serve on;
the host exits, as a one-process host does, only when no worker is left. A worker dies
with the host (``PR_SET_PDEATHSIG``) and leaves when its pipe closes.

Forking is for CPU only: CUDA cannot be used across a fork, and a GPU is bound by the
device rather than by Python.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from typing import Any

from scribe_tui.runtime.capture import Stream
from scribe_tui.runtime.executor import CANCELLED_BEFORE_START, ModelExecutor
from scribe_tui.runtime.host_protocol import (
    BLACKBOX_REFUSAL,
    RemoteCallError,
    decode_plain,
    encode,
    pack_exception,
)
from scribe_tui.runtime.sandbox import die_with_parent, set_non_dumpable
from scribe_tui.runtime.status import DeviceUsage

__all__ = ["WorkerPool"]
_REMEMBERED_CANCELS = 64  # cancels kept for calls that have not arrived (yet)


@dataclass(eq=False)
class _Worker:
    pid: int
    conn: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    call: str | None = None  # the call it serves now
    stopped_for: str | None = None  # the stuck call it was killed for

    def send(self, message: dict[str, Any]) -> None:
        with self.send_lock:
            self.conn.send_bytes(encode(message))


class WorkerPool:
    """The executor's interface (run, generate, chat, cancel, ...), served by forked workers."""

    def __init__(
        self, executor: ModelExecutor, count: int, on_empty: Callable[[str, str], None]
    ) -> None:
        """Fork ``count`` workers now (from the thread that will outlive them: a worker's
        PDEATHSIG follows the thread that forked it). ``on_empty(reason, call_id)`` is
        called when the call ``call_id`` ended the last worker; the host exits there."""
        self.executor = executor  # in this process only for info and usage: it runs no call
        self.name, self.mode = executor.name, executor.mode
        self.device, self.dtype = executor.device, executor.dtype
        self.parameters = executor.parameters
        self._on_empty = on_empty
        self._state = threading.Condition()
        self._workers = [_fork_worker(executor) for _ in range(count)]
        self._idle = list(self._workers)
        self._waiting: set[str] = set()  # calls waiting for an idle worker
        self._cancelled: dict[str, None] = {}  # cancels for calls not handed out, oldest first
        self._closed = False  # the host is stopping: a worker gone now is no loss

    @property
    def workers(self) -> int:
        """How many workers serve now."""
        with self._state:
            return len(self._workers)

    # --- the executor's interface ----------------------------------------------------------------

    def run(
        self,
        payload: bytes,
        stream: Stream | None = None,
        call_id: str = "",
        variant: str = "model",
    ) -> dict[str, Any]:
        """As :meth:`ModelExecutor.run`, in whichever worker is free first."""
        if self.mode == "blackbox":
            return {"ok": False, "kind": "blackbox", "message": BLACKBOX_REFUSAL}
        body = {"payload": payload, "variant": variant, "streamed": stream is not None}
        return self._call("run", call_id, body, stream)

    def generate(self, **kwargs: Any) -> Any:
        """As :meth:`ModelExecutor.generate`; its exception comes back as RemoteCallError."""
        return self._value(self._call("generate", uuid.uuid4().hex, {"kwargs": kwargs}, None))

    def chat(self, **kwargs: Any) -> Any:
        """As :meth:`ModelExecutor.chat`; its exception comes back as RemoteCallError."""
        return self._value(self._call("chat", uuid.uuid4().hex, {"kwargs": kwargs}, None))

    def info(self) -> dict[str, Any]:
        # The same as a one-process host's: what the model is, not how it is served.
        return self.executor.info()

    def usage(self) -> DeviceUsage:
        return self.executor.usage()

    def cancel(self, call_id: str) -> bool:
        """Stop call ``call_id``: True if a worker runs it or it waits for one, else False
        (and the cancel is kept a while, since it may overtake its call)."""
        if not call_id:
            return False
        with self._state:
            worker = next((w for w in self._workers if w.call == call_id), None)
            if worker is None:
                self._cancelled[call_id] = None
                while len(self._cancelled) > _REMEMBERED_CANCELS:
                    del self._cancelled[next(iter(self._cancelled))]
                self._state.notify_all()
                return call_id in self._waiting
        with contextlib.suppress(OSError):
            worker.send({"op": "cancel", "call": call_id})
        return True

    def wait_stopped(self, call_id: str, timeout: float) -> bool:
        """Whether call ``call_id`` is not running, after waiting up to ``timeout`` s for it."""
        with self._state:
            return self._state.wait_for(
                lambda: all(w.call != call_id for w in self._workers), timeout
            )

    def stop_stuck(self, call_id: str) -> bool:
        """End the worker running ``call_id`` (a call that ignored its cancel); True when
        other workers serve on, False when it is the last (left to the host, which must go)."""
        with self._state:
            worker = next((w for w in self._workers if w.call == call_id), None)
            if worker is None:
                return True
            if len(self._workers) == 1:
                return False
            worker.stopped_for = call_id
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        return True

    def close(self) -> None:
        """End every worker (each would end anyway once the host's end of its pipe closes)."""
        with self._state:
            workers, self._workers, self._idle = self._workers, [], []
            self._closed = True
            self._state.notify_all()
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            worker.conn.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)

    # --- dispatch --------------------------------------------------------------------------------

    def _value(self, reply: dict[str, Any]) -> Any:
        if not reply["ok"]:
            raise RemoteCallError(reply)
        return reply["value"]

    def _call(
        self, op: str, call_id: str, body: dict[str, Any], stream: Stream | None
    ) -> dict[str, Any]:
        worker = self._take(call_id)
        if isinstance(worker, BaseException):  # cancelled while it waited, or no worker left
            return {"ok": False, "kind": "exception", "error": pack_exception(worker)}
        try:
            worker.send({"op": op, "call": call_id, **body})
            while True:
                message = decode_plain(worker.conn.recv_bytes())
                if "reply" in message:
                    return message["reply"]
                if stream is not None:
                    stream(message["stream"], message["text"])
        except (EOFError, OSError):
            return self._lost(worker, call_id)
        finally:
            self._release(worker)

    def _take(self, call_id: str) -> _Worker | BaseException:
        """An idle worker for ``call_id``, waiting for one; else why not: the call was
        cancelled while it waited, or no worker is left."""
        with self._state:
            self._waiting.add(call_id)
            try:
                self._state.wait_for(
                    lambda: self._idle or call_id in self._cancelled or not self._workers
                )
                if call_id in self._cancelled:
                    del self._cancelled[call_id]
                    return KeyboardInterrupt(CANCELLED_BEFORE_START)
                if not self._idle:
                    return RuntimeError("no model worker is left to serve the call")
                worker = self._idle.pop(0)
                worker.call = call_id
                return worker
            finally:
                self._waiting.discard(call_id)

    def _release(self, worker: _Worker) -> None:
        with self._state:
            worker.call = None
            if worker in self._workers:
                self._idle.append(worker)
            self._state.notify_all()

    def _lost(self, worker: _Worker, call_id: str) -> dict[str, Any]:
        """The reply for a call whose worker is gone; the pool serves on without it."""
        how = "it ended"
        with contextlib.suppress(ChildProcessError):
            code = os.waitstatus_to_exitcode(os.waitpid(worker.pid, 0)[1])
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
        worker.conn.close()
        with self._state:
            if worker in self._workers:
                self._workers.remove(worker)
            left, closed = len(self._workers), self._closed
            self._state.notify_all()
        error: BaseException
        if closed:
            return {
                "ok": False,
                "kind": "exception",
                "error": pack_exception(RuntimeError("the model host stopped while this call ran")),
            }
        if worker.stopped_for == call_id:
            error = KeyboardInterrupt(
                "the call ignored its cancel, so the worker process serving it was stopped"
            )
        else:
            error = RuntimeError(
                f"the model worker serving this call died ({how}: a crash in native code, "
                "or the call ended its own process)"
            )
        print(
            f"model host: worker {worker.pid} is gone ({left} left): {error}",
            file=sys.stderr,
            flush=True,
        )
        if not left:
            self._on_empty(str(error), call_id)
        return {"ok": False, "kind": "exception", "error": pack_exception(error)}


# --- the worker's side ---------------------------------------------------------------------------


def _fork_worker(executor: ModelExecutor) -> _Worker:
    host_end, worker_end = Pipe(duplex=True)
    host_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: it never returns from here
        code = 0
        try:
            host_end.close()
            _become_worker(host_pid, keep=worker_end.fileno())
            _serve(executor, worker_end)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    worker_end.close()
    return _Worker(pid, host_end)


def _become_worker(host_pid: int, keep: int) -> None:
    """Die with the host; be as undumpable as it; hold none of its sockets, so a client
    sees the host's end when the host ends."""
    if not die_with_parent(host_pid):
        raise SystemExit(1)
    set_non_dumpable()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in range(3, _open_file_limit()):
        if fd == keep:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


def _open_file_limit() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(soft, 4096)


def _serve(executor: ModelExecutor, conn: Connection) -> None:
    """Read calls and cancels until the host closes the pipe; each call runs in a thread of
    its own, so a cancel is read while it runs."""
    send_lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with send_lock, contextlib.suppress(OSError):
            conn.send_bytes(encode(message))

    while True:
        try:
            request = decode_plain(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if request["op"] == "cancel":
            executor.cancel(request["call"])
        else:
            threading.Thread(target=_answer, args=(executor, request, send), daemon=True).start()


def _answer(
    executor: ModelExecutor, request: dict[str, Any], send: Callable[[dict[str, Any]], None]
) -> None:
    if request["op"] == "run":
        reply = executor.run(
            request["payload"],
            stream=(lambda name, text: send({"stream": name, "text": text}))
            if request["streamed"]
            else None,
            call_id=request["call"],
            variant=request["variant"],
        )
    else:
        try:
            reply = {"ok": True, "value": getattr(executor, request["op"])(**request["kwargs"])}
        except BaseException as exc:
            reply = {"ok": False, "kind": "exception", "error": pack_exception(exc, skip_frames=1)}
    send({"reply": reply})
