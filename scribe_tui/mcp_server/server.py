"""The notebook tools over MCP, with the official SDK's low-level server.

The low-level ``Server`` lets the tools keep their own definitions unchanged (name,
description, JSON schema from ``NotebookTools.definitions()``) and their own argument
checking, whose one-line answers reach the agent as tool errors (``isError``). Text and
images become MCP ``TextContent`` and ``ImageContent``.

stdio: stdout is the MCP channel; while serving, the SDK points file descriptor 1 at
stderr, so nothing else (kernels, stray prints) can write to it. Streamable HTTP is
bound to 127.0.0.1 and refuses any request without the bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from scribe_tui import __version__
from scribe_tui.mcp_server.service import Service
from scribe_tui.tools import TOOL_DEFINITIONS

INSTRUCTIONS = (
    "scribe-tui: interpretability research in a live, sealed Jupyter notebook. Start with "
    "start_new_session, then init_session: its setup cell builds `client`, the handle to "
    "the subject model (client.run(fn, **kwargs) runs fn(model, tokenizer, **kwargs) where "
    "the model lives). A person may be watching: their messages arrive inside tool results, "
    "and a call that does not return is held by their pause (wait; do not retry). Answer "
    "checkpoint requests with add_markdown; end with conclude, claiming a named answer, "
    "`none` (nothing was planted) or `unknown` (you cannot tell)."
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def build_server(service: Service) -> Server[Any]:
    """An MCP server whose tools are the notebook tools, run through ``service``."""
    tools = [
        types.Tool(
            name=tool["name"], description=tool["description"], input_schema=tool["input_schema"]
        )
        for tool in TOOL_DEFINITIONS
    ]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        client = ctx.session.client_params
        if client is not None and client.client_info.name:
            service.name_agent(client.client_info.name)
        # Over HTTP the transport's session id names the client; stdio serves one client.
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None) or {}
        client_id = headers.get("mcp-session-id") or "stdio"
        result = await service.call(params.name, params.arguments, client=client_id)
        return types.CallToolResult(
            content=[_content(block) for block in result.content], is_error=result.is_error
        )

    return Server(
        "scribe-tui",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _content(block: dict[str, Any]) -> types.TextContent | types.ImageContent:
    """An Anthropic content block (text, or a base64 image) as MCP content."""
    if block.get("type") == "image":
        source = block["source"]
        return types.ImageContent(data=source["data"], mime_type=source["media_type"])
    return types.TextContent(text=str(block.get("text", "")))


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one client on stdin/stdout until it closes stdin (or SIGTERM)."""
    async with stdio_server() as (read, write):
        await _until_sigterm(server.run(read, write, server.create_initialization_options()))


def listen(port: int) -> socket.socket:
    """A socket on 127.0.0.1:``port`` (0: any free port), for :func:`serve_http`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # from now on clients queue up, even before uvicorn takes over
    return sock


async def serve_http(server: Server[Any], sock: socket.socket, token: str) -> None:
    """Serve streamable HTTP at ``/mcp`` on ``sock`` until SIGTERM or Ctrl-C."""
    import uvicorn

    app = BearerGuard(server.streamable_http_app(host="127.0.0.1"), token)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    # uvicorn's own signal handlers would swallow SIGTERM; ours stop it the same way.
    web.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    def stop() -> None:
        web.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await web.serve(sockets=[sock])
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class BearerGuard:
    """ASGI middleware: HTTP requests must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorised(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"www-authenticate", b'Bearer realm="scribe-tui"'),
                    ],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b"Missing or wrong bearer token: send the token scribe-tui mcp "
                    b"printed (or SCRIBE_MCP_TOKEN) as 'Authorization: Bearer TOKEN'.\n",
                }
            )
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(given, self._expected)


async def _until_sigterm(work: Awaitable[None]) -> None:
    """Run ``work``; SIGTERM cancels it, so the caller still closes kernels and the host."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
