"""Pilot tests for the TUI: every control, driven against a replayed investigation."""

from __future__ import annotations

import asyncio
import contextlib
import stat
from pathlib import Path
from typing import Any

import pytest
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


async def settle(pilot: Any, seconds: float = 0.05) -> None:
    await pilot.pause(seconds)
    await pilot.pause()


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
        await settle(pilot, 0.2)
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
        assert "thought for" in screen_text(app)


async def test_running_cell_streams_live_output_then_finishes() -> None:
    app, inv = make_app([ev.CellAdded(0, "c", "code", "for i in range(3): print(i)")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot)
        inv.emit(ev.CellExecuting(0, "c"))
        inv.emit(
            ev.CellUpdated(
                0,
                "c",
                "for i in range(3): print(i)",
                [{"output_type": "stream", "name": "stdout", "text": "0\n1\n"}],
            )
        )
        await settle(pilot)
        text = screen_text(app)
        assert "[*] agent · running…" in text and "0\n" in text.replace(" ", "")
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
        await settle(pilot)
        assert "[1] agent ✓" in screen_text(app) and not app.notebook.cells[0].running


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
        await settle(pilot)
        text = screen_text(app)
        assert "[1] agent ✗ error" in text and "KeyError: 'secret'" in text
        assert "✗ kernel restarted" in agent_notes(app)
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
        await settle(pilot)
        assert f"line {MAX_OUTPUT_LINES - 1}" in screen_text(app)
        app.notebook.focus()
        await pilot.press("up", "x")
        await settle(pilot)
        assert app.notebook.cells[0].expanded
        await pilot.press("end")
        await settle(pilot)
        assert "line 99" in screen_text(app)


async def test_streamed_text_is_finalised_in_one_update() -> None:
    words = [f"word{i} " for i in range(200)]
    app, _ = make_app([ev.TurnStarted(1), *map(ev.TextDelta, words), ev.TurnFinished(1, "end")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.3)
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
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.3)
        assert len(app.agent.children) <= MAX_ENTRIES
        assert f"x = {MAX_ENTRIES + 39}" in str(list(app.agent.query(ToolEntry))[-1].title)


async def test_notebook_window_is_bounded_and_fills_in_after_a_jump() -> None:
    app, inv = make_app([ev.CellAdded(i, f"c{i}", "code", f"x = {i}") for i in range(150)])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.3)
        notebook = app.notebook
        assert len(notebook.cells) == 150 and len(notebook.children) <= WINDOW + SLACK + 3
        notebook.focus()
        notebook.select(0)  # a jump: the key press itself mounts only a few cells...
        assert sorted(notebook._views) == list(range(STEP))
        await settle(pilot, 1.0)  # ...the rest of the window fills in once keys pause
        assert sorted(notebook._views) == list(range(WINDOW))
        assert notebook.scroll_y == 0 and "x = 0" in screen_text(app)
        for i in range(150, 250):  # the person reads above while the agent goes on
            inv.emit(ev.CellAdded(i, f"c{i}", "code", f"x = {i}"))
        await settle(pilot, 0.3)
        assert len(notebook._views) <= WINDOW + SLACK and "x = 0" in screen_text(app)
        await pilot.press("end")
        await settle(pilot, 1.0)  # back to the newest: following, the window full again
        assert sorted(notebook._views) == list(range(250 - WINDOW, 250))
        assert notebook.scroll_y == notebook.max_scroll_y and "x = 249" in screen_text(app)


# -- steering: messages, interrupt, pause, checkpoints -----------------------------------------


async def test_message_is_queued_until_delivered() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"try the logit lens", "enter")
        await settle(pilot)
        assert ("send", "try the logit lens") in inv.calls
        assert "you (queued) try the logit lens" in screen_text(app)
        assert "1 queued" in screen_text(app)
        inv.emit(ev.MessageDelivered(["try the logit lens"]))
        await settle(pilot)
        text = screen_text(app)
        assert "you (delivered) try the logit lens" in text and "1 queued" not in text
        await pilot.press("up")
        assert app.prompt.value == "try the logit lens"  # history


async def test_escape_interrupts() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert inv.calls[-1] == ("interrupt",)
        assert "‖ paused" in screen_text(app)


async def test_pause_resume_by_slash_and_f2() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"/pause", "enter")
        await settle(pilot)
        assert inv.calls[-1] == ("pause",) and app.status_bar.agent_state == "paused"
        await pilot.press(*"/resume", "enter")
        await settle(pilot)
        assert inv.calls[-1] == ("resume",) and app.status_bar.agent_state == "running"
        await pilot.press("f2")
        await settle(pilot)
        assert inv.calls[-1] == ("pause",)
        await pilot.press("f2")
        await settle(pilot)
        assert inv.calls[-1] == ("resume",)


