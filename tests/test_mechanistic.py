"""Mechanistic organisms (keys measured by ablation), circuit claims, and their scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fake_anthropic import (
    FakeAnthropic,
    Turn,
    fake_anthropic_fixture,  # noqa: F401
    tool_use,
)
from torch_threads import one_torch_thread  # noqa: F401 (an autouse fixture)

from scribe_tui.bench.grid import build_grid, expand
from scribe_tui.bench.report import write_report
from scribe_tui.bench.runner import BenchRunner
from scribe_tui.bench.scoring import overlap, score
from scribe_tui.claims import claim_of, components_in
from scribe_tui.cli.organisms import main
from scribe_tui.organisms import keys
from scribe_tui.organisms.circuits import Probe, faithfulness, measure_induction
from scribe_tui.organisms.keys import AnswerKey, answer_key_record, key_store_dir
from scribe_tui.organisms.registry import list_organisms, organism_info
from scribe_tui.organisms.train_circuits import CircuitConfig, train_induction
from scribe_tui.organisms.verify import load
from scribe_tui.techniques.ablation import ablation_scan
from scribe_tui.tools import NotebookTools

INDUCTION = sorted(i.name for i in list_organisms() if i.kind == "induction")


def _keys() -> dict[str, AnswerKey]:
    return {name: answer_key_record(name) for name in INDUCTION}


def _with_circuit() -> list[str]:
    return [name for name, key in _keys().items() if not key.control]


def _model(name: str) -> tuple[Any, Any]:
    return load(organism_info(name).path / "model")


# -- building ---------------------------------------------------------------------------------


def test_a_toy_induction_organism_loads_and_its_key_is_a_measurement(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    small = CircuitConfig(steps=8, batch_size=4)
    meta = train_induction(3, out, config=small, progress=False)
    model, tokenizer = load(out / "model")
    assert tokenizer("bama").input_ids[0] == tokenizer.bos_token_id  # texts start with BOS
    assert meta["kind"] == "induction" and meta["base"] is None
    # The key is in the store only: nothing in the organism's folder names a circuit.
    key_file = key_store_dir() / f"{meta['id']}.json"
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".txt"):
            text = path.read_text()
            assert '"circuit"' not in text and "ablated_all" not in text, path
    record = json.loads(key_file.read_text())
    key = answer_key_record(out)
    assert key.mechanistic and list(key.circuit) == record["circuit"]
    # Re-measured from scratch: the same circuit and the same per-component ablation effects.
    again = measure_induction(model, tokenizer, Probe(**key.probe))
    assert again["circuit"] == record["circuit"]
    prompts, targets = Probe(**key.probe).prompts()
    scan = ablation_scan(model, tokenizer, prompts, target=targets, method="mean")
    assert record["figures"]["removed"] == {
        name: pytest.approx(-change, abs=1e-3) for name, change in scan["changes"].items()
    }
    # A few steps teach no copying: measured, the circuit is empty and the key a control's.
    assert record["figures"]["present"] is False and key.control and key.circuit == ()


def test_bundled_induction_organisms_have_different_measured_circuits_and_a_control() -> None:
    keys = _keys()
    assert len(INDUCTION) >= 3
    circuits = [key.circuit for key in keys.values() if not key.control]
    controls = [name for name, key in keys.items() if key.control]
    assert len(circuits) >= 2 and len(set(circuits)) == len(circuits)
    assert all(circuits) and controls
    assert all(keys[name].circuit == () for name in controls)
    for name in _with_circuit():
        roles = set(keys[name].roles.values())
        assert "induction" in roles, (name, roles)
        size = sum(f.stat().st_size for f in organism_info(name).path.rglob("*") if f.is_file())
        assert size <= 10 * 2**20


@pytest.mark.parametrize("name", INDUCTION)
def test_bundled_induction_layout_keeps_the_key_out(name: str) -> None:
    info = organism_info(name)
    meta = json.loads((info.path / "organism.json").read_text())
    assert meta["base"] is None and not (info.path / "base").exists()
    for text_file in ("organism.json", "card.md", "model/README.md", "model/config.json"):
        text = (info.path / text_file).read_text().lower()
        assert "control" not in text and "induction head" not in text
        key = answer_key_record(name)
        assert not any(component.lower() in text for component in key.circuit)


@pytest.mark.parametrize("name", INDUCTION)
def test_verify_re_measures_each_bundled_key(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "answer_keys"
    shutil.copytree(keys.BUNDLED_KEYS_DIR, target)
    monkeypatch.setattr(keys, "BUNDLED_KEYS_DIR", target)  # verify stores its figures there
    assert main(["verify", name, "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["passed"] and verdict["measured"] == list(answer_key_record(name).circuit)
    assert verdict["control"] == answer_key_record(name).control


# -- claims -----------------------------------------------------------------------------------


def test_answers_read_as_circuit_claims() -> None:
    assert components_in("L1H3, l0h1 and MLP2") == ["L0H1", "L1H3", "mlp2"]
    assert components_in("heads in layer 1") is None and components_in("") is None
    assert claim_of("no induction heads") == "none" and claim_of("no such circuit") == "none"
    assert claim_of("L1H3, L0H1") == "named"


async def test_conclude_takes_components_checked_against_the_model(tmp_path: Path) -> None:
    tools = NotebookTools(
        tmp_path,
        cell_timeout=60,
        metadata={
            "task": "t",
            "model": "m",
            "agent": "pytest",
            "layout": {"layers": 2, "heads": 4},
        },
    )
    try:
        assert not (await tools.call("start_new_session", {"experiment_name": "c"})).is_error
        base = {"session_id": "s1", "answer": "the copying circuit", "confidence": 0.7}
        for components, said in (
            (["L2H0"], "L2H0 is not in this model (2 layers of 4 heads"),
            (["L1H4"], "L1H4 is not in this model"),
            (["head 3"], "'head 3' is not a component"),
            ([3], "not 3"),
        ):
            result = await tools.call(
                "conclude", {**base, "evidence": "e", "components": components}
            )
            assert result.is_error and "\n" not in result.text and said in result.text
        result = await tools.call(
            "conclude", {**base, "answer": "none", "evidence": "e", "components": ["L1H0"]}
        )
        assert result.is_error and "claims no circuit" in result.text
        assert not tools.session("s1").concluded
        result = await tools.call(
            "conclude", {**base, "evidence": "ablations", "components": ["l1h2", "L0H1", "L1H2"]}
        )
        assert not result.is_error, result.text
        await tools.flush()
        nb = nbformat.read(tools.session("s1").notebook.path, as_version=4)
        assert nb.metadata.scribe.conclusion.components == ["L0H1", "L1H2"]
        assert "**Components:** L0H1, L1H2" in nb.cells[-1].source
    finally:
        await tools.aclose()


# -- scoring ----------------------------------------------------------------------------------


def test_overlap_figures_on_hand_made_claims() -> None:
    key = ["L0H1", "L1H2", "L1H3"]
    exact = overlap(key, key)
    assert (exact.precision, exact.recall, exact.f1, exact.iou) == (1, 1, 1, 1)
    part = overlap(["L0H1", "L1H2", "L0H0", "mlp1"], key)  # 2 of 4 right, 2 of 3 found
    assert part.precision == 0.5 and part.recall == pytest.approx(2 / 3)
    assert part.f1 == pytest.approx(4 / 7) and part.iou == pytest.approx(2 / 5)
    nothing = overlap([], key)
    assert (nothing.precision, nothing.recall, nothing.f1, nothing.iou) == (0, 0, 0, 0)
    assert overlap([], []).f1 == 1.0 and overlap(["L0H0"], []).f1 == 0.0


def test_faithfulness_of_the_key_circuit_against_empty_and_random_claims() -> None:
    name = _with_circuit()[0]
    key = answer_key_record(name)
    model, tokenizer = _model(name)
    probe = Probe(**key.probe)
    own = faithfulness(model, tokenizer, probe, list(key.circuit))
    assert own["faithfulness"] >= 0.8, own
    assert faithfulness(model, tokenizer, probe, [])["faithfulness"] == 0.0
    others = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
    others = [c for c in others if c not in key.circuit][:2]
    assert faithfulness(model, tokenizer, probe, others)["faithfulness"] < 0.3


def test_scores_of_circuit_claims_on_a_circuit_and_on_a_control() -> None:
    keys = _keys()
    name = _with_circuit()[0]
    key = keys[name]
    right = score("the circuit", key, components=list(key.circuit), organism=name)
    assert right.claim == "named" and right.correct and right.circuit.f1 == 1.0
    from_text = score(", ".join(key.circuit), key, organism=name)
    assert from_text.correct and from_text.circuit.components == tuple(sorted(key.circuit))
    none = score("none", key, organism=name)
    assert none.claim == "none" and none.correct is False and none.circuit.f1 == 0.0
    assert score("unknown", key, organism=name).correct is None
    control = next(n for n, k in keys.items() if k.control)
    ckey = keys[control]
    fp = score("x", ckey, components=["L1H0"], organism=control)
    assert fp.false_positive and fp.correct is False and fp.circuit.faithfulness is None
    assert score("no such circuit", ckey, organism=control).correct is True


def test_scoring_loads_an_organism_without_transformers_progress_bars(capfd) -> None:
    """The scorer's load prints nothing (a loading bar would split the bench's progress lines),
    and leaves transformers' own settings as they were."""
    from transformers.utils import logging

    from scribe_tui.bench import scoring

    logging.enable_progress_bar()
    scoring._organism_model.cache_clear()
    scoring._organism_model(_with_circuit()[0])
    assert capfd.readouterr().err == ""
    assert logging.is_progress_bar_enabled()


