"""Pilot tests for what a newcomer met in the TUI: a pause asked for while the model loads,
an interrupted cell marked as such, the pause note, the status bar's load figure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from scribe_tui import events as ev
from scribe_tui.app import ScribeApp
from scribe_tui.ui.agent_pane import ToolEntry
from scribe_tui.ui.replay import ReplayInvestigation, demo_script

SIZE = (120, 40)


def screen_text(app: ScribeApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(pilot: Any, check: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Let the app work until ``check()`` holds: a wait on the app's state, not a clock."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


def interrupted_cell() -> list[ev.Event]:
    interrupt = {
        "output_type": "error",
        "ename": "KeyboardInterrupt",
        "evalue": "",
        "traceback": ["KeyboardInterrupt"],
    }
    return [
        ev.ToolCallStarted("call-9", "execute_code", {"code": "time.sleep(30)"}),
        ev.CellAdded(9, "c9", "code", "time.sleep(30)"),
        ev.CellUpdated(9, "c9", "time.sleep(30)", [interrupt], 4, status="error"),
        ev.ToolCallFinished("call-9", "execute_code", False, "KeyboardInterrupt", 1.5),
    ]


async def test_f2_while_the_model_loads_pauses_once_the_run_starts() -> None:
    loaded = asyncio.Event()
    investigation = ReplayInvestigation(demo_script())

    async def factory() -> ReplayInvestigation:
        await loaded.wait()  # the subject model loading
        return investigation

    app = ScribeApp(factory, title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: "◌ starting" in screen_text(app), "the starting state")
        await pilot.press("f2")
        loaded.set()
        await until(pilot, lambda: ("pause",) in investigation.calls, "the queued pause")
        await until(pilot, lambda: app.status_bar.agent_state == "paused", "the paused state")


async def test_a_cell_ended_by_an_interrupt_is_not_ticked() -> None:
    app = ScribeApp(
        ReplayInvestigation([*demo_script(), *interrupted_cell()]), title="t", cursor_blink=False
    )
    async with app.run_test(notifications=True, size=SIZE) as pilot:

        def entries() -> list[ToolEntry]:
            return [e for e in app.agent.query(ToolEntry) if e.call.call_id == "call-9"]

        await until(pilot, lambda: entries() and entries()[0].cell_status, "the finished call")
        title = str(entries()[0].title)
        assert title.startswith("⚠ execute_code"), title
        ticked = [str(e.title) for e in app.agent.query(ToolEntry) if e is not entries()[0]]
        assert ticked and all(t.startswith("✓") for t in ticked)  # the demo's good cells


async def test_the_pause_note_says_why_once_and_the_load_is_labelled() -> None:
    app = ScribeApp(ReplayInvestigation(demo_script()), title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: app.controls is not None, "the run")
        app.post_message(_event(ev.Paused("paused")))
        app.post_message(_event(ev.Paused("interrupted")))

        def notes() -> list[str]:
            return [str(n.content) for n in app.agent.query(".note")]

        await until(pilot, lambda: sum("F2 resumes" in n for n in notes()) == 2, "two notes")
        shown = [n for n in notes() if "F2 resumes" in n]
        assert shown == ["paused · F2 resumes", "paused (interrupted) · F2 resumes"]
        assert "37% util" in screen_text(app)  # the device's load, named as such


def _event(event: ev.Event) -> Any:
    from scribe_tui.ui.investigation import AgentEvent

    return AgentEvent(event)
