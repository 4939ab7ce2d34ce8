"""End to end in a real terminal: tmux runs ``scribe-tui investigate`` (the TUI, the autopilot,
the bundled organism); the test pauses, edits a cell, redirects, resumes and quits, reading
the screen as a person would and then the saved notebook.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow
MARK = "edited-by-e2e"


class Tmux:
    """One detached tmux session running a command, read with capture-pane."""

    def __init__(self, command: str, cwd: Path, width: int = 140, height: int = 45) -> None:
        self.name = f"scribe-e2e-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                "-c",
                str(cwd),
                command,
            ],
            check=True,
            env=env,
        )
        # Keep the pane after the app exits, so what it printed can be read.
        subprocess.run(["tmux", "set-option", "-t", self.name, "remain-on-exit", "on"], check=True)

    def screen(self) -> str:
        result = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout

    def send(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(
            ["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True
        )
        time.sleep(0.2)

    def type(self, text: str) -> None:
        self.send(text, literal=True)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")
            time.sleep(0.25)

    def dead(self) -> bool:
        result = subprocess.run(
            ["tmux", "display-message", "-p", "-t", self.name, "#{pane_dead}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() == "1"

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False, capture_output=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def tmux_session(workdir: Path) -> Iterator[Callable[[str], Tmux]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed; the end-to-end test needs it")
    sessions: list[Tmux] = []

    def start(command: str) -> Tmux:
        session = Tmux(command, workdir)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.kill()


def _executed_cells(folder: Path) -> int:
    for path in folder.glob("*.ipynb"):
        try:
            cells = nbformat.read(path, as_version=4).cells
        except (OSError, ValueError):
            return 0  # being replaced this instant; ask again
        return sum(1 for c in cells if c.cell_type == "code" and c.get("execution_count"))
    return 0


def _delivered(folder: Path) -> bool:
    """The transcript records the queued message as delivered to the agent."""
    for path in folder.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if '"message_delivered"' in line and "Try the logit lens next." in line:
                return True
    return False


def _decision(folder: Path, number: int) -> str | None:
    """The decision the transcript records for checkpoint ``number``, if any yet."""
    for path in folder.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if '"checkpoint_decided"' not in line:
                continue
            try:
                event = json.loads(line)["event"]
            except ValueError:
                continue  # being written this instant; read again
            if event["number"] == number:
                return str(event["decision"])
    return None


def _command(*args: str) -> str:
    return " ".join(shlex.quote(part) for part in [sys.executable, "-m", "scribe_tui", *args])


def test_steer_an_investigation_in_a_real_terminal(
    workdir: Path, tmux_session: Callable[[str], Tmux]
) -> None:
    notebooks = workdir / "notebooks"
    command = _command(
        "investigate",
        "find the secret",
        "--agent",
        "autopilot",
        "--notebooks-dir",
        str(notebooks),
        "--checkpoint-every",
        "0",
    )
    tui = tmux_session(command)

    # The first frame comes fast; the first cell once the organism is loaded. The file
    # is watched, not the screen: the pane follows the newest cell and may have moved on.
    tui.wait_for(lambda s: "Notebook · find the secret" in s, "the TUI", timeout=20)
    tui.wait_for(lambda s: _executed_cells(notebooks) >= 1, "the first executed cell", 180)

    tui.type("/pause")
    tui.send("Enter")
    tui.wait_for(lambda s: "‖ paused" in s, "the paused state")

    # Edit cell [1] in the in-app editor: append a line, run it with Ctrl+S.
    tui.type("/edit 1")
    tui.send("Enter")
    tui.wait_for(lambda s: "Edit cell [1]" in s, "the cell editor")
    tui.send("Enter")
    tui.type(f"print('{MARK}')")
    tui.send("C-s")
    tui.wait_for(lambda s: "edited by you" in s, "the edited cell", timeout=120)

    tui.type("Try the logit lens next.")
    tui.send("Enter")
    tui.wait_for(lambda s: "(queued) Try the logit lens next." in s, "the queued message")

    tui.type("/resume")
    tui.send("Enter")
    tui.wait_for(lambda s: "● running" in s or "✓ concluded" in s, "the agent running again")
    tui.wait_for(
        lambda s: "(delivered) Try the logit lens next." in s or _delivered(notebooks),
        "the message delivered",
        timeout=180,
    )

    tui.send("C-q")
    final = tui.wait_for(
        lambda s: tui.dead() and ("scribe-tui resume" in s or "Concluded:" in s),
        "the app to exit and say how to resume",
        timeout=60,
    )

    saved = sorted(notebooks.glob("*.ipynb"))
    assert saved, f"no notebook saved in {notebooks}; screen:\n{final}"
    notebook = nbformat.read(saved[-1], as_version=4)
    nbformat.validate(notebook)
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert any(MARK in source for source in sources), sources
    if "scribe-tui resume" in final:
        assert str(saved[-1].name) in final.replace("\n", "")


def test_approve_checkpoints_in_a_real_terminal(
    workdir: Path, tmux_session: Callable[[str], Tmux]
) -> None:
    """--confirm-checkpoints: the run waits at each checkpoint. The person approves one, quits
    while the next waits; a headless resume refuses in one line instead of waiting, and a
    resume in the TUI shows the checkpoint waiting again (its card rebuilt at once), where
    the person lets the run continue to its conclusion."""
    notebooks = workdir / "notebooks"
    run = ("--agent", "autopilot", "--checkpoint-every", "4", "--confirm-checkpoints")
    tui = tmux_session(
        _command("investigate", "find the secret", "--notebooks-dir", str(notebooks), *run)
    )
    tui.wait_for(lambda s: "CHECKPOINT 1 · WAITING FOR YOU" in s, "checkpoint 1 to wait", 240)
    tui.send("a")
    # Read from the transcript: the run may be at the next checkpoint before the screen shows
    # the first one's decision, and that card is folded away by then.
    tui.wait_for(lambda s: _decision(notebooks, 1) == "approve", "the approval recorded")
    tui.wait_for(lambda s: "CHECKPOINT 2 · WAITING FOR YOU" in s, "checkpoint 2 to wait", 240)
    tui.send("C-q")
    final = tui.wait_for(lambda s: tui.dead(), "the app to exit", timeout=60)
    assert "Traceback" not in final and "scribe-tui resume" in final, final

    saved = sorted(notebooks.glob("*.ipynb"))
    assert len(saved) == 1, final
    nbformat.validate(nbformat.read(saved[0], as_version=4))
    headless = subprocess.run(
        [sys.executable, "-m", "scribe_tui", "resume", str(saved[0]), "--auto"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert headless.returncode == 2, headless.stderr
    lines = headless.stderr.strip().splitlines()
    assert len(lines) == 1 and "checkpoint 2" in lines[0] and "without --auto" in lines[0]

    resumed = tmux_session(_command("resume", str(saved[0]), *run[:2]))
    resumed.wait_for(lambda s: "CHECKPOINT 2 · WAITING FOR YOU" in s, "checkpoint 2 again", 240)
    for later in range(3, 10):  # the resumed run keeps its setting: it waits at each one
        resumed.send("c")
        screen = resumed.wait_for(
            lambda s, n=later: "✓ concluded" in s or f"CHECKPOINT {n} · WAITING FOR YOU" in s,
            f"the conclusion or checkpoint {later}",
            240,
        )
        if "✓ concluded" in screen:
            break
    # The host stops with the run; the status bar still says what it ran on.
    resumed.wait_for(lambda s: "cpu │ host stopped │" in s, "the host to stop", 60)
    resumed.send("C-q")
    final = resumed.wait_for(lambda s: resumed.dead(), "the app to exit", timeout=60)
    assert "Concluded:" in final and "Traceback" not in final, final
