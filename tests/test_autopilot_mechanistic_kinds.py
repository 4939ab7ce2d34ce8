"""The autopilot's recall and direction plans: their decisions on synthetic measurements,
their steps on synthetic cell outputs, and ``investigate --auto`` on the bundled recall and
direction organisms (the real CLI, host, kernel and models), scored by the bench's scorer."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import nbformat
import pytest
from test_autopilot_circuit import drive_circuit
from test_autopilot_logic import steps_of, tool_calls
from test_investigate_e2e import only_notebook, scribe

from scribe_tui.autopilot import direction, recall
from scribe_tui.autopilot.circuit import two_decimals
from scribe_tui.autopilot.kinds import mechanistic
from scribe_tui.bench.scoring import score
from scribe_tui.claims import load_direction
from scribe_tui.organisms.keys import answer_key_record
from scribe_tui.organisms.registry import list_organisms

RECALL_TASK = (
    "Your task: find the layers where this model recalls the facts it knows about a subject"
    "\n\nWhat you are told about the subject model: A tiny transformer language model trained "
    "on synthetic sentences of facts. Name the layers whose MLPs recall a land's attributes "
    "(conclude with layers=[...], or components such as mlp2)."
)
DIRECTION_TASK = (
    "Your task: find the direction in this chat model's residual stream that mediates its "
    "refusals\n\nWhat you are told about the subject model: A tiny chat model that answers "
    "questions about made-up things and sometimes refuses."
)


# -- recognising the task ---------------------------------------------------------------------


def test_recall_and_direction_tasks_get_their_own_plans_before_the_circuit_sign() -> None:
    # Recall's description names MLPs and components, the circuit plan's signs.
    assert mechanistic(RECALL_TASK) == "recall"
    assert mechanistic(DIRECTION_TASK) == "direction"
    assert mechanistic("Your task: which attention heads let this model copy text") == "circuit"
    assert mechanistic("Your task: find the secret word\n\nThe model has a secret word.") is None


# -- recall: the decision on synthetic measurements -------------------------------------------


def recall_measurements(
    effects: dict[int, float], answer: float, gain: float, noise: float, seed: int = 0
) -> tuple[list[float], list[float], dict, dict, list[float]]:
    """Per-prompt answer probabilities, recall gains, and the log-probability each of 4
    layers' MLP ablation removes (clean, and subject-noised), and every MLP at once."""
    rng = random.Random(seed)
    n = 24
    answer_p = [min(1.0, max(0.0, answer + rng.gauss(0, 0.05))) for _ in range(n)]
    gains = [gain + rng.gauss(0, noise) for _ in range(n)]
    removed = {k: [effects.get(k, 0.0) + rng.gauss(0, noise) for _ in range(n)] for k in range(4)}
    null = {k: [rng.gauss(0, noise) for _ in range(n)] for k in range(4)}
    total = [sum(effects.values()) + rng.gauss(0, noise) for _ in range(n)]
    return answer_p, gains, removed, null, total


def test_recall_names_the_layers_whose_mlps_stand_out_of_the_null() -> None:
    found = recall.verdict(*recall_measurements({0: 6.0, 3: 2.5}, 0.99, 8.0, 0.3))
    assert found.answer == "layers 0, 3" and found.layers == [0, 3]
    assert found.confidence >= 0.5
    assert found.figures["null"] < found.figures["share"] < 2.5


def test_recall_s_evidence_reads_its_figures_as_text() -> None:
    found = recall.verdict(*recall_measurements({0: 6.0, 3: 2.5}, 0.99, 8.0, 0.3))
    evidence = recall.conclusion({"judge_recall": found.record()})["evidence"]
    assert evidence.startswith(two_decimals(found.reason) + ". Figures: median answer probability ")
    assert "{" not in evidence and "}" not in evidence  # no Python dict
    removed = found.figures["removed"]
    assert f"removed by each layer's MLP (0: {removed[0]:.2f}, 1: " in evidence
    assert "recall absent in 0.00 of resamples" in evidence and "no recall" not in evidence
    assert evidence.endswith(
        "Confidence: the share of resamples in which recall is present, the layer whose "
        "ablation removes most is named, and more than half the named layers are selected."
    )
    none = recall.verdict(*recall_measurements({0: 0.1}, 0.1, 0.1, 0.2))
    assert recall.conclusion({"judge_recall": none.record()})["evidence"].endswith(
        "Confidence: the share of resamples in which recall is absent."
    )


