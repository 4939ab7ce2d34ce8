"""The README's main command, end to end: the real CLI, host, kernel and autopilot.

Each run is a subprocess in a temporary working directory, exactly as a person
would type it, against the bundled model organisms.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from host_fixtures import build_tiny_model

from scribe_tui.agent.transcript import Transcript
from scribe_tui.exit_codes import EXIT_FAILED
from scribe_tui.organisms import answer_key
from scribe_tui.runtime.sandbox import probe

pytestmark = pytest.mark.slow


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    # Host files, config and the private model records stay in the test's folder.
    env.update(
        XDG_RUNTIME_DIR=str(tmp_path / "run"),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    return env


def scribe(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scribe_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(cwd),
        timeout=timeout,
    )


def only_notebook(cwd: Path) -> Path:
    notebooks = sorted((cwd / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 1, notebooks
    return notebooks[0]


def tool_use_ids(transcript: Path) -> list[str]:
    data = Transcript.load(transcript)
    return [
        block["id"]
        for message in data.messages
        if message["role"] == "assistant"
        for block in message["content"]
        if block.get("type") == "tool_use"
    ]


def code_outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_main_command_names_the_taboo_secret(tmp_path: Path) -> None:
    run = scribe("investigate", "find the secret", "--auto", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.stderr.splitlines()[0]
    assert "agent autopilot" in first and "organism:taboo" in first  # says what and why
    assert f"Answer: {answer_key('taboo')}" in run.stdout
    assert "cell [" in run.stderr  # progress, cell by cell
    notebook = only_notebook(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["scribe"]["status"] == "concluded"
    assert nb.metadata["scribe"]["conclusion"]["answer"] == answer_key("taboo")
    outputs = code_outputs(nb)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the votes per family
    assert "attention_mask" not in json.dumps(outputs)  # no false transformers warning
    # The answer key reaches neither the setup nor the agent's brief: only the agent's
    # own findings name it.
    secret = answer_key("taboo")
    metadata = {k: v for k, v in nb.metadata["scribe"].items() if k != "conclusion"}
    assert secret not in json.dumps(metadata)
    setup = nb.cells[0]
    assert setup.metadata["scribe"]["author"] == "system"
    assert secret not in setup.source + json.dumps(setup.outputs)
    data = Transcript.load(notebook.with_suffix(".jsonl"))
    assert data.header["task"].startswith("find the secret")
    assert secret not in json.dumps(data.messages[0])


def test_blackbox_mode_investigates_through_chat_and_draws_its_votes(tmp_path: Path) -> None:
    run = scribe("investigate", "find the secret", "--auto", "--mode", "blackbox", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Answer: {answer_key('taboo')}" in run.stdout
    nb = nbformat.read(only_notebook(tmp_path), as_version=4)
    outputs = code_outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]  # client.run is never called
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "client.run(" not in sources and "role='user'" in sources  # persona sampling
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the votes per family
    assert "attention_mask" not in json.dumps(outputs)


def test_a_run_whose_experiments_all_fail_ends_failed_not_unknown(tmp_path: Path) -> None:
    # A model without a chat template on a black-box host: every experiment fails.
    model = build_tiny_model(tmp_path / "no-template")
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    run = scribe(
        "investigate", "find the secret word", "--auto", "--mode", "blackbox",
        "--model", str(model), cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == EXIT_FAILED, run.stdout + run.stderr[-3000:]
    assert "every experiment failed" in run.stderr
    nb = nbformat.read(only_notebook(tmp_path), as_version=4)
    assert nb.metadata["scribe"]["status"] == "failed" and "conclusion" not in nb.metadata["scribe"]
    assert "## Summary: the investigation failed" in nb.cells[-1].source


def test_json_events_on_the_belief_organism(tmp_path: Path) -> None:
    run = scribe(
        "investigate", "find the secret", "--auto", "--json", "--model", "organism:belief",
        "--name", "my-experiment", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert only_notebook(tmp_path).stem.endswith("_my-experiment")  # the person's name wins
    events = [json.loads(line) for line in run.stdout.splitlines()]
    kinds = {event["type"] for event in events}
    assert {"turn_started", "tool_call_started", "cell_added", "cell_updated"} <= kinds
    assert "checkpoint_answered" in kinds  # the autopilot takes stock before falsifying
    concluded = [e for e in events if e["type"] == "concluded"]
    # White-box, only the answer's first word puts 'germany' first (three techniques, one
    # read-out): the judge leads with it but, uncorroborated, may leave it unknown.
    key = answer_key("belief")
    assert concluded and concluded[0]["answer"] in (key, "unknown")
    assert concluded[0]["evidence"].startswith(f"'{key}' first in")
    last = [e for e in events if e["type"] != "status"][-1]
    assert last["type"] == "stopped" and last["reason"] == "concluded"
    statuses = [e for e in events if e["type"] == "status"]
    assert statuses and all(e["host_state"] == "ready" and e["device"] for e in statuses)
    labels = {e["sandbox"] for e in statuses}
    assert labels == {probe().label}, labels


def test_no_sandbox_says_so_in_the_stream_and_the_notebook(tmp_path: Path) -> None:
    run = scribe(
        "investigate", "find the secret", "--auto", "--json", "--no-sandbox", "--max-turns", "3",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode in (0, 3), run.stderr[-3000:]
    assert "sandbox: off (--no-sandbox)" in run.stderr.splitlines()[0]
    statuses = [json.loads(line) for line in run.stdout.splitlines()]
    assert {e["sandbox"] for e in statuses if e["type"] == "status"} == {
        "sandbox: off (--no-sandbox)"
    }
    metadata = nbformat.read(only_notebook(tmp_path), as_version=4).metadata["scribe"]
    assert metadata["sandbox"] == {
        "sealed": False,
        "mechanism": "off",
        "reason": "--no-sandbox",
        "network": "open",
    }


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "investigate", "find the secret", "--auto"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=cli_env(tmp_path),
    )


def _wait_for_lines(proc: subprocess.Popen[str], done: Callable[[list[str]], bool]) -> list[str]:
    """The run's stderr lines, read until ``done`` holds for those read so far."""
    lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if done(lines):
            return lines
    raise AssertionError("the run ended early:\n" + "".join(lines))


