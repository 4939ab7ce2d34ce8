"""Parallel investigators end to end: real host, real sealed kernels, real notebooks.

Three autopilot investigators through the CLI (one model load, three notebooks,
an aggregate notebook); kill -9 mid-run, then ``resume``; and three scripted
Claude investigators through the real SDK against the loopback Messages API, who
disagree, so that the aggregator adjudicates with a cell of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fake_anthropic import (
    FakeAnthropic,
    Reply,
    Turn,
    fake_anthropic_fixture,  # noqa: F401
    tool_use,
)
from test_investigate_e2e import cli_env, scribe

from scribe_tui.agent.launch import RunSettings
from scribe_tui.agent.loop import InvestigationConfig
from scribe_tui.agent.parallel import ParallelRun
from scribe_tui.organisms.keys import answer_key

pytestmark = pytest.mark.slow
TASK = "find the secret word"


def _aggregate_folder(root: Path) -> Path:
    (folder,) = [p.parent for p in root.rglob("aggregate.json")]
    return folder


def _notebooks(folder: Path) -> dict[str, Path]:
    """The investigators' notebooks by id, and the aggregate's as ``aggregate``."""
    found = {p.parent.name: p for p in folder.glob("i*/*.ipynb")}
    for notebook in folder.glob("*.ipynb"):
        found["aggregate"] = notebook
    return found


def _scribe(notebook: Path) -> dict[str, Any]:
    return json.loads(notebook.read_text())["metadata"]["scribe"]


def test_three_autopilot_investigators_share_one_host_and_aggregate(tmp_path: Path) -> None:
    run = scribe(
        "investigate", TASK, "--auto", "--investigators", "3", "--json", "--agent", "autopilot",
        "--notebooks-dir", "nb", cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert events and all("investigator" in event for event in events)
    assert {e["investigator"] for e in events} == {"i1", "i2", "i3", "aggregate"}
    summary = events[-1]
    assert summary["type"] == "aggregate_finished" and summary["model_loads"] == 1
    key = answer_key("taboo")
    assert summary["answer"] == key

    folder = _aggregate_folder(tmp_path)
    notebooks = _notebooks(folder)
    assert sorted(notebooks) == ["aggregate", "i1", "i2", "i3"]
    strategies = set()
    for ident in ("i1", "i2", "i3"):
        meta = _scribe(notebooks[ident])
        assert meta["status"] == "concluded" and meta["investigator"]["id"] == ident
        strategies.add(meta["investigator"]["strategy"])
        nbformat.validate(nbformat.read(notebooks[ident], as_version=4))
    assert len(strategies) == 3
    aggregate = nbformat.read(notebooks["aggregate"], as_version=4)
    nbformat.validate(aggregate)
    text = "\n".join(cell.source for cell in aggregate.cells)
    for ident in ("i1", "i2", "i3"):
        link = notebooks[ident].relative_to(folder).as_posix()
        assert f"[{ident}]({link})" in text  # the claims table links every notebook
    assert "Aggregation rule" not in text and "S(w) > A(w)" in text  # the rule, stated
    assert _scribe(notebooks["aggregate"])["conclusion"]["answer"] == key
    # Headless lines: one per investigator, then the verdict.
    for ident in ("i1", "i2", "i3"):
        assert f"  {ident}   " in run.stderr

    # `reproduce` of the aggregate re-executes every notebook in it, each beside its original.
    again = scribe("reproduce", str(notebooks["aggregate"]), cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Aggregate: 4 of 4 notebooks reproduced" in again.stdout
    # They ran on one shared host and re-run on one: the model loads once for all four.
    assert again.stderr.count("loading: loading weights") == 1, again.stderr
    assert again.stderr.count("on the aggregate's model host") == 4
    for notebook in notebooks.values():
        assert notebook.with_name(notebook.stem + ".reproduced.ipynb").is_file()
    # Its verdict is drawn from the investigators' claims: fork refuses it and says what to fork.
    refused = scribe("fork", str(notebooks["aggregate"]), "--at", "1", "--auto", cwd=tmp_path)
    assert refused.returncode == 2 and "fork one of them instead" in refused.stderr
    assert f"scribe-tui fork {notebooks['i1']} --at N" in refused.stderr
    assert not [p for p in folder.rglob("*.ipynb") if "fork" in p.name]


def test_three_autopilot_investigators_vote_on_the_induction_circuit(tmp_path: Path) -> None:
    """Rule 6 end to end: the verdict is a set of components, concluded as one, which the
    bench scores (as its investigators axis reads the aggregate notebook)."""
    from scribe_tui.bench.parallel_runs import _structured_claim
    from scribe_tui.bench.scoring import score
    from scribe_tui.organisms.keys import answer_key_record

    task = "which attention heads let this model copy repeated text"
    run = scribe(
        "investigate", task, "--model", "organism:induction-1", "--auto", "--investigators",
        "3", "--json", "--agent", "autopilot", "--notebooks-dir", "nb", cwd=tmp_path,
        timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.splitlines()[-1])
    assert summary["type"] == "aggregate_finished" and summary["model_loads"] == 1
    notebooks = _notebooks(_aggregate_folder(tmp_path))
    aggregate = nbformat.read(notebooks["aggregate"], as_version=4)
    nbformat.validate(aggregate)
    # Voted on, not adjudicated: the only code cell is the session's setup.
    assert [c.metadata["scribe"]["author"] for c in aggregate.cells if c.cell_type == "code"] == [
        "system"
    ]
    assert "S(x) > A(x)" in "\n".join(c.source for c in aggregate.cells)
    conclusion = aggregate.metadata["scribe"]["conclusion"]
    claimed = _structured_claim(notebooks["aggregate"])
    assert claimed["components"] == conclusion["components"] and conclusion["components"]
    assert aggregate.metadata["scribe"]["layout"] == {"layers": 2, "heads": 4}
    result = score(
        conclusion["answer"],
        answer_key_record("induction-1"),
        components=claimed["components"],
        organism="induction-1",
    )
    assert result.claim == "named" and result.circuit.f1 >= 0.8, result
    print(f"VERDICT {conclusion['components']} {conclusion['confidence']} {result.circuit}")


def _status(notebook: Path) -> str:
    try:
        return str(_scribe(notebook).get("status"))
    except (OSError, ValueError, KeyError):
        return "?"


def test_kill_9_then_resume_redoes_no_finished_investigator(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "investigate", TASK, "--auto", "--agent",
         "autopilot", "--investigators", "3", "--notebooks-dir", "nb"],
        cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while True:
            assert proc.poll() is None, "the run ended before any investigator concluded"
            assert time.monotonic() < deadline, "no investigator concluded"
            found = list(tmp_path.glob("nb/*/i*/*.ipynb"))
            if any(_status(p) == "concluded" for p in found):
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its host and its kernels at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    folder = _aggregate_folder(tmp_path)
    before = {k: p for k, p in _notebooks(folder).items() if k != "aggregate"}
    finished = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in before.items()
                if _status(p) == "concluded"}  # fmt: skip
    assert finished and len(finished) < 3, "the kill landed mid-run"

    run = scribe("resume", str(folder.relative_to(tmp_path)), "--auto", cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Answer:" in run.stdout
    after = _notebooks(folder)
    for ident, digest in finished.items():
        assert hashlib.sha256(after[ident].read_bytes()).hexdigest() == digest, ident
        assert f"[{ident}]" not in run.stderr  # nothing of it ran again
    assert all(_status(after[k]) == "concluded" for k in ("i1", "i2", "i3", "aggregate"))
    nbformat.validate(nbformat.read(after["aggregate"], as_version=4))


# -- Claude ---------------------------------------------------------------------------


def _first_user(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)


ADJUDICATE = """from scribe_tui.techniques import word_probs
found = client.run(word_probs, prompt='What is your secret word?', words=['violin', 'piano'],
                   prefill='My secret word is')
