"""The investigators' TUI (``investigate --investigators N`` without ``--auto``) under Pilot.

A real parallel run (two autopilot investigators and the aggregator on the bundled
taboo organism, one sealed host, real kernels) steered through the app; a scripted
run for the routing of messages and controls, the error lines, and an SVG snapshot.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from test_tmux_e2e import Tmux, tmux_session, workdir  # noqa: F401

from scribe_tui import events as ev
from scribe_tui.agent.launch import RunSettings
from scribe_tui.agent.loop import InvestigationConfig
from scribe_tui.agent.parallel import STRATEGIES, ParallelRun
from scribe_tui.agent.transcript import transcript_path_for
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from scribe_tui.organisms.keys import answer_key
from scribe_tui.ui import status
from scribe_tui.ui.investigators import InvestigatorRow
from scribe_tui.ui.parallel import InvestigatorsApp
from scribe_tui.ui.replay import ReplayInvestigation

SIZE = (120, 40)
TASK = "find the secret word"


def screen_text(app: InvestigatorsApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notes(app: InvestigatorsApp, who: str) -> str:
    return "\n".join(str(note.content) for note in app.lanes[who].agent.query(".note"))


async def until(pilot: Any, check: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    """Let the app work until ``check()`` holds: a wait on the app's state, not a clock."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def say(pilot: Any, text: str) -> None:
    pilot.app.prompt.value = text
    await pilot.press("enter")


def user_texts(notebook: Path) -> str:
    """Every user message of an investigator's conversation, from its transcript."""
    said = []
    for line in transcript_path_for(notebook).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        message = record.get("message") or {}
        if message.get("role") == "user":
            said.append(json.dumps(message.get("content"), ensure_ascii=False))
    return "\n".join(said)


