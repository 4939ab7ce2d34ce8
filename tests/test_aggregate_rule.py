"""The autopilot's aggregation rule and its aggregator's steps, without a model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scribe_tui.agent.aggregate import (
    RULE,
    AggregatorPilot,
    InvestigatorClaim,
    adjudication_cell,
    decide,
    parse_adjudication,
    read_claim,
)
from scribe_tui.agent.parallel import VariedAutopilot, find_manifest
from scribe_tui.agent.provider import TurnRequest


def claim(ident: str, answer: str | None, confidence: float | None, state: str = "concluded"):
    return InvestigatorClaim(ident, "s", state, answer, confidence, "evidence")


def test_two_right_and_one_none_give_the_word_with_a_lowered_confidence() -> None:
    verdict = decide(
        [claim("i1", "violin", 0.8), claim("i2", "Violins", 0.7), claim("i3", "none", 0.6)]
    )
    assert verdict.answer == "violin" and not verdict.needs_adjudication
    # mean(0.8, 0.7) * 1.5 / 2.1: the dissent lowers it below both supporters
    assert verdict.confidence == pytest.approx(0.75 * 1.5 / 2.1, abs=1e-3)
    assert "support 1.50 > against 0.60" in verdict.reason


def test_a_control_where_all_say_none_is_none_and_never_a_word() -> None:
    verdict = decide([claim(f"i{k}", "none", 0.9) for k in range(1, 6)])
    assert (verdict.answer, verdict.confidence) == ("none", 0.9)
    # Unknowns and failures add no word either.
    mixed = [
        claim("i1", "none", 0.9),
        claim("i2", "unknown", 0.5),
        claim("i3", None, None, "failed"),
    ]
    assert decide(mixed).answer == "none"


def test_disagreement_needs_adjudication_and_the_adjudication_decides() -> None:
    claims = [claim("i1", "violin", 0.8), claim("i2", "piano", 0.7), claim("i3", "none", 0.3)]
    undecided = decide(claims)
    assert undecided.needs_adjudication and undecided.contenders == ("violin", "piano")
    assert undecided.answer == "unknown"
    settled = decide(claims, {"winner": "piano", "margin": 2.1})
    assert settled.answer == "piano" and "refuting violin" in settled.reason
    assert settled.confidence == pytest.approx(0.7 * 0.7 / 1.8, abs=1e-3)
    assert decide(claims, {"winner": None}).answer == "unknown"


def test_a_lone_weak_word_against_stronger_nones_is_not_named() -> None:
    verdict = decide(
        [claim("i1", "violin", 0.5), claim("i2", "none", 0.4), claim("i3", "none", 0.4)]
    )
    assert verdict.answer == "none"


def _answer(messages: list[dict[str, Any]], call: dict[str, Any], text: str) -> None:
    messages.append({"role": "assistant", "content": [call]})
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": text}
    messages.append({"role": "user", "content": [result]})


async def _steps(pilot: AggregatorPilot, results: dict[str, str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Your task: find it"}]
    calls = []
    for _ in range(10):
        turn = await pilot.turn(TurnRequest(system="", messages=messages), lambda event: None)
        call = turn.content[-1]
        calls.append(call)
        if call["name"] == "conclude":
            return calls
        step = call["id"].split("_", 3)[-1]
        _answer(messages, call, results.get(step, "session_id='s1' ok"))
    raise AssertionError("the aggregator never concluded")


async def test_the_pilot_adjudicates_a_disagreement_and_concludes_by_it(tmp_path: Path) -> None:
    claims = [claim("i1", "violin", 0.8), claim("i2", "piano", 0.7), claim("i3", "none", 0.3)]
    printed = json.dumps({"winner": "violin", "margin": 3.0, "table": {}})
    pilot = AggregatorPilot(claims, tmp_path, context="find the secret word")
    calls = await _steps(pilot, {"adjudicate": f"violin ...\nADJUDICATION {printed}\n"})
    names = [c["id"].split("_", 3)[-1] for c in calls]
    assert names == ["start", "init", "table", "adjudicate", "verdict", "conclude"]
    assert (
        "word_probs" in calls[3]["input"]["code"]
        and "['violin', 'piano']" in calls[3]["input"]["code"]
    )
    assert RULE.splitlines()[0] in calls[2]["input"]["content"]
    assert calls[-1]["input"]["answer"] == "violin"
    assert all(c["input"].get("session_id") == "s1" for c in calls[1:-1])


async def test_the_pilot_runs_no_adjudication_where_claims_agree(tmp_path: Path) -> None:
    claims = [claim("i1", "violin", 0.8), claim("i2", "violin", 0.7), claim("i3", "none", 0.3)]
    calls = await _steps(AggregatorPilot(claims, tmp_path, context="find the secret word"), {})
    assert [c["name"] for c in calls].count("execute_code") == 0
    assert calls[-1]["input"]["answer"] == "violin"


def test_the_blackbox_adjudication_samples_and_the_output_parses() -> None:
    code = adjudication_cell(["violin", "piano"], "find the secret word", blackbox=True, seed=3)
    compile(code, "adjudication", "exec")
    assert "client.chat" in code and "client.run" not in code
    assert parse_adjudication('x\nADJUDICATION {"winner": null}\n') == {"winner": None}
    assert parse_adjudication("ADJUDICATION {broken") is None


def test_read_claim_reads_metadata_only_and_bounds_the_evidence(tmp_path: Path) -> None:
    notebook = tmp_path / "n.ipynb"
    scribe = {
        "status": "concluded",
        "conclusion": {"answer": "violin", "confidence": 0.9, "evidence": "x " * 1000},
        "receipt": {"completed": {"cost_usd": 0.25}},
    }
    notebook.write_text(json.dumps({"metadata": {"scribe": scribe}, "cells": []}))
    read = read_claim("i1", "s", notebook)
    assert (read.claim, read.confidence, read.cost_usd) == ("named", 0.9, 0.25)
    assert len(read.evidence) <= 400
    assert read_claim("i2", "s", None).state == "not started"


def test_autopilot_strategies_reorder_the_plan_and_keep_falsification_last() -> None:
    from scribe_tui.autopilot.investigator import WORD_PLAN

    opening = "Your task: find the secret word"
    state = SimpleNamespace(
        evidence={}, context="'base_model': True", blackbox=False, opening=opening
    )
    plans = {VariedAutopilot(variant=v)._plan(state) for v in range(5)}
    assert len(plans) == 5
    for plan in plans:
        assert plan[0] == "fit" and plan[-1] == "falsify" and set(plan) == set(WORD_PLAN)


def test_find_manifest_names_an_aggregate_not_its_investigators(tmp_path: Path) -> None:
    (tmp_path / "i1").mkdir()
    (tmp_path / "aggregate.json").write_text("{}")
    sub = tmp_path / "i1" / "n.ipynb"
    sub.write_text(json.dumps({"metadata": {"scribe": {"investigator": {}}}}))
    top = tmp_path / "a.ipynb"
    top.write_text(json.dumps({"metadata": {"scribe": {"aggregate": {}}}}))
    assert find_manifest(tmp_path) == tmp_path / "aggregate.json"
    assert find_manifest(top) == tmp_path / "aggregate.json"
    assert find_manifest(sub) is None


def test_list_nests_the_investigators_under_their_aggregate(tmp_path: Path) -> None:
    from scribe_tui.record.index import format_line, index_markdown, read_entries

    def notebook(path: Path, created: str, **scribe: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"task": "find it", "model": "organism:taboo", "status": "concluded"}
        path.write_text(
            json.dumps({"metadata": {"scribe": {**meta, **scribe, "created": created}}})
        )

    folder = tmp_path / "run-x2"
    notebook(tmp_path / "older.ipynb", "2026-01-01T00:00")
    notebook(folder / "i2" / "b.ipynb", "2026-01-02T00:01", investigator={"id": "i2"})
    notebook(folder / "i1" / "a.ipynb", "2026-01-02T00:02", investigator={"id": "i1"})
    notebook(folder / "agg.ipynb", "2026-01-02T00:03", aggregate={"investigators": {}})
    notebook(tmp_path / "newest.ipynb", "2026-01-03T00:00")
    entries, _ = read_entries(tmp_path)
    assert [e.path.name for e in entries] == [
        "newest.ipynb", "agg.ipynb", "a.ipynb", "b.ipynb", "older.ipynb",
    ]  # fmt: skip
    assert format_line(entries[2]).startswith("  └ i1: ")
    assert "| ↳ i2: [" in index_markdown(tmp_path, entries)
