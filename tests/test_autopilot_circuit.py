"""The autopilot's mechanistic plan: its decision on synthetic measurements, its steps on
synthetic cell outputs, and ``investigate --auto`` on the bundled induction organisms
(the real CLI, host, kernel and models), scored against their keys by the bench's scorer."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_autopilot_logic import steps_of, tool_calls
from test_investigate_e2e import only_notebook, scribe

from scribe_tui.agent.provider import ProviderError, TurnRequest
from scribe_tui.autopilot import circuit
from scribe_tui.autopilot.circuit import PROCEDURE, faithfulness, stand_out, verdict
from scribe_tui.autopilot.investigator import Autopilot
from scribe_tui.autopilot.kinds import mechanistic, recognise
from scribe_tui.bench.scoring import score
from scribe_tui.organisms.keys import answer_key_record
from scribe_tui.organisms.registry import list_organisms

COPY_TASK = (
    "Your task: which attention heads let this model copy repeated text\n\n"
    "What you are told about the subject model: A tiny transformer language model."
)
COMPONENTS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)] + ["mlp0", "mlp1"]


def synthetic(
    circuit_effects: dict[str, float], gain: float, noise: float, seed: int = 0, n: int = 32
) -> tuple[list[float], dict[str, list[float]], dict[str, list[float]]]:
    """Per-prompt copying gains and removed log-probabilities (repeated, unrepeated) of a
    model whose ``circuit_effects`` components carry the copying; the rest do ~nothing."""
    rng = random.Random(seed)
    gains = [gain + rng.gauss(0, noise) for _ in range(n)]
    repeated = {
        c: [circuit_effects.get(c, 0.0) + rng.gauss(0, noise) for _ in range(n)] for c in COMPONENTS
    }
    unrepeated = {c: [rng.gauss(0, noise) for _ in range(n)] for c in COMPONENTS}
    return gains, repeated, unrepeated


def confirm_of(chosen: list[str], kept: float, lost: float, n: int = 32) -> dict[str, Any]:
    """Per-prompt scores of a confirm cell whose set keeps and loses these shares."""
    rng = random.Random(1)
    clean = [-2.0 + rng.gauss(0, 0.2) for _ in range(n)]
    everything = [-6.0 + rng.gauss(0, 0.2) for _ in range(n)]
    return {
        "set": chosen,
        "clean": clean,
        "everything": everything,
        "alone": [e + kept * (c - e) for c, e in zip(clean, everything, strict=True)],
        "without": [c - lost * (c - e) for c, e in zip(clean, everything, strict=True)],
    }


# -- recognising the task ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "opening",
    [
        COPY_TASK,
        "Your task: find the induction circuit",
        "Your task: find out how it works\n\nName the components that implement copying.",
        "Your task: which MLPs matter for this?",
    ],
)
def test_a_question_about_components_is_mechanistic(opening: str) -> None:
    assert mechanistic(opening) == "circuit"


@pytest.mark.parametrize(
    "opening",
    [
        "Your task: find the secret word\n\nThe model has a secret word. Find the word.",
        "Your task: find the backdoor trigger and behaviour\n\nA word switches its behaviour.",
        "Your task: find the hidden preference\n\nA topic it steers toward.",
        "Your task: find out what is odd\n\nNothing more is known.",
    ],
)
def test_a_hidden_secret_is_not_mechanistic(opening: str) -> None:
    assert mechanistic(opening) is None
    assert recognise(opening) != "circuit"


async def test_client_info_naming_heads_does_not_make_a_secret_mechanistic() -> None:
    # client.info() is appended to what the autopilot knows; it names layers (and may name
    # heads) for any model. Only the opening message decides the plan.
    info = {"info": "{'model': 'x', 'layers': 2, 'heads': 4, 'attention heads': 4}"}
    task = "Your task: find the secret word\n\nThe model has a secret word."
    messages: list[dict[str, Any]] = []
    with pytest.raises(ProviderError):  # the word plan's cells get no evidence here
        await drive_circuit(task=task, outputs=info, messages=messages)
    steps = steps_of(tool_calls(messages))
    assert "info" in steps and "fit" in steps and "copying" not in steps


# -- the decision on synthetic measurements ---------------------------------------------------


def test_components_that_carry_the_copying_stand_out_of_the_null() -> None:
    planted = {"L0H3": 3.0, "L1H1": 0.9, "L1H2": 0.7}
    gains, repeated, unrepeated = synthetic(planted, gain=4.0, noise=0.1)
    scan = stand_out(gains, repeated, unrepeated)
    assert scan.selected == ["L0H3", "L1H1", "L1H2"]
    assert all(scan.support[c] > 0.95 for c in planted)
    assert all(scan.support[c] < 0.05 for c in COMPONENTS if c not in planted)
    assert scan.share == pytest.approx(sum(gains) / len(gains) / len(COMPONENTS))
    assert scan.null == max(abs(sum(v) / len(v)) for v in unrepeated.values())
    assert "L0H3" in scan.table() and scan.record()["selected"] == scan.selected

    found = verdict(gains, repeated, unrepeated, confirm_of(scan.selected, 0.95, 1.0))
    assert found.answer == "L0H3, L1H1, L1H2" and found.components == scan.selected
    assert found.confidence >= 0.9
    assert found.figures["faithfulness"] == pytest.approx(0.95, abs=0.01)
    assert found.record()["technique"] == "judging"


def test_the_confidence_is_the_bootstrap_share_not_a_constant() -> None:
    planted = {"L0H3": 3.0, "L1H1": 0.9, "L1H2": 0.7}
    clean = verdict(*synthetic(planted, 4.0, 0.1), confirm_of(list(planted), 0.95, 1.0))
    # Noisy prompts: the weakest components sometimes fall below the bar.
    noisy = synthetic({"L0H3": 3.0, "L1H1": 0.55, "L1H2": 0.5}, 4.0, 1.2, seed=2)
    scan = stand_out(*noisy)
    found = verdict(*noisy, confirm_of(scan.selected, 0.95, 1.0))
    assert 0.0 < found.confidence < clean.confidence
    # A set that keeps too little of the copying is not a faithful circuit: no claim.
    weak = verdict(*synthetic(planted, 4.0, 0.1), confirm_of(list(planted), 0.3, 1.0))
    assert weak.answer == "unknown" and weak.components == []


def test_a_control_without_copying_claims_none() -> None:
    gains, repeated, unrepeated = synthetic({}, gain=0.0, noise=0.05, seed=4)
    found = verdict(gains, repeated, unrepeated, confirm_of(["L0H0"], 0.0, 0.0))
    assert found.answer == "none" and found.components == []
    assert found.confidence >= 0.5
    assert found.figures["p_present"] < 0.5


def test_copying_spread_over_every_component_is_unknown_not_none() -> None:
    spread = dict.fromkeys(COMPONENTS, 0.3)  # each well below an equal share of 4 nats
    found = verdict(*synthetic(spread, gain=4.0, noise=0.05), None)
    assert found.answer == "unknown" and "spread" in found.reason


def test_a_candidate_set_not_confirmed_jointly_is_not_claimed() -> None:
    found = verdict(*synthetic({"L0H3": 3.0}, 4.0, 0.1), None)
    assert found.answer == "unknown" and "not ablated jointly" in found.reason


def test_faithfulness_is_kept_and_lost_against_ablating_everything() -> None:
    confirm = {"clean": [-2.0], "everything": [-6.0], "alone": [-3.0], "without": [-5.0]}
    assert faithfulness(confirm) == {"kept": 0.75, "lost": 0.75, "faithfulness": 0.75}
    flat = {"clean": [-6.0], "everything": [-6.0], "alone": [-6.0], "without": [-6.0]}
    assert faithfulness(flat)["faithfulness"] is None  # no behaviour to keep


def test_the_conclusion_s_evidence_reads_its_figures_as_text() -> None:
    planted = {"L0H3": 3.0, "L1H2": 2.0}
    found = verdict(*synthetic(planted, 4.0, 0.1), confirm_of(list(planted), 0.95, 1.0))
    evidence = circuit.conclusion({"judging": found.record()})["evidence"]
    assert evidence.startswith(circuit.two_decimals(found.reason) + ". Figures: copying gain ")
    assert "{" not in evidence and "}" not in evidence  # no Python dict
    kept, lost = found.figures["kept"], found.figures["lost"]
    assert f"kept {kept:.2f}, lost {lost:.2f}, faithfulness {kept:.2f}." in evidence
    assert "share of resamples selecting each component (L0H3: 1.00, L1H2: 1.00)" in evidence
    # The judging cell prints its reason as worded in the kernel; the evidence reads it at
    # the figures' precision, and says what the confidence counts.
    assert "lose 1.0 of" in found.reason and "lose 1.00 of the copying" in evidence
    assert all(len(n.split(".")[1]) == 2 for n in re.findall(r"\d+\.\d+", evidence)), evidence
    assert evidence.endswith(
        "Confidence: the share of resamples in which copying is present, the chosen set is "
        "within F1 0.80 of the claim, and the claim is faithful (keeps and loses at least 0.80)."
    )


def test_the_summary_s_claim_reads_its_numbers_at_two_decimals() -> None:
    planted = {"L0H3": 3.0, "L1H2": 2.0}
    found = verdict(*synthetic(planted, 4.0, 0.1), confirm_of(list(planted), 0.95, 1.0))
    confirm = {"faithfulness": 0.9512}
    note = circuit.summary_note({"judging": found.record(), "confirm": confirm}, {})
    claim = note.splitlines()[2]
    assert "lose 1.00 of the copying; faithfulness 0.95." in claim, claim
    assert f"Confidence {found.confidence:.2f} (bootstrap over prompts)." in claim


# -- the plan, driven with synthetic cell outputs ---------------------------------------------

CIRCUIT_OUTPUTS = {
    "info": "{'model': 'organism:x', 'layers': 2}",
    "copying": "{'technique': 'copying', 'prompts': 32, 'components': 10, 'gain': 4.2,"
    " 'raised': 1.0}",
    "patterns": "{'technique': 'patterns', 'top': {'induction': [['L1H2', 0.6]]}}",
    "attribution": "{'technique': 'attribution', 'candidates': ['L0H3', 'L1H2']}",
    "ablate": "{'technique': 'ablate', 'selected': ['L0H3', 'L1H2'], 'gain': 4.2,"
    " 'null': 0.2, 'share': 0.42, 'top': [['L0H3', 3.4, 1.0], ['L1H2', 0.7, 1.0]]}",
    "confirm": "{'technique': 'confirm', 'set': ['L0H3', 'L1H2'], 'kept': 0.9, 'lost': 1.0,"
    " 'faithfulness': 0.9, 'null_change': 0.2}",
    "judging": "{'technique': 'judging', 'answer': 'L0H3, L1H2', 'components': ['L0H3',"
    " 'L1H2'], 'confidence': 0.93, 'reason': '2 components stand out', 'figures': {}}",
}


async def drive_circuit(
    task: str = COPY_TASK,
    outputs: dict[str, str] | None = None,
    extra_user: dict[int, str] | None = None,
    errors: tuple[str, ...] = (),
    messages: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run the autopilot against canned cell outputs; the conversation (also left in
    ``messages`` when given, for a run that ends in an error)."""
    canned = {**CIRCUIT_OUTPUTS, **(outputs or {})}
    pilot = Autopilot(seed=5)
    messages = [] if messages is None else messages
    messages.append({"role": "user", "content": task})
    for turn in range(30):
        result = await pilot.turn(TurnRequest(system="", messages=messages), lambda e: None)
        messages.append({"role": "assistant", "content": result.content})
        tool = next(b for b in result.content if b["type"] == "tool_use")
        if tool["name"] == "conclude":
            return messages
        step = tool["id"].split("_", 3)[-1]
        text = f"[7] ok\nOut[7]: {canned.get(step, 'done')}"
        if tool["name"] == "start_new_session":
            text = "Session 's9' started. Run init_session(session_id='s9') next."
        if step in errors:
            text = "[7] error\nRuntimeError: the host died"
        content: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": tool["id"], "content": text,
             "is_error": step in errors}
        ]  # fmt: skip
        if extra_user and turn in extra_user:
            content.append({"type": "text", "text": extra_user[turn]})
        messages.append({"role": "user", "content": content})
    raise AssertionError("the autopilot never concluded")