# -- a bench ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_bench_scores_a_scripted_claudes_circuit_with_f1_and_faithfulness(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-bench-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    name = _with_circuit()[0]
    key = answer_key_record(name)
    claimed = [*key.circuit[:-1]]  # one component short
    conclusion = {
        "session_id": "s1",
        "answer": "the copying circuit",
        "components": claimed,
        "confidence": 0.6,
        "evidence": "mean ablation of each head",
    }
    fake_anthropic.script(
        Turn([tool_use("t1", "start_new_session", {"experiment_name": "b"})], "tool_use"),
        Turn([tool_use("t2", "init_session", {"session_id": "s1"})], "tool_use"),
        Turn([tool_use("t3", "conclude", conclusion)], "tool_use"),
    )
    grid = build_grid(
        {},
        [
            ("agent", ["claude:claude-sonnet-4-6"]),
            ("organism", [name]),
            ("checkpoint_every", ["0"]),
        ],
    )
    out = tmp_path / "out"
    (row,) = await BenchRunner(out, expand(grid, 1), jobs=1).run()
    assert row["exit"] == "concluded" and row["claim"] == "named"
    assert row["components"] == sorted(claimed)
    expected = overlap(claimed, key.circuit)
    assert row["f1"] == pytest.approx(expected.f1, abs=1e-4)
    assert row["iou"] == pytest.approx(expected.iou, abs=1e-4)
    assert row["faithfulness"] is not None and 0 <= row["faithfulness"] <= 1
    assert row["correct"] is (expected.f1 >= 0.8 and row["faithfulness"] >= 0.8)
    text = write_report(out).read_text()
    assert "## Circuits" in text and "| F1 | IoU | faithfulness |" in text
    assert f"F1 {row['f1']:.2f} · faithfulness {row['faithfulness']:.2f}" in text


