"""Pilot tests for the TUI: every control, driven against a replayed investigation."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Button, Markdown, TextArea

from scribe_tui import app as app_module
from scribe_tui import events as ev
from scribe_tui.app import EXIT_BUDGET, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ScribeApp
from scribe_tui.ui.agent_pane import MAX_ENTRIES, ToolEntry
from scribe_tui.ui.notebook import SLACK, STEP, WINDOW
from scribe_tui.ui.render import MAX_OUTPUT_LINES, CellModel, render_outputs
from scribe_tui.ui.replay import ReplayInvestigation, demo_script
from scribe_tui.ui.screens import CellEditorScreen, HelpScreen, MessageScreen

SIZE = (120, 40)


def screen_text(app: ScribeApp) -> str:
    """What the terminal shows right now, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def agent_notes(app: ScribeApp) -> str:
    """The one-line entries of the agent pane, whether or not a toast covers them."""
    return "\n".join(str(note.content) for note in app.agent.query(".note"))


def make_app(
    script: list[Any] | None = None, **kwargs: Any
) -> tuple[ScribeApp, ReplayInvestigation]:
    investigation = ReplayInvestigation(
        demo_script() if script is None else script, notebook_path=kwargs.pop("notebook", None)
    )
    app = ScribeApp(
        investigation, title="find the secret", subject="taboo", cursor_blink=False, **kwargs
    )
    return app, investigation


async def until(pilot: Any, check: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Let the app work until ``check()`` holds: a wait on the app's state, not a clock."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


def shows(app: ScribeApp, *parts: str) -> bool:
    text = screen_text(app)
    return all(part in text for part in parts)


def last_call(inv: ReplayInvestigation) -> tuple[Any, ...] | None:
    return inv.calls[-1] if inv.calls else None


def played(app: ScribeApp) -> bool:
    """The demo script's last event (its third tool call finishing) has been handled."""
    tools = list(app.agent.query(ToolEntry))
    return len(tools) >= 3 and "✓" in str(tools[2].title)


def run_over(app: ScribeApp) -> bool:
    worker = app._agent_worker
    return worker is not None and worker.is_finished


def checkpoint_events(number: int = 1) -> list[ev.Event]:
    return [
        ev.CheckpointRequested(number, 10),
        ev.CheckpointAnswered(
            number,
            "## Checkpoint\n\n**1. Tested so far** — direct asks, prefill.\n\n"
            "**5. Decision** — *Continue*: prefill leaks the word.",
            awaiting_approval=True,
        ),
    ]


# -- rendering ------------------------------------------------------------------------------


async def test_renders_cells_transcript_and_status() -> None:
    app, _ = make_app()
    async with app.run_test(notifications=True, size=(120, 60)) as pilot:
        await until(pilot, lambda: played(app) and shows(app, "[3] agent ✓"), "the demo")
        text = screen_text(app)
        assert "[1] agent ✓" in text and "[3] agent ✓" in text
        assert "Plan" in text and "Baseline" in text
        assert "image 320×160 PNG · o to open" in text
        assert "taboo · cuda:0 GPU" in text and "3.6G/79.2G 37% util" in text
        assert "host ready" in text and "● running" in text and "turn 1" in text
        assert "$0.04" in text and "10.4k tok" in text
        tools = list(app.agent.query(ToolEntry))
        assert len(tools) == 3 and "✓ execute_code" in str(tools[0].title)
        markdown = app.agent.query_one(".agent-text", Markdown)
        assert markdown.source.startswith("I'll begin with a **baseline**")
        await until(pilot, lambda: shows(app, "thought for"), "the thinking summary")


async def test_running_cell_streams_live_output_then_finishes() -> None:
    app, inv = make_app([ev.CellAdded(0, "c", "code", "for i in range(3): print(i)")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: app.notebook.cells, "the cell")
        inv.emit(ev.CellExecuting(0, "c"))
        inv.emit(
            ev.CellUpdated(
                0,
                "c",
                "for i in range(3): print(i)",
                [{"output_type": "stream", "name": "stdout", "text": "0\n1\n"}],
            )
        )
        await until(
            pilot,
            lambda: (
                shows(app, "[*] agent · running…") and "0\n" in screen_text(app).replace(" ", "")
            ),
            "the live output",
        )
        assert app.notebook.cells[0].running
        inv.emit(
            ev.CellUpdated(
                0,
                "c",
                "for i in range(3): print(i)",
                [{"output_type": "stream", "name": "stdout", "text": "0\n1\n2\n"}],
                1,
                "ok",
            )
        )
        await until(pilot, lambda: shows(app, "[1] agent ✓"), "the finished cell")
        assert not app.notebook.cells[0].running


async def test_error_cell_and_error_event_are_styled() -> None:
    traceback = ["\x1b[31mKeyError\x1b[0m Traceback", "KeyError: 'secret'"]
    app, _inv = make_app(
        [
            ev.CellAdded(0, "c", "code", "d['secret']"),
            ev.CellUpdated(
                0,
                "c",
                "d['secret']",
                [
                    {
                        "output_type": "error",
                        "ename": "KeyError",
                        "evalue": "'secret'",
                        "traceback": traceback,
                    }
                ],
                1,
                "error",
            ),
            ev.ErrorEvent("kernel restarted", fatal=False),
        ]
    )
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(
            pilot,
            lambda: (
                shows(app, "[1] agent ✗ error", "KeyError: 'secret'")
                and "✗ kernel restarted" in agent_notes(app)
            ),
            "the error cell and note",
        )
        assert app.notebook.query_one(".cell").has_class("-error")


async def test_long_output_folds_and_x_expands() -> None:
    long = "".join(f"line {i}\n" for i in range(100))
    cell = CellModel(
        0,
        "c",
        "code",
        "print(...)",
        outputs=[{"output_type": "stream", "name": "stdout", "text": long}],
    )
    assert "70 more output lines" in render_outputs(cell)[-1].plain  # type: ignore[union-attr]
    app, _ = make_app(
        [
            ev.CellAdded(0, "c", "code", "print(...)"),
            ev.CellUpdated(0, "c", "print(...)", cell.outputs, 1, "ok"),
        ]
    )
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, f"line {MAX_OUTPUT_LINES - 1}"), "the fold")
        app.notebook.focus()
        await pilot.press("up", "x")
        await until(pilot, lambda: app.notebook.cells[0].expanded, "the expanded cell")
        await pilot.press("end")
        await until(pilot, lambda: shows(app, "line 99"), "the last line")


