"""The acceptance check of a mechanistic organism: its key is re-measured, and must hold.

:func:`verify_circuit` measures the organism again, blind to the key, with the key's
own probe (:mod:`scribe_tui.organisms.circuits`), then compares. What passes:

- the re-measured circuit is the key's, component for component;
- with a circuit: the behaviour is present and the key's circuit is faithful, keeping
  and losing at least :data:`FAITHFUL` of it;
- a control (empty circuit): the behaviour is absent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scribe_tui.organisms.keys import AnswerKey

FAITHFUL = 0.8


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
