"""Start, watch and stop a model host: the investigation's side (and the client's restarts)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from scribe_tui.runtime.environment import is_secret_name
from scribe_tui.runtime.host_protocol import (
    CONNECT_ERRORS,
    HostRecord,
    HostStartError,
    LaunchSpec,
    connect,
    decode_plain,
    encode,
    read_host_file,
)
from scribe_tui.runtime.hub_fetch import HubFetch, needs_fetch
from scribe_tui.runtime.sandbox import SandboxPolicy
from scribe_tui.runtime.status import HostStatus

OnProgress = Callable[[HostStatus], None]
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_HUB_TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def host_env(mode: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a host starts with: ``base`` minus credentials.

    Techniques run in the host and their output reaches the agent, so it gets no
    more than a kernel does; Modal's own credentials are kept in modal mode, where
    techniques run in the container instead. A hub token travels on stdin instead
    (see :func:`spawn_host`): an environment stays readable in ``/proc`` for life.
    """
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not is_secret_name(k) or (mode == "modal" and k.startswith("MODAL_"))
    }
    env.pop("SCRIBE_HOST_FILE", None)
    # The host must import this very checkout, whatever the caller's working directory.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


def hub_token(env: Mapping[str, str] | None = None) -> str | None:
    """The hub token in ``env`` (default: ours), if one is set there."""
    source = os.environ if env is None else env
    return next((source[k] for k in _HUB_TOKENS if source.get(k)), None)


def start_fetch(
    launch: LaunchSpec, log_file: Path, env: Mapping[str, str] | None = None
) -> HubFetch | None:
    """Start downloading ``launch``'s hub models into the cache; None when it has none.

    Every host in local or black-box mode is started after this has succeeded: the host
    loads from the cache, offline, and never sees the token. The fetch gets the token on
    stdin and an environment without credentials, like a host.
    """
    if not needs_fetch(launch):
        return None
    fetch_env = host_env(launch.mode, env)
    path = (os.environ if env is None else env).get("HF_TOKEN_PATH")
    if path:  # where `hf auth login` keeps the token: a path, though its name looks secret
        fetch_env["HF_TOKEN_PATH"] = path
    return HubFetch(launch, env=fetch_env, token=hub_token(env), log_file=log_file)


