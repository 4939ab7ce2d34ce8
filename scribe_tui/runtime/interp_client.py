"""``InterpClient``: the notebook kernel's handle to the subject model in the model host.

    from scribe_tui.runtime.interp_client import InterpClient
    client = InterpClient()                        # inside an investigation (SCRIBE_HOST_FILE)
    client = InterpClient(model="organism:taboo")  # anywhere: reuses a running host or starts one
    client.run(fn, **kwargs)                       # fn(model, tokenizer, **kwargs) runs in the host

The function travels by value (cloudpickle; kernel and host share one
interpreter), prints stream into the cell as they happen, and exceptions come
back as their own type with the host-side traceback attached as a note. If the
host dies mid-call the call raises :class:`HostConnectionError` and the next
call starts a new host from the launch record in the host file.

Light on purpose: no torch import here (the kernel imports it only when a result holds tensors).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cloudpickle

from scribe_tui.runtime.host_process import (
    failure_message,
    host_file_lock,
    pid_alive,
    remove_dead_socket,
    request_status,
    spawn_host,
    start_fetch,
)
from scribe_tui.runtime.host_protocol import (
    CONNECT_ERRORS,
    BlackBoxError,
    ExitNote,
    HostConnectionError,
    HostRecord,
    HostStartError,
    LaunchSpec,
    UnsendableResult,
    code_origins,
    connect,
    encode,
    read_exit_note,
    read_host_file,
    unpack_exception,
)
from scribe_tui.runtime.status import HostStatus

__all__ = [
    "BlackBoxError",
    "HostConnectionError",
    "HostStartError",
    "InterpClient",
    "UnsendableResult",
    "setup_code",
]

# A host started from a plain notebook outlives kernel restarts by this many idle seconds.
DEFAULT_IDLE_TIMEOUT = 900.0
# Times a call is resent to a restarted host when another client's stuck call stopped the host.
_RESENDS = 3
_FIRST_WRITE_TIMEOUT = 30.0  # seconds for a just-spawned host to write its host file
# Kept so that finished hosts get reaped instead of lingering as zombies.
_SPAWNED: list[subprocess.Popen[bytes]] = []


class InterpClient:
    """Connects to (or starts) the model host and runs techniques on the subject model.

    Args:
        model: ``organism:NAME``, a local path or a hub id. Omit it inside an
            investigation to use the investigation's host (``SCRIBE_HOST_FILE``).
        mode: ``local`` (white-box), ``blackbox`` (generate/chat only) or ``modal``.
        device, dtype, adapter, base_model: used only when this client starts a host.
        host_file: connect to the host described by this file instead.
        timeout: seconds to wait for a host to load its model.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        mode: str = "local",
        device: str = "auto",
        dtype: str = "auto",
        adapter: str | None = None,
        base_model: str | None = None,
        host_file: str | Path | None = None,
        timeout: float = 600.0,
    ) -> None:
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._conn_pid: int | None = None  # our pid when connected: a forked kernel must reconnect
        self._record: HostRecord | None = None
        self._timeout = timeout
        self._host_file, self._launch = _locate(
            model, mode, device, dtype, adapter, base_model, host_file
        )
        with self._lock:
            self._ensure()

    # --- the technique surface -------------------------------------------------------------------

    def run(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``fn(model, tokenizer, **kwargs)`` in the model host and return its result."""
        return self._run(fn, kwargs, "model")

    def run_base(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Like :meth:`run`, on the base checkpoint before fine-tuning (for model diffing).

        ``client.info()["base_model"]`` says whether the subject model has one.
        """
        return self._run(fn, kwargs, "base")

    def _run(self, fn: Callable[..., Any], kwargs: dict[str, Any], variant: str) -> Any:
        if not callable(fn):
            raise TypeError(
                "client.run needs a function fn(model, tokenizer, **kwargs), "
                f"not {type(fn).__name__}"
            )
        try:
            payload = cloudpickle.dumps((fn, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            name = getattr(fn, "__name__", repr(fn))
            raise TypeError(
                f"client.run: cannot send {name} or its arguments to the model host: {exc}"
            ) from None
        fields: dict[str, Any] = {"payload": payload}
        if variant != "model":
            fields["variant"] = variant
        value = self._call("run", shipped=(fn, kwargs), **fields)
        return pickle.loads(value)

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        num_samples: int = 1,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str | list[str]:
        """Continue raw text; a list when ``num_samples`` > 1 (temperature 0: greedy)."""
        return self._call(
            "generate",
            kwargs={
                "prompt": prompt,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "num_samples": num_samples,
                "top_p": top_p,
                "seed": seed,
            },
        )

    def chat(
        self,
        messages: str | list[dict[str, str]],
        *,
        prefill: str | None = None,
        system: str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        num_samples: int = 1,
        top_p: float | None = None,
        seed: int | None = None,
        role: str = "assistant",
    ) -> str | list[str]:
        """The next turn via the chat template, after ``prefill`` (not repeated): the
        assistant's reply, or with ``role="user"`` the user's (user-persona sampling)."""
        return self._call(
            "chat",
            kwargs={
                "messages": messages,
                "prefill": prefill,
                "system": system,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "num_samples": num_samples,
                "top_p": top_p,
                "seed": seed,
                "role": role,
            },
        )

    def info(self) -> dict[str, Any]:
        """Model name (unless hidden), mode, device, dtype, parameters, layers, architecture."""
        return self._call("info")

    def status(self) -> HostStatus:
        """The host's status snapshot (see :class:`~scribe_tui.runtime.status.HostStatus`)."""
        with self._lock:
            conn = self._ensure()
            try:
                return request_status(conn, timeout=self._timeout)
            except (EOFError, OSError, TimeoutError) as exc:
                self._drop()
                raise HostConnectionError(self._lost("status", exc, self._exit_note())) from None

    def describe(self) -> str:
        """One line saying what this client is connected to, e.g. for the setup cell."""
        info = self.info()
        layers = f", {info['layers']} layers" if info.get("layers") else ""
        extra = {"blackbox": " (black-box: client.generate / client.chat)", "modal": " on Modal"}
        return (
            f"InterpClient: {info['model']} on {info['device']} ({info['dtype']}), "
            f"{_count(info['parameters'])} params{layers}{extra.get(info['mode'], '')} — ready"
        )

    def close(self) -> None:
        """Disconnect (the host keeps running for other kernels)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> InterpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        record = self._record
        if record is None:
            return f"<InterpClient (not connected) host file {self._host_file}>"
        launch = record.launch
        return f"<InterpClient {launch.display_name} mode={launch.mode} host pid {record.pid}>"

    # --- requests --------------------------------------------------------------------------------

    def _call(self, op: str, *, shipped: Any = None, **fields: Any) -> Any:
        """Send request ``op``; ``shipped`` is what a ``run`` sent, to map its traceback."""
        reply = self._request(op, fields)
        for name in ("stdout", "stderr"):  # output a remote (Modal) call could not stream
            if reply.get(name):
                getattr(sys, name).write(reply[name])
        if reply["ok"]:
            return reply.get("value")
        kind = reply.get("kind")
        if kind == "blackbox":
            raise BlackBoxError(reply["message"])
        if kind == "unsendable":
            raise UnsendableResult(reply["message"])
        if kind == "not_ready":
            raise HostStartError(reply["message"])
        raise unpack_exception(reply["error"], code_origins(shipped) if shipped else None)

    def _request(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for attempt in range(_RESENDS + 1):
                conn = self._ensure()
                call_id = os.urandom(8).hex()
                try:
                    conn.send_bytes(encode({"op": op, "call": call_id, **fields}))
                    while True:
                        message = pickle.loads(conn.recv_bytes())
                        if "stream" not in message:
                            return message
                        stream = sys.stdout if message["stream"] == "stdout" else sys.stderr
                        stream.write(message["text"])
                except KeyboardInterrupt:
                    self._cancel_remote(call_id)
                    raise
                except (EOFError, OSError) as exc:
                    self._drop()
                    note = self._exit_note()
                    if attempt < _RESENDS and note and note.stuck_call not in (None, call_id):
                        # Another client's call wedged the host; ours never started.
                        print(
                            f"The model host restarted because another call would not stop; "
                            f"resending client.{op}…",
                            flush=True,
                        )
                        continue
                    raise HostConnectionError(self._lost(f"client.{op}", exc, note)) from None
        raise AssertionError("unreachable")

    def _exit_note(self) -> ExitNote | None:
        """The note the host left if it stopped itself (waiting briefly for it to be gone)."""
        record = self._record
        if record is None:
            return None
        # A killed process closes its sockets a moment before it is reported dead.
        deadline = time.monotonic() + 1.0
        while pid_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return read_exit_note(self._host_file, record.pid)

    def _lost(self, what: str, exc: BaseException, note: ExitNote | None) -> str:
        record = self._record
        if record is not None and note:
            why = f"host pid {record.pid} stopped itself: {note.reason}"
        elif record is not None and not pid_alive(record.pid):
            why = f"host pid {record.pid} exited"
        else:
            why = str(exc) or type(exc).__name__
        return f"the model host stopped during {what} ({why}); the next call restarts it"

    def _cancel_remote(self, call_id: str) -> None:
        """Interrupt the technique in the host, then drop our now out-of-step connection."""
        if self._record is not None:
            with contextlib.suppress(*CONNECT_ERRORS):
                conn = connect(self._record)
                conn.send_bytes(encode({"op": "cancel", "call": call_id}))
                conn.poll(2.0)
                conn.close()
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None

    # --- finding, starting and waiting for the host ----------------------------------------------

    def _ensure(self) -> Connection:
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        self._conn = None
        deadline = time.monotonic() + self._timeout
        conn, self._record = self._connect_or_start(deadline)
        self._conn, self._conn_pid = conn, os.getpid()
        try:
            self._wait_ready(conn, deadline)
        except (EOFError, OSError, TimeoutError):
            self._drop()
            raise HostStartError(failure_message(self._host_file)) from None
        except BaseException:
            self._drop()
            raise
        return conn

    def _connect_or_start(self, deadline: float) -> tuple[Connection, HostRecord]:
        record = read_host_file(self._host_file)
        conn = _try_connect(record)
        if conn is not None:
            return conn, record  # type: ignore[return-value]
        if self._launch is None and (record is None or record.owner_pid is not None):
            return self._wait_for_host(deadline)
        with host_file_lock(self._host_file):
            # Another kernel may have restarted it while we waited for the lock.
            record = read_host_file(self._host_file)
            conn = _try_connect(record)
            if conn is not None:
                return conn, record  # type: ignore[return-value]
            proc = None
            if record is None or record.failed or not pid_alive(record.pid):
                proc = self._spawn(record, deadline)
            while time.monotonic() < deadline:
                record = read_host_file(self._host_file)
                if record is not None and (proc is None or record.pid == proc.pid):
                    if record.failed:
                        raise HostStartError(record.failed)
                    conn = _try_connect(record)
                    if conn is not None:
                        return conn, record
                if proc is not None and proc.poll() is not None:
                    raise HostStartError(failure_message(self._host_file, proc.returncode))
                if proc is None and (record is None or not pid_alive(record.pid)):
                    raise HostStartError(failure_message(self._host_file))
                time.sleep(0.02)
        raise HostStartError(f"the model host did not start within {self._timeout:.0f} s")

    def _wait_for_host(self, deadline: float) -> tuple[Connection, HostRecord]:
        """Wait for the investigation's host: its owner starts it, and starts it again if it dies.

        A kernel never starts that host itself: a sealed kernel could not read the weights.
        """
        start, announced = time.monotonic(), False
        while time.monotonic() < deadline:
            record = read_host_file(self._host_file)
            if record is None:
                # The file appears once the host listens; a removed directory means the end.
                if not self._host_file.parent.is_dir():
                    raise self._ended()
                if time.monotonic() - start > _FIRST_WRITE_TIMEOUT:
                    raise HostStartError(failure_message(self._host_file))
            elif record.failed:
                raise HostStartError(record.failed)
            else:
                conn = _try_connect(record)
                if conn is not None:
                    return conn, record
                if not pid_alive(record.pid):
                    if not pid_alive(record.owner_pid):
                        raise self._ended()
                    if not announced:
                        print("The model host stopped; waiting for its restart…", flush=True)
                        announced = True
            time.sleep(0.02)
        raise HostStartError(f"the model host did not come back within {self._timeout:.0f} s")

    def _spawn(self, record: HostRecord | None, deadline: float) -> subprocess.Popen[bytes]:
        launch = record.launch if record is not None else self._launch
        if launch is None:
            raise self._ended()
        if record is not None:
            remove_dead_socket(record)
        verb = "Restarting" if record is not None else "Starting"
        print(f"{verb} the model host for {launch.display_name}…", flush=True)
        self._fetch(launch, deadline)
        for old in _SPAWNED:
            old.poll()
        # Nobody owns this host: it outlives kernel restarts until it idles out.
        proc = spawn_host(
            launch, self._host_file, parent_pid=None, idle_timeout=DEFAULT_IDLE_TIMEOUT
        )
        _SPAWNED.append(proc)
        return proc

    def _fetch(self, launch: LaunchSpec, deadline: float) -> None:
        """Download a hub model into the cache first: a host never downloads (hub_fetch)."""
        fetch = start_fetch(launch, self._host_file.with_suffix(".log"))
        if fetch is None:
            return
        shown = ""
        try:
            while not fetch.wait(0.25):
                if fetch.state == "loading" and fetch.phase != shown:
                    shown = fetch.phase
                    print(f"{shown} ({fetch.progress:.0%})", flush=True)
                if time.monotonic() > deadline:
                    raise HostStartError(
                        f"the download of {launch.display_name} did not finish within "
                        f"{self._timeout:.0f} s: pass a larger timeout (it resumes from there)"
                    )
        finally:
            fetch.stop()  # at once if it is done; a Ctrl-C here ends the download too
        if fetch.error is not None:
            raise HostStartError(fetch.error)

    def _ended(self) -> HostConnectionError:
        return HostConnectionError(
            "the model host is gone and so is the investigation that ran it: "
            "the investigation has ended"
        )

    def _wait_ready(self, conn: Connection, deadline: float) -> None:
        announced = False
        while True:
            status = request_status(conn, timeout=max(1.0, deadline - time.monotonic()))
            if status.state == "ready":
                return
            if status.state == "failed":
                raise HostStartError(status.message)
            if not announced:
                print(
                    f"Waiting for the model host to load {status.model or 'the model'}…", flush=True
                )
                announced = True
            if time.monotonic() > deadline:
                raise HostStartError(
                    f"the model host is not ready after {self._timeout:.0f} s ({status.summary()})"
                )
            time.sleep(0.05)


def _try_connect(record: HostRecord | None) -> Connection | None:
    if record is None or record.failed:
        return None
    try:
        return connect(record)
    except CONNECT_ERRORS:
        return None


def _locate(
    model: str | None,
    mode: str,
    device: str,
    dtype: str,
    adapter: str | None,
    base_model: str | None,
    host_file: str | Path | None,
) -> tuple[Path, LaunchSpec | None]:
    """The host file to use, and the launch spec when this client may create the host itself."""
    if host_file is not None:
        return Path(host_file), None
    env = os.environ.get("SCRIBE_HOST_FILE")
    if env:
        record = read_host_file(Path(env))
        if (
            model is None
            or record is None
            or (
                record.launch.mode == mode
                # The investigation's host file names the model by its display name.
                and record.launch.model in (model, LaunchSpec(model=model).display_name)
            )
        ):
            return Path(env), None
    if model is None:
        raise HostStartError(
            "InterpClient() needs a model outside an investigation (SCRIBE_HOST_FILE is not set), "
            "e.g. InterpClient(model='organism:taboo')"
        )
    launch = LaunchSpec(
        model=model, mode=mode, device=device, dtype=dtype, adapter=adapter, base_model=base_model
    )
    from scribe_tui.paths import state_dir

    hosts = state_dir() / "hosts"
    hosts.mkdir(mode=0o700, parents=True, exist_ok=True)
    # One shared host per launch spec, so every notebook on this machine reuses it.
    digest = hashlib.sha256(json.dumps(launch.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    return hosts / f"{digest}.json", launch


def _count(n: int) -> str:
    """Parameter counts as people say them: 0.9M, 7.2B, 28.2K."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e5:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def setup_code(
    model_spec: str,
    *,
    mode: str = "local",
    device: str = "auto",
    dtype: str = "auto",
    hide_model_name: bool = False,
) -> str:
    """Source of the notebook's setup cell: builds ``client`` and prints what it is connected to.

    Inside an investigation the client finds the running host through
    ``SCRIBE_HOST_FILE``; in a fresh Jupyter kernel it starts (or reuses) a host for
    the same model. A hidden model name is left out of the cell, so such a notebook
    only reconnects inside its investigation.
    """
    args: list[str] = []
    if not hide_model_name:
        args.append(f"model={model_spec!r}")
        args += [
            f"{k}={v!r}"
            for k, v, default in (
                ("mode", mode, "local"),
                ("device", device, "auto"),
                ("dtype", dtype, "auto"),
            )
            if v != default
        ]
    return (
        "# `client` is your handle to the subject model, kept loaded in a separate host process.\n"
        "from scribe_tui.runtime.interp_client import InterpClient\n"
        "\n"
        f"client = InterpClient({', '.join(args)})\n"
        "print(client.describe())\n"
    )
