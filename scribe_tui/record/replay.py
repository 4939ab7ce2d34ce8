"""Re-executing a saved notebook, sealed: what ``reproduce`` and ``sweep`` share.

The model host the notebook's own metadata asks for, its receipt, and nbclient driving
a kernel scribe-tui started and will stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from nbclient import NotebookClient

from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.notebook import Notebook
from scribe_tui.runtime.receipt import build_receipt
from scribe_tui.runtime.sandbox import SandboxState
from scribe_tui.runtime.status import HostStatus

__all__ = [
    "ReplayHosts",
    "SealedNotebookClient",
    "execute",
    "host_for",
    "receipt_for",
    "sealed_client",
]


def host_for(notebook: Notebook, spec: str, sandbox: SandboxState, workers: int = 1) -> HostProcess:
    """A host for ``spec`` in the mode, device and dtype the notebook's run asked for;
    ``workers`` serve calls side by side (a small CPU model only: runtime.host_workers)."""
    scribe = notebook.scribe
    requested = (scribe.get("receipt") or {}).get("requested") or {}
    return HostProcess(
        spec,
        mode=str(scribe.get("mode", "local")),
        device=str(requested.get("device", "auto")),
        dtype=str(requested.get("dtype", "auto")),
        sealed=sandbox.sealed,
        workers=workers,
    )


class ReplayHosts:
    """The model hosts of a series of re-executions (an aggregate's notebooks), one per
    launch: the notebooks of one investigation ran on one shared host, and re-run on one.

    The executor puts back hooks, modes and attributes after every call (and a technique
    that edits weights in place must restore them), so a notebook re-executed on a host
    another one used meets the model as loaded, as it did in the original run.
    """

    def __init__(self) -> None:
        self._started: dict[str, tuple[HostProcess, HostStatus, dict[str, Any]]] = {}

    async def start(
        self,
        notebook: Notebook,
        spec: str,
        sandbox: SandboxState,
        on_progress: Callable[[HostStatus], None] | None = None,
    ) -> tuple[HostProcess, HostStatus, dict[str, Any]]:
        """The host ``notebook`` asks for, its ready status and weights' digests: started
        and hashed on first use; afterwards ``on_progress`` sees its status once."""
        from scribe_tui.runtime.sealed import start_host_hashed

        host = host_for(notebook, spec, sandbox)
        key = json.dumps([host.launch.to_dict(), host.sealed], sort_keys=True)
        if key in self._started:
            if on_progress is not None:
                on_progress(self._started[key][1])
            return self._started[key]
        self._started[key] = (host, *await start_host_hashed(host, on_progress))
        return self._started[key]

    def stop(self) -> None:
        """Stop every host started here."""
        for host, _, _ in self._started.values():
            host.stop()
        self._started.clear()


def receipt_for(
    host: HostProcess, status: HostStatus, digests: dict[str, Any], sandbox: SandboxState
) -> dict[str, Any]:
    """The receipt of a re-execution on ``host``."""
    launch = host.launch
    return build_receipt(
        display_name=launch.display_name,
        host=status,
        digests=digests,
        requested={"mode": launch.mode, "device": launch.device, "dtype": launch.dtype},
        sandbox=sandbox.to_dict(),
    )


class SealedNotebookClient(NotebookClient):
    """nbclient on a kernel scribe-tui started (sealed) and will stop.

    nbclient's own kernel setup would also take SIGINT and shut the kernel down on it,
    while Ctrl-C belongs to the command, which stops cleanly and keeps what finished.
    """

    @contextlib.asynccontextmanager
    async def async_setup_kernel(self, **kwargs: Any) -> AsyncIterator[None]:
        if self.kc is None:
            await self.async_start_new_kernel_client()
        yield


def sealed_client(nb: Any, kernel: Any, timeout: float, **options: Any) -> SealedNotebookClient:
    """nbclient on ``kernel`` (a started KernelSession): a cell past ``timeout`` s is
    interrupted, and no timing metadata is written (a re-run would differ by it alone)."""
    return SealedNotebookClient(
        nb,
        km=kernel.manager,
        timeout=timeout,
        interrupt_on_timeout=True,
        record_timing=False,
        **options,
    )


async def execute(client: NotebookClient) -> None:
    """``client.async_execute()``, with a cancellation (Ctrl-C) kept a cancellation.

    nbclient reads any cancellation as a dead kernel and returns normally; shielded, the
    execution is cancelled on our side and the CancelledError re-raised.
    """
    execution = asyncio.ensure_future(client.async_execute())
    try:
        await asyncio.shield(execution)
    except asyncio.CancelledError:
        execution.cancel()
        await asyncio.gather(execution, return_exceptions=True)
        raise
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
