"""`scribe-tui mcp` driven by the official MCP SDK's own client, as Claude Code would drive it.

Each test starts a real server subprocess (`python -m scribe_tui mcp`) with a real model
host on the bundled taboo organism and real kernels.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import nbformat
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ImageContent, TextContent
from test_investigate_e2e import cli_env
from test_watch import added_after_resume

from scribe_tui import events as ev
from scribe_tui.agent.checkpoints import checkpoint_prompt
from scribe_tui.mcp_server.watch_client import RemoteInvestigation
from scribe_tui.tools import NotebookTools

CALL_TIMEOUT = 240.0  # seconds: generous, for a loaded machine; nothing is timed


def server_env(tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path)
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    return env


@asynccontextmanager
async def mcp_client(tmp_path: Path, *options: str) -> AsyncIterator[ClientSession]:
    """An initialised SDK client session with a `scribe-tui mcp` subprocess."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "scribe_tui", "mcp", "--model", "organism:taboo", *options],
        env=server_env(tmp_path),
        cwd=str(tmp_path),
    )
    with open(tmp_path / "server.log", "w", encoding="utf-8") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await asyncio.wait_for(session.initialize(), CALL_TIMEOUT)
            yield session


async def call(session: ClientSession, name: str, **arguments: Any) -> CallToolResult:
    return await asyncio.wait_for(session.call_tool(name, arguments), CALL_TIMEOUT)


def text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def ok(result: CallToolResult) -> str:
    assert not result.is_error, text(result)
    return text(result)


def started(reply: str) -> str:
    """The session id a start_new_session reply gives (random, one client's own)."""
    found = re.search(r"Session '(s[0-9a-f]+)' started", reply)
    assert found, reply
    return found.group(1)


async def until(condition: Callable[[], bool], what: str, timeout: float = CALL_TIMEOUT) -> None:
    """Wait (on the event loop) until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


LAYERS = """
def layer_count(model, tokenizer):
    return {"layers": model.config.n_layer, "vocab": len(tokenizer)}