def spawn_host(
    launch: LaunchSpec,
    host_file: Path,
    *,
    parent_pid: int | None,
    idle_timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    sealed: bool = False,
    allow_network: bool = False,
    control_key: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m scribe_tui.runtime.host`` in its own session, logging to ``log_file``.

    The launch spec (and in modal mode the hub token, for the container) go on stdin,
    never on the command line or in the environment, where other processes could read
    them. A local host gets no token: :func:`start_fetch` downloads before it starts. Its
    own session keeps a kernel interrupt (SIGINT to the kernel's process group) from
    killing it.
    """
    # Isolated: nothing imported from the working folder or PYTHON* variables before the seal.
    argv = [sys.executable, "-I", "-m", "scribe_tui.runtime.host", "--host-file", str(host_file)]
    if parent_pid is not None:
        argv += ["--parent-pid", str(parent_pid)]
    if idle_timeout:
        argv += ["--idle-timeout", str(idle_timeout)]
    config = {
        "launch": launch.to_dict(),
        "sealed": sealed,
        "allow_network": allow_network,
        "hub_token": hub_token(env) if launch.mode == "modal" else None,
        "control_key": control_key,
    }
    with open(log_file or host_file.with_suffix(".log"), "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=host_env(launch.mode, env),
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(json.dumps(config).encode() + b"\n")
    proc.stdin.close()
    return proc


def pid_alive(pid: int | None) -> bool:
    """True for a running process (zombies count as dead), also from inside the sandbox."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, outside this process's sandbox
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


_QUALIFIED_ERROR = re.compile(
    r"^(?:[a-z_]\w*\.)+(?:ModelLoadError: |(?=[A-Z]\w*(?:Error|Exception): ))"
)
"""A traceback's last line without the module path: ``pkg.mod.ValueError: why`` reads
``ValueError: why``, and a ModelLoadError, written for people, reads ``why``."""


def failure_message(
    host_file: Path, returncode: int | None = None, log_file: Path | None = None
) -> str:
    """Why a host is not running: its recorded failure, else its log's last line."""
    record = read_host_file(host_file)
    if record is not None and record.failed:
        return record.failed
    try:
        lines = [
            ln
            for ln in (log_file or host_file.with_suffix(".log"))
            .read_text(errors="replace")
            .splitlines()
            if ln.strip()
        ]
    except OSError:
        lines = []
    code = f" (exit code {returncode})" if returncode is not None else ""
    last = _QUALIFIED_ERROR.sub("", lines[-1].strip()) if lines else "no output"
    return f"the model host exited{code}: {last}"


def remove_dead_socket(record: HostRecord) -> None:
    """Delete the socket directory a killed host could not clean up itself."""
    sock_dir = Path(record.address).parent
    if sock_dir.name.startswith("scribe-host-") and not pid_alive(record.pid):
        shutil.rmtree(sock_dir, ignore_errors=True)


@contextlib.contextmanager
def host_file_lock(host_file: Path) -> Iterator[None]:
    """Serialise restarts of one host across kernels (forks see the same file)."""
    fd = os.open(host_file.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def request_status(conn: Connection, timeout: float = 2.0) -> HostStatus:
    """Ask for a status snapshot on ``conn``; raises OSError/EOFError/TimeoutError."""
    conn.send_bytes(encode({"op": "status"}))
    if not conn.poll(timeout):
        raise TimeoutError("the model host did not answer a status request")
    reply = decode_plain(conn.recv_bytes())
    return HostStatus.from_dict(reply["value"])


class HostProcess:
    """The investigation's model host: spawn it, follow its loading, poll its status, stop it.

    The host lives in a private directory (0700) under the user's runtime dir and
    exits by itself if this process dies. If it dies while this process lives (a
    crash, the OOM killer, a call that would not stop), a supervisor thread starts a
    new one and the model loads again. Kernels get only :meth:`kernel_env`, which
    names a directory of its own holding the host file and nothing else. A hub model
    not in the cache is downloaded first (:func:`start_fetch`), and its progress is
    reported as the host's.
    """

    def __init__(
        self,
        model_spec: str,
        *,
        mode: str = "local",
        device: str = "auto",
        dtype: str = "auto",
        hide_model_name: bool = False,
        adapter: str | None = None,
        base_model: str | None = None,
        gpu: str | None = None,
        modal_timeout: float = 60.0,
        state_dir: Path | None = None,
        sealed: bool = False,
        allow_network: bool = False,
        workers: int = 1,
    ) -> None:
        self.launch = LaunchSpec(
            model=model_spec,
            mode=mode,
            device=device,
            dtype=dtype,
            adapter=adapter,
            base_model=base_model,
            hide_model_name=hide_model_name,
            gpu=gpu,
            modal_timeout=modal_timeout,
            workers=workers,
        )
        self.sealed = sealed
        self.allow_network = allow_network  # when sealed: TCP open for the host and its kernels
        self.restarts = 0
        self._state_dir = state_dir
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._fetch: HubFetch | None = None
        self._lifecycle = threading.Lock()  # the spawn after a download, against stop()
        self._status_conn: tuple[int, Connection] | None = None
        self._status_lock = threading.Lock()
        self._stopped = False
        self._control_key = secrets.token_hex(32)  # shutdown: this process alone holds it
        self._stop_supervisor = threading.Event()
        self._info: dict[str, Any] | None = None  # model_info()'s first answer
        self._ran: HostStatus | None = None  # the last ready snapshot: what it ran on

    @property
    def host_file(self) -> Path:
        """The file a kernel reads (via ``SCRIBE_HOST_FILE``) to find the host."""
        if self._dir is None:
            raise RuntimeError("HostProcess.start() has not been called")
        return self._dir / "kernel" / "host.json"

    @property
    def log_file(self) -> Path:
        """The host's output; it may name paths, so it sits outside the kernel's directory."""
        if self._dir is None:
            raise RuntimeError("HostProcess.start() has not been called")
        return self._dir / "host.log"

    @property
    def pid(self) -> int | None:
        """The serving host's pid (the supervisor may have restarted it since)."""
        record = read_host_file(self.host_file) if self._dir else None
        return record.pid if record else (self._proc.pid if self._proc else None)

    def kernel_env(self) -> dict[str, str]:
        """The only host-related variable a kernel needs."""
        return {"SCRIBE_HOST_FILE": str(self.host_file)}

    def kernel_policy(self, files_dir: Path, scratch: Path) -> SandboxPolicy:
        """What a sealed kernel may reach: Python, its two directories, the host file."""
        from scribe_tui.runtime.sandbox import base_policy

        policy = base_policy(
            read=[str(self.host_file.parent)],
            write=[str(files_dir), str(scratch)],
            exclude=secret_paths(self.launch),
        )
        policy.allow_network = self.allow_network
        return policy

    def start_sync(self) -> None:
        """Spawn the host, or first the download of its hub model (returns at once; see
        :meth:`wait_ready`)."""
        if self._proc is not None or self._fetch is not None:
            return
        if self.launch.mode == "modal":
            from scribe_tui.runtime.modal_host import modal_credentials_problem

            problem = modal_credentials_problem()
            if problem:
                raise HostStartError(problem)
        if self._state_dir is None:
            from scribe_tui.paths import state_dir

            self._state_dir = state_dir()
        hosts = self._state_dir / "hosts"
        hosts.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="host-", dir=hosts))  # mkdtemp: mode 0700
        self.host_file.parent.mkdir(mode=0o700)
        atexit.register(self.stop)
        self._fetch = start_fetch(self.launch, self.log_file)
        if self._fetch is None:
            self._serve()
        else:
            threading.Thread(target=self._serve_after_fetch, name="hub-fetch", daemon=True).start()

    def _serve(self) -> None:
        self._proc = self._spawn()
        threading.Thread(target=self._supervise, name="host-supervisor", daemon=True).start()

    def _serve_after_fetch(self) -> None:
        assert self._fetch is not None
        self._fetch.wait()
        with self._lifecycle:
            if self._fetch.error is None and not self._stopped:
                self._serve()

    def _fetching(self) -> bool:
        return self._proc is None and self._fetch is not None and not self._fetch.done

    def _spawn(self) -> subprocess.Popen[bytes]:
        return spawn_host(
            self.launch,
            self.host_file,
            parent_pid=os.getpid(),
            log_file=self.log_file,
            sealed=self.sealed,
            allow_network=self.allow_network,
            control_key=self._control_key,
        )

    def _supervise(self) -> None:
        """Start a new host when the serving one dies unasked; a failed load is not retried."""
        while not self._stop_supervisor.wait(0.25):
            record = read_host_file(self.host_file)
            if record is None or record.failed or pid_alive(record.pid):
                continue
            with host_file_lock(self.host_file):
                if self._stop_supervisor.is_set() or read_host_file(self.host_file) != record:
                    continue
                remove_dead_socket(record)
                self.host_file.unlink(missing_ok=True)
                if self._proc is not None:
                    self._proc.poll()  # reap the old one
                self.restarts += 1
                self._proc = self._spawn()

    async def start(self) -> None:
        """Async twin of :meth:`start_sync`."""
        await asyncio.to_thread(self.start_sync)

    def wait_ready_sync(
        self, timeout: float | None = None, on_progress: OnProgress | None = None
    ) -> HostStatus:
        """Block until the model is loaded; ``on_progress`` gets each new snapshot.

        Raises :class:`HostStartError` (one line) if loading fails, TimeoutError on timeout.
        A download does not count against ``timeout``: the clock starts with the host.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: HostStatus | None = None
        while True:
            status, done = self._poll_ready()
            if on_progress is not None and _changed(last, status):
                on_progress(status)
            last = status
            if done:
                return status
            if timeout is not None and self._fetching():
                deadline = time.monotonic() + timeout
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"the model host is not ready after {timeout:.0f} s ({status.summary()})"
                )
            time.sleep(0.05)

    async def wait_ready(
        self, timeout: float | None = None, on_progress: OnProgress | None = None
    ) -> HostStatus:
        """Async :meth:`wait_ready_sync` (polls without blocking the event loop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: HostStatus | None = None
        while True:
            status, done = await asyncio.to_thread(self._poll_ready)
            if on_progress is not None and _changed(last, status):
                on_progress(status)
            last = status
            if done:
                return status
            if timeout is not None and self._fetching():
                deadline = time.monotonic() + timeout
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"the model host is not ready after {timeout:.0f} s ({status.summary()})"
                )
            await asyncio.sleep(0.05)

    def _poll_ready(self) -> tuple[HostStatus, bool]:
        status = self.status()
        if status.state == "failed":
            raise HostStartError(status.message)
        if status.state == "stopped":
            raise HostStartError("the model host was stopped before it was ready")
        return status, status.state == "ready"

    def status(self, timeout: float = 2.0) -> HostStatus:
        """A snapshot; answered even while a ``client.run`` is busy (no model lock involved)."""
        if self._stopped or (self._proc is None and self._fetch is None):
            return self._stopped_status()
        if self._proc is None:
            assert self._fetch is not None
            return self._fetch_status(self._fetch)
        record = read_host_file(self.host_file)
        if record is not None and record.failed:
            return HostStatus(
                state="failed",
                message=record.failed,
                model=self.launch.display_name,
                mode=self.launch.mode,
                pid=record.pid,
            )
        with self._status_lock:
            try:
                status = request_status(self._status_connection(record), timeout)
            except (*CONNECT_ERRORS, TimeoutError, KeyError, ValueError):
                self._drop_status_connection()
            else:
                if status.ready:
                    self._ran = status
                return status
        pid = record.pid if record else self._proc.pid
        if pid_alive(pid):
            if self._ran is not None and self._ran.pid == pid:
                # A ready host too busy to answer in time is still that host, not a new one.
                return dataclasses.replace(self._ran, phase=f"no answer in {timeout:g} s")
            return HostStatus(
                state="starting",
                phase="starting the host process",
                model=self.launch.display_name,
                mode=self.launch.mode,
                pid=pid,
            )
        returncode = self._proc.poll() if pid == self._proc.pid else None
        return HostStatus(
            state="failed",
            message=failure_message(self.host_file, returncode, self.log_file),
            model=self.launch.display_name,
            mode=self.launch.mode,
            pid=pid,
        )

    def _stopped_status(self) -> HostStatus:
        """A stopped host's snapshot: the device, dtype and calls of its last ready one (a
        status bar still says what the run used), without the memory it no longer holds."""
        if self._ran is None:
            return HostStatus(
                state="stopped", model=self.launch.display_name, mode=self.launch.mode
            )
        return dataclasses.replace(
            self._ran,
            state="stopped",
            phase="",
            memory_used=None,
            memory_total=None,
            utilization=None,
            calls_in_flight=0,
            pid=None,
        )

    def model_info(self, timeout: float = 60.0) -> dict[str, Any]:
        """What the loaded model is (``client.info()``'s reply: layers, heads, ...), asked
        once and kept: later answers could come from a host that agent code has changed.

        Raises OSError, EOFError or TimeoutError when the host does not answer, and
        RuntimeError when it refuses.
        """
        if self._info is not None:
            return dict(self._info)
        record = read_host_file(self.host_file)
        if record is None:
            raise FileNotFoundError("the model host has not written its host file")
        conn = connect(record)
        try:
            conn.send_bytes(encode({"op": "info"}))
            if not conn.poll(timeout):
                raise TimeoutError("the model host did not say what its model is")
            reply = decode_plain(conn.recv_bytes())
        finally:
            conn.close()
        if not reply.get("ok") or not isinstance(reply.get("value"), dict):
            refused = reply.get("message") or "the model host refused to describe its model"
            raise RuntimeError(refused)
        self._info = reply["value"]
        return dict(self._info)

    def _fetch_status(self, fetch: HubFetch) -> HostStatus:
        """The download's progress, as the host's own loading would show it."""
        if fetch.error is not None:
            return HostStatus(
                state="failed",
                message=fetch.error,
                model=self.launch.display_name,
                mode=self.launch.mode,
            )
        return HostStatus(
            state=fetch.state,
            phase=fetch.phase,
            progress=fetch.progress,
            model=self.launch.display_name,
            mode=self.launch.mode,
        )

    def _status_connection(self, record: HostRecord | None) -> Connection:
        if record is None:
            raise FileNotFoundError("no host file yet")
        if self._status_conn is not None and self._status_conn[0] == record.pid:
            return self._status_conn[1]
        self._drop_status_connection()
        conn = connect(record)
        self._status_conn = (record.pid, conn)
        return conn

    def _drop_status_connection(self) -> None:
        if self._status_conn is not None:
            with contextlib.suppress(OSError):
                self._status_conn[1].close()
            self._status_conn = None

    def stop(self, timeout: float = 5.0) -> None:
        """Shut the host down (whichever process serves it now) and remove its directory."""
        with self._lifecycle:
            if self._stopped or (self._proc is None and self._fetch is None):
                return
            self._stopped = True
        self._stop_supervisor.set()
        if self._fetch is not None:
            self._fetch.stop()
        if self._proc is None:  # stopped during the download: no host was started
            shutil.rmtree(self._dir, ignore_errors=True)  # type: ignore[arg-type]
            atexit.unregister(self.stop)
            return
        # Remove the host file first (under the restart lock), so a kernel that sees the
        # host go away reports the end of the investigation instead of restarting it.
        with host_file_lock(self.host_file):
            record = read_host_file(self.host_file)
            self.host_file.unlink(missing_ok=True)
        with self._status_lock:
            self._drop_status_connection()
        pids = {self._proc.pid} | ({record.pid} if record else set())
        if record is not None:
            with contextlib.suppress(*CONNECT_ERRORS):
                conn = connect(record)
                conn.send_bytes(encode({"op": "shutdown", "key": self._control_key}))
                conn.poll(1.0)
                conn.close()
        deadline = time.monotonic() + timeout
        for pid in pids:
            _terminate(pid, deadline, self._proc if pid == self._proc.pid else None)
        if record is not None:
            remove_dead_socket(record)
        shutil.rmtree(self._dir, ignore_errors=True)  # type: ignore[arg-type]
        atexit.unregister(self.stop)

    def __enter__(self) -> HostProcess:
        self.start_sync()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"HostProcess({self.launch.display_name!r}, mode={self.launch.mode!r}, pid={self.pid})"
        )