async def test_streamed_text_is_finalised_in_one_update() -> None:
    words = [f"word{i} " for i in range(200)]
    app, _ = make_app([ev.TurnStarted(1), *map(ev.TextDelta, words), ev.TurnFinished(1, "end")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(
            pilot,
            lambda: (
                [m.source for m in app.agent.query(".agent-text").results(Markdown)]
                == ["".join(words)]
                and app.agent._appending is None
            ),
            "the finalised text",
        )
        markdown = app.agent.query_one(".agent-text", Markdown)
        assert markdown.source == "".join(words)
        assert app.agent._appending is None


async def test_agent_pane_caps_mounted_entries() -> None:
    script: list[Any] = []
    for i in range(MAX_ENTRIES + 40):
        script += [
            ev.ToolCallStarted(f"c{i}", "execute_code", {"code": f"x = {i}"}),
            ev.ToolCallFinished(f"c{i}", "execute_code", False, "ok", 0.1),
        ]
    app, _ = make_app(script)

    def last_title() -> str:
        tools = list(app.agent.query(ToolEntry))
        return str(tools[-1].title) if tools else ""

    async with app.run_test(notifications=True, size=SIZE) as pilot:
        last = f"x = {MAX_ENTRIES + 39}"
        await until(pilot, lambda: last in last_title() and "✓" in last_title(), "the last call")
        assert len(app.agent.children) <= MAX_ENTRIES
        assert last in last_title()


async def test_notebook_window_is_bounded_and_fills_in_after_a_jump() -> None:
    app, inv = make_app([ev.CellAdded(i, f"c{i}", "code", f"x = {i}") for i in range(150)])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        notebook = app.notebook
        await until(pilot, lambda: len(notebook.cells) == 150 and shows(app, "x = 149"), "cells")
        assert len(notebook.children) <= WINDOW + SLACK + 3
        notebook.focus()
        notebook.select(0)  # a jump: the key press itself mounts only a few cells...
        assert sorted(notebook._views) == list(range(STEP))
        await until(  # ...the rest of the window fills in once keys pause
            pilot,
            lambda: (
                sorted(notebook._views) == list(range(WINDOW))
                and notebook.scroll_y == 0
                and shows(app, "x = 0")
            ),
            "the window at the top",
        )
        for i in range(150, 250):  # the person reads above while the agent goes on
            inv.emit(ev.CellAdded(i, f"c{i}", "code", f"x = {i}"))
        await until(pilot, lambda: len(notebook.cells) == 250, "the new cells")
        assert len(notebook._views) <= WINDOW + SLACK and shows(app, "x = 0")
        await pilot.press("end")
        await until(  # back to the newest: following, the window full again
            pilot,
            lambda: (
                sorted(notebook._views) == list(range(250 - WINDOW, 250))
                and notebook.scroll_y == notebook.max_scroll_y
                and shows(app, "x = 249")
            ),
            "the window at the end",
        )


# -- steering: messages, interrupt, pause, checkpoints -----------------------------------------


async def test_message_is_queued_until_delivered() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press(*"try the logit lens", "enter")
        await until(
            pilot,
            lambda: (
                ("send", "try the logit lens") in inv.calls
                and shows(app, "you (queued) try the logit lens", "1 queued")
            ),
            "the queued message",
        )
        inv.emit(ev.MessageDelivered(["try the logit lens"]))
        await until(
            pilot,
            lambda: (
                shows(app, "you (delivered) try the logit lens")
                and "1 queued" not in screen_text(app)
            ),
            "the delivered message",
        )
        await pilot.press("up")
        assert app.prompt.value == "try the logit lens"  # history


async def test_escape_interrupts() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press("escape")
        await until(
            pilot,
            lambda: last_call(inv) == ("interrupt",) and shows(app, "‖ paused"),
            "the interrupt",
        )


async def test_pause_resume_by_slash_and_f2() -> None:
    app, inv = make_app()

    def state(call: str, agent_state: str) -> Callable[[], bool]:
        return lambda: last_call(inv) == (call,) and app.status_bar.agent_state == agent_state

    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press(*"/pause", "enter")
        await until(pilot, state("pause", "paused"), "/pause")
        await pilot.press(*"/resume", "enter")
        await until(pilot, state("resume", "running"), "/resume")
        await pilot.press("f2")
        await until(pilot, lambda: last_call(inv) == ("pause",), "F2 pausing")
        await pilot.press("f2")
        await until(pilot, lambda: last_call(inv) == ("resume",), "F2 resuming")


async def test_checkpoint_request_by_slash_and_f3() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press(*"/checkpoint", "enter", "f3")
        await until(pilot, lambda: inv.calls.count(("request_checkpoint",)) == 2, "two requests")


def waiting(app: ScribeApp) -> bool:
    """Checkpoint 1 waits on screen, its Approve button focused."""
    focused = app.focused
    shown = shows(app, "⚠ CHECKPOINT 1 · WAITING FOR YOU", "⚠ waiting for you")
    return shown and isinstance(focused, Button) and focused.id == "approve"


async def test_checkpoint_waits_and_approve_key_decides() -> None:
    app, inv = make_app([*demo_script(), *checkpoint_events()])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: waiting(app), "the checkpoint")
        text = screen_text(app)
        assert "⚠ CHECKPOINT 1 · WAITING FOR YOU" in text and "⚠ waiting for you" in text
        assert "Approve" in text and "Pivot…" in text and "Continue" in text
        assert isinstance(app.focused, Button) and app.focused.id == "approve"
        await pilot.press("a")
        await until(
            pilot,
            lambda: (
                last_call(inv) == ("decide_checkpoint", 1, "approve", "")
                and shows(app, "decision: approved")
                and app.status_bar.agent_state == "running"
                and app.focused is app.prompt
            ),
            "the approval",
        )


async def test_checkpoint_answered_as_its_card_mounts_waits_for_approval() -> None:
    """A resumed run (or a fast agent) answers a checkpoint before its card has composed."""
    answered = checkpoint_events()[1]
    app, inv = make_app([*demo_script(), answered])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: waiting(app), "the checkpoint")
        assert isinstance(app.focused, Button) and app.focused.id == "approve"
        await pilot.press("a")
        await until(
            pilot, lambda: last_call(inv) == ("decide_checkpoint", 1, "approve", ""), "approval"
        )


