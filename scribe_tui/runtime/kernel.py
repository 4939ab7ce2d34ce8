"""A Python kernel in a subprocess, driven through jupyter_client's async API.

Never in-process: only a subprocess can be interrupted, killed and restarted. Death is
detected by polling the process while waiting for messages (the heartbeat is not trusted),
and every exit path kills the kernel's whole process group so nothing is orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from types import TracebackType
from typing import IO, Any, Literal

from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

from scribe_tui.runtime.environment import kernel_environment
from scribe_tui.runtime.outputs import OutputCollector
from scribe_tui.runtime.sandbox import POLICY_ENV, SandboxPolicy, sandboxed_argv

__all__ = ["ExecStatus", "ExecutionResult", "KernelError", "KernelSession"]

log = logging.getLogger(__name__)

ExecStatus = Literal["ok", "error", "timeout", "died"]
# Given the kernel's working directory and scratch home, what a sealed kernel may reach.
SandboxFactory = Callable[[Path, Path], SandboxPolicy]

# Longest wait on the kernel between checks that its process is alive, a timeout has
# passed, or a restart wants the session; it bounds how late a death is noticed.
_POLL = 0.25
# IOPub is lossy (PUB/SUB); if the reply came but the final idle status never does, stop
# waiting for it after this long without any message.
_IDLE_GRACE = 2.0

_PREEMPTED = {
    "restart": "Kernel restarted while the cell ran: state lost.",
    "shutdown": "Session shut down while the cell ran.",
}


@dataclass
class ExecutionResult:
    """What running one cell produced."""

    outputs: list[dict]
    execution_count: int | None
    status: ExecStatus
    duration: float
    error: dict | None = None
    state_lost: bool = False
    message: str = ""


class KernelError(RuntimeError):
    """A kernel that cannot start or a session that can no longer run code."""


class KernelSession:
    """One kernel subprocess and the client that talks to it.

    ``execute`` calls are serialised. A cell that outlives its timeout is interrupted
    (state kept); a dead kernel is restarted (state lost); either way the result says so
    and the session stays usable until ``shutdown``.
    """

    interrupt_grace: float = 5.0
    """Seconds an interrupted cell gets to stop before the kernel is deemed stuck."""

    def __init__(
        self,
        *,
        cwd: str | Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        kernel_name: str = "python3",
        startup_timeout: float = 60.0,
        python: str | None = None,
        sandbox: SandboxFactory | None = None,
    ) -> None:
        self._cwd = Path(cwd) if cwd is not None else None
        self._sandbox = sandbox
        self._scratch: Path | None = None
        self._extra_env = dict(extra_env or {})
        self._kernel_name = kernel_name
        self._startup_timeout = startup_timeout
        self._python = python
        self._km: AsyncKernelManager | None = None
        self._kc: AsyncKernelClient | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reaper: weakref.finalize | None = None
        self._lock = asyncio.Lock()
        self._preempt: str | None = None
        self._interrupted = False
        self._closed = False

    @property
    def is_alive(self) -> bool:
        """Whether the kernel process is running."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The kernel's process id, while one is running."""
        return self._process.pid if self._process is not None else None

    @property
    def manager(self) -> AsyncKernelManager | None:
        """The running kernel's manager (nbclient drives the kernel through it)."""
        return self._km

    @property
    def connection_file(self) -> str | None:
        """The running kernel's connection file: ``jupyter console --existing FILE`` attaches."""
        return self._km.connection_file if self._km is not None else None

    async def __aenter__(self) -> KernelSession:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def start(self) -> None:
        """Start the kernel (``execute`` also does this on first use)."""
        await self._acquire()
        try:
            if self._km is None:
                await self._launch()
        finally:
            self._lock.release()

    async def execute(
        self,
        code: str,
        timeout: float | None = None,
        on_output: Callable[[list[dict]], None] | None = None,
    ) -> ExecutionResult:
        """Run ``code`` as one cell.

        ``on_output`` receives the cell's full output list after every change, while it
        runs. Cancelling the calling task interrupts the cell before re-raising.
        """
        await self._acquire()
        lost = ""
        try:
            if self._km is None:
                await self._launch()
            elif self._process is not None and self._process.poll() is not None:
                # Killed between cells (the OOM killer, say): run this one in a fresh kernel.
                lost = await self._relaunch(
                    f"Kernel died (exit code {self._process.returncode}) between cells"
                )
                if self._km is None:
                    raise KernelError(lost)
            result = await self._run(code, timeout, on_output)
        finally:
            self._lock.release()
        if lost:
            result.state_lost = True
            result.message = f"{lost} {result.message}".rstrip()
        return result

    async def interrupt(self) -> None:
        """Raise KeyboardInterrupt in the running cell, if any; state is kept."""
        if self._km is not None:
            self._interrupted = True
            await self._km.interrupt_kernel()

    async def restart(self) -> None:
        """Replace the kernel with a fresh one; a running cell is abandoned, state is lost."""
        self._check_open()
        async with self._preempting("restart"):
            self._check_open()
            await self._stop()
            await self._launch()

    async def shutdown(self) -> None:
        """Kill the kernel for good; later ``execute`` calls raise KernelError."""
        if self._closed:
            return
        self._closed = True
        async with self._preempting("shutdown"):
            await self._stop()

    # -- lifecycle -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KernelError("This kernel session was shut down; start a new session.")

    async def _acquire(self) -> None:
        """Take the execute lock, letting a pending restart or shutdown go first."""
        while True:
            self._check_open()
            await self._lock.acquire()
            if self._preempt is None and not self._closed:
                return
            # A restart or shutdown is queued on the lock: step back behind it.
            self._lock.release()

    @contextlib.asynccontextmanager
    async def _preempting(self, reason: str) -> AsyncIterator[None]:
        """Hold the lock, telling a running cell to give it up promptly."""
        self._preempt = reason
        try:
            async with self._lock:
                yield
        finally:
            self._preempt = None

    def _kernel_spec(self) -> KernelSpec:
        if self._python is None and self._kernel_name != "python3":
            try:
                return KernelSpecManager().get_kernel_spec(self._kernel_name)
            except NoSuchKernel as exc:
                raise KernelError(
                    f"No kernel named {self._kernel_name!r} is installed; install its "
                    "kernelspec or use the default python3 kernel."
                ) from exc
        # Built here rather than looked up so the interpreter's own ipykernel is used even
        # where no kernelspec is installed.
        python = self._python or sys.executable
        return KernelSpec(
            argv=[python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (ipykernel)",
            language="python",
            interrupt_mode="signal",
        )

    async def _launch(self) -> None:
        spec = self._kernel_spec()
        km = AsyncKernelManager(kernel_spec_manager=_OneSpec(spec))
        # Kept off the terminal (a TUI owns it) but readable when the kernel fails to start.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the kernel runs
        kc: AsyncKernelClient | None = None
        began = time.monotonic()
        cwd = self._cwd or Path.cwd()
        env = kernel_environment(self._extra_env)
        if self._sandbox is not None:
            spec.argv = sandboxed_argv(spec.argv)
            env.update(self._sealed_env(cwd))
        try:
            await km.start_kernel(
                env=env,
                cwd=str(cwd),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            kc = km.client()
            kc.start_channels(stdin=False, hb=False, control=False)
            await kc.wait_for_ready(timeout=self._startup_timeout)
        except BaseException as exc:
            reason = _last_line(stderr) or str(exc) or type(exc).__name__
            await _dispose(km, kc, stderr, getattr(km.provisioner, "process", None))
            if not isinstance(exc, Exception):
                raise
            if time.monotonic() - began >= self._startup_timeout:
                advice = f"raise startup_timeout (now {self._startup_timeout:g} s)"
            else:
                advice = "check that ipykernel is installed for that interpreter"
            raise KernelError(
                f"Could not start a kernel with {' '.join(spec.argv[:3])}: {reason}; {advice}."
            ) from exc
        self._km, self._kc, self._stderr = km, kc, stderr
        self._process = getattr(km.provisioner, "process", None)
        if self._process is not None:
            # Safety net for sessions dropped without shutdown() and for interpreter exit.
            self._reaper = weakref.finalize(self, _kill_group, self._process)

    def _sealed_env(self, cwd: Path) -> dict[str, str]:
        """A scratch home for the sealed kernel, and the policy its launcher applies."""
        assert self._sandbox is not None
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="scribe-kernel-"))
            # Removed with the session (or at exit); a restart keeps the kernel's files.
            weakref.finalize(self, shutil.rmtree, self._scratch, ignore_errors=True)
        home = self._scratch
        dirs = {
            "HOME": home,
            "TMPDIR": home / "tmp",
            "IPYTHONDIR": home / ".ipython",
            "MPLCONFIGDIR": home / ".matplotlib",
            "XDG_CACHE_HOME": home / ".cache",
            "XDG_CONFIG_HOME": home / ".config",
            "XDG_DATA_HOME": home / ".local" / "share",
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        policy = self._sandbox(cwd, home)
        return {**{k: str(v) for k, v in dirs.items()}, POLICY_ENV: policy.to_json()}

    async def _stop(self) -> None:
        km, kc, stderr, process = self._km, self._kc, self._stderr, self._process
        if self._reaper is not None:
            self._reaper.detach()
        self._km = self._kc = self._stderr = self._process = self._reaper = None
        await _dispose(km, kc, stderr, process)

    async def _relaunch(self, what: str) -> str:
        """Replace a lost kernel; return the message that tells the caller."""
        await self._stop()
        try:
            await self._launch()
        except KernelError as exc:
            return f"{what}; restarting it failed: {exc}"
        return f"{what} and was restarted: state lost."

    # -- running a cell --------------------------------------------------------------

    async def _run(
        self,
        code: str,
        timeout: float | None,
        on_output: Callable[[list[dict]], None] | None,
    ) -> ExecutionResult:
        assert self._kc is not None and self._km is not None
        kc, km = self._kc, self._km
        collector = OutputCollector()
        self._interrupted = False
        started = time.perf_counter()
        msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        reply_task = asyncio.ensure_future(_shell_reply(kc, msg_id))
        try:
            ending = await self._wait(
                kc, km, msg_id, reply_task, collector, started, timeout, on_output
            )
        except BaseException:
            # The caller gave up (task cancelled, Ctrl-C): stop the cell so the kernel is
            # free for the next one.
            await self._abandon(km, reply_task)
            raise
        finally:
            if not reply_task.done():
                reply_task.cancel()
                await asyncio.wait((reply_task,))
        duration = time.perf_counter() - started
        outputs = collector.outputs

        if ending in ("preempted", "died", "stuck"):
            if ending == "preempted":
                message = _PREEMPTED[self._preempt or "restart"]
            elif ending == "died":
                exit_code = self._process.returncode if self._process is not None else None
                message = await self._relaunch(f"Kernel died (exit code {exit_code})")
            else:
                message = await self._relaunch(
                    f"Timed out after {timeout:g} s; the kernel ignored the interrupt"
                )
            status: ExecStatus = "timeout" if ending == "stuck" else "died"
            return ExecutionResult(
                outputs, None, status, duration, state_lost=True, message=message
            )

        reply = reply_task.result()["content"]
        count = reply.get("execution_count")
        if ending == "timeout":
            message = f"Timed out after {timeout:g} s: kernel interrupted, state kept."
            return ExecutionResult(outputs, count, "timeout", duration, message=message)
        if reply.get("status") == "ok":
            return ExecutionResult(outputs, count, "ok", duration)
        error = {
            "ename": reply.get("ename", ""),
            "evalue": reply.get("evalue", ""),
            "traceback": list(reply.get("traceback", [])),
        }
        message = ""
        if self._interrupted and error["ename"] == "KeyboardInterrupt":
            message = "Interrupted: state kept."
        elif reply.get("status") == "aborted":
            message = "The kernel aborted this cell without running it."
        return ExecutionResult(outputs, count, "error", duration, error=error, message=message)

    async def _wait(
        self,
        kc: AsyncKernelClient,
        km: AsyncKernelManager,
        msg_id: str,
        reply_task: asyncio.Future[dict[str, Any]],
        collector: OutputCollector,
        started: float,
        timeout: float | None,
        on_output: Callable[[list[dict]], None] | None,
    ) -> str:
        """Collect the cell's outputs until it ends; return how it ended.

        "done", "timeout" (finished after an interrupt), "stuck" (ignored the interrupt),
        "died", or "preempted" (a restart or shutdown wants the kernel).
        """
        deadline = None if timeout is None else started + timeout
        timed_out = idle = False
        next_check = started + _POLL
        reply_at: float | None = None
        while True:
            if self._preempt is not None:
                return "preempted"
            if idle and reply_task.done():
                return "timeout" if timed_out else "done"
            now = time.perf_counter()
            if deadline is not None and now >= deadline:
                if timed_out:
                    return "stuck"
                timed_out = True
                await km.interrupt_kernel()
                deadline = now + self.interrupt_grace
            if now >= next_check:
                if not await km.is_alive():
                    return "died"
                next_check = now + _POLL
            wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - now))
            if idle:
                await asyncio.wait((reply_task,), timeout=wait)
                continue
            try:
                msg = await kc.get_iopub_msg(timeout=wait)
            except Empty:
                if reply_task.done():
                    reply_at = reply_at or now
                    idle = now - reply_at >= _IDLE_GRACE
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type, content = msg["msg_type"], msg["content"]
            if msg_type == "status":
                idle = content.get("execution_state") == "idle"
            elif collector.handle(msg_type, content) and on_output is not None:
                try:
                    on_output(collector.outputs)
                except Exception:
                    log.exception("on_output callback failed; the cell keeps running")

    async def _abandon(self, km: AsyncKernelManager, reply_task: asyncio.Future[Any]) -> None:
        """Interrupt a cell nobody waits for, and give it a moment to stop."""
        try:
            if await km.is_alive():
                await km.interrupt_kernel()
                await asyncio.wait((reply_task,), timeout=self.interrupt_grace)
        except Exception:
            log.warning("Could not interrupt an abandoned cell", exc_info=True)


class _OneSpec(KernelSpecManager):
    """Hands the kernel manager a spec built in memory."""

    def __init__(self, spec: KernelSpec) -> None:
        super().__init__()
        self._spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec


async def _shell_reply(kc: AsyncKernelClient, msg_id: str) -> dict[str, Any]:
    # Replies to cells abandoned earlier can still be queued; skip them.
    while True:
        msg = await kc.get_shell_msg()
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


async def _dispose(
    km: AsyncKernelManager | None,
    kc: AsyncKernelClient | None,
    stderr: IO[bytes] | None,
    process: subprocess.Popen[bytes] | None,
) -> None:
    try:
        if kc is not None:
            kc.stop_channels()
        if km is not None and km.has_kernel:
            await km.shutdown_kernel(now=True)
    finally:
        # Also covers a shutdown that failed or was cancelled half-way.
        if process is not None:
            _kill_group(process)
        if stderr is not None:
            stderr.close()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a kernel and everything it spawned (it leads its own process group)."""
    # A reaped process's id may belong to someone else by now.
    if process.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        # Reap it, so no zombie is left behind.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    lines = stream.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""