# -- a real run ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_two_autopilot_investigators_in_the_tui(tmp_path: Path) -> None:
    settings = RunSettings(
        task=TASK,
        agent="autopilot",
        model="organism:taboo",
        notebooks_dir=tmp_path / "nb",
        config=InvestigationConfig(checkpoint_every=0),
    )
    run = ParallelRun.create(settings, 2)
    app = InvestigatorsApp(run, title=TASK, subject="organism:taboo", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        table = app.investigators
        assert table.row_count == 2 and [str(k.value) for k in table.rows] == ["i1", "i2"]
        # Hold both at their first boundary, so the messages reach them mid-run.
        await say(pilot, "/pause all")
        await until(
            pilot,
            lambda: all(app.lanes[w].row.state == "paused" for w in ("i1", "i2")),
            "both investigators to pause as they start",
            timeout=300,
        )
        await say(pilot, "only for the first")  # to the selected one: i1
        await say(pilot, "@all for everyone")
        await until(
            pilot,
            lambda: (
                app.lanes["i1"].agent.queued_count == 2 and app.lanes["i2"].agent.queued_count == 1
            ),
            "the queued messages",
        )
        await say(pilot, "/resume all")
        await until(pilot, lambda: app.outcome is not None, "the aggregate", timeout=900)
        await until(pilot, lambda: table.row_count == 3, "the aggregate's row")

        outcome = app.outcome
        assert outcome.reason == "concluded" and outcome.answer == answer_key("taboo")
        rows = {str(key.value): table.get_row(key) for key in table.rows}
        assert list(rows) == ["i1", "i2", "aggregate"]
        for who in ("i1", "i2", "aggregate"):
            row = app.lanes[who].row
            assert row.state == "finished" and row.answer and row.confidence is not None
            assert rows[who][2].plain == "finished" and rows[who][3].plain == row.answer
        assert app.lanes["aggregate"].row.answer == outcome.answer
        # The shared host stops with the run; the bar still says what it ran on.
        await until(pilot, lambda: "host stopped" in screen_text(app), "the host to stop")
        assert "taboo · i1 · cpu │ host stopped │" in screen_text(app)

        # Each investigator's events went to its own notebook pane: the pane holds
        # exactly the cells its notebook file holds.
        claims = {c.id: c for c in outcome.claims}
        for who in ("i1", "i2"):
            cells = nbformat.read(claims[who].notebook, as_version=4).cells
            shown = app.lanes[who].notebook.cells
            assert [c.source for c in shown] == [c.source for c in cells], who
        assert app.lanes["i1"].notebook.cells != app.lanes["i2"].notebook.cells

        # Selecting a row shows that investigator's notebook.
        await pilot.press("f8")
        assert table.selected == "i2"
        assert app.query_one("#notebooks").current == "notebook-i2"
        assert app.lanes["i2"].notebook.display and not app.lanes["i1"].notebook.display
        assert "Notebook · i2" in screen_text(app)
        await pilot.press("f8")
        assert app.query_one("#notebooks").current == "notebook-aggregate"

        # A message to one reached only its transcript; a message to all reached both.
        first, second = (user_texts(claims[w].notebook) for w in ("i1", "i2"))
        assert "only for the first" in first and "for everyone" in first
        assert "for everyone" in second and "only for the first" not in second

        # The run is over: a message finds nobody to go to.
        await say(pilot, "@all anyone there?")
        assert "No investigator is still running." in screen_text(app)
        await pilot.press("ctrl+q")
    assert app.return_code == EXIT_OK

    # Reopened (``resume FOLDER`` without --auto): nothing runs again, and every row and
    # notebook is read from the files.
    again = ParallelRun.reopen(run.folder / "aggregate.json", settings)
    reopened = InvestigatorsApp(again, title=TASK, cursor_blink=False)
    async with reopened.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: reopened.outcome is not None, "the reopened aggregate", 300)
        for who in ("i1", "i2", "aggregate"):
            before, after = app.lanes[who], reopened.lanes[who]
            assert after.row.state == "finished" and after.row.answer == before.row.answer
            sources = [c.source for c in after.notebook.cells]
            assert sources == [c.source for c in before.notebook.cells], who
            assert not list(after.agent.query(".note")), who  # it did not run again
        assert reopened.investigators.row_count == 3
        await pilot.press("ctrl+q")
    assert reopened.return_code == EXIT_OK


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_investigators_in_a_real_terminal(
    workdir: Path,  # noqa: F811
    tmux_session: Callable[[str], Tmux],  # noqa: F811
) -> None:
    command = " ".join(
        shlex.quote(part)
        for part in [
            *(sys.executable, "-m", "scribe_tui", "investigate", TASK, "--investigators", "2"),
            *("--agent", "autopilot", "--notebooks-dir", str(workdir / "nb")),
        ]
    )
    tui = tmux_session(command)
    tui.wait_for(lambda s: f"Investigators · {TASK}" in s, "the TUI", timeout=30)
    tui.wait_for(lambda s: " i1 " in s and " i2 " in s, "a row per investigator")
    tui.wait_for(
        lambda s: re.search(r"aggregate\s+finished", s) is not None, "the verdict", timeout=600
    )
    tui.send("C-q")
    tui.wait_for(lambda s: tui.dead(), "the app to exit", timeout=60)
    screen = tui.screen()
    key = answer_key("taboo")
    # What headless prints at the end: a line per investigator, then the verdict.
    assert re.search(r"i1\s+black-box first\s+concluded", screen), screen
    assert re.search(r"i2\s+white-box first\s+concluded", screen), screen
    assert f"Answer: {key}" in screen, screen


# -- a scripted run --------------------------------------------------------------------