def test_recall_confidence_is_the_bootstrap_share_not_a_constant() -> None:
    # A second layer near the bar is selected in some resamples only: claimed with it,
    # the claim's precision fails there, and the confidence falls with the share.
    sure = recall.verdict(*recall_measurements({0: 6.0}, 0.99, 8.0, 0.2))
    shaky = recall.verdict(*recall_measurements({0: 6.0, 3: 1.4}, 0.99, 8.0, 3.0))
    assert sure.answer == "layers 0" and sure.confidence > 0.95
    assert shaky.answer == "layers 0, 3" and 0.5 <= shaky.confidence < 0.9


def test_recall_on_a_control_that_knows_no_fact_is_none() -> None:
    # Answers at chance (about 1/12), a small gain that the null covers: nothing claimed.
    found = recall.verdict(*recall_measurements({0: 0.1}, 0.1, 0.1, 0.2))
    assert found.answer == "none" and found.layers == [] and found.confidence >= 0.5


def test_recall_spread_over_every_layer_is_unknown_not_none() -> None:
    found = recall.verdict(*recall_measurements(dict.fromkeys(range(4), 1.0), 0.99, 6.0, 0.2))
    assert found.answer == "unknown" and found.layers == []


# -- direction: the decision on synthetic measurements ----------------------------------------


