"""The pair every run stands on: a model host, and kernels sealed away from everything else.

Investigations (:class:`~scribe_tui.agent.launch.Workbench`) and reproductions
(``scribe-tui reproduce``) build both through these helpers, so a reproduction runs
with the same sandbox, host file and kernel environment as the investigation did.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from scribe_tui.runtime.host_process import HostProcess, OnProgress
from scribe_tui.runtime.kernel import KernelSession
from scribe_tui.runtime.sandbox import SandboxState
from scribe_tui.runtime.status import HostStatus

__all__ = [
    "HOST_READY_TIMEOUT",
    "MODAL_READY_TIMEOUT",
    "kernel_options",
    "sandbox_state",
    "sealed_kernel",
    "start_host",
    "start_host_hashed",
]

HOST_READY_TIMEOUT = 600.0


def sandbox_state(wanted: bool, allow_network: bool = False) -> SandboxState:
    """Whether this run is sealed (Landlock where the platform has it, unless opted out), and
    whether its TCP is closed (where the Landlock ABI can, unless ``allow_network``)."""
    from scribe_tui.runtime.sandbox import network_opened, off, probe

    state = probe() if wanted else off("--no-sandbox")
    return network_opened(state) if allow_network else state


MODAL_READY_TIMEOUT = 3 * 3600.0
"""On Modal the first start builds a CUDA image and fetches the weights: hours, at worst."""


async def start_host(
    host: HostProcess,
    on_progress: OnProgress | None = None,
    timeout: float | None = None,
) -> HostStatus:
    """Spawn ``host`` and wait until its model is loaded.

    Raises :class:`~scribe_tui.runtime.host_protocol.HostStartError` (one line) if it
    cannot load, TimeoutError if it takes longer than ``timeout`` seconds (default:
    HOST_READY_TIMEOUT, or MODAL_READY_TIMEOUT for a host on Modal, whose own steps
    each have their limit and report progress).
    """
    if timeout is None:
        timeout = MODAL_READY_TIMEOUT if host.launch.mode == "modal" else HOST_READY_TIMEOUT
    await host.start()
    return await host.wait_ready(timeout, on_progress)


async def start_host_hashed(
    host: HostProcess, on_progress: OnProgress | None = None
) -> tuple[HostStatus, dict[str, Any]]:
    """:func:`start_host`, and the digests of the host's weights for the receipt, hashed
    here (outside every sandbox): while the host loads, or for a hub model once its
    download (before the host starts) has put all of it in the cache."""
    from scribe_tui.runtime.loading import ModelLoadError, hub_repos, resolve_model
    from scribe_tui.runtime.receipt import weights_digests

    spec = host.launch.model
    try:
        downloads = bool(hub_repos(resolve_model(spec, probe_hub=False)))
    except ModelLoadError:
        downloads = False
    if downloads:
        status = await start_host(host, on_progress)
        return status, await asyncio.to_thread(weights_digests, spec)
    digests, status = await asyncio.gather(
        asyncio.to_thread(weights_digests, spec), start_host(host, on_progress)
    )
    return status, digests


def kernel_options(host: HostProcess, sandbox: SandboxState) -> dict[str, Any]:
    """``extra_env`` and ``sandbox`` for a kernel that reaches ``host`` and nothing secret."""
    return {
        "extra_env": host.kernel_env(),
        "sandbox": host.kernel_policy if sandbox.sealed else None,
    }


def sealed_kernel(host: HostProcess, sandbox: SandboxState, cwd: Path) -> KernelSession:
    """A kernel (not started yet) working in ``cwd``, wired to ``host`` as investigations are."""
    return KernelSession(cwd=cwd.resolve(), **kernel_options(host, sandbox))