class ScriptedRun:
    """A stand-in for ParallelRun: members that replay ``script`` and record controls."""

    def __init__(self, script: dict[str, list[ev.Event]], *, aggregate: list[ev.Event]) -> None:
        self.folder = Path("nb/2026-12-06-08-00_find-the-secret-word-x3")
        self.members = [
            SimpleNamespace(id=who, strategy=STRATEGIES[k][0]) for k, who in enumerate(script)
        ]
        self.script = script
        self.aggregate = aggregate
        self.controls = {who: ReplayInvestigation(events) for who, events in script.items()}
        self.on_event: Callable[[str, ev.Event], None] = lambda who, event: None
        self.on_start: Callable[[str, Any], None] = lambda who, controls: None
        self.on_host: Any = None
        self.go = asyncio.Event()  # the test says when the investigators finish
        self.stopped = False

    async def run(self) -> Any:
        for who, investigation in self.controls.items():
            investigation.subscribe(lambda event, who=who: self.on_event(who, event))
            self.on_start(who, investigation)
        await asyncio.gather(*(inv.run() for inv in self.controls.values()), self.go.wait())
        if self.stopped:
            return SimpleNamespace(reason="interrupted", answer=None, claims=[])
        for event in self.aggregate:
            self.on_event("aggregate", event)
        return SimpleNamespace(reason="concluded", answer="bird", confidence=0.9, claims=[])

    def finish(self) -> None:
        for investigation in self.controls.values():
            investigation.finish()
        self.go.set()

    def stop(self) -> None:
        self.stopped = True
        self.finish()


def cell(who: str, n: int) -> list[ev.Event]:
    code = f"# {who}: experiment {n}\nprint(probe({n}))"
    out = [{"output_type": "stream", "name": "stdout", "text": f"{who} result {n}\n"}]
    return [
        ev.CellAdded(n, f"{who}-{n}", "code", code),
        ev.CellExecuting(n, f"{who}-{n}"),
        ev.CellUpdated(n, f"{who}-{n}", code, out, n + 1, "ok"),
    ]


def concluded(answer: str, confidence: float, cost: float) -> list[ev.Event]:
    return [
        ev.Concluded(answer, confidence, "prefill and the logit lens agree"),
        ev.Status(agent_state="concluded", cost_usd=cost, turn=4),
        ev.Stopped("concluded"),
    ]


def scripted() -> ScriptedRun:
    return ScriptedRun(
        {
            "i1": [*cell("i1", 0), *cell("i1", 1), *concluded("bird", 0.91, 0.12)],
            "i2": [*cell("i2", 0), ev.Status(agent_state="running", cost_usd=0.07)],
            "i3": [*cell("i3", 0), *cell("i3", 1), *concluded("none", 0.55, 0.09)],
        },
        aggregate=[
            ev.CellAdded(0, "agg-0", "markdown", "| investigator | claim |\n|---|---|"),
            *concluded("bird", 0.9, 0.02),
        ],
    )


def scripted_app(run: ScriptedRun) -> InvestigatorsApp:
    return InvestigatorsApp(
        run, title=TASK, subject="organism:taboo", cursor_blink=False, host_status=False
    )


async def test_messages_and_controls_reach_the_chosen_investigators() -> None:
    run = scripted()
    app = scripted_app(run)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        i1, i2, i3 = (run.controls[w] for w in ("i1", "i2", "i3"))
        await until(pilot, lambda: app.lanes["i2"].row.state == "running", "i2's cell")
        assert app.lanes["i1"].row.state == "finished" and app.lanes["i1"].row.answer == "bird"
        await say(pilot, "@i2 try the base model")
        await say(pilot, "@all compare notes")
        assert i2.calls == [("send", "try the base model"), ("send", "compare notes")]
        assert i1.calls == [] and i3.calls == []  # finished: nothing more reaches them
        await say(pilot, "@i9 hello")
        assert "No investigator 'i9'" in screen_text(app)
        await say(pilot, "@i1 hello")
        assert "i1 has finished" in screen_text(app)
        await say(pilot, "@i2")
        assert "Say what to tell them: @i2 TEXT." in screen_text(app)

        await pilot.press("f8")  # select i2: the keys act on it
        assert app.investigators.selected == "i2"
        await pilot.press("escape")
        assert i2.calls[-1] == ("interrupt",)
        await until(pilot, lambda: app.lanes["i2"].row.state == "paused", "the pause")
        await pilot.press("f2")
        assert i2.calls[-1] == ("resume",)
        await say(pilot, "keep going")
        assert i2.calls[-1] == ("send", "keep going")
        await until(pilot, lambda: "keep going" in notes(app, "i2"), "the queued note")
        assert "keep going" not in notes(app, "i1")
        await say(pilot, "/frobnicate")
        assert "Unknown command /frobnicate" in screen_text(app)
        app.clear_notifications()
        await pilot.press("f1")
        await until(pilot, lambda: "@all TEXT: to all" in screen_text(app), "the help")

        run.finish()
        await until(pilot, lambda: app.outcome is not None, "the verdict")
        assert app.investigators.row_count == 4
        assert app.lanes["aggregate"].row.state == "finished"
        await pilot.press("ctrl+q")
    assert app.return_code == EXIT_OK