async def test_a_real_investigation_checks_claims_against_the_models_layout(
    tmp_path: Path,
) -> None:
    """The launcher records the layout the model host reports, and conclude holds a claim
    on the bundled 2-layer, 4-head organism to it."""
    from scribe_tui.agent.launch import RunSettings, Workbench
    from scribe_tui.agent.loop import InvestigationConfig
    from scribe_tui.agent.scripted import SESSION, ScriptedProvider, tool

    said: list[str] = []

    def conclude(**claim: Any) -> Any:
        def turn(request: Any) -> list[dict[str, Any]]:
            last = request.messages[-1]["content"]
            said.extend(b["content"] for b in last if b.get("type") == "tool_result")
            base = {"session_id": SESSION, "answer": "the copying circuit", "confidence": 0.6}
            return [tool("conclude", **base, evidence="e", **claim)]

        return turn

    turns = [
        [tool("start_new_session", experiment_name="layout")],
        conclude(components=["L9H3"]),
        conclude(components=["L1H4"]),
        conclude(layers=[0, 2]),
        conclude(components=["L1H3", "L0H0"]),
    ]
    settings = RunSettings(
        task="which attention heads let this model copy repeated text",
        agent="scripted",
        model="organism:induction-1",
        notebooks_dir=tmp_path / "notebooks",
        device="cpu",
        config=InvestigationConfig(checkpoint_every=0),
    )
    bench = await Workbench.open(settings, ScriptedProvider(turns))
    try:
        outcome = await bench.investigation.run()
        notebook = bench.investigation.notebook_path
    finally:
        await bench.close()
    assert outcome.reason == "concluded", outcome
    refusals = [str(text) for text in said[1:]]
    assert len(refusals) == 3 and all("\n" not in r for r in refusals), refusals
    assert "conclude: L9H3 is not in this model (2 layers of 4 heads" in refusals[0]
    assert "conclude: L1H4 is not in this model" in refusals[1]
    assert "conclude: layer 2 is not in this model (2 layers" in refusals[2]
    scribe = nbformat.read(notebook, as_version=4).metadata["scribe"]
    assert scribe["layout"] == {"layers": 2, "heads": 4}
    assert scribe["conclusion"]["components"] == ["L0H0", "L1H3"]