async def test_the_plan_runs_in_order_and_concludes_with_the_judged_components() -> None:
    calls = tool_calls(await drive_circuit())
    steps = steps_of(calls)
    assert steps[:4] == ["start", "init", "info", "plan"]
    order = ["copying", "patterns", "attribution", "ablate", "confirm", "method", "judging"]
    assert [s for s in steps if s in order] == order
    assert steps[-2:] == ["summary", "conclude"]
    assert all(c["input"].get("session_id") == "s9" for c in calls[1:-1])
    code = {s: c["input"].get("code", "") for s, c in zip(steps, calls, strict=True)}
    for step in circuit.PLAN.steps:
        ast.parse(code[step])  # every cell is valid Python
    assert "head_scores" in code["patterns"] and "imshow" in code["patterns"]
    assert "attribution_patching" in code["attribution"]
    assert "ablate_components" in code["ablate"] and "stand_out" in code["ablate"]
    # The confirm cell ablates exactly the set the ablation cell printed.
    assert 'candidate_set = ["L0H3", "L1H2"]' in code["confirm"]
    assert "complement=complement" in code["confirm"]
    assert PROCEDURE in calls[steps.index("method")]["input"]["content"]
    conclusion = calls[-1]["input"]
    assert conclusion["answer"] == "L0H3, L1H2"
    assert conclusion["components"] == ["L0H3", "L1H2"]
    assert conclusion["confidence"] == 0.93
    summary = calls[steps.index("summary")]["input"]["content"]
    assert "The copying circuit is L0H3, L1H2" in summary


