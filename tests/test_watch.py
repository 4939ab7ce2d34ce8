"""`scribe-tui watch`: the watch socket and the TUI on an outside agent's session.

An in-process :class:`ExternalInvestigation` over real notebook tools (real kernels, no
model) plays the MCP server's part; the test itself plays the outside agent.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from test_investigate_e2e import cli_env

from scribe_tui import events as ev
from scribe_tui.agent.external import ExternalInvestigation
from scribe_tui.mcp_server import watch_protocol
from scribe_tui.mcp_server.watch_client import RemoteInvestigation
from scribe_tui.mcp_server.watch_protocol import WatchError, connect, find_server
from scribe_tui.mcp_server.watch_server import WatchServer
from scribe_tui.tools import NotebookTools, ToolResult
from scribe_tui.ui.watch import WatchApp

TIMEOUT = 120.0  # seconds: generous, for a loaded machine; nothing is timed
SIZE = (120, 40)


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery files go to this test's own runtime dir."""
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[ExternalInvestigation, WatchServer]]:
    tools = NotebookTools(tmp_path / "notebooks", setup_code="print('setup done')")
    investigation = ExternalInvestigation(tools, checkpoint_every=3, sandbox="sandbox: off (test)")
    watch = WatchServer(investigation, model="organism:test", status=investigation.status)
    watch.start()
    try:
        yield investigation, watch
    finally:
        watch.close()
        await tools.aclose()


async def agent(inv: ExternalInvestigation, name: str, **arguments: object) -> ToolResult:
    result = await asyncio.wait_for(inv.call(name, arguments), TIMEOUT)
    assert not result.is_error, result.text
    return result


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


def added_after_resume(seen: list[ev.Event], source: str) -> bool | None:
    """Whether the cell of ``source`` was added after the first resume (None: not added yet)."""
    kinds = [
        "resumed" if isinstance(e, ev.Resumed) else "cell"
        for e in seen
        if isinstance(e, ev.Resumed) or (isinstance(e, ev.CellAdded) and e.source == source)
    ]
    return None if "cell" not in kinds else "resumed" in kinds[: kinds.index("cell")]


async def test_discovery_file_and_socket_are_private_and_need_the_key(tmp_path: Path) -> None:
    async with served(tmp_path) as (inv, watch):
        record = find_server()
        path = watch_protocol.record_path(record.pid)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(Path(record.address).parent.stat().st_mode) == 0o700
        assert record.model == "organism:test" and record.notebooks == []

        forged = watch_protocol.ServerRecord(**{**record.__dict__, "authkey": "00" * 32})
        with pytest.raises(WatchError, match="could not connect"):
            await asyncio.to_thread(connect, forged)
        assert watch.watchers == 0

        await agent(inv, "start_new_session", experiment_name="private")
        notebook = Path(inv.tools.sessions["s1"].notebook.path)
        assert find_server(notebook).pid == os.getpid()  # the file names open notebooks
        with pytest.raises(WatchError, match=r"has .* open"):
            find_server(tmp_path / "elsewhere.ipynb")
    assert not path.exists()
    with pytest.raises(WatchError, match="no `scribe-tui mcp` server is running"):
        find_server()


async def test_pause_holds_the_next_call_and_news_rides_on_its_result(tmp_path: Path) -> None:
    async with served(tmp_path) as (inv, _watch):
        remote = await asyncio.to_thread(RemoteInvestigation.attach)
        seen: list[ev.Event] = []
        remote.subscribe(seen.append)
        watching = asyncio.ensure_future(remote.run())
        await agent(inv, "start_new_session")
        await agent(inv, "init_session", session_id="s1")

        remote.pause()
        await until(lambda: inv.steering.pause_reason == "paused", "the pause to arrive")
        held = asyncio.ensure_future(inv.call("execute_code", {"session_id": "s1", "code": "1"}))
        await until(
            lambda: any(isinstance(e, ev.Paused) and "holding" in e.reason for e in seen),
            "the held call",
        )
        remote.send("look at layer 3")
        remote.request_checkpoint()
        await remote.run_code("print('mine')")
        assert not held.done()  # held until the person resumes, even past their cell
        remote.resume()
        result = await asyncio.wait_for(held, TIMEOUT)
        # The held call's cell was added only after the resume: the call ran only then.
        await until(lambda: added_after_resume(seen, "1") is not None, "its cell")
        assert added_after_resume(seen, "1")
        assert "They ran a cell of their own" in result.text and "mine" in result.text
        assert "Message from the person watching: look at layer 3" in result.text
        assert "exploration checkpoint" in result.text
        await until(
            lambda: any(isinstance(e, ev.CheckpointRequested) for e in seen),
            "the checkpoint request to reach the watcher",
        )

        await agent(inv, "add_markdown", session_id="s1", content="## Checkpoint\nDone so far.")
        await until(lambda: any(isinstance(e, ev.CheckpointAnswered) for e in seen), "the answer")
        remote.detach()
        assert await asyncio.wait_for(watching, TIMEOUT) == "detached"


def screen_text(app: WatchApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_watch_app_shows_the_session_follows_new_notebooks_and_detaches(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as (inv, watch):
        await agent(inv, "start_new_session", experiment_name="first")
        await agent(inv, "init_session", session_id="s1")
        await agent(inv, "execute_code", session_id="s1", code="print('before the watcher')")
        remote = await asyncio.to_thread(RemoteInvestigation.attach)
        app = WatchApp(remote, cursor_blink=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: len(app.notebook.cells) == 2, "the cells so far")
            await pilot.pause()
            assert "before the watcher" in screen_text(app)
            assert "organism:test" in screen_text(app)

            await pilot.press("f2")
            await until(lambda: inv.steering.pause_reason == "paused", "the pause")
            await until(lambda: app.status_bar.agent_state == "paused", "the paused state")
            await pilot.press("f2")
            await until(lambda: inv.steering.pause_reason is None, "the resume")

            app.prompt.value = "try prefill"
            await pilot.press("enter")
            await until(lambda: len(inv.steering.queued) == 1, "the message")
            result = await agent(inv, "execute_code", session_id="s1", code="print('next')")
            assert "Message from the person watching: try prefill" in result.text

            await agent(inv, "start_new_session", experiment_name="second")
            await agent(inv, "execute_code", session_id="s2", code="print('in the second')")
            await until(
                lambda: [c.source for c in app.notebook.cells] == ["print('in the second')"],
                "a fresh pane for the second notebook",
            )
            assert app.notebook_path is not None and "second" in app.notebook_path.name
            await pilot.press("ctrl+q")
        await until(lambda: watch.watchers == 0, "the watcher to go")
        assert inv.steering.pause_reason is None  # quitting the watcher leaves the agent alone
        await agent(inv, "execute_code", session_id="s2", code="print('still going')")


def test_watch_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    run = subprocess.run(
        [sys.executable, "-m", "scribe_tui", "watch"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("scribe-tui watch: no `scribe-tui mcp` server is running")
    assert len(run.stderr.strip().splitlines()) == 1