async def test_checkpoint_pivot_asks_for_a_message() -> None:
    app, inv = make_app([*demo_script(), *checkpoint_events()])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: waiting(app), "the checkpoint")
        await pilot.click("#pivot")
        await until(pilot, lambda: isinstance(app.screen, MessageScreen), "the message screen")
        await pilot.press(*"try SAE features", "enter")
        await until(
            pilot,
            lambda: (
                last_call(inv) == ("decide_checkpoint", 1, "pivot", "try SAE features")
                and shows(app, "decision: pivot: try SAE features")
            ),
            "the pivot",
        )


async def test_checkpoint_pivot_and_continue_by_slash() -> None:
    app, inv = make_app([*demo_script(), *checkpoint_events(1)])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: waiting(app), "the checkpoint")
        app.prompt.focus()
        await pilot.press(*"/pivot look at attention heads", "enter")
        pivot = ("decide_checkpoint", 1, "pivot", "look at attention heads")
        await until(pilot, lambda: last_call(inv) == pivot, "the pivot")
        for event in checkpoint_events(2):
            inv.emit(event)
        await until(pilot, lambda: shows(app, "⚠ CHECKPOINT 2 · WAITING FOR YOU"), "checkpoint 2")
        app.prompt.focus()
        await pilot.press(*"/continue", "enter")
        await until(
            pilot,
            lambda: last_call(inv) == ("decide_checkpoint", 2, "continue", ""),
            "the continue",
        )
        assert app.checkpoints.cards[1].folded and not app.checkpoints.cards[2].folded
        await pilot.press(*"/approve", "enter")
        await until(pilot, lambda: shows(app, "No checkpoint is waiting"), "the refusal")


