"""The model host: one process that holds the subject model and serves the investigation's kernels.

    python -m scribe_tui.runtime.host organism:taboo --host-file PATH [--parent-pid PID]

It listens before it loads, so a status request sees ``loading`` with a phase
and a fraction, then ``ready`` (or the host writes ``failed`` and its one-line
reason into the host file and exits). Each connection gets a thread; model
calls take the executor's lock, status never does. The host exits when its
parent (the investigation) dies, or, without a parent, after ``--idle-timeout``
seconds with no client connected.

The parent side is :class:`~scribe_tui.runtime.host_process.HostProcess`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hmac
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, NamedTuple

from scribe_tui.runtime.handshake import Gate
from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.host_protocol import (
    HostRecord,
    LaunchSpec,
    RemoteCallError,
    decode_plain,
    encode,
    pack_exception,
    read_host_file,
    write_exit_note,
    write_host_file,
)
from scribe_tui.runtime.sandbox import SandboxPolicy, base_policy, set_non_dumpable
from scribe_tui.runtime.status import DeviceUsage, HostStatus, State, probe_device

__all__ = ["HostProcess", "HostServer", "main"]
_MODEL_OPS = ("run", "generate", "chat", "info")
SMALL_MODEL_PARAMETERS = 50_000_000
# What a sealed host reads of its own /proc/<pid> (memory and CPU for the status bar); not
# maps, fd or cmdline, which show where its weights came from.
_HOST_PROC = ("stat", "statm", "status", "limits", "io", "cgroup")
# Seconds a cancelled call gets to stop; past that the host exits, since only that frees the model.
CANCEL_GRACE = 5.0
EXIT_STUCK_CALL = 75  # the host's exit code then (EX_TEMPFAIL: a new host will serve)


MAX_REQUEST = 2**31
"""The largest request a client may send (a technique and its arguments, tensors included)."""


class HostServer:
    """Serves one model to any number of authenticated local connections."""

    def __init__(
        self,
        launch: LaunchSpec,
        host_file: Path,
        *,
        parent_pid: int | None,
        idle_timeout: float | None,
        hub_token: str | None = None,
        control_key: str | None = None,
    ) -> None:
        self.launch, self.host_file = launch, host_file
        self._hub_token = hub_token  # modal mode only: a local host never downloads
        # Shutdown answers only to this key, which the supervisor alone holds: the authkey
        # in the host file is readable by sealed kernels. None: no client may shut it down.
        self._control_key = control_key
        self.parent_pid, self.idle_timeout = parent_pid, idle_timeout
        self.backend: Any = None
        self._authkey = os.urandom(32)
        self._gate = Gate(self._authkey)
        self._state: State = "starting"
        self._phase, self._progress, self._message = "starting", 0.0, ""
        self._loads = self._calls = self._in_flight = self._connections = 0
        self._last_call_s: float | None = None
        self._last_activity = time.monotonic()
        self._counters = threading.Lock()
        self._watched: set[str] = set()  # cancelled calls a watchdog is timing
        self._settled = threading.Event()  # loading finished, either way
        self._shutdown = threading.Event()
        # Under the temp dir, not beside the host file: AF_UNIX paths are limited to ~100 bytes.
        self._sock_dir = tempfile.mkdtemp(prefix="scribe-host-")
        self._listener = Listener(
            os.path.join(self._sock_dir, "sock"), family="AF_UNIX", backlog=64
        )

    # --- lifecycle -------------------------------------------------------------------------------

    def serve(self) -> int:
        """Listen, load, serve until shut down; the exit code is 2 if the model did not load."""
        self._record()
        threading.Thread(target=self._accept_loop, name="accept", daemon=True).start()
        if self.parent_pid is not None:
            threading.Thread(target=self._watch_parent, name="parent-poller", daemon=True).start()
        signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._load()
        except Exception as exc:
            self._fail(exc)
            return 2
        self._settled.set()
        while not self._shutdown.wait(0.25):
            if self._idle_too_long():
                print("model host: idle with no parent, exiting", file=sys.stderr)
                self._forget_host_file()
                break
        self._close()
        return 0

    def _fail(self, exc: Exception) -> None:
        """Record the one-line reason where clients and the parent will find it, then close."""
        from scribe_tui.runtime.loading import ModelLoadError

        text = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
        lines = text.strip().splitlines()
        self._state, self._message = "failed", lines[0] if lines else type(exc).__name__
        self._record(failed=self._message)
        print(f"model host: {self._message}", file=sys.stderr)
        self._settled.set()
        self._close()

    def _on_sigterm(self, *_: object) -> None:
        if self._settled.is_set():
            self._shutdown.set()
        else:  # still loading: nothing to finish, and loading may take minutes
            self._close()
            os._exit(0)

    def _load(self) -> None:
        self._set_phase("resolving model", 0.02)
        if self.launch.mode == "modal":
            from scribe_tui.runtime.modal_host import ModalBackend

            # The token reaches only the app's download function, never the GPU container.
            self.backend = ModalBackend(
                self.launch, progress=self._set_phase, hub_token=self._hub_token
            )
            self.backend.start()
        else:
            from scribe_tui.runtime.loading import load_model, resolve_model

            resolved = resolve_model(
                self.launch.model,
                adapter=self.launch.adapter,
                base_model=self.launch.base_model,
                # Whoever started the host reads load errors: name their own spec there.
                display=self.launch.model,
            )
            loaded = load_model(
                resolved,
                device=self.launch.device,
                dtype=self.launch.dtype,
                progress=self._set_phase,
            )
            from scribe_tui.runtime.executor import ModelExecutor
            from scribe_tui.runtime.loading import load_base

            # The base loads on a kernel's request: its errors name the display name only.
            shown = dataclasses.replace(resolved, display=self.launch.display_name)

            def base_loader() -> object:
                return load_base(shown, device=loaded.device, dtype=loaded.dtype)

            self.backend = ModelExecutor(
                loaded.model,
                loaded.tokenizer,
                name=self.launch.display_name,
                mode=self.launch.mode,
                device=loaded.device,
                dtype=loaded.dtype,
                base_loader=base_loader if resolved.base else None,
            )
            if loaded.device == "cpu" and self.backend.parameters < SMALL_MODEL_PARAMETERS:
                # A small model gains nothing from intra-op threads, and when another
                # process holds a core they spin-wait: cells measured 100x slower.
                import torch

                torch.set_num_threads(1)
                if self.launch.workers > 1:  # and it is bound by Python: serve side by side
                    from scribe_tui.runtime.host_workers import WorkerPool

                    self._set_phase(f"starting {self.launch.workers} workers", 0.99)
                    self.backend = WorkerPool(
                        self.backend, self.launch.workers, self._exit_without_workers
                    )
        self._loads += 1
        self._state, self._phase, self._progress = "ready", "ready", 1.0
        self._last_activity = time.monotonic()

    def _set_phase(self, phase: str, progress: float) -> None:
        self._state, self._phase, self._progress = "loading", phase, progress

    def writable_dirs(self) -> list[str]:
        """Where this host writes: its socket's directory and its host file's."""
        return [self._sock_dir, str(self.host_file.parent)]

    def _record(self, failed: str | None = None) -> None:
        write_host_file(
            self.host_file,
            HostRecord(
                pid=os.getpid(),
                address=str(self._listener.address),
                authkey=self._authkey,
                # An investigation's host file is read by its kernels: no paths in it.
                launch=self.launch.public() if self.parent_pid else self.launch,
                owner_pid=self.parent_pid,
                failed=failed,
            ),
        )

    def _forget_host_file(self) -> None:
        record = read_host_file(self.host_file)
        if record is not None and record.pid == os.getpid():
            self.host_file.unlink(missing_ok=True)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        close_backend = getattr(self.backend, "close", None)
        if close_backend is not None:
            close_backend()  # a Modal app stops with its host
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def _idle_too_long(self) -> bool:
        if self.parent_pid is not None or not self.idle_timeout:
            return False
        with self._counters:
            idle = self._connections == 0 and self._in_flight == 0
        return idle and time.monotonic() - self._last_activity > self.idle_timeout

    def _watch_parent(self) -> None:
        _wait_for_exit(self.parent_pid)  # type: ignore[arg-type]
        print("model host: parent process is gone, exiting", file=sys.stderr)
        self._forget_host_file()
        self._close()
        sys.stderr.flush()
        os._exit(0)

    # --- connections -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: Connection) -> None:
        # The handshake runs here, not in accept(), so a silent client blocks only its own
        # thread, and only until the gate's deadline.
        if not self._gate.admit(conn):
            return
        with self._counters:
            self._connections += 1
        try:
            while True:
                try:
                    data = conn.recv_bytes(MAX_REQUEST)
                except (EOFError, OSError):
                    return
                self._last_activity = time.monotonic()
                reply = self._dispatch(data, conn)
                try:
                    conn.send_bytes(encode(reply))
                except OSError:
                    return
        finally:
            with self._counters:
                self._connections -= 1
            self._last_activity = time.monotonic()
            conn.close()

    def _dispatch(self, data: bytes, conn: Connection) -> dict[str, Any]:
        try:
            request = decode_plain(data)
            op = request["op"]
        except Exception as exc:
            return {"ok": False, "kind": "exception", "error": pack_exception(exc)}
        if op == "status":
            return {"ok": True, "value": self.status().to_dict()}
        if op == "shutdown":
            key = str(request.get("key", ""))
            if self._control_key is None or not hmac.compare_digest(key, self._control_key):
                refused = PermissionError("only scribe-tui shuts the model host down")
                return {"ok": False, "kind": "exception", "error": pack_exception(refused)}
            self._shutdown.set()
            return {"ok": True, "value": None}
        if op == "cancel":
            return {"ok": True, "value": self._cancel(request.get("call", ""))}
        if op not in _MODEL_OPS:
            return {
                "ok": False,
                "kind": "exception",
                "error": pack_exception(ValueError(f"unknown request {op!r}")),
            }
        self._settled.wait()
        if self._state != "ready":
            return {"ok": False, "kind": "not_ready", "message": self._message}
        return self._model_call(op, request, conn)

    def _cancel(self, call_id: str) -> bool:
        """Stop call ``call_id``; if it ignores that, the watchdog stops the host."""
        cancelled = self.backend is not None and self.backend.cancel(call_id)
        with self._counters:
            watched = call_id in self._watched
            self._watched.add(call_id)
        if cancelled and not watched:  # one watchdog per call, however often it is cancelled
            threading.Thread(
                target=self._watch_cancel, args=(call_id,), name="cancel-watchdog", daemon=True
            ).start()
        return cancelled

    def _cancel_when_client_leaves(
        self, conn: Connection, call_id: str, finished: threading.Event
    ) -> None:
        """Cancel call ``call_id`` if its client hangs up first.

        A killed or restarted kernel sends no cancel, and its call would otherwise hold
        the model lock for every other session. A client sends nothing while its call
        runs, so anything readable on the connection is its end.
        """
        while not finished.is_set():
            try:
                if not conn.poll(0.2):
                    continue
            except (EOFError, OSError):
                pass
            if not finished.is_set():
                self._cancel(call_id)
            return

    def _watch_cancel(self, call_id: str) -> None:
        """Exit if cancelled call ``call_id`` is still running CANCEL_GRACE s later.

        Such a call (stuck in C code, or catching KeyboardInterrupt) keeps the model
        lock, and every later call would wait behind it for good. The host file stays,
        so the supervisor or the next client call starts a new host from it.
        """
        stop_stuck = getattr(self.backend, "stop_stuck", None)  # a pool ends just its worker
        if self.backend.wait_stopped(call_id, CANCEL_GRACE) or (
            stop_stuck is not None and stop_stuck(call_id)
        ):
            with self._counters:
                self._watched.discard(call_id)
            return
        reason = f"a cancelled call did not stop within {CANCEL_GRACE:g} s"
        # Every other call in flight was waiting for the model lock and never started: the
        # note lets their clients resend them to the next host instead of failing.
        write_exit_note(self.host_file, reason, stuck_call=call_id)
        print(f"model host: exiting: {reason}", file=sys.stderr)
        sys.stderr.flush()
        self._close()
        os._exit(EXIT_STUCK_CALL)

    def _exit_without_workers(self, reason: str, call_id: str) -> None:
        """The last worker is gone: exit, so that the next call starts a new host.

        The call that ended it is named in the note (it is not resent); every other call
        in flight was waiting for a worker and never started.
        """
        write_exit_note(self.host_file, f"no model worker left: {reason}", stuck_call=call_id)
        print("model host: exiting: no model worker left", file=sys.stderr)
        sys.stderr.flush()
        self._close()
        os._exit(EXIT_STUCK_CALL)

    def _model_call(self, op: str, request: dict[str, Any], conn: Connection) -> dict[str, Any]:
        with self._counters:
            self._in_flight += 1
        start = time.perf_counter()
        finished = threading.Event()
        try:
            if op == "run":
                call_id = request.get("call", "")
                threading.Thread(
                    target=self._cancel_when_client_leaves,
                    args=(conn, call_id, finished),
                    name="client-watch",
                    daemon=True,
                ).start()
                return self.backend.run(
                    request["payload"],
                    stream=lambda name, text: _send_stream(conn, name, text),
                    call_id=call_id,
                    variant=request.get("variant", "model"),
                )
            if op == "info":
                return {"ok": True, "value": self.backend.info()}
            return {"ok": True, "value": getattr(self.backend, op)(**request.get("kwargs", {}))}
        except RemoteCallError as exc:  # raised in a worker, and packed there
            return exc.reply
        except BaseException as exc:
            return {"ok": False, "kind": "exception", "error": pack_exception(exc, skip_frames=1)}
        finally:
            finished.set()
            with self._counters:
                self._in_flight -= 1
                if op != "info":
                    self._calls += 1
                    self._last_call_s = time.perf_counter() - start

    def status(self) -> HostStatus:
        """The current snapshot; never waits for the model lock."""
        # The state first: a load sets the backend before "ready", so a snapshot that
        # says ready always names the device (read the other way, a load finishing
        # between the two reads gave "ready" on no device).
        state, phase, progress, message = self._state, self._phase, self._progress, self._message
        backend = self.backend
        usage: DeviceUsage = backend.usage() if backend is not None else probe_device("cpu")
        with self._counters:
            in_flight, calls, last = self._in_flight, self._calls, self._last_call_s
        return HostStatus(
            state=state,
            phase=phase,
            progress=progress,
            message=message,
            model=self.launch.display_name,
            mode=self.launch.mode,
            device=getattr(backend, "device", ""),
            device_name=usage.name,
            dtype=getattr(backend, "dtype", ""),
            memory_used=usage.memory_used,
            memory_total=usage.memory_total,
            utilization=usage.utilization,
            calls_in_flight=in_flight,
            calls=calls,
            last_call_s=last,
            loads=self._loads,
            pid=os.getpid(),
            container=getattr(backend, "container", None),
            workers=getattr(backend, "workers", 1),
        )


def _wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` exits (a pidfd needs no /proc, which a sealed host lacks)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (macOS, Linux < 5.3): poll, like ipykernel
        import psutil

        # is_running() compares start times, so pid reuse is caught.
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid)
            while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.5)
        return
    select.select([fd], [], [])
    os.close(fd)


def _send_stream(conn: Connection, name: str, text: str) -> None:
    # If the client went away, the technique should still finish cleanly.
    with contextlib.suppress(OSError):
        conn.send_bytes(encode({"stream": name, "text": text}))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scribe_tui.runtime.host", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "model",
        nargs="?",
        help="organism:NAME, a local model directory, or a Hugging Face hub id "
        "(omitted: the launch spec is read as JSON from stdin)",
    )
    parser.add_argument("--mode", choices=("local", "blackbox", "modal"), default="local")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16")
    )
    parser.add_argument(
        "--host-file", required=True, type=Path, help="where to write the address and key"
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this process exits")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="without --parent-pid: exit after this many seconds with no client",
    )
    return parser.parse_args(argv)


class _HostConfig(NamedTuple):
    launch: LaunchSpec
    sealed: bool = False
    allow_network: bool = False
    hub_token: str | None = None
    control_key: str | None = None


def _launch_config(args: argparse.Namespace) -> _HostConfig:
    """How to serve: from the arguments, or from stdin as spawn_host sends it."""
    if args.model:
        return _HostConfig(
            LaunchSpec(model=args.model, mode=args.mode, device=args.device, dtype=args.dtype)
        )
    config = json.loads(sys.stdin.readline())
    return _HostConfig(
        LaunchSpec.from_dict(config["launch"]),
        bool(config["sealed"]),
        bool(config.get("allow_network")),
        config.get("hub_token"),
        config.get("control_key"),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    launch, sealed, allow_network, hub_token, control_key = _launch_config(args)
    set_non_dumpable()
    if launch.mode != "modal" and args.model is None:
        # Started by spawn_host, whose callers fetched any hub model into the cache first
        # (runtime.hub_fetch): this host reads it there, with no network and no token (not
        # even a look for the token file, which the seal shuts). Set before huggingface_hub
        # is imported, which reads them once.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    if launch.mode != "modal":
        # Before transformers is imported, so its log handler writes through the capture.
        from scribe_tui.runtime.capture import install_output_capture

        install_output_capture()
    server = HostServer(
        launch,
        args.host_file,
        parent_pid=args.parent_pid,
        idle_timeout=args.idle_timeout,
        hub_token=hub_token,
        control_key=control_key,
    )
    if sealed and launch.mode != "modal":
        # Before any thread starts: Landlock binds the calling thread and what it spawns.
        from scribe_tui.runtime.sandbox import apply

        policy = host_policy(launch, server.writable_dirs())
        policy.allow_network = allow_network
        apply(policy)
    return server.serve()


def host_policy(launch: LaunchSpec, writable: list[str]) -> SandboxPolicy:
    """A sealed host reads Python and its model (for a hub model, that model's folder in the
    hub cache: not the token, nor other cached models, whose names could spell a secret),
    and writes its own files."""
    from scribe_tui.runtime.host_process import secret_paths
    from scribe_tui.runtime.loading import hub_repo_dir, hub_repos, resolve_model

    resolved = resolve_model(launch.model, adapter=launch.adapter, base_model=launch.base_model)
    weights = [resolved.path, resolved.tokenizer_path, resolved.adapter, resolved.base]
    weights += [str(hub_repo_dir(repo)) for repo in hub_repos(resolved)]
    if resolved.organism:
        weights.append(resolved.organism)  # organism.json and the card are read at load
    policy = base_policy(
        read=[p for p in weights if p and os.path.exists(p)],
        write=writable,
        exclude=[p for p in secret_paths(launch) if p not in weights],
    )
    policy.own_proc = list(_HOST_PROC)
    return policy


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads a technique started must not keep a stopped host alive.
    os._exit(code)
