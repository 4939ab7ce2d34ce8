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


def test_votes_that_all_have_confidence_zero_back_nothing() -> None:
    for claims in (
        [claim("i1", "none", 0.0), claim("i2", "none", 0.0)],
        [claim("i1", "violin", 0.0), claim("i2", "none", 0.0), claim("i3", "none", 0.0)],
        [claim("i1", "L0H3, L1H2", 0.0), claim("i2", "none", 0.0), claim("i3", "none", 0.0)],
    ):
        verdict = decide(claims)
        assert verdict.answer == "unknown", claims
        assert "every vote has confidence 0, so no claim is backed" in verdict.reason


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


# -- structured claims (rules 6 to 8): components, layers, a direction ---------------------------


def circuit(ident: str, components: list[str] | None, confidence: float, answer: str = ""):
    said = answer or (", ".join(components) if components else "none")
    return InvestigatorClaim(
        ident, "s", "concluded", said, confidence, "e",
        components=tuple(components) if components else None,
    )  # fmt: skip


def test_overlapping_circuits_vote_per_component_not_as_disagreeing_words() -> None:
    core = ["L0H3", "L1H1", "L1H2"]
    claims = [
        circuit("i1", core, 0.9),
        circuit("i2", core, 0.8),
        circuit("i3", [*core, "L1H3"], 0.6),
    ]
    verdict = decide(claims)
    assert not verdict.needs_adjudication and verdict.contenders == ()
    assert verdict.components == tuple(core) and verdict.answer == "L0H3, L1H1, L1H2"
    # L1H3: support 0.6 against 1.7; every claim matches the set (F1 >= 0.8: 6/7 for i3),
    # so the confidence is mean(0.9, 0.8, 0.6) * 2.3 / 2.3.
    assert verdict.confidence == pytest.approx((0.9 + 0.8 + 0.6) / 3, abs=1e-3)
    assert "L1H1 2.30 > 0.00" in verdict.reason and "3 of 3 investigators" in verdict.reason


def test_a_none_lowers_a_circuit_and_nones_never_make_one() -> None:
    claims = [circuit("i1", ["L0H3", "L1H2"], 0.8), circuit("i2", ["L1H2"], 0.7)]
    verdict = decide([*claims, circuit("i3", None, 0.6)])
    # L0H3: 0.8 against 1.3 is out; L1H2: 1.5 > 0.6. Only i2's claim matches {L1H2}
    # (i1's F1 is 2/3): confidence 0.7 * 0.7 / 2.1.
    assert verdict.components == ("L1H2",)
    assert verdict.confidence == pytest.approx(0.7 * 0.7 / 2.1, abs=1e-3)
    weak = [circuit("i1", ["L1H2"], 0.5), circuit("i2", None, 0.6)]
    assert decide(weak).answer == "unknown"  # rule 5: one none of two votes is no majority
    verdict = decide([*weak, circuit("i3", None, 0.4)])
    assert verdict.answer == "none" and verdict.components is None
    assert decide([circuit(f"i{k}", None, 0.9) for k in range(1, 4)]).answer == "none"


def test_a_majority_set_that_nobody_claimed_is_unknown() -> None:
    claims = [
        circuit("i1", ["L0H1", "L0H2", "L0H3"], 0.7),
        circuit("i2", ["L0H1", "L1H1", "L1H2"], 0.7),
        circuit("i3", ["L0H2", "L1H1", "L1H3"], 0.7),
    ]
    verdict = decide(claims)  # the majority is {L0H1, L0H2, L1H1}: F1 2/3 with each claim
    assert verdict.answer == "unknown" and "no investigator claimed that set" in verdict.reason


def test_an_answer_listing_components_votes_as_them_and_a_word_opposes() -> None:
    said = InvestigatorClaim("i2", "s", "concluded", "L1H2 and L0H3", 0.7, "e")
    claims = [circuit("i1", ["L0H3", "L1H2"], 0.8), said, circuit("i3", [], 0.9, "copying")]
    with_answer = [c if c.id != "i2" else _read(said, components=None) for c in claims]
    verdict = decide(with_answer)
    # "copying" names no component: it opposes both (0.9), which the two claims outweigh.
    assert verdict.components == ("L0H3", "L1H2")
    assert verdict.confidence == pytest.approx(0.75 * 1.5 / 2.4, abs=1e-3)