# -- cells: edit in app, in $EDITOR, add your own -------------------------------------------


async def test_edit_selected_cell_in_modal_editor() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press("tab")
        assert app.focused is app.notebook
        await pilot.press("up", "up")  # newest cell, then the one above it: cell 2 ([2])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CellEditorScreen), "the editor")
        editor = app.screen.query_one(TextArea)
        assert "Baseline" in editor.text
        editor.text = "print('edited')"
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: (
                last_call(inv) == ("edit_cell", 1, "print('edited')")  # second code cell
                and app.notebook.cells[2].source == "print('edited')"
                and shows(app, "[2] agent · edited by you ✓")
            ),
            "the edited cell",
        )


async def test_edit_by_execution_count_and_cancel() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press(*"/edit 1", "enter")
        await until(pilot, lambda: isinstance(app.screen, CellEditorScreen), "the editor")
        assert app.screen.query_one(TextArea).text.startswith("info = client.info()")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CellEditorScreen), "the cancel")
        assert not any(call[0] == "edit_cell" for call in inv.calls)


async def test_edit_in_external_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'x = 42\\n' > \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("VISUAL", str(editor))
    # The headless driver cannot hand the terminal over; the editor still runs for real.
    monkeypatch.setattr(ScribeApp, "suspend", lambda self: contextlib.nullcontext())
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press("f5")  # no selection: the newest code cell
        await until(pilot, lambda: last_call(inv) == ("edit_cell", 2, "x = 42\n"), "the edit")


async def test_external_editor_unsupported_terminal_says_so() -> None:
    app, _ = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press("f5")
        await until(pilot, lambda: shows(app, "cannot hand over to $EDITOR"), "the refusal")


async def test_new_cell_and_run_one_liner() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(app.screen, CellEditorScreen), "the editor")
        await pilot.press(*"print(1)", "ctrl+s")
        await until(pilot, lambda: last_call(inv) == ("run_code", "print(1)"), "the new cell")
        await pilot.press(*"/run 2 + 2", "enter")
        await until(
            pilot,
            lambda: (
                last_call(inv) == ("run_code", "2 + 2")
                and [c.author for c in app.notebook.cells[-2:]] == ["person", "person"]
                and shows(app, "you ✓")
            ),
            "the one-liner",
        )


async def test_markdown_cell_is_not_editable() -> None:
    app, _inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        app.notebook.focus()
        await pilot.press("home", "enter")
        await until(pilot, lambda: shows(app, "Select a code cell first"), "the refusal")
        assert not isinstance(app.screen, CellEditorScreen)


async def test_person_work_failure_is_reported() -> None:
    app, inv = make_app()

    async def broken(code: str) -> None:
        raise RuntimeError("kernel is busy")

    inv.run_code = broken  # type: ignore[method-assign]
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press(*"/run 1", "enter")
        await until(pilot, lambda: shows(app, "run failed: kernel is busy"), "the failure")