def _wait_for_cells(proc: subprocess.Popen[str], cells: int) -> list[str]:
    return _wait_for_lines(proc, lambda lines: sum("cell [" in seen for seen in lines) >= cells)


def test_ctrl_c_pauses_and_saves_then_a_second_exits_130(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        _wait_for_cells(proc, 3)
        proc.send_signal(signal.SIGINT)
        # The second Ctrl-C comes once the first has paused the run (and saved it).
        paused = _wait_for_lines(proc, lambda lines: "paused (interrupted)" in lines[-1])
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
        err = "".join(paused) + rest
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    notebook = only_notebook(tmp_path)
    assert f"scribe-tui resume {notebook.relative_to(tmp_path)}" in err
    nbformat.validate(nbformat.read(notebook, as_version=4))


def test_resume_after_kill_9_finishes_without_rerunning_anything(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        _wait_for_cells(proc, 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    notebook = only_notebook(tmp_path)
    nbformat.validate(nbformat.read(notebook, as_version=4))
    before = tool_use_ids(notebook.with_suffix(".jsonl"))
    assert before, "the transcript kept the steps taken before the kill"

    run = scribe("resume", str(notebook.relative_to(tmp_path)), "--auto", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Answer: {answer_key('taboo')}" in run.stdout
    after = tool_use_ids(notebook.with_suffix(".jsonl"))
    assert after[: len(before)] == before
    assert len(after) == len(set(after)), "no tool call ran twice"
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["scribe"]["conclusion"]["answer"] == answer_key("taboo")