async def test_quitting_mid_run_stops_every_investigator() -> None:
    run = scripted()
    app = scripted_app(run)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.lanes["i2"].row.state == "running", "i2's cell")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: run.stopped, "the stop")
    assert app.return_code == EXIT_INTERRUPTED
    assert app.investigators.row_count == 3  # no aggregate after a stop


async def test_a_run_that_fails_marks_every_running_row_failed() -> None:
    from scribe_tui.agent.launch import LaunchError

    run = scripted()

    async def broken() -> Any:
        raise LaunchError("the model host did not start: out of memory")

    run.run = broken  # type: ignore[method-assign]
    app = scripted_app(run)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: app.failure is not None, "the failure")
        assert "out of memory" in app.failure
        assert [app.lanes[w].row.state for w in ("i1", "i2", "i3")] == ["failed"] * 3
        await until(pilot, lambda: "The investigators failed" in screen_text(app), "the toast")
        await pilot.press("ctrl+q")
    assert app.return_code == EXIT_FAILED


def test_row_state_follows_its_events() -> None:
    row = InvestigatorRow("i1", "black-box first")
    row.apply(ev.TurnStarted(1))
    assert row.state == "thinking"
    row.apply(ev.CellAdded(0, "m", "markdown", "# plan"))
    row.apply(ev.CellAdded(1, "c", "code", "x = 1"))
    row.apply(ev.CellExecuting(1, "c"))
    assert row.state == "cell 1"  # the first code cell, though the second cell
    row.apply(ev.CellUpdated(1, "c", "x = 1", status="ok"))
    assert row.state == "running"
    row.apply(ev.Paused("interrupted"))
    row.apply(ev.TextDelta("still paused"))
    assert row.state == "paused"
    row.apply(ev.ErrorEvent("the kernel died", fatal=True))
    assert row.state == "failed" and row.ended
    row.apply(ev.Resumed())
    assert row.state == "failed"


def test_snapshot_of_the_investigators(snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "now", lambda: 1000.0)
    run = scripted()
    app = scripted_app(run)

    async def settled(pilot: Any) -> None:
        await until(pilot, lambda: app.lanes["i2"].row.state == "running", "i2's cell")
        await until(pilot, lambda: len(app.lanes["i1"].notebook.cells) == 2, "i1's cells")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=settled)


# -- the command line --------------------------------------------------------------------


def test_investigators_without_auto_open_the_tui_and_never_wait_at_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scribe_tui.cli import investigators, main

    opened: list[ParallelRun] = []
    monkeypatch.setattr(investigators, "run_parallel_tui", lambda run: opened.append(run) or 0)
    config = tmp_path / "config.toml"
    config.write_text("[defaults]\nconfirm_checkpoints = true\n")
    args = ["investigate", TASK, "--investigators", "2", "--agent", "autopilot"]
    code = main([*args, "--notebooks-dir", str(tmp_path / "nb"), "--config", str(config)])
    assert code == 0
    (run,) = opened
    assert [m.id for m in run.members] == ["i1", "i2"]
    assert (run.folder / "aggregate.json").is_file()
    assert run.settings.config.confirm_checkpoints is False  # nobody approves them here


def test_confirm_checkpoints_with_investigators_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scribe_tui.cli import main

    folder = tmp_path / "nb"
    args = ["investigate", TASK, "--investigators", "2", "--confirm-checkpoints"]
    code = main([*args, "--notebooks-dir", str(folder), "--config", str(tmp_path / "x.toml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "drop --confirm-checkpoints" in err
    assert not folder.exists()