async def test_open_images_saves_png(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    app, _ = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        app.notebook.focus()
        await pilot.press("end", "o")
        await until(pilot, lambda: shows(app, "Saved (path copied)"), "the saved image")
        path = Path(app.clipboard)
        assert path.suffix == ".png" and path.read_bytes().startswith(b"\x89PNG")


# -- other commands -----------------------------------------------------------------------


async def test_cost_export_help_and_unknown(tmp_path: Path) -> None:
    notebook = tmp_path / "run.ipynb"
    app, _ = make_app(notebook=notebook)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        # The notebook path is in the pane's border.
        await until(pilot, lambda: played(app) and shows(app, "run.ipynb"), "the demo")
        await pilot.press(*"/cost", "enter")
        await until(pilot, lambda: shows(app, "9.8k in / 640 out tokens · $0.04"), "the cost")
        # The replay wrote no notebook file (test_app_record exports a real one).
        await pilot.press(*"/export", "enter")
        await until(pilot, lambda: shows(app, "Nothing to export yet"), "the refusal")
        assert not list(tmp_path.iterdir())
        await pilot.press(*"/help", "enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, HelpScreen) and shows(app, "/checkpoint"),
            "the help",
        )
        await pilot.press("escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press(*"/frobnicate", "enter")
        await until(pilot, lambda: shows(app, "Unknown command /frobnicate"), "the refusal")


async def test_command_palette_runs_actions() -> None:
    app, inv = make_app()

    def top_hit() -> str:
        if not isinstance(app.screen, CommandPalette):
            return ""
        hits = app.screen.query_one(CommandList)
        if hits.highlighted != 0:
            return ""
        return str(hits.get_option_at_index(0).prompt)

    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"checkpoint now")
        await until(pilot, lambda: "Checkpoint now" in top_hit(), "the hit")
        await pilot.press("enter")
        await until(pilot, lambda: ("request_checkpoint",) in inv.calls, "the request")


async def test_too_small_terminal_shows_message_then_recovers() -> None:
    app, _ = make_app()
    async with app.run_test(notifications=True, size=(60, 15)) as pilot:
        message = "The terminal is 60×15; scribe-tui needs at least 80×20"
        await until(pilot, lambda: shows(app, message), "the message")
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: shows(app, "Notebook · find the secret"), "the notebook")


# -- start-up, status polling, exit codes ---------------------------------------------------


async def test_factory_source_and_messages_before_start() -> None:
    started = asyncio.Event()
    investigation = ReplayInvestigation(demo_script())

    async def factory() -> ReplayInvestigation:
        await started.wait()  # e.g. loading the subject model
        return investigation

    app = ScribeApp(factory, title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, "◌ starting"), "the starting state")
        await pilot.press(*"hello early", "enter")
        await until(pilot, lambda: app._pending == ["hello early"], "the held message")
        started.set()
        await until(
            pilot,
            lambda: ("send", "hello early") in investigation.calls and shows(app, "[3] agent"),
            "the delivered message and the run",
        )


async def test_status_callable_is_polled() -> None:
    polled = ev.Status(
        "running",
        host_state="loading",
        detail="42%",
        device="cpu",
        memory_used=2 * 2**30,
        memory_total=16 * 2**30,
    )
    app, _ = make_app([], status=lambda: polled)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(
            pilot,
            lambda: shows(app, "cpu RAM", "2.0G/16.0G", "host loading 42%"),
            "the polled status",
        )


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ([ev.Concluded("bird", 0.9, "prefill"), ev.Stopped("concluded")], EXIT_OK),
        ([ev.Stopped("budget", "max cost")], EXIT_BUDGET),
        ([ev.ErrorEvent("host died", fatal=True), ev.Stopped("failed")], EXIT_FAILED),
    ],
)
async def test_exit_code_after_the_run_ends(tail: list[ev.Event], expected: int) -> None:
    app = ScribeApp(
        ReplayInvestigation([*demo_script(), *tail], hold=False), title="t", cursor_blink=False
    )
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: run_over(app), "the end of the run")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app.return_code is not None, "the exit")
    assert app.return_code == expected


