"""Measuring a circuit: the answer keys of mechanistic organisms, and the faithfulness of a claim.

The behaviour of an ``induction`` organism is in-context copying, measured on held-out
prompts of uniform random words repeated once and cut before a word of the repeat
(:func:`~scribe_tui.organisms.kinds.induction.repeat_prompts`): ``m`` is the mean
log-probability of that word. Every ablation is a mean ablation over the same prompts
(:func:`~scribe_tui.techniques.ablation.ablate_components`). Then:

- ``m0``: ``m`` with every head and MLP ablated (what the model does without any);
  the behaviour's size is ``total = m - m0``;
- the behaviour is *present* when copying gains at least one nat: ``m`` exceeds the
  same words' mean log-probability at their first occurrence (where nothing earlier
  predicts them) by ``>= 1`` (the earlier occurrence makes the word e times likelier).
  Absent, the key's circuit is empty (a control, trained on text without repeats);
- **the circuit rule**: present, a component is in the circuit when ablating it alone
  removes more than an equal share of the behaviour, ``m - m_ablated > total / N`` for
  the ``N`` heads and MLPs scanned. The rule has no tuned constant: a component doing
  at most its share of the work of all of them is not what the behaviour rests on.
- roles come from attention patterns (:func:`~scribe_tui.techniques.heads.head_scores`):
  a circuit head's role is its highest of previous-token, induction and duplicate-token
  scores when that is at least :data:`ROLE_MIN`, else ``other`` (an MLP's is ``mlp``).

Faithfulness of a set of components ``C`` (:func:`faithfulness`) is
``min(kept, lost)``: ``kept = (m(only C) - m0) / total`` with everything else ablated,
``lost = (m - m(without C)) / total`` with ``C`` ablated, each clipped to [0, 1]. A
circuit must both suffice and be needed; the empty claim scores 0, the whole model
keeps everything but loses nothing it does not also lose with any other part.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scribe_tui.organisms.kinds import induction

GAIN_MIN = 1.0  # nats of copying gain for the behaviour to count as present
ROLE_MIN = 0.25  # mean attention on the key a role names
METHOD = "mean"


@dataclass(frozen=True)
class Probe:
    """How the behaviour is measured; stored in the key so a scorer re-creates it."""

    kind: str = induction.NAME
    n: int = 44
    seed: int = 7919
    length: int = 12
    method: str = METHOD

    def prompts(self) -> tuple[list[str], list[str]]:
        """(prompts, targets) of the repeat probe."""
        if self.kind != induction.NAME:
            raise ValueError(f"no probe for kind {self.kind!r}")
        pairs = induction.repeat_prompts(self.n, self.seed, self.length)
        return [p for p, _ in pairs], [t for _, t in pairs]

    def first_occurrences(self) -> tuple[list[str], list[str]]:
        """The same targets at their first occurrence: the span cut before them."""
        prompts, targets = self.prompts()
        firsts = []
        for prompt, target in zip(prompts, targets, strict=True):
            words = prompt.split()
            firsts.append(" ".join(words[: words.index(target)]))
        return firsts, targets


def _ablated(model: Any, tokenizer: Any, probe: Probe, components: list[str], **kw: Any) -> float:
    from scribe_tui.techniques.ablation import ablate_components

    prompts, targets = probe.prompts()
    result = ablate_components(
        model, tokenizer, prompts, components, target=targets, method=probe.method, **kw
    )
    return float(result["mean_ablated"])


@dataclass(frozen=True)
class Baseline:
    """The behaviour with the whole model (``clean``) and with every component ablated."""

    clean: float
    ablated_all: float

    @property
    def total(self) -> float:
        return self.clean - self.ablated_all


def baseline(model: Any, tokenizer: Any, probe: Probe) -> Baseline:
    """``m`` and ``m0`` of the module docstring."""
    from scribe_tui.techniques.ablation import ablate_components

    prompts, targets = probe.prompts()
    result = ablate_components(
        model, tokenizer, prompts, [], target=targets, method=probe.method, complement=True
    )
    return Baseline(float(result["mean_clean"]), float(result["mean_ablated"]))


def faithfulness(
    model: Any, tokenizer: Any, probe: Probe, components: list[str], base: Baseline | None = None
) -> dict[str, float | None]:
    """``{"kept", "lost", "faithfulness"}`` of ``components`` (None where there is no
    behaviour to keep: a total effect below a hundredth of a nat)."""
    base = base or baseline(model, tokenizer, probe)
    if base.total < 0.01:
        return {"kept": None, "lost": None, "faithfulness": None}
    alone = _ablated(model, tokenizer, probe, components, complement=True)
    without = _ablated(model, tokenizer, probe, components)
    kept = min(1.0, max(0.0, (alone - base.ablated_all) / base.total))
    lost = min(1.0, max(0.0, (base.clean - without) / base.total))
    return {
        "kept": round(kept, 4),
        "lost": round(lost, 4),
        "faithfulness": round(min(kept, lost), 4),
    }


def _roles(model: Any, tokenizer: Any, components: list[str]) -> tuple[dict[str, str], dict]:
    from scribe_tui.techniques.heads import head_scores

    scores = head_scores(model, tokenizer, length=24, samples=8, seed=1)["scores"]
    roles = {}
    for name in components:
        if name.startswith("mlp"):
            roles[name] = "mlp"
            continue
        best = max(scores, key=lambda score: scores[score][name])
        roles[name] = best.replace("_", "-") if scores[best][name] >= ROLE_MIN else "other"
    return roles, scores


def measure_induction(model: Any, tokenizer: Any, probe: Probe | None = None) -> dict[str, Any]:
    """The key of an induction organism, by the rules of the module docstring.

    Returns ``{"secret", "circuit", "roles", "probe", "figures"}``: ``circuit`` lists
    the components (empty when the behaviour is absent, and then ``secret`` is None:
    a control), ``secret`` the circuit as one line.
    """
    from scribe_tui.techniques.ablation import ablate_components, ablation_scan
    from scribe_tui.techniques.components import format_components, parse_component

    probe = probe or Probe()
    prompts, targets = probe.prompts()
    base = baseline(model, tokenizer, probe)
    firsts, first_targets = probe.first_occurrences()
    first = ablate_components(model, tokenizer, firsts, [], target=first_targets)["mean_clean"]
    gain = base.clean - float(first)
    scan = ablation_scan(model, tokenizer, prompts, target=targets, method=probe.method)
    removed = {name: -change for name, change in scan["changes"].items()}
    present = gain >= GAIN_MIN and base.total > 0
    share = base.total / len(removed)
    chosen = [name for name, value in removed.items() if present and value > share]
    circuit = format_components([parse_component(name) for name in chosen])
    roles, scores = _roles(model, tokenizer, circuit)
    figures: dict[str, Any] = {
        "clean": round(base.clean, 4),
        "ablated_all": round(base.ablated_all, 4),
        "first_occurrence": round(float(first), 4),
        "gain": round(gain, 4),
        "present": present,
        "share": round(share, 4),
        "removed": {name: round(value, 4) for name, value in removed.items()},
        "head_scores": scores,
    }
    if circuit:
        figures.update(faithfulness(model, tokenizer, probe, circuit, base))
    return {
        "secret": ", ".join(circuit) if circuit else None,
        "circuit": circuit,
        "roles": roles,
        "probe": asdict(probe),
        "figures": figures,
    }