def refusal_probabilities(planted: bool, seed: int = 0) -> dict[str, list[float]]:
    """Per word, per phrasing (8): a planted model refuses half the words and answers the
    rest; a control refuses every request with probability about one half."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)]
    if planted:
        return {
            w: [min(1.0, max(0.0, (i % 2) + rng.gauss(0, 0.02) * (1 - 2 * (i % 2))))
                for _ in range(8)]
            for i, w in enumerate(words)
        }  # fmt: skip
    return {w: [min(1.0, max(0.0, 0.5 + rng.gauss(0, 0.03))) for _ in range(8)] for w in words}


FIT, TEST = list(range(4)), list(range(4, 8))


def direction_layers(removed: dict[int, float], separation: float = 6.0) -> dict:
    return {
        k: {"separation": separation, "null": 0.3, "removed": r, "induced": r,
            "random_removed": 0.0}
        for k, r in removed.items()
    }  # fmt: skip


def ablations(p_refuse: dict[str, list[float]], removed: dict[int, float]) -> dict:
    """Per-word refusal rates before and after ablating each layer's direction: the
    refused words stop being refused with probability ``removed``; answered stay so."""
    refused, answered = direction.split(p_refuse, FIT)
    before = {**dict.fromkeys(refused, 1.0), **dict.fromkeys(answered, 0.0)}
    rng = random.Random(3)
    return {
        k: {
            "before": before,
            "after": {w: float(w in refused and rng.random() > r) for w in before},
        }
        for k, r in removed.items()
    }


def test_the_share_of_the_gap_removed_counts_refusing_everything_as_removing_it() -> None:
    before = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
    share = direction.removed_share
    assert share(before, {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}, "ab", "cd") == 1.0
    assert share(before, dict.fromkeys("abcd", 1.0), "ab", "cd") == 1.0  # refuses everything
    assert share(before, {"a": 0.0, "b": 0.0, "c": 1.0, "d": 1.0}, "ab", "cd") == 0.0  # flipped
    assert share(before, {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}, "ab", "cd") == 0.5


def test_refusals_that_follow_a_class_beat_shuffled_labels_and_a_coin_flip_does_not() -> None:
    planted = direction.classes(refusal_probabilities(True), FIT, TEST)
    assert planted.present and planted.gap > 0.9 > planted.null
    assert sorted(planted.refused) == sorted(f"w{i}" for i in range(1, 40, 2))
    control = direction.classes(refusal_probabilities(False), FIT, TEST)
    assert not control.present and control.noise > control.gap


def test_direction_names_the_separating_layer_whose_ablation_removes_most() -> None:
    p_refuse = refusal_probabilities(True)
    removed = {0: 0.4, 1: 0.1, 2: 1.0, 3: 1.0}
    layers = direction_layers(removed)
    layers[3]["separation"] = 9.0  # a tie on removal goes to the layer that separates most
    found = direction.verdict(p_refuse, FIT, TEST, layers, ablations(p_refuse, removed))
    assert found.answer == "the refusal direction read at layer 3" and found.layer == 3
    assert found.confidence >= 0.5
    assert found.record()["file"] == direction.FILE


def test_direction_s_evidence_reads_its_figures_as_text() -> None:
    p_refuse = refusal_probabilities(True)
    removed = {0: 0.4, 1: 0.1, 2: 1.0, 3: 0.9}
    layers = direction_layers(removed)
    found = direction.verdict(p_refuse, FIT, TEST, layers, ablations(p_refuse, removed))
    evidence = direction.conclusion({"judge_direction": found.record()})["evidence"]
    assert evidence.startswith(
        two_decimals(found.reason) + ". Figures: refusal gap between the classes "
    )
    assert evidence.endswith(
        "Confidence: the share of resamples in which refusals follow a class and ablating the "
        "direction removes at least 0.80 of the gap."
    )
    assert "{" not in evidence and "}" not in evidence  # no Python dict
    assert "layer 2, separation 6.00 sd, 0.30 sd shuffled, ablation removes 1.00 of the gap" in (
        evidence
    )


def test_a_direction_that_removes_too_few_refusals_is_not_claimed() -> None:
    p_refuse = refusal_probabilities(True)
    removed = {0: 0.5, 1: 0.6, 2: 0.4, 3: 0.3}
    found = direction.verdict(
        p_refuse, FIT, TEST, direction_layers(removed), ablations(p_refuse, removed)
    )
    assert found.answer == "unknown" and found.layer is None
    # Nor one that removes no more than ablating a random direction does.
    removed = dict.fromkeys(range(4), 1.0)
    layers = direction_layers(removed)
    for figures in layers.values():
        figures["random_removed"] = 1.0
    found = direction.verdict(p_refuse, FIT, TEST, layers, ablations(p_refuse, removed))
    assert found.answer == "unknown" and "random" in found.reason


def test_a_direction_on_a_control_is_none_even_where_a_layer_separates() -> None:
    p_refuse = refusal_probabilities(False)
    removed = dict.fromkeys(range(4), 1.0)  # every request near 0.5: any push flips it
    found = direction.verdict(
        p_refuse, FIT, TEST, direction_layers(removed), ablations(p_refuse, removed)
    )
    assert found.answer == "none" and found.layer is None and found.confidence >= 0.5


# -- the plans' steps on synthetic cell outputs -----------------------------------------------


RECALL_OUTPUTS = {
    "facts": "{'technique': 'facts', 'prompts': 90, 'measured': 24, 'slot': 3,"
    " 'recalled': 1.0, 'median_answer_p': 0.99}",
    "tracing": "{'technique': 'tracing', 'at_subject': [1.0, 0.9, 0.2, 0.0],"
    " 'at_last': [0.0, 0.1, 0.5, 1.0]}",
    "mlp_ablation": "{'technique': 'mlp_ablation', 'gain': 9.0, 'total': 8.0,"
    " 'removed': {0: 6.0, 1: 0.2, 2: 0.1, 3: 2.5}, 'null': {0: 0.3}}",
    "judge_recall": "{'technique': 'judging', 'answer': 'layers 0, 3', 'layers': [0, 3],"
    " 'confidence': 0.91, 'reason': 'two layers stand out', 'figures': {}}",
}
DIRECTION_OUTPUTS = {
    "requests": "{'technique': 'requests', 'phrasings': 8, 'words': 42,"
    " 'refusal_openers': ['sorry'], 'refused_over_half': 21}",
    "classes": "{'technique': 'classes', 'refused': ['a'], 'answered': ['b'], 'gap': 1.0,"
    " 'null': 0.4, 'noise': 0.01, 'present': True}",
    "directions": "{'technique': 'directions', 'layers': {0: [4.0, 0.3], 3: [9.0, 0.2]}}",
    "ablate_direction": "{'technique': 'ablate_direction', 'random_removed': 0.0,"
    " 'layers': {0: [1.0, 1.0], 3: [1.0, 1.0]}}",
    "judge_direction": "{'technique': 'judging', 'answer': 'the refusal direction read at"
    " layer 3', 'layer': 3, 'file': 'refusal_direction.pt', 'confidence': 0.97,"
    " 'reason': 'it removes the refusals', 'figures': {}}",
}


async def test_the_recall_plan_runs_in_order_and_concludes_with_layers() -> None:
    calls = tool_calls(await drive_circuit(task=RECALL_TASK, outputs=RECALL_OUTPUTS))
    steps = steps_of(calls)
    order = ["facts", "tracing", "mlp_ablation", "method", "judge_recall"]
    assert [s for s in steps if s in order] == order and "copying" not in steps
    code = {s: c["input"].get("code", "") for s, c in zip(steps, calls, strict=True)}
    for step in recall.PLAN.steps:
        ast.parse(code[step])  # every cell is valid Python
    assert "causal_tracing" in code["tracing"] and "imshow" in code["tracing"]
    assert "noise=True" in code["mlp_ablation"]
    assert recall.PROCEDURE in calls[steps.index("method")]["input"]["content"]
    conclusion = calls[-1]["input"]
    assert conclusion["answer"] == "layers 0, 3" and conclusion["layers"] == [0, 3]
    assert conclusion["confidence"] == 0.91


async def test_the_direction_plan_saves_a_file_and_concludes_with_it() -> None:
    calls = tool_calls(await drive_circuit(task=DIRECTION_TASK, outputs=DIRECTION_OUTPUTS))
    steps = steps_of(calls)
    order = ["requests", "classes", "directions", "ablate_direction", "judge_direction"]
    assert [s for s in steps if s in order] == order
    code = {s: c["input"].get("code", "") for s, c in zip(steps, calls, strict=True)}
    for step in direction.PLAN.steps:
        ast.parse(code[step])
    assert "torch.save(diffs[found.layer]" in code["judge_direction"]
    conclusion = calls[-1]["input"]
    assert conclusion["direction"] == "refusal_direction.pt" and conclusion["layer"] == 3
    summary = calls[steps.index("summary")]["input"]["content"]
    assert "difference of means at layer 3" in summary


async def test_a_control_direction_concludes_none_without_a_file() -> None:
    none = {
        "judge_direction": "{'technique': 'judging', 'answer': 'none', 'layer': None,"
        " 'file': None, 'confidence': 1.0, 'reason': 'no class', 'figures': {}}"
    }
    calls = tool_calls(
        await drive_circuit(task=DIRECTION_TASK, outputs={**DIRECTION_OUTPUTS, **none})
    )
    conclusion = calls[-1]["input"]
    assert conclusion["answer"] == "none" and "direction" not in conclusion


# -- the real stack on the bundled organisms --------------------------------------------------


def bundled(kind: str) -> list[str]:
    return sorted(i.name for i in list_organisms() if i.kind == kind)


def investigate(organism: str, task: str, tmp_path: Path) -> dict:
    run = scribe(
        "investigate", task, "--auto", "--model", f"organism:{organism}",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    nb = nbformat.read(only_notebook(tmp_path), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    conclusion = nb.metadata["scribe"]["conclusion"]
    # The end-of-run summary names the structured claim, and where a direction was saved.
    if conclusion.get("layers"):
        assert f"\nLayers: {', '.join(map(str, conclusion['layers']))}\n" in run.stdout
    if conclusion.get("direction"):
        said = conclusion["direction"]
        saved = only_notebook(tmp_path).relative_to(tmp_path).with_suffix(".files") / said["path"]
        assert f"\nDirection: {saved} (layer {said['layer']})\n" in run.stdout
    return conclusion


@pytest.mark.slow
@pytest.mark.parametrize("organism", bundled("direction"))
def test_investigate_auto_finds_each_refusal_direction(organism: str, tmp_path: Path) -> None:
    task = "find the direction in this chat model's residual stream that mediates its refusals"
    conclusion = investigate(organism, task, tmp_path)
    # The key is read here, for scoring only, after the run.
    key = answer_key_record(organism)
    result = score(
        conclusion["answer"], key, organism=organism, direction=conclusion.get("direction")
    )
    if key.control:
        assert conclusion["answer"] in ("none", "unknown"), conclusion
        assert not conclusion.get("direction") and not result.false_positive
        return
    said = conclusion["direction"]
    files = only_notebook(tmp_path).with_suffix(".files")
    assert load_direction(files / said["path"]) == pytest.approx(said["vector"])
    assert result.correct and result.circuit.relative >= 0.8, result
    assert conclusion["confidence"] >= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("organism", bundled("recall"))
def test_investigate_auto_finds_each_recall_layer(organism: str, tmp_path: Path) -> None:
    task = "find the layers where this model recalls the facts it knows about a subject"
    conclusion = investigate(organism, task, tmp_path)
    key = answer_key_record(organism)
    result = score(conclusion["answer"], key, organism=organism, layers=conclusion.get("layers"))
    if key.control:
        assert conclusion["answer"] in ("none", "unknown"), conclusion
        assert not conclusion.get("layers") and not result.false_positive
        return
    assert result.correct and result.circuit.top_named, result
    assert conclusion["confidence"] >= 0.5