async def test_concluded_is_shown() -> None:
    app, _inv = make_app([*demo_script(), ev.Concluded("bird", 0.9, "prefill says bird")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(
            pilot,
            lambda: shows(app, "Concluded: bird  (confidence 90%)", "✓ concluded"),
            "the conclusion",
        )


async def test_a_stop_says_why_in_words() -> None:
    app, _inv = make_app([*demo_script(), ev.Stopped("interrupted", "cancelled")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, "stopped: interrupted (cancelled)"), "the stop")


async def test_run_raising_is_a_failure() -> None:
    class Broken(ReplayInvestigation):
        async def run(self) -> str:
            raise RuntimeError("kernel would not start")

    app = ScribeApp(Broken(), title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, "kernel would not start", "✗ failed"), "the failure")
        await pilot.press("ctrl+q")
    assert app.return_code == EXIT_FAILED


async def test_quit_mid_run_interrupts_and_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "QUIT_GRACE_S", 0.1)
    cancelled = asyncio.Event()

    class Stubborn(ReplayInvestigation):
        async def run(self) -> str:
            try:
                return await super().run()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    inv = Stubborn(demo_script())
    app = ScribeApp(inv, title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: played(app), "the demo")
        await pilot.press(*"/quit", "enter")
        await until(pilot, lambda: app.return_code is not None, "the exit")
    assert inv.calls[-1] == ("interrupt",) and cancelled.is_set()
    assert app.return_code == EXIT_INTERRUPTED


async def test_context_manager_source_is_closed_on_quit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "QUIT_GRACE_S", 0.1)
    closed: list[bool] = []

    @contextlib.asynccontextmanager
    async def opened() -> Any:
        try:
            yield ReplayInvestigation(demo_script())
        finally:
            closed.append(True)  # the kernels and the host would stop here

    app = ScribeApp(opened, title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await until(pilot, lambda: app.notebook.cells, "the first cell")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app.return_code is not None, "the exit")
    assert closed == [True] and app.return_code == EXIT_INTERRUPTED


async def test_real_investigation_with_scripted_provider(tmp_path: Path) -> None:
    """The real loop, the real notebook tools (a real kernel), steered through the TUI."""
    from scribe_tui.agent.loop import Investigation, InvestigationConfig
    from scribe_tui.agent.scripted import SESSION, ScriptedProvider, ScriptedTurn, text, tool
    from scribe_tui.tools import NotebookTools

    def run(code: str) -> dict[str, Any]:
        return tool("execute_code", session_id=SESSION, code=code)

    provider = ScriptedProvider(
        [
            [text("I'll start."), tool("start_new_session", experiment_name="tui")],
            [tool("init_session", session_id=SESSION)],
            [run("print(6 * 7)")],
            ScriptedTurn([text("Thinking it over."), run("x = 42\nx")], delay=1.5),
            [tool("conclude", answer="42", confidence=0.8, evidence="it printed 42")],
        ]
    )
    tools = NotebookTools(tmp_path / "notebooks")
    investigation = Investigation(
        "find 42", provider, tools, config=InvestigationConfig(checkpoint_every=0)
    )
    app = ScribeApp(investigation, title="find 42", cursor_blink=False)
    try:
        async with app.run_test(notifications=True, size=SIZE) as pilot:
            await until(
                pilot,
                lambda: any(
                    c.source == "print(6 * 7)" and c.status == "ok" for c in app.notebook.cells
                ),
                "the agent's first cell",
                timeout=60,
            )
            await pilot.press(*"/run print('mine')", "enter")
            await pilot.press(*"keep going", "enter")
            await until(
                pilot,
                lambda: any(c.author == "person" and c.status == "ok" for c in app.notebook.cells),
                "the person's cell",
                timeout=60,
            )
            await until(pilot, lambda: app.conclusion is not None, "the conclusion", timeout=60)
            text_now = screen_text(app)
            assert "✓ concluded" in text_now and "Concluded: 42" in text_now
            assert "keep going" in agent_notes(app)
            await pilot.press("ctrl+q")
        assert app.return_code == EXIT_OK
        assert investigation.notebook_path is not None
        assert app.notebook_path == investigation.notebook_path
    finally:
        await tools.aclose()


def test_run_app_prints_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = tmp_path / "my run.ipynb"
    monkeypatch.setattr(ScribeApp, "run", lambda self: EXIT_INTERRUPTED)
    code = app_module.run_app(ReplayInvestigation(), title="t", notebook=notebook)
    assert code == EXIT_INTERRUPTED
    assert f"Resume with: scribe-tui resume '{notebook}'" in capsys.readouterr().out


def test_app_module_does_not_import_heavy_packages() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, scribe_tui.app; "
        "print([m for m in ('torch', 'anthropic', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
