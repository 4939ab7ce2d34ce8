"""SVG snapshots of the TUI's main states at 120×40, cursor blink off, clock frozen.

Update after an intended change with ``pytest tests/test_snapshots.py --snapshot-update``
and look at the SVGs before committing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from scribe_tui import events as ev
from scribe_tui.app import ScribeApp
from scribe_tui.ui import status
from scribe_tui.ui.agent_pane import ToolEntry
from scribe_tui.ui.replay import ReplayInvestigation, demo_script

SIZE = (120, 40)
LIVE = [{"output_type": "stream", "name": "stdout", "text": "layer 0: 0.02\nlayer 1: 0.05\n"}]
CHECKPOINT = (
    "## Checkpoint\n\n**1. Tested so far** — direct asks (4 phrasings), prefill (3).\n\n"
    "**2. Findings** — prefill puts *bird* at p=0.41 vs 0.002 baseline: strong.\n\n"
    "**3. Not tested yet** — logit lens, SAE features.\n\n"
    "**5. Decision** — *Continue*: the effect is >100× baseline."
)
TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mKeyError\x1b[0m                                  Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[4], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m lens[\x1b[33m'final'\x1b[0m]",
    "\x1b[0;31mKeyError\x1b[0m: 'final'",
]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "now", lambda: 1000.0)


def make_app(*tail: ev.Event, hold: bool = True) -> ScribeApp:
    investigation = ReplayInvestigation([*demo_script(), *tail], hold=hold)
    return ScribeApp(
        investigation, title="find the secret", subject="organism:taboo", cursor_blink=False
    )


def settled(check: Callable[[ScribeApp], Any] = lambda app: True) -> Callable[[Any], Any]:
    """A run_before that waits until the demo's last tool call is handled and ``check`` holds."""

    def played(app: ScribeApp) -> bool:
        tools = list(app.agent.query(ToolEntry))
        return len(tools) >= 3 and "✓" in str(tools[2].title)

    async def run_before(pilot: Any) -> None:
        deadline = time.monotonic() + 30
        while not (played(pilot.app) and check(pilot.app)):
            assert time.monotonic() < deadline, "timed out waiting for the app to settle"
            await pilot.pause(0.02)

    return run_before


def shows(*parts: str) -> Callable[[ScribeApp], bool]:
    def check(app: ScribeApp) -> bool:
        text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        return all(part in text for part in parts)

    return check


def test_running(snap_compare: Any) -> None:
    code = "# Logit lens at the answer position.\nfor layer in range(6):\n    print(lens(layer))"
    app = make_app(
        ev.TurnStarted(2),
        ev.TextDelta("The prefill result points at **bird**. Next, a logit lens "),
        ev.TextDelta("to see *where* the word forms."),
        ev.ToolCallStarted("call-4", "execute_code", {"code": code}),
        ev.CellAdded(4, "cell-4", "code", code),
        ev.CellExecuting(4, "cell-4"),
        ev.CellUpdated(4, "cell-4", code, LIVE),
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=settled(shows("layer 1: 0.05")))


def test_paused(snap_compare: Any) -> None:
    assert snap_compare(
        make_app(), terminal_size=SIZE, run_before=settled(), press=[*"/pause", "enter"]
    )


def test_checkpoint_awaiting_approval(snap_compare: Any) -> None:
    app = make_app(ev.CheckpointRequested(1, 10), ev.CheckpointAnswered(1, CHECKPOINT, True))
    waiting = shows("WAITING FOR YOU", "Decision")
    focused = settled(lambda app: waiting(app) and getattr(app.focused, "id", None) == "approve")
    assert snap_compare(app, terminal_size=SIZE, run_before=focused)


def test_cell_editor_open(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=settled(), press=["f4"])


def test_error(snap_compare: Any) -> None:
    code = "lens['final']"
    app = make_app(
        ev.CellAdded(4, "cell-4", "code", code),
        ev.CellUpdated(
            4,
            "cell-4",
            code,
            [
                {
                    "output_type": "error",
                    "ename": "KeyError",
                    "evalue": "'final'",
                    "traceback": TRACEBACK,
                }
            ],
            4,
            "error",
        ),
        ev.ErrorEvent("execute_code: the cell raised KeyError"),
    )
    noted = settled(
        lambda app: any("raised KeyError" in str(n.content) for n in app.agent.query(".note"))
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=noted)


def test_concluded(snap_compare: Any) -> None:
    app = make_app(
        ev.TextDelta("Prefill and the logit lens agree: the secret word is **bird**."),
        ev.Concluded("bird", 0.92, "prefill p=0.41 vs 0.002; logit lens from layer 4"),
        ev.Stopped("concluded"),
        hold=False,
    )
    ended = settled(lambda app: app._agent_worker.is_finished and shows("✓ concluded")(app))
    assert snap_compare(app, terminal_size=SIZE, run_before=ended)


def test_terminal_too_small(snap_compare: Any) -> None:
    assert snap_compare(
        make_app(), terminal_size=(70, 16), run_before=settled(shows("needs at least 80×20"))
    )