async def test_checkpoint_request_by_slash_and_f3() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"/checkpoint", "enter", "f3")
        await settle(pilot)
        assert inv.calls.count(("request_checkpoint",)) == 2


async def test_checkpoint_waits_and_approve_key_decides() -> None:
    app, inv = make_app([*demo_script(), *checkpoint_events()])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        text = screen_text(app)
        assert "⚠ CHECKPOINT 1 · WAITING FOR YOU" in text and "⚠ waiting for you" in text
        assert "Approve" in text and "Pivot…" in text and "Continue" in text
        assert isinstance(app.focused, Button) and app.focused.id == "approve"
        await pilot.press("a")
        await settle(pilot)
        assert inv.calls[-1] == ("decide_checkpoint", 1, "approve", "")
        assert "decision: approved" in screen_text(app)
        assert app.status_bar.agent_state == "running" and app.focused is app.prompt


async def test_checkpoint_answered_as_its_card_mounts_waits_for_approval() -> None:
    """A resumed run (or a fast agent) answers a checkpoint before its card has composed."""
    answered = checkpoint_events()[1]
    app, inv = make_app([*demo_script(), answered])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        assert "⚠ CHECKPOINT 1 · WAITING FOR YOU" in screen_text(app)
        assert isinstance(app.focused, Button) and app.focused.id == "approve"
        await pilot.press("a")
        await settle(pilot)
        assert inv.calls[-1] == ("decide_checkpoint", 1, "approve", "")


async def test_checkpoint_pivot_asks_for_a_message() -> None:
    app, inv = make_app([*demo_script(), *checkpoint_events()])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.click("#pivot")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen)
        await pilot.press(*"try SAE features", "enter")
        await settle(pilot)
        assert inv.calls[-1] == ("decide_checkpoint", 1, "pivot", "try SAE features")
        assert "decision: pivot: try SAE features" in screen_text(app)


async def test_checkpoint_pivot_and_continue_by_slash() -> None:
    app, inv = make_app([*demo_script(), *checkpoint_events(1)])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        app.prompt.focus()
        await pilot.press(*"/pivot look at attention heads", "enter")
        await settle(pilot)
        assert inv.calls[-1] == ("decide_checkpoint", 1, "pivot", "look at attention heads")
        for event in checkpoint_events(2):
            inv.emit(event)
        await settle(pilot)
        app.prompt.focus()
        await pilot.press(*"/continue", "enter")
        await settle(pilot)
        assert inv.calls[-1] == ("decide_checkpoint", 2, "continue", "")
        assert app.checkpoints.cards[1].folded and not app.checkpoints.cards[2].folded
        await pilot.press(*"/approve", "enter")
        await settle(pilot)
        assert "No checkpoint is waiting" in screen_text(app)


# -- cells: edit in app, in $EDITOR, add your own -------------------------------------------


async def test_edit_selected_cell_in_modal_editor() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("tab")
        assert app.focused is app.notebook
        await pilot.press("up", "up")  # newest cell, then the one above it: cell 2 ([2])
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, CellEditorScreen)
        editor = app.screen.query_one(TextArea)
        assert "Baseline" in editor.text
        editor.text = "print('edited')"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert inv.calls[-1] == ("edit_cell", 1, "print('edited')")  # second code cell
        assert app.notebook.cells[2].source == "print('edited')"
        assert "[2] agent · edited by you ✓" in screen_text(app)


async def test_edit_by_execution_count_and_cancel() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press(*"/edit 1", "enter")
        await settle(pilot)
        assert isinstance(app.screen, CellEditorScreen)
        assert app.screen.query_one(TextArea).text.startswith("info = client.info()")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, CellEditorScreen)
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
        await settle(pilot, 0.2)
        await pilot.press("f5")  # no selection: the newest code cell
        await settle(pilot, 0.2)
        assert inv.calls[-1] == ("edit_cell", 2, "x = 42\n")


async def test_external_editor_unsupported_terminal_says_so() -> None:
    app, _ = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("f5")
        await settle(pilot)
        assert "cannot hand over to $EDITOR" in screen_text(app)


async def test_new_cell_and_run_one_liner() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("f6")
        await settle(pilot)
        assert isinstance(app.screen, CellEditorScreen)
        await pilot.press(*"print(1)", "ctrl+s")
        await settle(pilot)
        assert inv.calls[-1] == ("run_code", "print(1)")
        await pilot.press(*"/run 2 + 2", "enter")
        await settle(pilot)
        assert inv.calls[-1] == ("run_code", "2 + 2")
        assert [c.author for c in app.notebook.cells[-2:]] == ["person", "person"]
        assert "you ✓" in screen_text(app)


async def test_markdown_cell_is_not_editable() -> None:
    app, _inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        app.notebook.focus()
        await pilot.press("home", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, CellEditorScreen)
        assert "Select a code cell first" in screen_text(app)


