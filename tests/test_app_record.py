"""The research record in the TUI: /export through nbconvert, /fork on the selected cell, and the
help screen's attach line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from scribe_tui import events as ev
from scribe_tui.agent.steering import person_message
from scribe_tui.agent.transcript import Transcript
from scribe_tui.app import ScribeApp
from scribe_tui.runtime.notebook import Notebook
from scribe_tui.ui.agent_pane import ToolEntry
from scribe_tui.ui.replay import ReplayInvestigation, demo_script
from scribe_tui.ui.screens import HelpScreen

SIZE = (120, 40)


def screen_text(app: ScribeApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def recorded_run(folder: Path) -> Path:
    """A notebook and transcript on disk, as an investigation leaves them."""
    meta = {"task": "find the secret", "model": "organism:taboo", "agent": "autopilot"}
    notebook = Notebook.create(folder, "find the secret", metadata=meta)
    notebook.add_markdown_cell("## Plan")
    for n, code in enumerate(["info = client.info()\ninfo", "print('baseline')", "print('x')"]):
        index = notebook.add_code_cell(code)
        notebook.set_outputs(
            index, [{"output_type": "stream", "name": "stdout", "text": "ok\n"}], n
        )
    transcript = Transcript(notebook.path.with_suffix(".jsonl"))
    transcript.write_header(
        task="find the secret", provider="autopilot", model="a", config={}, notebook=notebook.path
    )
    transcript.write("message", message={"role": "user", "content": "Your task: find the secret"})
    for n in range(3):
        use = {"type": "tool_use", "id": f"c{n}", "name": "execute_code", "input": {"code": "x"}}
        result = {"type": "tool_result", "tool_use_id": f"c{n}", "content": "ok"}
        if n:
            previous = {"type": "tool_result", "tool_use_id": f"c{n - 1}", "content": "ok"}
            transcript.write("message", message={"role": "user", "content": [previous]})
        transcript.write("message", message={"role": "assistant", "content": [use]})
        transcript.write("pending", block=result, cell=n)
    transcript.close()
    return notebook.path


def make_app(notebook: Path, script: list[Any] | None = None) -> ScribeApp:
    investigation = ReplayInvestigation(demo_script() if script is None else script,
                                        notebook_path=notebook)  # fmt: skip
    return ScribeApp(investigation, title="find the secret", subject="taboo", cursor_blink=False)


def played(app: ScribeApp, tools: int = 3) -> bool:
    """The demo script's last event (its last tool call finishing) has been handled."""
    entries = list(app.agent.query(ToolEntry))
    return len(entries) == tools and "✓" in str(entries[-1].title)


async def wait_for(pilot: Any, condition: Any, tries: int = 400) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app never got there")


async def test_export_writes_markdown_and_html_through_nbconvert(tmp_path: Path) -> None:
    notebook = recorded_run(tmp_path)
    app = make_app(notebook)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await wait_for(pilot, lambda: played(app))
        await pilot.press(*"/export", "enter")
        markdown = notebook.with_suffix(".md")
        await wait_for(pilot, lambda: app.clipboard == str(markdown))
        text = markdown.read_text(encoding="utf-8")
        assert text.startswith("# find the secret") and "```python\ninfo = client.info()" in text
        await pilot.press(*"/export html", "enter")
        html = notebook.with_suffix(".html")
        await wait_for(pilot, lambda: app.clipboard == str(html))
        page = html.read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and "baseline" in page
        await pilot.press(*"/export pdf", "enter")
        await wait_for(pilot, lambda: "use /export md or /export html" in screen_text(app))


async def test_fork_on_the_selected_cell(tmp_path: Path) -> None:
    notebook = recorded_run(tmp_path)
    app = make_app(notebook)
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await wait_for(pilot, lambda: played(app))
        app.notebook.select(2)  # the second code cell
        await pilot.press(*"/fork try the logit lens", "enter")
        await wait_for(pilot, lambda: app.fork_into is not None and not app.is_running)
    fork = app.fork_into
    assert fork is not None and fork.parent == tmp_path and fork != notebook
    nb = nbformat.read(fork, as_version=4)
    nbformat.validate(nb)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert code == ["info = client.info()\ninfo", "print('baseline')"]
    assert nb.metadata["scribe"]["forked_at"] == 2
    data = Transcript.load(fork.with_suffix(".jsonl"))
    assert data.resume_point().queued == [person_message("try the logit lens")]


async def test_help_names_the_kernel_connection_file(tmp_path: Path) -> None:
    started = ev.KernelStarted("s1", "/run/user/1/jupyter/kernel-abc.json", "run.ipynb")
    app = make_app(recorded_run(tmp_path), [*demo_script(1), started])
    async with app.run_test(notifications=True, size=SIZE) as pilot:
        await wait_for(pilot, lambda: played(app, 1) and app.connection_file is not None)
        await pilot.press("f1")
        attach = "jupyter console --existing /run/user/1/jupyter/kernel-abc.json"
        await wait_for(
            pilot, lambda: isinstance(app.screen, HelpScreen) and attach in screen_text(app)
        )