def _changed(old: HostStatus | None, new: HostStatus) -> bool:
    """Progress worth reporting: a new state, phase or percent (memory jitter is not)."""

    def key(status: HostStatus) -> tuple[str, str, float]:
        return status.state, status.phase, round(status.progress, 2)

    return old is None or key(old) != key(new)


def _terminate(pid: int, deadline: float, proc: subprocess.Popen[bytes] | None) -> None:
    def gone() -> bool:
        return proc.poll() is not None if proc is not None else not pid_alive(pid)

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if gone():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.02)
        deadline = time.monotonic() + 2.0


def secret_paths(launch: LaunchSpec) -> list[str]:
    """What no sealed process may read through a wider grant: keys, weights, our own state,
    the hub's token files."""
    from scribe_tui.paths import config_file, state_dir
    from scribe_tui.runtime.loading import hub_token_files

    paths = [str(state_dir()), str(config_file().parent), *_organism_secrets()]
    paths += hub_token_files()
    if launch.mode != "modal":
        paths += [
            p for p in (launch.model, launch.adapter, launch.base_model) if p and os.path.exists(p)
        ]
    return paths


def _organism_secrets() -> list[str]:
    """The organisms' weights and every answer key location (see scribe_tui.organisms.keys)."""
    from scribe_tui.organisms import keys
    from scribe_tui.organisms.registry import BUNDLED_DIR

    return [str(BUNDLED_DIR), str(keys.BUNDLED_KEYS_DIR), str(keys.key_store_dir())]