def _read(claim: InvestigatorClaim, **conclusion: Any) -> InvestigatorClaim:
    """``claim`` as read_claim reads it back from a notebook's metadata."""
    import tempfile

    scribe = {
        "status": claim.state,
        "conclusion": {
            "answer": claim.answer,
            "confidence": claim.confidence,
            "evidence": claim.evidence,
            **{k: v for k, v in conclusion.items() if v is not None},
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        notebook = Path(folder) / "n.ipynb"
        notebook.write_text(json.dumps({"metadata": {"scribe": scribe}, "cells": []}))
        return read_claim(claim.id, claim.strategy, notebook)


def test_read_claim_reads_the_structured_claim() -> None:
    base = InvestigatorClaim("i1", "s", "concluded", "the circuit", 0.8, "e")
    read = _read(base, components=["L0H1", "mlp1"])
    assert read.components == ("L0H1", "mlp1") and read.layers is None
    assert _read(base, layers=[3, 0]).layers == (3, 0)
    found = _read(base, direction={"path": "d.pt", "sha256": "x", "layer": 2, "vector": [1.0]})
    assert found.direction == {"vector": [1.0], "layer": 2}
    assert _read(InvestigatorClaim("i1", "s", "concluded", "violin", 0.8, "e")).components is None


def test_recall_layers_vote_per_layer_and_mlps_name_their_layer() -> None:
    def recall(ident: str, layers: list[int] | None, p: float, components=None):
        return InvestigatorClaim(
            ident, "s", "concluded", f"layers {layers}", p, "e",
            components=components, layers=tuple(layers) if layers else None,
        )  # fmt: skip

    claims = [recall("i1", [0, 3], 0.8), recall("i2", [0, 3], 0.6), recall("i3", [0], 0.7)]
    verdict = decide(claims)
    assert verdict.layers == (0, 3) and verdict.answer == "layers 0, 3"
    assert verdict.confidence == pytest.approx(0.7 * 1.4 / 2.1, abs=1e-3)  # i3: F1 2/3
    mlps = recall("i3", None, 0.7, components=("mlp0", "mlp3"))
    assert decide([*claims[:2], mlps]).confidence == pytest.approx(0.7, abs=1e-3)


def direction_claim(ident: str, layer: int | None, vector: list[float], p: float):
    return InvestigatorClaim(
        ident, "s", "concluded", f"the direction at layer {layer}", p, "e",
        direction={"vector": vector, "layer": layer},
    )  # fmt: skip


def test_a_direction_is_the_most_confident_one_at_the_layer_most_claims_agree_on() -> None:
    claims = [
        direction_claim("i1", 2, [1.0, 0.1, 0.0], 0.7),
        direction_claim("i2", 2, [-0.9, -0.1, 0.05], 0.8),  # the same line, the other sign
        direction_claim("i3", 1, [0.0, 1.0, 0.0], 0.9),
    ]
    verdict = decide(claims)
    assert verdict.direction == {"vector": [-0.9, -0.1, 0.05], "layer": 2, "from": "i2"}
    assert verdict.confidence == pytest.approx(0.75 * 1.5 / 2.4, abs=1e-3)
    assert not verdict.needs_adjudication
    # At the same layer but another direction: no longer a supporter, so nothing wins.
    apart = [claims[0], direction_claim("i2", 2, [0.0, 0.0, 1.0], 0.8), claims[2]]
    assert decide(apart).answer == "unknown"
    nones = [direction_claim("i1", 2, [1.0, 0.0], 0.6), claim("i2", "none", 0.9)]
    assert decide([*nones, claim("i3", "none", 0.8)]).answer == "none"


async def test_the_pilot_concludes_with_the_voted_components(tmp_path: Path) -> None:
    core = ["L0H3", "L1H1", "L1H2"]
    claims = [circuit("i1", core, 0.9), circuit("i2", [*core, "L1H3"], 0.6)]
    pilot = AggregatorPilot(claims, tmp_path, context="which attention heads copy text")
    calls = await _steps(pilot, {})
    assert [c["name"] for c in calls].count("execute_code") == 0
    assert calls[-1]["input"]["components"] == core
    table = calls[2]["input"]["content"]
    assert "L0H3, L1H1, L1H2 (named)" in table and "S(x) > A(x)" in table


async def test_the_pilot_saves_the_voted_direction_and_concludes_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scribe_tui.claims import load_direction

    vector = [0.25, -1.5, 3.0000001, 1e-7]
    claims = [direction_claim("i1", 1, vector, 0.8), direction_claim("i2", 1, vector, 0.7)]
    pilot = AggregatorPilot(claims, tmp_path, context="find the refusal direction")
    calls = await _steps(pilot, {})
    steps = [c["id"].split("_", 3)[-1] for c in calls]
    assert steps[-2:] == ["direction", "conclude"]
    assert calls[-1]["input"]["direction"] == "direction.pt" and calls[-1]["input"]["layer"] == 1
    monkeypatch.chdir(tmp_path)  # the kernel works in the notebook's files folder
    exec(calls[-2]["input"]["code"], {})
    assert load_direction(tmp_path / "direction.pt") == pytest.approx(vector, rel=1e-6)