async def test_person_work_failure_is_reported() -> None:
    app, inv = make_app()

    async def broken(code: str) -> None:
        raise RuntimeError("kernel is busy")

    inv.run_code = broken  # type: ignore[method-assign]
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press(*"/run 1", "enter")
        await settle(pilot, 0.1)
        assert "run failed: kernel is busy" in screen_text(app)


async def test_open_images_saves_png(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    app, _ = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        app.notebook.focus()
        await pilot.press("end", "o")
        await settle(pilot)
        text = screen_text(app)
        assert "Saved (path copied)" in text
        path = Path(app.clipboard)
        assert path.suffix == ".png" and path.read_bytes().startswith(b"\x89PNG")


# -- other commands -----------------------------------------------------------------------


async def test_cost_export_help_and_unknown(tmp_path: Path) -> None:
    notebook = tmp_path / "run.ipynb"
    app, _ = make_app(notebook=notebook)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        assert "run.ipynb" in screen_text(app)  # notebook path in the pane's border
        await pilot.press(*"/cost", "enter")
        await settle(pilot)
        assert "9.8k in / 640 out tokens · $0.04" in screen_text(app)
        # The replay wrote no notebook file (test_app_record exports a real one).
        await pilot.press(*"/export", "enter")
        await settle(pilot)
        assert "Nothing to export yet" in screen_text(app) and not list(tmp_path.iterdir())
        await pilot.press(*"/help", "enter")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen) and "/checkpoint" in screen_text(app)
        await pilot.press("escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press(*"/frobnicate", "enter")
        await settle(pilot)
        assert "Unknown command /frobnicate" in screen_text(app)


async def test_command_palette_runs_actions() -> None:
    app, inv = make_app()
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"checkpoint now")
        await settle(pilot, 0.3)
        await pilot.press("enter")
        await settle(pilot, 0.1)
        assert ("request_checkpoint",) in inv.calls


async def test_too_small_terminal_shows_message_then_recovers() -> None:
    app, _ = make_app()
    async with app.run_test(notifications=True, size=(60, 15)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "The terminal is 60×15; scribe-tui needs at least 80×20" in text
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert "Notebook · find the secret" in screen_text(app)


# -- start-up, status polling, exit codes ---------------------------------------------------


async def test_factory_source_and_messages_before_start() -> None:
    started = asyncio.Event()
    investigation = ReplayInvestigation(demo_script())

    async def factory() -> ReplayInvestigation:
        await started.wait()  # e.g. loading the subject model
        return investigation

    app = ScribeApp(factory, title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot)
        assert "◌ starting" in screen_text(app)
        await pilot.press(*"hello early", "enter")
        await settle(pilot)
        started.set()
        await settle(pilot, 0.2)
        assert ("send", "hello early") in investigation.calls
        assert "[3] agent" in screen_text(app)


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
        await pilot.pause(1.2)
        text = screen_text(app)
        assert "cpu RAM" in text and "2.0G/16.0G" in text and "host loading 42%" in text


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
        await settle(pilot, 0.2)
        await pilot.press("ctrl+q")
        await settle(pilot)
    assert app.return_code == expected


async def test_concluded_is_shown() -> None:
    app, _inv = make_app([*demo_script(), ev.Concluded("bird", 0.9, "prefill says bird")])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.2)
        text = screen_text(app)
        assert "Concluded: bird  (confidence 90%)" in text and "✓ concluded" in text


async def test_run_raising_is_a_failure() -> None:
    class Broken(ReplayInvestigation):
        async def run(self) -> str:
            raise RuntimeError("kernel would not start")

    app = ScribeApp(Broken(), title="t", cursor_blink=False)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await settle(pilot, 0.1)
        assert "kernel would not start" in screen_text(app) and "✗ failed" in screen_text(app)
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
        await settle(pilot, 0.1)
        await pilot.press(*"/quit", "enter")
        await settle(pilot, 0.4)
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
        await settle(pilot, 0.1)
        assert app.notebook.cells
        await pilot.press("ctrl+q")
        await settle(pilot, 0.4)
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

            async def until(check: Any, timeout: float = 60.0) -> None:
                deadline = asyncio.get_running_loop().time() + timeout
                while not check():
                    assert asyncio.get_running_loop().time() < deadline, screen_text(app)
                    await pilot.pause(0.05)

            await until(
                lambda: any(
                    c.source == "print(6 * 7)" and c.status == "ok" for c in app.notebook.cells
                )
            )
            await pilot.press(*"/run print('mine')", "enter")
            await pilot.press(*"keep going", "enter")
            await until(
                lambda: any(c.author == "person" and c.status == "ok" for c in app.notebook.cells)
            )
            await until(lambda: app.conclusion is not None)
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
