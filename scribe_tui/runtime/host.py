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
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection, Listener, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.host_protocol import (
    HostRecord,
    LaunchSpec,
    decode_plain,
    encode,
    pack_exception,
    read_host_file,
    write_host_file,
)
from scribe_tui.runtime.status import DeviceUsage, HostStatus, State, probe_device

__all__ = ["HostProcess", "HostServer", "main"]
_MODEL_OPS = ("run", "generate", "chat", "info")
SMALL_MODEL_PARAMETERS = 50_000_000


class HostServer:
    """Serves one model to any number of authenticated local connections."""

    def __init__(
        self,
        launch: LaunchSpec,
        host_file: Path,
        *,
        parent_pid: int | None,
        idle_timeout: float | None,
    ) -> None:
        self.launch, self.host_file = launch, host_file
        self.parent_pid, self.idle_timeout = parent_pid, idle_timeout
        self.backend: Any = None
        self._authkey = os.urandom(32)
        self._state: State = "starting"
        self._phase, self._progress, self._message = "starting", 0.0, ""
        self._loads = self._calls = self._in_flight = self._connections = 0
        self._last_call_s: float | None = None
        self._last_activity = time.monotonic()
        self._counters = threading.Lock()
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

            self.backend = ModalBackend(self.launch, progress=self._set_phase)
            self.backend.start()
        else:
            from scribe_tui.runtime.loading import load_model, resolve_model

            resolved = resolve_model(
                self.launch.model,
                adapter=self.launch.adapter,
                base_model=self.launch.base_model,
                display=self.launch.display_name,
            )
            loaded = load_model(
                resolved,
                device=self.launch.device,
                dtype=self.launch.dtype,
                progress=self._set_phase,
            )
            from scribe_tui.runtime.executor import ModelExecutor
            from scribe_tui.runtime.loading import load_base

            def base_loader() -> object:
                return load_base(resolved, device=loaded.device, dtype=loaded.dtype)

            self.backend = ModelExecutor(
                loaded.model,
                loaded.tokenizer,
                name=self.launch.display_name,
                mode=self.launch.mode,
                device=loaded.device,
                dtype=loaded.dtype,
                base_loader=base_loader if resolved.base else None,
            )
            # Techniques run here; a hub token needed only for the download should not be readable.
            for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
                os.environ.pop(var, None)
            if loaded.device == "cpu" and self.backend.parameters < SMALL_MODEL_PARAMETERS:
                # A small model gains nothing from intra-op threads, and when another
                # process holds a core they spin-wait: cells measured 100x slower.
                import torch

                torch.set_num_threads(1)
        self._loads += 1
        self._state, self._phase, self._progress = "ready", "ready", 1.0
        self._last_activity = time.monotonic()

    def _set_phase(self, phase: str, progress: float) -> None:
        self._state, self._phase, self._progress = "loading", phase, progress

    def _record(self, failed: str | None = None) -> None:
        write_host_file(
            self.host_file,
            HostRecord(
                pid=os.getpid(),
                address=str(self._listener.address),
                authkey=self._authkey,
                launch=self.launch,
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
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def _idle_too_long(self) -> bool:
        if self.parent_pid is not None or not self.idle_timeout:
            return False
        with self._counters:
            idle = self._connections == 0 and self._in_flight == 0
        return idle and time.monotonic() - self._last_activity > self.idle_timeout

    def _watch_parent(self) -> None:
        import psutil

        # Like ipykernel's ParentPollerUnix, but by pid, since a kernel may restart a host on
        # the investigation's behalf; is_running() compares start times, so pid reuse is caught.
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(self.parent_pid)
            while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.5)
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
        # The handshake runs here, not in accept(), so a silent client blocks only its own thread.
        try:
            deliver_challenge(conn, self._authkey)
            answer_challenge(conn, self._authkey)
        except Exception:
            conn.close()
            return
        with self._counters:
            self._connections += 1
        try:
            while True:
                try:
                    data = conn.recv_bytes()
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
            self._shutdown.set()
            return {"ok": True, "value": None}
        if op == "cancel":
            cancelled = self.backend is not None and self.backend.cancel(request.get("call", ""))
            return {"ok": True, "value": cancelled}
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

    def _model_call(self, op: str, request: dict[str, Any], conn: Connection) -> dict[str, Any]:
        with self._counters:
            self._in_flight += 1
        start = time.perf_counter()
        try:
            if op == "run":
                return self.backend.run(
                    request["payload"],
                    stream=lambda name, text: _send_stream(conn, name, text),
                    call_id=request.get("call", ""),
                    variant=request.get("variant", "model"),
                )
            if op == "info":
                return {"ok": True, "value": self.backend.info()}
            return {"ok": True, "value": getattr(self.backend, op)(**request.get("kwargs", {}))}
        except BaseException as exc:
            return {"ok": False, "kind": "exception", "error": pack_exception(exc, skip_frames=1)}
        finally:
            with self._counters:
                self._in_flight -= 1
                if op != "info":
                    self._calls += 1
                    self._last_call_s = time.perf_counter() - start

    def status(self) -> HostStatus:
        """The current snapshot; never waits for the model lock."""
        backend = self.backend
        usage: DeviceUsage = backend.usage() if backend is not None else probe_device("cpu")
        with self._counters:
            in_flight, calls, last = self._in_flight, self._calls, self._last_call_s
        return HostStatus(
            state=self._state,
            phase=self._phase,
            progress=self._progress,
            message=self._message,
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
        )


def _send_stream(conn: Connection, name: str, text: str) -> None:
    # If the client went away, the technique should still finish cleanly.
    with contextlib.suppress(OSError):
        conn.send_bytes(encode({"stream": name, "text": text}))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scribe_tui.runtime.host", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "model", help="organism:NAME, a local model directory, or a Hugging Face hub id"
    )
    parser.add_argument("--mode", choices=("local", "blackbox", "modal"), default="local")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16")
    )
    parser.add_argument(
        "--adapter", help="a PEFT adapter (directory or hub id) to merge into the model"
    )
    parser.add_argument(
        "--base-model", help="the adapter's base model (default: from adapter_config.json)"
    )
    parser.add_argument(
        "--hide-model-name", action="store_true", help="never report the model's name"
    )
    parser.add_argument("--gpu", help="Modal GPU type (--mode modal), e.g. A10G, A100, H100")
    parser.add_argument(
        "--modal-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for Modal to answer before giving up",
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


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    launch = LaunchSpec(
        model=args.model,
        mode=args.mode,
        device=args.device,
        dtype=args.dtype,
        adapter=args.adapter,
        base_model=args.base_model,
        hide_model_name=args.hide_model_name,
        gpu=args.gpu,
        modal_timeout=args.modal_timeout,
    )
    if launch.mode != "modal":
        # Before transformers is imported, so its log handler writes through the capture.
        from scribe_tui.runtime.capture import install_output_capture

        install_output_capture()
    server = HostServer(
        launch, args.host_file, parent_pid=args.parent_pid, idle_timeout=args.idle_timeout
    )
    return server.serve()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads a technique started must not keep a stopped host alive.
    os._exit(code)