print("config:", client.run(layer_count))
"""

PICTURE = """
from IPython.display import display
from PIL import Image
display(Image.new("RGB", (8, 8), "red"))
"""


async def test_a_whole_investigation_over_stdio(tmp_path: Path) -> None:
    async with mcp_client(tmp_path, "--checkpoint-every", "2") as session:
        listed = await session.list_tools()
        assert [(t.name, t.description, t.input_schema) for t in listed.tools] == [
            (d["name"], d["description"], d["input_schema"]) for d in NotebookTools().definitions()
        ]

        reply = ok(await call(session, "start_new_session", experiment_name="mcp e2e"))
        session_id = started(reply)
        setup = ok(await call(session, "init_session", session_id=session_id))
        assert "organism:taboo" in setup

        first = ok(await call(session, "execute_code", session_id=session_id, code=LAYERS))
        assert "config: {'layers':" in first
        assert checkpoint_prompt() not in first
        plotted = await call(session, "execute_code", session_id=session_id, code=PICTURE)
        assert not plotted.is_error, text(plotted)
        images = [b for b in plotted.content if isinstance(b, ImageContent)]
        assert images and images[0].mime_type == "image/png" and images[0].data
        assert checkpoint_prompt() in text(plotted)  # the 2nd execute_code call: a checkpoint

        ok(await call(session, "add_markdown", session_id=session_id, content="## Checkpoint\n1."))
        concluded = ok(
            await call(
                session,
                "conclude",
                answer="unknown",
                confidence=0.1,
                evidence="Only the configuration was read.",
                session_id=session_id,
            )
        )
        assert "Concluded with confidence 0.10, read as unknown: an abstention" in concluded
        path = Path(re.search(r"notebook: (\S+?\.ipynb)", reply).group(1))

    notebook = nbformat.read(tmp_path / path if not path.is_absolute() else path, as_version=4)
    nbformat.validate(notebook)
    scribe = notebook.metadata["scribe"]
    assert scribe["status"] == "concluded" and scribe["model"] == "organism:taboo"
    assert scribe["agent"].startswith("mcp:") and scribe["sandbox"]["mechanism"]
    # A receipt, as an investigation's: `scribe-tui reproduce` checks it on a rerun.
    receipt = scribe["receipt"]
    assert receipt["model"] == "organism:taboo" and receipt["agent"] == scribe["agent"]
    assert len(receipt["weights"]["sha256"]) == 64 and receipt["device"] == "cpu"
    assert receipt["torch"] and receipt["sandbox"]["mechanism"]
    sources = [cell.source for cell in notebook.cells]
    assert any("client.run(layer_count)" in s for s in sources)
    assert sources[-1].startswith("## Conclusion")
    rerun = subprocess.run(
        [sys.executable, "-m", "scribe_tui", "reproduce", str(tmp_path / path)],
        capture_output=True, text=True, cwd=tmp_path, env=server_env(tmp_path), timeout=240,
    )  # fmt: skip
    assert rerun.stdout.startswith("Receipt: same weights, versions and device\n"), (
        rerun.stdout + rerun.stderr[-2000:]
    )


async def test_bad_arguments_are_tool_errors_and_the_server_goes_on(tmp_path: Path) -> None:
    async with mcp_client(tmp_path) as session:
        nothing = await call(session, "execute_code", session_id="s9", code="1")
        assert nothing.is_error and "start_new_session" in text(nothing)
        sid = started(ok(await call(session, "start_new_session")))
        wrong_type = await call(session, "execute_code", session_id=sid, code=5)
        assert wrong_type.is_error and "'code' must be a string" in text(wrong_type)
        missing = await call(session, "add_markdown", session_id=sid)
        assert missing.is_error and "needs 'content'" in text(missing)
        unknown = await call(session, "delete_everything")
        assert unknown.is_error and "Unknown tool" in text(unknown)
        too_sure = await call(session, "conclude", answer="x", confidence=2, evidence="e")
        assert too_sure.is_error and "between 0 and 1" in text(too_sure)
        assert "2" in ok(await call(session, "execute_code", session_id=sid, code="print(1+1)"))


async def test_a_watcher_attached_mid_run_sees_every_cell_and_its_pause_holds_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in server_env(tmp_path).items():  # find the server's discovery file
        if key.startswith("XDG_"):
            monkeypatch.setenv(key, value)
    async with mcp_client(tmp_path) as session:
        reply = ok(await call(session, "start_new_session", experiment_name="watched"))
        sid = started(reply)
        ok(await call(session, "init_session", session_id=sid))
        ok(await call(session, "execute_code", session_id=sid, code="x = 41"))
        ok(await call(session, "add_markdown", session_id=sid, content="A note before."))

        remote = await asyncio.to_thread(RemoteInvestigation.attach)
        seen: list[ev.Event] = []
        remote.subscribe(seen.append)
        watching = asyncio.ensure_future(remote.run())

        def cells() -> dict[int, str]:
            return {e.index: e.cell_id for e in seen if isinstance(e, ev.CellAdded)}

        await until(lambda: len(cells()) == 3, "the cells run before the watcher came")
        assert isinstance(seen[0], ev.NotebookOpened)
        ok(await call(session, "execute_code", session_id=sid, code="print(x + 1)"))
        await until(
            lambda: any(
                isinstance(e, ev.CellUpdated) and e.status == "ok" and e.index == 3 for e in seen
            ),
            "the new cell's output",
        )

        remote.pause()
        await until(lambda: any(isinstance(e, ev.Paused) for e in seen), "the pause")
        held = asyncio.ensure_future(
            session.call_tool("execute_code", {"session_id": sid, "code": "print('after')"})
        )
        await until(
            lambda: any(isinstance(e, ev.Paused) and "holding" in e.reason for e in seen),
            "the held call",
        )
        remote.send("try a prefill attack next")
        await remote.run_code("y = x * 2\nprint('person says', y)")
        assert not held.done()  # held until the person resumes, even past their cell
        remote.resume()
        result = await asyncio.wait_for(held, CALL_TIMEOUT)
        said = ok(result)
        # The held call's cell was added only after the resume: the call ran only then.
        await until(lambda: added_after_resume(seen, "print('after')") is not None, "its cell")
        assert added_after_resume(seen, "print('after')")
        assert "after" in said
        assert "They ran a cell of their own" in said and "person says 82" in said
        assert "Message from the person watching: try a prefill attack next" in said
        await until(lambda: any(isinstance(e, ev.MessageDelivered) for e in seen), "delivery")

        path = Path(re.search(r"notebook: (\S+?\.ipynb)", reply).group(1))

        def on_disk() -> dict[int, str]:
            notebook = nbformat.read(path if path.is_absolute() else tmp_path / path, 4)
            return {i: cell.id for i, cell in enumerate(notebook.cells)}

        # setup, x = 41, the note, print(x + 1), the person's cell, the held call's cell
        await until(lambda: len(cells()) == 6 and cells() == on_disk(), "every cell, as saved")
        remote.detach()
        assert await asyncio.wait_for(watching, CALL_TIMEOUT) == "detached"


@contextmanager
def http_server(tmp_path: Path, token: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """A `scribe-tui mcp --http 0` server: (process, its /mcp URL, the line that named it)."""
    env = {**server_env(tmp_path), "SCRIBE_MCP_TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "mcp", "--http", "0", "--model", "organism:taboo"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            match = re.search(r"serving (http://127\.0\.0\.1:\d+/mcp)", line)
            if match:
                break
        else:
            raise AssertionError("the server never said where it serves")
        yield proc, match.group(1), line
    finally:
        proc.terminate()
        proc.wait(timeout=CALL_TIMEOUT)


def test_http_mode_refuses_requests_without_the_token(tmp_path: Path) -> None:
    with http_server(tmp_path, "s3cret-token") as (proc, url, line):
        assert "s3cret-token" not in line  # a token from the environment is not echoed
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            request = urllib.request.Request(
                url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                method="POST",
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=CALL_TIMEOUT)
            assert refused.value.code == 401
        asyncio.run(_list_tools_over_http(url, "s3cret-token"))
    assert proc.stdout is not None and proc.stdout.read() == ""  # nothing on stdout


async def _list_tools_over_http(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
    assert [t.name for t in tools.tools] == [d["name"] for d in NotebookTools().definitions()]


def test_print_prompt_fills_the_task_and_adds_the_methodology() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "scribe_tui", "mcp", "--print-prompt", "find the hidden country"],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert run.returncode == 0, run.stderr
    assert "Your task: find the hidden country" in run.stdout
    assert "start_new_session" in run.stdout and "# Research methodology" in run.stdout
    assert "{task}" not in run.stdout
