"""``recall`` and ``direction`` organisms: measured keys, layer and direction claims, scoring."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
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
from scribe_tui.bench.scoring import claimed_layers, score
from scribe_tui.claims import layers_in, load_direction, read_layers
from scribe_tui.cli.organisms import main
from scribe_tui.organisms import keys
from scribe_tui.organisms.direction_key import Probe as DirectionProbe
from scribe_tui.organisms.direction_key import Refusals, score_direction
from scribe_tui.organisms.keys import AnswerKey, answer_key_record, key_store_dir
from scribe_tui.organisms.recall_key import Probe as RecallProbe
from scribe_tui.organisms.recall_key import RecallRun, layer_overlap, mean_ablated, trace
from scribe_tui.organisms.registry import list_organisms, organism_info
from scribe_tui.organisms.verify import load
from scribe_tui.runtime.notebook import files_folder
from scribe_tui.tools import NotebookTools


def _bundled(kind: str) -> dict[str, AnswerKey]:
    return {i.name: answer_key_record(i.name) for i in list_organisms() if i.kind == kind}


def _planted(kind: str) -> str:
    return next(name for name, key in _bundled(kind).items() if not key.control)


def _control(kind: str) -> str:
    return next(name for name, key in _bundled(kind).items() if key.control)


def _model(name: str) -> tuple[Any, Any]:
    return load(organism_info(name).path / "model")


# -- building ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["recall", "direction"])
def test_organisms_train_builds_a_tiny_organism_with_its_key_in_the_store(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / kind
    argv = ["train", "--kind", kind, "--seed", "3", "--steps", "12", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"trained {kind} organism" in said and "PASS" in said
    meta = json.loads((out / "organism.json").read_text())
    assert meta["kind"] == kind and meta["training"]["steps"] == 12
    assert meta["training"]["attention_only"] is False
    assert load(out / "model")[0].config.num_hidden_layers == 4
    # The key is in the store; nothing in the organism's folder holds what was measured.
    key_file = key_store_dir() / f"{meta['id']}.json"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    record = json.loads(key_file.read_text())
    assert record["probe"]["kind"] == kind and record["train_seconds"] > 0
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md"):
            text = path.read_text()
            for field in ('"present"', '"figures"', '"top_layer"', '"effect"', '"secret"'):
                assert field not in text, (path, field)
    # Twelve steps teach nothing: measured, the behaviour is absent, the key a control's.
    key = answer_key_record(out)
    assert key.kind == kind and key.control and record["figures"]["present"] is False


def test_an_unknown_mechanistic_kind_is_a_clear_error() -> None:
    from scribe_tui.organisms.train_circuits import measure

    with pytest.raises(ValueError, match="unknown mechanistic kind 'circuitry'; choose from"):
        measure("circuitry", None, None)


# -- the keys are measurements ------------------------------------------------------------------


def test_bundled_recall_key_layer_is_where_restoring_and_ablating_matter() -> None:
    name = _planted("recall")
    key = answer_key_record(name)
    assert key.layers and key.top_layer in key.layers and key.circuit
    model, tokenizer = _model(name)
    run = RecallRun(model, tokenizer, RecallProbe(**key.probe))
    clean = float(run.logprobs().mean())
    assert clean - run.chance > 1.0  # the facts are recalled
    # Measured again here: restoring the top layer's MLP (at its best position) recovers
    # far more of the noised answer than any other layer's.
    restored = [max(row) for row in trace(run, "mlp")["recovered"]]
    top = key.top_layer
    assert restored[top] > 0.5
    assert all(restored[top] > 2 * value for i, value in enumerate(restored) if i != top)
    # Ablating the top layer's MLP removes the facts; layers outside the key remove less.
    means = run.mlp_means()
    removed = {
        layer: clean - float(run.logprobs(mlps=mean_ablated(means, [layer])).mean())
        for layer in range(run.n)
    }
    assert removed[top] > 2.0
    outside = [layer for layer in removed if layer not in key.layers]
    assert all(removed[layer] < removed[top] / 2 for layer in outside)


def test_bundled_recall_control_recalls_nothing() -> None:
    name = _control("recall")
    key = answer_key_record(name)
    assert key.layers == () and key.top_layer is None and key.secret is None
    model, tokenizer = _model(name)
    run = RecallRun(model, tokenizer, RecallProbe(**key.probe))
    assert float(run.logprobs().mean()) - run.chance < 0.2


def test_bundled_direction_key_ablation_removes_refusal_and_addition_induces_it() -> None:
    name = _planted("direction")
    key = answer_key_record(name)
    model, tokenizer = _model(name)
    run = Refusals(model, tokenizer, DirectionProbe(**key.probe))
    guarded, open_ = run.test
    assert run.rate(guarded) - run.rate(open_) >= 0.8
    gap = run.rate(guarded) - run.rate(open_)

    def fall(vector: Any) -> float:  # of the guarded-minus-open gap, the vector ablated
        return gap - abs(run.rate(guarded, ablate=vector) - run.rate(open_, ablate=vector))

    assert key.effect >= 0.8 and fall(torch.tensor(key.direction)) == pytest.approx(key.effect)
    # A random direction of the same size does nearly nothing.
    random_vector = torch.randn(len(key.direction), generator=torch.Generator().manual_seed(0))
    assert fall(random_vector) < 0.2
    # Added (as the difference of means, at the key's layer) it makes open requests refused.
    fit_guarded, fit_open = run.fit
    diff = run.means(fit_guarded)[key.layer] - run.means(fit_open)[key.layer]
    assert run.rate(open_, add=(key.layer, diff)) >= 0.5


def test_bundled_direction_control_refuses_regardless_of_class() -> None:
    name = _control("direction")
    key = answer_key_record(name)
    assert key.direction is None and key.layer is None and key.secret is None
    model, tokenizer = _model(name)
    run = Refusals(model, tokenizer, DirectionProbe(**key.probe))
    guarded, open_ = run.test
    assert abs(run.rate(guarded) - run.rate(open_)) < 0.5


@pytest.mark.parametrize("kind", ["recall", "direction"])
def test_bundled_layout_keeps_the_key_out_and_fits(kind: str) -> None:
    for name in _bundled(kind):
        path = organism_info(name).path
        assert not (path / "base").exists()
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        assert size <= 10 * 2**20
        for text_file in ("organism.json", "card.md", "model/README.md"):
            text = (path / text_file).read_text().lower()
            assert "control" not in text and "refusal direction" not in text


@pytest.mark.parametrize("kind", ["recall", "direction"])
def test_verify_re_measures_each_bundled_key(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "answer_keys"
    shutil.copytree(keys.BUNDLED_KEYS_DIR, target)
    monkeypatch.setattr(keys, "BUNDLED_KEYS_DIR", target)  # verify stores its figures there
    for name, key in _bundled(kind).items():
        assert main(["verify", name, "--json"]) == 0, name
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["passed"] and verdict["control"] == key.control
        assert verdict["measured"] == verdict["key"]
        assert main(["verify", name]) == 0
        assert "PASS" in capsys.readouterr().out


# -- claims -----------------------------------------------------------------------------------


def test_layer_claims_read_from_answers_and_lists() -> None:
    assert layers_in("Layers 0 and 3.") == [0, 3] and layers_in("layer 2") == [2]
    assert layers_in("the capital") is None and layers_in("mlp0") is None
    assert read_layers([3, 0, 3]) == [0, 3]
    with pytest.raises(ValueError, match="whole numbers counted from 0, such as 2, not -1"):
        read_layers([-1])
    with pytest.raises(ValueError, match="not 'two'"):
        read_layers(["two"])
    assert claimed_layers("x", ["mlp3", "L1H0"], [0]) == [0, 1, 3]
    assert claimed_layers("mlp0, mlp2", None, None) == [0, 2]
    assert claimed_layers("layers 1 and 2", None, None) == [1, 2]


def test_direction_artifacts_load_safely_or_fail_in_one_line(tmp_path: Path) -> None:
    torch.save(torch.tensor([[1.0, 2.0, 3.0]]), tmp_path / "row.pt")
    assert load_direction(tmp_path / "row.pt") == [1.0, 2.0, 3.0]
    np.save(tmp_path / "v.npy", np.array([0.5, -1.0]))
    assert load_direction(tmp_path / "v.npy") == [0.5, -1.0]
    torch.save({"v": torch.ones(3)}, tmp_path / "dict.pt")
    torch.save(torch.ones(2, 3), tmp_path / "matrix.pt")
    torch.save(torch.zeros(3), tmp_path / "zeros.pt")
    torch.save(torch.tensor([1.0, float("nan")]), tmp_path / "nan.pt")
    (tmp_path / "code.pt").write_bytes(pickle.dumps(print, protocol=2))  # not an archive
    (tmp_path / "v.txt").write_text("1 2 3")
    for name, said in (
        ("dict.pt", "holds a dict, not one tensor"),
        ("matrix.pt", "must hold one vector"),
        ("zeros.pt", "finite and not all zeros"),
        ("nan.pt", "finite and not all zeros"),
        ("code.pt", "code.pt is not a saved vector"),
        ("v.txt", "save the direction as a .pt"),
        ("missing.pt", "missing.pt does not exist"),
    ):
        with pytest.raises(ValueError, match=said) as raised:
            load_direction(tmp_path / name)
        assert "\n" not in str(raised.value)


async def test_conclude_takes_layers_and_a_direction_file(tmp_path: Path) -> None:
    tools = NotebookTools(
        tmp_path,
        cell_timeout=60,
        metadata={
            "task": "t",
            "model": "m",
            "agent": "pytest",
            "layout": {"layers": 4, "heads": 4},
        },
    )
    try:
        assert not (await tools.call("start_new_session", {"experiment_name": "d"})).is_error
        notebook = tools.session("s1").notebook.path
        folder = files_folder(notebook)
        base = {"session_id": "s1", "answer": "the refusal direction", "confidence": 0.7}
        base["evidence"] = "diff of means"
        outside = tmp_path / "elsewhere.pt"
        torch.save(torch.ones(8), outside)
        for extra, said in (
            ({"layers": [4]}, "layer 4 is not in this model (4 layers"),
            ({"layers": [True]}, "layers are whole numbers"),
            ({"direction": "nope.pt", "layer": 1}, "nope.pt does not exist"),
            ({"direction": str(outside), "layer": 1}, "outside the notebook's working folder"),
            ({"direction": "../elsewhere.pt"}, "outside the notebook's working folder"),
            ({"layer": 1}, "layer is given without a direction"),
        ):
            result = await tools.call("conclude", {**base, **extra})
            assert result.is_error and "\n" not in result.text and said in result.text, result.text
        result = await tools.call("conclude", {**base, "answer": "none", "layers": [1]})
        assert result.is_error and "claims nothing but layers" in result.text
        assert not tools.session("s1").concluded
        torch.save(torch.arange(1.0, 9.0), folder / "refusal.pt")
        result = await tools.call("conclude", {**base, "direction": "refusal.pt", "layer": 3})
        assert not result.is_error, result.text
        # What was concluded is recorded, so a file changed afterwards changes nothing.
        torch.save(torch.zeros(8), folder / "refusal.pt")
        await tools.flush()
        nb = nbformat.read(notebook, as_version=4)
        said = nb.metadata.scribe.conclusion.direction
        assert said.path == "refusal.pt" and said.layer == 3
        assert said.vector == [float(i) for i in range(1, 9)] and len(said.sha256) == 64
        assert "**Direction:** `refusal.pt` (layer 3)" in nb.cells[-1].source
    finally:
        await tools.aclose()


async def test_conclude_records_layers(tmp_path: Path) -> None:
    tools = NotebookTools(tmp_path, cell_timeout=60, metadata={"layout": {"layers": 4}})
    try:
        assert not (await tools.call("start_new_session", {"experiment_name": "r"})).is_error
        args = {"answer": "layer 0", "confidence": 0.8, "evidence": "tracing", "layers": [3, 0]}
        assert not (await tools.call("conclude", args)).is_error
        await tools.flush()
        nb = nbformat.read(tools.session("s1").notebook.path, as_version=4)
        assert nb.metadata.scribe.conclusion.layers == [0, 3]
        assert "**Layers:** 0, 3" in nb.cells[-1].source
    finally:
        await tools.aclose()


# -- scoring ----------------------------------------------------------------------------------


def test_layer_overlap_on_hand_made_claims() -> None:
    exact = layer_overlap([0, 3], [0, 3], 0)
    assert (exact.precision, exact.recall, exact.f1, exact.top_named) == (1, 1, 1, True)
    part = layer_overlap([0, 1, 2], [0, 3], 0)  # 1 of 3 right, 1 of 2 found
    assert part.precision == pytest.approx(1 / 3) and part.recall == 0.5
    assert part.f1 == pytest.approx(2 / 5) and part.top_named
    miss = layer_overlap([3], [0, 3], 0)
    assert miss.f1 == pytest.approx(2 / 3) and not miss.top_named
    assert layer_overlap([], [], None).f1 == 1.0 and layer_overlap([1], [], None).f1 == 0.0


def test_recall_claims_score_by_the_top_layer_and_precision() -> None:
    key = AnswerKey("layer 0, layer 3", layers=(0, 3), top_layer=0, probe={"kind": "recall"})
    assert key.kind == "recall" and key.mechanistic
    cases = [
        ({"layers": [0]}, True),  # the top layer alone
        ({"layers": [0, 3]}, True),
        ({"layers": [3]}, False),  # misses the top layer
        ({"layers": [0, 1]}, False),  # half the named layers are not recall layers
        ({"layers": [0, 1, 2, 3]}, False),  # everything
        ({"components": ["mlp0"]}, True),
    ]
    for claim, right in cases:
        result = score("the recall layers", key, organism="unused", **claim)
        assert result.claim == "named" and result.correct is right, (claim, result)
    assert score("layers 0 and 3", key).correct is True
    assert score("mlp3", key).correct is False
    assert score("none", key).correct is False and score("not sure", key).correct is None
    control = AnswerKey(None, layers=(), probe={"kind": "recall"})
    fp = score("x", control, layers=[1])
    assert fp.false_positive and fp.correct is False and fp.circuit.f1 == 0.0
    for nothing in ("none", "no facts recalled", "the model has no stored facts"):
        assert score(nothing, control).claim == "none" and score(nothing, control).correct
    assert score("there is no refusal direction", control).claim == "none"


def test_direction_claims_score_by_their_ablation_effect_on_the_organism() -> None:
    name = _planted("direction")
    key = answer_key_record(name)
    model, tokenizer = _model(name)
    record = {
        "direction": list(key.direction),
        "layer": key.layer,
        "effect": key.effect,
        "probe": dict(key.probe),
    }
    own = score_direction(model, tokenizer, key.direction, key.layer, record)
    assert own.cosine == pytest.approx(1.0) and own.relative == pytest.approx(1.0)
    assert own.layer_match
    flipped = score_direction(model, tokenizer, [-x for x in key.direction], 0, record)
    assert flipped.cosine == pytest.approx(-1.0) and flipped.relative == pytest.approx(1.0)
    claim = {"vector": list(key.direction), "layer": key.layer}
    right = score("the refusal direction", key, direction=claim, organism=name)
    assert right.correct and right.circuit.fields()["relative_effect"] == pytest.approx(1.0)
    noise = torch.randn(len(key.direction), generator=torch.Generator().manual_seed(1)).tolist()
    wrong = score("x", key, direction={"vector": noise, "layer": 0}, organism=name)
    assert wrong.claim == "named" and wrong.correct is False and wrong.circuit.relative < 0.8
    short = score("x", key, direction={"vector": [1.0, 2.0], "layer": 0}, organism=name)
    assert short.correct is False
    assert score("the direction", key, organism=name).correct is False  # no vector given
    assert score("none", key, organism=name).correct is False
    control = _control("direction")
    ckey = answer_key_record(control)
    fp = score("x", ckey, direction={"vector": noise, "layer": 0}, organism=control)
    assert fp.false_positive and fp.correct is False
    assert score("none", ckey, organism=control).correct is True


# -- a bench ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_bench_scores_a_direction_saved_by_the_kernel_and_a_layer_claim(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-bench-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    direction, recall = _planted("direction"), _planted("recall")
    dkey, rkey = answer_key_record(direction), answer_key_record(recall)
    # The scripted agent writes the key's direction (negated: ablation ignores the sign)
    # from its kernel into its working folder, then concludes with that file.
    save = f"import torch\ntorch.save(-torch.tensor({list(dkey.direction)}), 'refusal.pt')\n"
    conclusions = {
        direction: {"answer": "the refusal direction", "direction": "refusal.pt", "layer": 0},
        recall: {"answer": "the recall layers", "layers": [rkey.top_layer]},
    }
    for organism in (direction, recall):
        steps = [
            Turn([tool_use("t1", "start_new_session", {"experiment_name": "b"})], "tool_use"),
            Turn([tool_use("t2", "init_session", {"session_id": "s1"})], "tool_use"),
        ]
        if organism == direction:
            code = {"session_id": "s1", "code": save}
            steps.append(Turn([tool_use("t3", "execute_code", code)], "tool_use"))
        said = {"session_id": "s1", "confidence": 0.7, "evidence": "e", **conclusions[organism]}
        steps.append(Turn([tool_use("t4", "conclude", said)], "tool_use"))
        fake_anthropic.script(*steps)
        grid = build_grid(
            {},
            [
                ("agent", ["claude:claude-sonnet-4-6"]),
                ("organism", [organism]),
                ("checkpoint_every", ["0"]),
            ],
        )
        out = tmp_path / organism
        (row,) = await BenchRunner(out, expand(grid, 1), jobs=1).run()
        assert row["exit"] == "concluded" and row["claim"] == "named", row
        assert row["correct"] is True, row
        text = write_report(out).read_text()
        if organism == direction:
            assert row["cosine"] == pytest.approx(-1.0, abs=1e-4)
            assert row["relative_effect"] == pytest.approx(1.0)
            assert row["claimed_layer"] == 0 and row["layer_match"] is (dkey.layer == 0)
            assert "## Directions" in text and "| cosine | effect |" in text
            assert "cosine -1.00 · ablation effect 1.00 of the key's" in text
        else:
            assert row["top_named"] is True and row["precision"] == 1.0
            assert "## Circuits" in text and "## Directions" not in text