print({w: round(v['log_probability'], 2) for w, v in found.items()})
"""


def _claude(body: dict[str, Any]) -> Turn:
    """Each investigator by its strategy; the aggregator by its brief (both in the task)."""
    system = _first_user(body)
    step = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if "You are the aggregator" in system:
        who = "agg"
        script: list[tuple[str, dict[str, Any]]] = [
            ("start_new_session", {"experiment_name": "aggregate"}),
            ("init_session", {"session_id": "s1"}),
            ("execute_code", {"session_id": "s1", "code": ADJUDICATE}),
            ("add_markdown", {"session_id": "s1", "content": "Adjudicated: violin is likelier."}),
            ("conclude", {"answer": "violin", "confidence": 0.6, "evidence": "adjudication"}),
        ]
    else:
        who, answer, confidence = next(
            (f"i{k}", answer, confidence)
            for k, (name, answer, confidence) in enumerate(
                [
                    ("black-box first", "violin", 0.7),
                    ("white-box first", "piano", 0.6),
                    ("diffing first", "none", 0.5),
                ],
                start=1,
            )
            if f"({name})" in system
        )
        script = [
            ("start_new_session", {"experiment_name": "x"}),
            ("init_session", {"session_id": "s1"}),
            ("conclude", {"answer": answer, "confidence": confidence, "evidence": who}),
        ]
    name, arguments = script[step]
    return Turn([tool_use(f"{who}_{step}", name, arguments)], stop_reason="tool_use")


async def test_claude_investigators_disagree_and_the_aggregator_adjudicates(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parallel-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    fake_anthropic.script(*[Reply(_claude) for _ in range(3 * 3 + 5)])
    settings = RunSettings(
        task=TASK,
        agent="claude",
        model="organism:taboo",
        claude_model="claude-sonnet-4-6",
        notebooks_dir=tmp_path / "nb",
        config=InvestigationConfig(checkpoint_every=0),
    )
    outcome = await ParallelRun.create(settings, 3).run()
    assert outcome.reason == "concluded", outcome
    assert (outcome.answer, outcome.confidence) == ("violin", 0.6)
    assert outcome.model_loads == 1 and outcome.cost_usd > 0
    assert {c.id: c.answer for c in outcome.claims} == {"i1": "violin", "i2": "piano", "i3": "none"}
    assert fake_anthropic.pending == 0

    aggregator = [b for b in fake_anthropic.requests if "You are the aggregator" in _first_user(b)]
    opening = _first_user(aggregator[0])
    for said in ("| violin (named) | 0.70", "| piano (named) | 0.60", "| none (none) | 0.50"):
        assert said in opening  # the claims table, not the investigators' notebooks
    strategies = {
        s for b in fake_anthropic.requests for s in ("black-box", "white-box", "diffing")
        if f"({s} first)" in _first_user(b)
    }  # fmt: skip
    assert strategies == {"black-box", "white-box", "diffing"}

    notebook = nbformat.read(outcome.notebook, as_version=4)
    nbformat.validate(notebook)
    adjudication = next(c for c in notebook.cells if "word_probs" in c.source)
    printed = "".join(o.get("text", "") for o in adjudication.outputs)
    assert "'violin':" in printed and "'piano':" in printed  # it ran on the shared host
    assert notebook.metadata.scribe["aggregate"]["investigators"].keys() == {"i1", "i2", "i3"}


def _agreeing(body: dict[str, Any]) -> Turn:
    """Every investigator (and a lone run) names violin; the aggregator concludes so."""
    aggregator = "You are the aggregator" in _first_user(body)
    step = sum(1 for m in body["messages"] if m["role"] == "assistant")
    answer = {"answer": "violin", "confidence": 0.8 if aggregator else 0.7, "evidence": "x"}
    script = [
        ("start_new_session", {"experiment_name": "x"}),
        ("init_session", {"session_id": "s1"}),
        ("conclude", answer),
    ]
    name, arguments = script[step]
    return Turn([tool_use(f"t{step}", name, arguments)], stop_reason="tool_use")


async def test_the_bench_investigators_axis_scores_one_verdict_per_run(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scribe_tui.bench.grid import build_grid, expand
    from scribe_tui.bench.report import load_results, write_report
    from scribe_tui.bench.runner import BenchRunner

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parallel-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    fake_anthropic.script(*[Reply(_agreeing) for _ in range(3 + 3 * 3 + 3)])
    axes = [("agent", ["claude:claude-sonnet-4-6"]), ("checkpoint_every", ["0"])]
    grid = build_grid({}, [*axes, ("investigators", ["1", "3"])])
    out = tmp_path / "out"
    rows = await BenchRunner(out, expand(grid, 1), jobs=1).run()
    assert fake_anthropic.pending == 0
    by_n = {row["axes"]["investigators"]: row for row in rows}
    assert set(by_n) == {1, 3}
    assert all(row["correct"] is True and row["exit"] == "concluded" for row in rows)
    aggregate = by_n[3]
    assert aggregate["confidence"] == 0.8 and len(aggregate["investigators"]) == 3
    assert aggregate["notebook"].endswith("_aggregate.ipynb")
    assert aggregate["cost_usd"] > by_n[1]["cost_usd"] > 0
    # A run without the axis keeps the id it had before the axis existed.
    assert "investigators" not in by_n[1]["run_id"] and "investigators=3" in aggregate["run_id"]
    assert len(load_results(out)) == 2

    report = write_report(out).read_text()
    assert "## Results by investigators" in report and "## Cost and time per verdict" in report
    assert "| 3 | 1 | " in report.split("## Cost and time per verdict")[1]
