"""``scribe-tui bench`` end to end: the real CLI, hosts, sealed kernels, autopilot and scorer.

Each bench is a subprocess in a temporary directory, as a person would type it;
the Claude bench runs in-process against the loopback Messages API server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from fake_anthropic import (
    FakeAnthropic,
    Turn,
    fake_anthropic_fixture,  # noqa: F401
    tool_use,
)
from test_investigate_e2e import cli_env

from scribe_tui.bench.grid import build_grid, expand
from scribe_tui.bench.report import METHODOLOGY_NOTE, load_results, write_report
from scribe_tui.bench.runner import BenchRunner
from scribe_tui.integrity import signed
from scribe_tui.organisms.keys import answer_key_record
from scribe_tui.organisms.registry import list_organisms

pytestmark = pytest.mark.slow


def bench(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scribe_tui", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(cwd),
        timeout=timeout,
    )


def wait_for_a_result(out: Path, proc: subprocess.Popen) -> None:
    """Until the bench in ``proc`` has scored one run (it must not exit first)."""
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while not (results.exists() and results.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, "no run finished"
        time.sleep(0.1)


def test_bench_over_the_bundled_organisms_scores_reports_and_resumes(tmp_path: Path) -> None:
    args = ("--axis", "organism=taboo,taboo-4", "--jobs", "2", "--out", "out", "--json")
    run = bench(*args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    finished = [e["row"] for e in events if e["type"] == "run_finished"]
    assert len(finished) == 2
    summary = events[-1]
    assert summary["type"] == "bench_finished" and summary["model_loads"] == 2  # one per organism

    out = tmp_path / "out"
    rows = load_results(out)
    assert {r["axes"]["organism"] for r in rows} == {"taboo", "taboo-4"}
    for row in rows:
        assert row["correct"] is True and row["exit"] == "concluded", row
        assert row["sealed"] is True and row["sandbox"].startswith("sandbox: landlock")
        assert row["cells"] >= 5 and row["turns"] > 5 and row["wall_s"] > 0
        notebook = out / row["notebook"]
        nbformat.validate(nbformat.read(notebook, as_version=4))
        assert notebook.parent == out / "runs" / row["run_id"]
    report = (out / "report.md").read_text()
    assert "![accuracy and reliability](report.png)" in report and "## Reliability" in report
    for row in rows:
        assert f"]({row['notebook']})" in report  # one click from the table to the notebook
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = bench(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert events[0] == {"type": "bench_started", "total": 2, "done": 2, "jobs": 2}
    assert not [e for e in events if e["type"] == "run_started"]
    assert len(load_results(out)) == 2

    table = bench("report", "out", cwd=tmp_path)
    assert table.returncode == 0 and "taboo-4" in table.stdout


def test_a_bench_killed_mid_run_resumes_without_redoing_finished_runs(tmp_path: Path) -> None:
    args = ["--axis", "organism=taboo", "--repeat", "2", "--jobs", "1", "--out", "out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "bench", *args],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_a_result(tmp_path / "out", proc)
        os.killpg(proc.pid, signal.SIGKILL)  # the bench, its kernels and its host
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # Moved before resuming: the unfinished run's transcript names its old notebook path.
    (tmp_path / "out").rename(tmp_path / "moved")
    first = load_results(tmp_path / "moved")
    assert len(first) == 1
    first_notebook = tmp_path / "moved" / first[0]["notebook"]
    saved = first_notebook.read_bytes()

    run = bench(*args[:-1], "moved", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = load_results(tmp_path / "moved")
    assert len(rows) == 2 and all(r["correct"] for r in rows)
    assert first_notebook.read_bytes() == saved  # the finished run was not redone
    assert "1 already done" in run.stderr


def test_ctrl_c_keeps_finished_runs_scored_and_leaves_the_rest_to_resume(tmp_path: Path) -> None:
    args = ["--axis", "organism=taboo", "--repeat", "3", "--jobs", "1", "--out", "out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "bench", *args],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_a_result(tmp_path / "out", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command to resume the rest" in err.splitlines()[-1]
    scored = load_results(tmp_path / "out")
    assert 1 <= len(scored) < 3 and all(r["correct"] for r in scored)


def test_dry_run_prints_the_grid_and_runs_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[grid]\nagent = ["autopilot"]\norganism = ["taboo", "belief"]\n'
        'methodology = ["on", "off"]\n\n[run]\nrepeat = 3\nout = "b"\n'
    )
    run = bench(str(spec), "--axis", "mode=whitebox,blackbox", "--dry-run", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "24 runs = 8 grid cells × 3 repeat(s)" in run.stdout
    assert "methodology       on, off" in run.stdout
    assert METHODOLOGY_NOTE in run.stdout  # the autopilot ignores the axis: said, not faked
    assert not (tmp_path / "b").exists()


def test_bench_usage_shows_bench_report(tmp_path: Path) -> None:
    run = bench("--help", cwd=tmp_path)
    assert "scribe-tui bench report DIR" in run.stdout
    run = bench("--bogus", cwd=tmp_path)  # one line that points to that help
    assert run.returncode == 2 and run.stderr == (
        "scribe-tui bench: unrecognized arguments: --bogus; see scribe-tui bench --help\n"
    )


def test_run_ids_name_the_axis_of_every_value_off_its_default() -> None:
    grid = build_grid({}, [("methodology", ["on", "off"]), ("max_turns", ["5"])])
    on, off = (run.run_id for run in expand(grid, 1))
    assert on.startswith("autopilot_taboo_whitebox_max-turns=5_r0_")
    assert off.startswith("autopilot_taboo_whitebox_methodology=off_max-turns=5_r0_")
    # Defaults stay out, so the runs of a plain grid keep their ids when an axis is added.
    (plain,) = expand(build_grid({}, []), 1)
    assert plain.run_id.startswith("autopilot_taboo_whitebox_r0_")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--axis", "colour=red"], "unknown axis 'colour'"),
        (["--axis", "agent=gpt"], "agent 'gpt': use autopilot, claude or claude:MODEL"),
        (["--axis", "mode=greybox"], "mode 'greybox': use whitebox or blackbox"),
        (["--axis", "organism=nope"], "unknown organism 'nope'"),
        (["--axis", "seed=x"], "seed 'x' is not a number"),
        (["--axis", "agent"], "write KEY=V1,V2"),
        (["--repeat", "0"], "--repeat must be at least 1, got 0"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["missing.toml"], "cannot read the spec missing.toml"),
        (["bad.toml"], "bad.toml is not valid TOML"),
        (["--axis", "organism=keyless"], "has no answer key, so runs on it cannot be scored"),
        (["--axis", "agent=claude"], "agent claude needs ANTHROPIC_API_KEY"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_runs_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.toml").write_text("[grid\n")
    keyless = tmp_path / "keyless"
    keyless.mkdir()
    (keyless / "organism.json").write_text(
        json.dumps({"kind": "taboo", "task": "find the secret", "description": "x", "id": "f" * 32})
    )
    args = [a.replace("keyless", str(keyless)) for a in args]
    run = bench(*args, "--out", "o", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr
    assert not (tmp_path / "o").exists()


def test_report_of_a_partial_bench(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    row = {
        "run_id": "autopilot_taboo_whitebox_r0_abc123",
        "axes": {"agent": "autopilot", "organism": "taboo", "mode": "whitebox", "repeat": 0},
        "answer": "violin",
        "confidence": 0.8,
        "correct": True,
        "abstained": False,
        "control": False,
        "false_positive": False,
        "exit": "concluded",
        "notebook": "runs/autopilot_taboo_whitebox_r0_abc123/a.ipynb",
        "sandbox": "sandbox: landlock (ABI 7)",
        "sealed": True,
        "error": None,
        "scored": True,
    }
    failed = {**row, "run_id": "autopilot_taboo_whitebox_r1_def456", "answer": None}
    failed.update(exit="failed", error="the model host exited", correct=None, notebook=None)
    lines = [json.dumps(signed(row)), json.dumps(signed(failed)), '{"run_id": "half-writ']
    (out / "results.jsonl").write_text("\n".join(lines))
    run = bench("report", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "taboo" in run.stdout
    report = (out / "report.md").read_text()
    assert "runs/autopilot_taboo_whitebox_r0_abc123/a.ipynb" in report
    assert "the model host exited" in report


def test_report_by_one_axis_pools_the_others(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    rows = []
    for n, organism, correct in ((1, "taboo", True), (1, "belief", False), (5, "taboo", True)):
        axes = {"agent": "autopilot", "organism": organism, "investigators": n, "repeat": 0}
        rows.append(
            {"run_id": f"r{n}{organism}", "axes": axes, "answer": "x", "confidence": 0.8,
             "correct": correct, "abstained": False, "control": False, "false_positive": False,
             "exit": "concluded", "notebook": None, "sandbox": "", "sealed": True, "error": None,
             "scored": True}
        )  # fmt: skip
    (out / "results.jsonl").write_text("\n".join(json.dumps(signed(row)) for row in rows))
    run = bench("report", str(out), "--by", "investigators", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    table = [line.split() for line in run.stdout.splitlines() if line[:1] in ("1", "5")]
    assert [(row[0], row[1]) for row in table] == [("1", "2"), ("5", "1")]  # organisms pooled
    assert "| investigators | n |" in (out / "report.md").read_text()
    wrong = bench("report", str(out), "--by", "investigator", cwd=tmp_path)
    assert wrong.returncode == 2 and "its axes: agent, investigators, organism" in wrong.stderr


async def test_claude_bench_over_the_loopback_api(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-bench-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    technique = (
        "def prefill(model, tokenizer):\n    return 'ran in the host'\nprint(client.run(prefill))\n"
    )

    def turn(*blocks: dict) -> Turn:
        return Turn(list(blocks), stop_reason="tool_use")

    fake_anthropic.script(
        turn(tool_use("t1", "start_new_session", {"experiment_name": "bench"})),
        turn(tool_use("t2", "init_session", {"session_id": "s1"})),
        turn(tool_use("t3", "execute_code", {"session_id": "s1", "code": technique})),
        turn(
            tool_use(
                "t4",
                "conclude",
                {"session_id": "s1", "answer": "Violins", "confidence": 0.7, "evidence": "x"},
            )
        ),
    )
    grid = build_grid({}, [("agent", ["claude:claude-sonnet-4-6"]), ("checkpoint_every", ["0"])])
    runner = BenchRunner(tmp_path / "out", expand(grid, 1), jobs=1)
    rows = await runner.run()
    assert len(rows) == 1
    row = rows[0]
    assert row["exit"] == "concluded" and row["answer"] == "Violins"
    assert row["correct"] is True  # normalised: case and plural
    assert row["input_tokens"] > 0 and row["cost_usd"] > 0
    notebook = nbformat.read(tmp_path / "out" / row["notebook"], as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in notebook.cells])
    assert "ran in the host" in outputs
    assert len(fake_anthropic.requests) == 4


async def test_claude_bench_scores_a_control_and_a_budget_exit(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a control, ``none`` is right; running out of budget is no answer, never right."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-bench-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    control = next(info.name for info in list_organisms() if answer_key_record(info.name).control)

    def turn(block: dict) -> Turn:
        return Turn([block], stop_reason="tool_use")

    def opening(run: str) -> list[Turn]:
        return [
            turn(tool_use(f"{run}1", "start_new_session", {"experiment_name": "bench"})),
            turn(tool_use(f"{run}2", "init_session", {"session_id": "s1"})),
        ]

    none = {"session_id": "s1", "answer": "none", "confidence": 0.8, "evidence": "no word"}
    fake_anthropic.script(
        # One run at a time: the first concludes in its last turn, the second does not.
        *opening("a"),
        turn(tool_use("a3", "conclude", none)),
        *opening("b"),
        turn(tool_use("b3", "execute_code", {"session_id": "s1", "code": "print(1)"})),
    )
    grid = build_grid(
        {},
        [
            ("agent", ["claude:claude-sonnet-4-6"]),
            ("organism", [control]),
            ("checkpoint_every", ["0"]),
            ("max_turns", ["2"]),  # the budget notice gives one turn more
        ],
    )
    out = tmp_path / "out"
    await BenchRunner(out, expand(grid, 2), jobs=1).run()
    concluded, spent = sorted(load_results(out), key=lambda row: row["exit"] != "concluded")
    assert concluded["exit"] == "concluded" and concluded["control"] is True
    assert (concluded["claim"], concluded["correct"], concluded["false_positive"]) == (
        "none",
        True,
        False,
    )
    assert spent["exit"] == "budget" and spent["answer"] is None and spent["error"] is None
    assert (spent["claim"], spent["correct"], spent["abstained"]) == (None, None, False)

    text = write_report(out).read_text()
    assert "Runs: 2 done; 1 answered, 0 unknown, 1 without an answer, 0 failed." in text
    # n, fail, no answer, unknown, coverage, accuracy, Brier, FP ctrl, unsealed
    assert "| 2 | 0 | 1 | 0 | 0.50 | 1.00 [0.21–1.00] | 0.04 | 0.00 | 0 |" in text
    assert "⏹ no answer · exit: budget" in text and "| 0.8–0.9 | 1 | 0.80 | 1.00 |" in text
