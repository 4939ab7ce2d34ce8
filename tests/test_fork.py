"""Forks, end to end: an autopilot investigation branched from one of its cells.

The fork's kernel is rebuilt by re-running cells 1..N, the agent gets the
conversation up to that cell plus the person's message, and it carries on in a new
notebook; the original is left exactly as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from scribe_tui.agent.transcript import Transcript
from scribe_tui.organisms import answer_key

pytestmark = pytest.mark.slow


def scribe(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(
        XDG_RUNTIME_DIR=str(cwd / "run"),
        XDG_CONFIG_HOME=str(cwd / "cfg"),
        XDG_DATA_HOME=str(cwd / "data"),
    )
    (cwd / "run").mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "scribe_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def code_sources(nb: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_fork_rebuilds_the_kernel_and_hands_the_agent_the_message(tmp_path: Path) -> None:
    run = scribe("investigate", "find the secret", "--auto", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    (original,) = sorted((tmp_path / "notebooks").glob("*.ipynb"))
    recorded = original.read_bytes()
    before = nbformat.read(original, as_version=4)
    at = 5
    message = "Skip ahead: run the logit lens next."
    fork = scribe("fork", str(original), "--at", str(at), "--message", message, "--auto",
                  cwd=tmp_path)  # fmt: skip
    assert fork.returncode == 0, fork.stderr[-3000:]
    assert f"forked {original} at cell [{at}] into " in fork.stderr
    assert f"Answer: {answer_key('taboo')}" in fork.stdout
    assert original.read_bytes() == recorded  # the original is untouched
    (path,) = [p for p in (tmp_path / "notebooks").glob("*.ipynb") if p != original]
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    scribe_meta = nb.metadata["scribe"]
    assert scribe_meta["forked_from"] == str(original) and scribe_meta["forked_at"] == at
    assert scribe_meta["status"] == "concluded" and "fork" in path.name
    assert scribe_meta["receipt"]["completed"]["outcome"] == "concluded"
    # Cells 1..N as they were, then the fork's own work.
    sources = code_sources(nb)
    assert sources[:at] == code_sources(before)[:at] and len(sources) > at
    # The kernel was rebuilt to cell N: the cells after it ran on its variables.
    for cell in [c for c in nb.cells if c.cell_type == "code"][at:]:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    data = Transcript.load(path.with_suffix(".jsonl"))
    assert data.header["forked_from"] == str(original) and data.header["forked_at"] == at
    delivered = [e for e in data.events if e.type == "message_delivered"]
    assert delivered and delivered[0].texts == [message]
    # The agent saw the conversation up to cell N, not what the original did after it.
    copied = []
    for record in data.records:
        if record["kind"] == "steer":
            break  # the person's message closes what the fork was handed
        if record["kind"] == "message":
            copied.append(record["message"])
    codes = [
        block["input"].get("code")
        for said in copied
        if said["role"] == "assistant"
        for block in said["content"]
        if block.get("type") == "tool_use"
    ]
    assert code_sources(before)[at - 1] in codes and code_sources(before)[at] not in codes
