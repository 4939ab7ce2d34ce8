"""One `scribe-tui mcp` process: the model host, the notebook tools, the steering gate.

The host and the kernels are sealed exactly as for ``investigate``, through the same
helpers (:mod:`scribe_tui.runtime.sealed`): Landlock where the platform allows, and
the kernel and the notebook see the model's display name only. The host starts
loading at once and is shared by every session and every client of the server; tool
calls wait until it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from scribe_tui.agent.external import ExternalInvestigation
from scribe_tui.agent.launch import (
    LaunchError,
    RunSettings,
    model_layout,
    new_host,
    notebook_tools,
)
from scribe_tui.agent.status_board import StatusBoard
from scribe_tui.mcp_server.watch_server import WatchServer
from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.host_protocol import HostStartError
from scribe_tui.runtime.receipt import build_receipt, weights_digests
from scribe_tui.runtime.sealed import sandbox_state, start_host
from scribe_tui.runtime.status import HostStatus
from scribe_tui.tools import ToolResult
from scribe_tui.tools.notebook_tools import CALLER

IDLE_CLIENT_S = 30 * 60
"""A client silent this long has its kernels shut down (its notebooks stay resumable)."""


class Service:
    """The tools an MCP server offers, gated by the person watching; see the module doc."""

    def __init__(
        self, host: HostProcess, investigation: ExternalInvestigation, ready: asyncio.Task[None]
    ) -> None:
        self.host = host
        self.investigation = investigation
        self.ready = ready
        """Done when the model is loaded; raises :class:`LaunchError` if it could not be."""
        self._last_call: dict[str, float] = {}  # each client's (see CALLER) last tool call

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: RunSettings, *, checkpoint_every: int, http: str | None = None
    ) -> AsyncIterator[Service]:
        """Start the host (loading goes on in the background) and the watch socket."""
        sandbox = sandbox_state(settings.sandbox, settings.allow_network)
        host = new_host(settings, sandbox)
        board = StatusBoard()
        tools = None
        watch = None
        try:
            try:
                await host.start()
            except HostStartError as exc:
                raise LaunchError(str(exc)) from exc
            tools = notebook_tools(settings, host, sandbox)
            investigation = ExternalInvestigation(
                tools, checkpoint_every=checkpoint_every, sandbox=sandbox.label
            )
            investigation.subscribe(board.event)
            board.poll(host)
            watch = WatchServer(
                investigation,
                model=host.launch.display_name,
                status=board.snapshot,
                http=http,
            )
            watch.start()
            loaded = _load(host, board.host_update, settings, sandbox.to_dict(), tools.metadata)
            service = cls(host, investigation, asyncio.ensure_future(loaded))
            reaper = asyncio.ensure_future(service._reap_forever())
            try:
                yield service
            finally:
                reaper.cancel()
        finally:
            if watch is not None:
                watch.close()
            board.close()
            if tools is not None:
                await tools.aclose()
            host.stop()

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, *, client: str | None = None
    ) -> ToolResult:
        """Run one tool call once the model is loaded; a host that failed is a tool error.

        ``client`` (the MCP session's id) scopes sessions: a client reaches only its own.
        """
        if client is None:
            return await self._call(name, arguments)
        key = client
        self._last_call[key] = time.monotonic()
        token = CALLER.set(key)
        try:
            return await self._call(name, arguments)
        finally:
            CALLER.reset(token)
            self._last_call[key] = time.monotonic()

    async def reap_idle(self, idle_for: float = IDLE_CLIENT_S) -> list[str]:
        """Shut down the sessions of clients silent for ``idle_for`` seconds (a client that
        went away without shutting its kernels down); the ids of the sessions ended."""
        now = time.monotonic()
        ended: list[str] = []
        for key, last in list(self._last_call.items()):
            if now - last < idle_for:
                continue
            del self._last_call[key]
            ended += await self.investigation.tools.end_sessions_of(key)
        return ended

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(60)
            await self.reap_idle()

    async def _call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        try:
            await asyncio.shield(self.ready)
        except LaunchError as exc:
            return ToolResult(
                [
                    {
                        "type": "text",
                        "text": f"The subject model could not be loaded: {exc}. Restart the "
                        "scribe-tui MCP server with another --model, or see its log on stderr.",
                    }
                ],
                is_error=True,
            )
        return await self.investigation.call(name, arguments)

    def name_agent(self, client: str) -> None:
        """Record the MCP client's name as the agent of the notebooks it starts."""
        metadata = self.investigation.tools.metadata
        metadata["agent"] = f"mcp:{client}"
        if isinstance(metadata.get("receipt"), dict):
            metadata["receipt"]["agent"] = metadata["agent"]


async def _load(
    host: HostProcess,
    on_progress: Callable[[HostStatus], None],
    settings: RunSettings,
    sandbox: dict[str, Any],
    metadata: dict[str, Any],
) -> None:
    """Wait for the model, then put the receipt (weights, versions, device) into the
    notebooks' metadata, so ``scribe-tui reproduce`` can check what changed, and the
    model's layout, which ``conclude`` checks claimed components against; raises
    :class:`LaunchError` (one line) if the model cannot load."""
    # Weights are hashed here, outside every sandbox, while the host loads them.
    digests = asyncio.ensure_future(asyncio.to_thread(weights_digests, settings.model))
    try:
        status = await start_host(host, on_progress)
    except (HostStartError, TimeoutError) as exc:
        digests.cancel()
        raise LaunchError(str(exc)) from exc
    receipt = build_receipt(
        display_name=host.launch.display_name,
        host=status,
        digests=await digests,
        requested={"mode": settings.mode, "device": settings.device, "dtype": settings.dtype},
        sandbox=sandbox,
    )
    receipt["agent"] = metadata.get("agent")  # the client's name, once it introduced itself
    metadata["receipt"] = receipt
    layout = await asyncio.to_thread(model_layout, host)
    if layout is not None:
        metadata["layout"] = layout