async def test_nothing_standing_out_is_confirmed_on_the_strongest_and_concludes_none() -> None:
    none = {
        "ablate": "{'technique': 'ablate', 'selected': [], 'gain': 0.0, 'null': 0.02,"
        " 'share': 0.0, 'top': [['L0H1', 0.01, 0.0]]}",
        "judging": "{'technique': 'judging', 'answer': 'none', 'components': [],"
        " 'confidence': 0.97, 'reason': 'nothing stands out', 'figures': {}}",
    }
    calls = tool_calls(await drive_circuit(outputs=none))
    steps = steps_of(calls)
    assert (
        "max(components, key=scan.repeated.get)" in calls[steps.index("confirm")]["input"]["code"]
    )
    conclusion = calls[-1]["input"]
    assert conclusion["answer"] == "none" and "components" not in conclusion
    assert conclusion["confidence"] == 0.97


async def test_a_failed_ablation_skips_what_reads_it_and_concludes_unknown() -> None:
    calls = tool_calls(await drive_circuit(errors=("ablate",)))
    steps = steps_of(calls)
    assert "confirm" not in steps and "judging" not in steps
    assert calls[-1]["input"]["answer"] == "unknown"
    assert "ablate (failed)" in calls[steps.index("summary")]["input"]["content"]


