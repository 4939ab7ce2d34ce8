"""MCP clients sharing one server: each reaches, names and holds only its own sessions.

The tools are driven as the server drives them (CALLER set around each client's calls),
with real kernels; the last test goes through a real `scribe-tui mcp --http` server with
two SDK clients.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from test_mcp import CALL_TIMEOUT, call, http_server, ok, text

from scribe_tui.agent.external import ExternalInvestigation
from scribe_tui.mcp_server import service as service_module
from scribe_tui.mcp_server.service import IDLE_CLIENT_S, Service
from scribe_tui.tools import NotebookTools, ToolResult
from scribe_tui.tools import notebook_tools as tools_module
from scribe_tui.tools.notebook_tools import CALLER


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[NotebookTools]:
    notebook_tools = NotebookTools(tmp_path / "notebooks")
    yield notebook_tools
    await notebook_tools.aclose()


def as_client(tools: NotebookTools, key: str) -> Callable[..., Awaitable[ToolResult]]:
    async def call_as(name: str, **arguments: Any) -> ToolResult:
        token = CALLER.set(key)
        try:
            return await tools.call(name, arguments)
        finally:
            CALLER.reset(token)

    return call_as


def session_id(result: ToolResult) -> str:
    found = re.search(r"Session '(s[0-9a-f]+)' started", result.text)
    assert found, result.text
    return found.group(1)


async def test_a_client_cannot_see_or_reach_another_client_s_session(tools: NotebookTools) -> None:
    alice, bob = as_client(tools, "alice"), as_client(tools, "bob")
    mine = session_id(await alice("start_new_session"))
    assert mine != "s1" and len(mine) == 9  # unguessable, not a counter
    assert not (await alice("execute_code", session_id=mine, code="secret = 42")).is_error

    for attempt in (
        await bob("execute_code", session_id=mine, code="print(secret)"),
        await bob("execute_code", code="print(secret)"),
        await bob("shutdown_session", session_id=mine),
    ):
        assert attempt.is_error and "42" not in attempt.text, attempt.text
    listed = (await bob("execute_code", session_id="s-guess", code="1")).text
    assert mine not in listed
    assert mine in tools.sessions  # alice's session is still there
    assert "42" in (await alice("execute_code", session_id=mine, code="print(secret)")).text


async def test_a_client_holds_a_few_kernels_and_its_own_are_reaped_alone(
    tools: NotebookTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools_module, "MAX_SESSIONS_PER_CLIENT", 2)
    alice, bob = as_client(tools, "alice"), as_client(tools, "bob")
    kept = [session_id(await alice("start_new_session")) for _ in range(2)]
    refused = await alice("start_new_session")
    assert refused.is_error and "the most one client may hold" in refused.text
    theirs = session_id(await bob("start_new_session"))  # another client has room of its own

    assert sorted(await tools.end_sessions_of("alice")) == sorted(kept)
    assert list(tools.sessions) == [theirs]
    assert not (await alice("start_new_session")).is_error  # room again


class Clock:
    """Stands in for the service's clock, so a test can let half an hour pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_the_server_reaps_the_kernels_of_a_client_that_went_silent(
    tools: NotebookTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(service_module, "time", clock)
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ready.set_result(None)
    service = Service(None, ExternalInvestigation(tools), ready)  # type: ignore[arg-type]

    gone = session_id(await service.call("start_new_session", {}, client="gone"))
    clock.now += IDLE_CLIENT_S - 60
    here = session_id(await service.call("start_new_session", {}, client="here"))
    assert await service.reap_idle() == []  # nobody silent for the whole half hour yet
    clock.now += 120
    assert await service.reap_idle() == [gone]
    assert list(tools.sessions) == [here]
    kept = await service.call(
        "execute_code", {"session_id": here, "code": "print(6 * 7)"}, client="here"
    )
    assert "42" in kept.text
    clock.now += IDLE_CLIENT_S
    assert await service.reap_idle() == [here] and not tools.sessions
    # A reaped client that comes back starts afresh; its notebook stays on disk to resume.
    assert not (await service.call("start_new_session", {}, client="gone")).is_error


@asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await asyncio.wait_for(session.initialize(), CALL_TIMEOUT)
        yield session


def test_two_http_clients_of_one_server_keep_to_their_own_sessions(tmp_path: Path) -> None:
    with http_server(tmp_path, "two-clients") as (_proc, url, _line):
        asyncio.run(_two_clients(url))


async def _two_clients(url: str) -> None:
    async with http_client(url, "two-clients") as a, http_client(url, "two-clients") as b:
        started = ok(await call(a, "start_new_session"))
        mine = re.search(r"Session '(s[0-9a-f]+)'", started).group(1)  # type: ignore[union-attr]
        ok(await call(a, "execute_code", session_id=mine, code="secret = 'violin'"))
        stolen = await call(b, "execute_code", session_id=mine, code="print(secret)")
        assert stolen.is_error and "violin" not in text(stolen)
        closed = await call(b, "shutdown_session", session_id=mine)
        assert closed.is_error
        assert "violin" in ok(await call(a, "execute_code", session_id=mine, code="print(secret)"))
