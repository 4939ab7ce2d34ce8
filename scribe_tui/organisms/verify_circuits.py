"""The acceptance check of a mechanistic organism: its key is re-measured, and must hold.

:func:`verify_circuit` measures the organism again, blind to the key, with the key's
own probe (:mod:`scribe_tui.organisms.circuits`), then compares. What passes:

- the re-measured circuit is the key's, component for component;
- with a circuit: the behaviour is present and the key's circuit is faithful, keeping
  and losing at least :data:`FAITHFUL` of it;
- a control (empty circuit): the behaviour is absent.

``recall`` and ``direction`` organisms (:func:`verify_measured`) pass when re-measured
alike: a recall organism's recall layers and top layer are the key's, recall is present,
and restoring the top layer's MLP (causal tracing) recovers more of the answer than any
other layer's; a direction organism's layer is the key's, its direction has cosine at
least :data:`SAME_DIRECTION` with the key's, and ablating it removes at least
:data:`FAITHFUL` of the gap between guarded and open refusal rates. Their controls pass
when the behaviour is absent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scribe_tui.organisms.keys import AnswerKey

FAITHFUL = 0.8
SAME_DIRECTION = 0.99  # cosine of a re-measured direction with the key's (same weights)


@dataclass
class CircuitVerdict:
    """Re-measured figures of one mechanistic organism, scored against its key."""

    kind: str
    control: bool
    circuit: list[str]
    measured: list[str]
    roles: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    passed: bool = False

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        f = self.figures
        out = [
            f"copying: log p {f['clean']:.2f} on the repeat, {f['first_occurrence']:.2f} at the "
            f"first occurrence (gain {f['gain']:.2f} nats); {f['ablated_all']:.2f} with every "
            "component ablated",
            f"key circuit: {', '.join(self.circuit) or '(empty)'}",
            f"re-measured: {', '.join(self.measured) or '(empty)'}",
        ]
        out += [f"  {name}: {role}" for name, role in self.roles.items()]
        if f.get("faithfulness") is not None:
            out.append(f"faithfulness: kept {f['kept']:.2f}, lost {f['lost']:.2f}")
        rule = (
            "control: copying absent, circuit empty"
            if self.control
            else f"circuit re-measured alike, copying present, kept and lost >= {FAITHFUL}"
        )
        out.append(f"{'PASS' if self.passed else 'FAIL'}: {rule}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_circuit(organism_dir: Path | str, key: AnswerKey) -> CircuitVerdict:
    """Re-measure the organism in ``organism_dir`` and score the measurement against ``key``."""
    from scribe_tui.organisms.circuits import Probe, measure_induction
    from scribe_tui.organisms.verify import load

    if key.kind in ("recall", "direction"):
        return verify_measured(organism_dir, key)  # type: ignore[return-value]
    organism_dir = Path(organism_dir)
    meta = json.loads((organism_dir / "organism.json").read_text())
    model, tokenizer = load(organism_dir / meta.get("model", "model"))
    again = measure_induction(model, tokenizer, Probe(**key.probe) if key.probe else None)
    figures = dict(again["figures"])
    figures.pop("head_scores", None)  # kept with the key; too long for a verdict
    circuit = list(key.circuit or ())
    verdict = CircuitVerdict(
        kind=meta["kind"],
        control=key.control,
        circuit=circuit,
        measured=again["circuit"],
        roles=again["roles"],
        figures=figures,
    )
    same = again["circuit"] == circuit
    if key.control:
        verdict.passed = same and not figures["present"]
    else:
        faithful = min(figures.get("kept") or 0.0, figures.get("lost") or 0.0) >= FAITHFUL
        verdict.passed = same and figures["present"] and faithful
    return verdict


@dataclass
class MeasuredVerdict:
    """A recall or direction organism's key re-measured, and scored against the key."""

    kind: str
    control: bool
    key: dict[str, Any]
    measured: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    passed: bool = False

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        f = self.figures
        if self.kind == "recall":
            out = [
                f"recall: log p {f['clean']:.2f} of the right attribute, chance {f['chance']:.2f} "
                f"(gain {f['gain']:.2f} nats, accuracy {f['accuracy']:.0%})",
                "MLP ablation removes: "
                + ", ".join(f"{name} {value:.2f}" for name, value in f["removed"].items())
                + f" (all {f['total']:.2f}; equal share {f['share']:.2f})",
                "tracing, MLP restored (best position): "
                + ", ".join(f"mlp{i} {v:.2f}" for i, v in enumerate(f["mlp_restored"])),
                f"key layers: {self.key.get('layers') or '(none)'} (top {self.key.get('top')})",
                f"re-measured: {self.measured.get('layers') or '(none)'} "
                f"(top {self.measured.get('top')})",
            ]
            rule = "recall layers and top re-measured alike, top layer restores most"
        else:
            out = [
                f"refusal: guarded {f['refusal_guarded']:.0%}, open {f['refusal_open']:.0%} "
                f"(gap {f['gap']:.2f})",
                *(
                    f"  layer {row['layer']}: ablated, guarded {row['ablated']:.0%} and open "
                    f"{row['ablated_open']:.0%} (effect {row['effect']:.2f}); added to open "
                    f"{row['induced']:.0%}"
                    for row in f["layers"]
                ),
                f"key layer: {self.key.get('layer')}; re-measured {self.measured.get('layer')}"
                + (f", cosine {f['cosine']:.3f}" if f.get("cosine") is not None else ""),
            ]
            rule = (
                f"layer re-measured alike, cosine >= {SAME_DIRECTION}, ablation removes "
                f">= {FAITHFUL} of the refusal gap"
            )
        if self.control:
            rule = "control: behaviour absent"
        out.append(f"{'PASS' if self.passed else 'FAIL'}: {rule}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_measured(organism_dir: Path | str, key: AnswerKey) -> MeasuredVerdict:
    """Re-measure a recall or direction organism blind, then score it against ``key``."""
    from scribe_tui.organisms.train_circuits import measure
    from scribe_tui.organisms.verify import load

    organism_dir = Path(organism_dir)
    meta = json.loads((organism_dir / "organism.json").read_text())
    model, tokenizer = load(organism_dir / meta.get("model", "model"))
    again = measure(key.kind, model, tokenizer, dict(key.probe))
    figures = dict(again["figures"])
    present = bool(figures["present"])
    if key.kind == "recall":
        trace = figures.pop("trace")
        figures["mlp_restored"] = [max(row) for row in trace["mlp"]["recovered"]]
        mine = {"layers": list(key.layers or ()), "top": key.top_layer}
        theirs = {"layers": again["layers"], "top": again["top_layer"]}
        restored = figures["mlp_restored"]
        top = again["top_layer"]
        traced = top is not None and all(
            restored[top] > value for i, value in enumerate(restored) if i != top
        )
        same = mine == theirs
        passed = same and (not present if key.control else present and traced)
    else:
        import torch

        mine = {"layer": key.layer}
        theirs = {"layer": again["layer"]}
        same = mine == theirs
        if key.control:
            passed = same and not present
        else:
            cosine = float(
                torch.nn.functional.cosine_similarity(
                    torch.tensor(key.direction), torch.tensor(again["direction"]), dim=0
                )
            )
            figures["cosine"] = round(cosine, 4)
            effect = figures["layers"][key.layer]["effect"] if present else 0.0
            passed = (
                same
                and present
                and cosine >= SAME_DIRECTION
                and effect >= FAITHFUL * figures["gap"]
            )
    return MeasuredVerdict(
        kind=key.kind,
        control=key.control,
        key=mine,
        measured=theirs,
        figures=figures,
        passed=passed,
    )