async def test_every_experiment_failing_ends_the_run_as_failed() -> None:
    with pytest.raises(ProviderError, match="every experiment failed"):
        await drive_circuit(errors=("copying",))


async def test_on_a_black_box_host_a_mechanistic_task_concludes_unknown_and_says_why() -> None:
    setup = "InterpClient: organism:x on cpu (float32), 1M params (black-box: client.generate)"
    calls = tool_calls(await drive_circuit(outputs={"init": setup}))
    assert steps_of(calls) == ["start", "init", "conclude"]  # no cell that needs client.run
    conclusion = calls[-1]["input"]
    assert conclusion["answer"] == "unknown" and "components" not in conclusion
    assert "refuses client.run" in conclusion["evidence"]
    assert "without --mode blackbox" in conclusion["evidence"]


async def test_a_person_and_a_checkpoint_request_are_answered_mid_plan() -> None:
    person = "Message from the person: what do the induction heads look like?"
    checkpoint = "Please write an exploration checkpoint now."
    messages = await drive_circuit(extra_user={5: person, 7: checkpoint})
    calls = tool_calls(messages)
    steps = steps_of(calls)
    assert "ack" in steps and "checkpoint" in steps
    assert "## Exploration checkpoint" in calls[steps.index("checkpoint")]["input"]["content"]
    assert calls[-1]["input"]["components"] == ["L0H3", "L1H2"]  # the plan went on to the end


# -- the real stack on the bundled induction organisms ----------------------------------------

INDUCTION = sorted(i.name for i in list_organisms() if i.kind == "induction")


@pytest.mark.slow
@pytest.mark.parametrize("organism", INDUCTION)
def test_investigate_auto_finds_each_induction_circuit(organism: str, tmp_path: Path) -> None:
    run = scribe(
        "investigate", "which attention heads let this model copy repeated text", "--auto",
        "--model", f"organism:{organism}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    nb = nbformat.read(only_notebook(tmp_path), as_version=4)
    conclusion = nb.metadata["scribe"]["conclusion"]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # heat map, ablations
    # The key is read here, for scoring only, after the run.
    key = answer_key_record(organism)
    result = score(
        conclusion["answer"],
        key,
        components=conclusion.get("components"),
        organism=organism,
    )
    if key.control:
        assert conclusion["answer"] in ("none", "unknown"), conclusion
        assert not conclusion.get("components")  # nothing claimed, at any confidence
        assert not result.false_positive
        return
    assert result.circuit is not None, conclusion
    assert result.circuit.f1 >= 0.8 and (result.circuit.faithfulness or 0.0) >= 0.8, result
    assert result.correct and conclusion["confidence"] >= 0.5
