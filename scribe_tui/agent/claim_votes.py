"""The aggregator's votes over structured claims: components, layers, a direction.

:mod:`aggregate` states the whole rule (steps 6 to 8 are these); this module counts
the votes. On a mechanistic task an investigator claims a set (components such as
``L1H3``, or layers) or a direction read at a layer, not a word, so claims that
overlap must not count as disagreeing words: each component or layer is voted on by
itself, and a direction by its layer and how closely the vectors agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from scribe_tui.claims import Claim, components_in, read_components
from scribe_tui.techniques.components import parse_component

__all__ = [
    "DIRECTION_FILE",
    "MATCH",
    "SAME_DIRECTION",
    "Verdict",
    "conclude_arguments",
    "decide_structured",
    "direction_cell",
    "structure_note",
    "structure_of",
]

MATCH = 0.8
"""The F1 at which a claimed set is the verdict's own: the bar the bench holds a circuit to."""
SAME_DIRECTION = 0.8
"""The |cosine| at which two claimed directions count as one (ablation ignores the sign)."""
DIRECTION_FILE = "direction.pt"
"""Where the aggregate notebook saves a direction verdict's vector."""

Structure = Literal["components", "layers", "direction"]


@dataclass(frozen=True)
class Verdict:
    """The aggregate's answer, its confidence, how the rule reached it, and the structured
    claim it concludes with on a mechanistic task (components, layers or a direction's
    ``{"vector", "layer", "from"}``)."""

    answer: str
    confidence: float
    reason: str
    contenders: tuple[str, ...] = ()
    components: tuple[str, ...] | None = None
    layers: tuple[int, ...] | None = None
    direction: Mapping[str, Any] | None = None

    @property
    def needs_adjudication(self) -> bool:
        return len(self.contenders) >= 2


class Vote(Protocol):
    """What a vote needs from an investigator's claim (:class:`aggregate.InvestigatorClaim`)."""

    @property
    def id(self) -> str: ...
    @property
    def claim(self) -> Claim | None: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def components(self) -> tuple[str, ...] | None: ...
    @property
    def layers(self) -> tuple[int, ...] | None: ...
    @property
    def direction(self) -> Mapping[str, Any] | None: ...
    @property
    def answer(self) -> str | None: ...


def structure_of(votes: Sequence[Vote]) -> Structure | None:
    """What the named claims carry: a direction, else layers, else components; None when
    they are words."""
    named = [v for v in votes if v.claim == "named"]
    kinds: tuple[Structure, ...] = ("direction", "layers", "components")
    return next((kind for kind in kinds if any(getattr(v, kind) for v in named)), None)


def _items(vote: Vote, kind: Structure) -> frozenset[Any]:
    """The components or layers a vote names (a recall claim's MLPs name their layers)."""
    components = vote.components or ()
    if kind == "components":
        return frozenset(components)
    return frozenset(vote.layers or ()) | {parse_component(c).layer for c in components}


def _f1(said: frozenset[Any], chosen: frozenset[Any]) -> float:
    both = len(said) + len(chosen)
    return 2 * len(said & chosen) / both if both else 1.0


def _p(vote: Vote) -> float:
    return vote.confidence or 0.0


def decide_structured(kind: Structure, votes: Sequence[Vote], n: int) -> Verdict | None:
    """The verdict of rule 6 (sets) or 7 (a direction) over ``votes`` (named and ``none``
    claims with a confidence) of ``n`` investigators; None when nothing wins, for the
    rule on ``none`` to decide."""
    if kind == "direction":
        return _direction(votes, n)
    total = sum(_p(v) for v in votes)
    named = [(v, _items(v, kind)) for v in votes if v.claim == "named"]
    support: dict[Any, float] = {}
    for vote, items in named:
        for item in items:
            support[item] = support.get(item, 0.0) + _p(vote)
    chosen = frozenset(x for x, s in support.items() if s > total - s)
    if not chosen:
        return None
    backers = [v for v, items in named if _f1(items, chosen) >= MATCH]
    tally = ", ".join(
        f"{_name(x)} {support[x]:.2f} > {total - support[x]:.2f}" for x in _ordered(kind, chosen)
    )
    if not backers:
        reason = (
            f"each of {tally} has majority support, but no investigator claimed that set "
            f"(F1 >= {MATCH})"
        )
        return Verdict("unknown", 0.5, reason)
    backed = sum(_p(v) for v in backers)
    confidence = round(backed / len(backers) * backed / total, 3)
    reason = (
        f"support against opposition per {kind[:-1]}: {tally}; {len(backers)} of {n} "
        f"investigators claimed this set (F1 >= {MATCH})"
    )
    ordered = _ordered(kind, chosen)
    if kind == "components":
        return Verdict(", ".join(ordered), confidence, reason, components=tuple(ordered))
    answer = "layers " + ", ".join(str(x) for x in ordered)
    return Verdict(answer, confidence, reason, layers=tuple(ordered))


def _ordered(kind: Structure, items: frozenset[Any]) -> list[Any]:
    return read_components(list(items)) if kind == "components" else sorted(items)


def _name(item: Any) -> str:
    return item if isinstance(item, str) else f"layer {item}"


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return 0.0  # read from models of other widths: not one direction
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def _direction(votes: Sequence[Vote], n: int) -> Verdict | None:
    total = sum(_p(v) for v in votes)
    # (vote, layer, vector) of every named claim that recorded a vector
    directed = [
        (v, v.direction.get("layer"), list(v.direction["vector"]))
        for v in votes
        if v.claim == "named" and v.direction and v.direction.get("vector")
    ]
    if not directed:
        return None
    mass: dict[Any, float] = {}
    for vote, layer, _ in directed:
        mass[layer] = mass.get(layer, 0.0) + _p(vote)
    layer = min(mass, key=lambda k: (-mass[k], str(k)))
    at_layer = [(v, vector) for v, at, vector in directed if at == layer]
    pick, vector = max(at_layer, key=lambda found: _p(found[0]))
    backers = [v for v, other in at_layer if abs(_cosine(other, vector)) >= SAME_DIRECTION]
    backed = sum(_p(v) for v in backers)
    if backed <= total - backed:
        return None
    confidence = round(backed / len(backers) * backed / total, 3)
    where = f"layer {layer}" if layer is not None else "an unstated layer"
    reason = (
        f"{len(backers)} of {n} investigators claimed a direction at {where} agreeing with "
        f"{pick.id}'s (|cosine| >= {SAME_DIRECTION}; support {backed:.2f} > against "
        f"{total - backed:.2f})"
    )
    answer = f"the direction read at {where} (from {pick.id})"
    direction = {"vector": vector, "layer": layer, "from": pick.id}
    return Verdict(answer, confidence, reason, direction=direction)


# -- the aggregate notebook's side ------------------------------------------------------


def structure_note(c: Vote) -> str:
    """What a claim's answer does not say of its structured claim, for the table."""
    if c.direction is not None:
        return f" [direction at layer {c.direction.get('layer')}]"
    if c.layers:
        return f" [layers {', '.join(map(str, c.layers))}]"
    if c.components and components_in(c.answer) is None:
        return f" [{', '.join(c.components)}]"
    return ""


def direction_cell(direction: Mapping[str, Any]) -> str:
    """Code that saves the verdict's direction as this notebook's own file (rule 7), so the
    aggregate concludes with a vector the bench can score."""
    return (
        f"# The verdict's direction: {direction['from']}'s, read at layer {direction['layer']}."
        "\n# Saved beside this notebook, so that the aggregate's claim is a file of its own.\n"
        "import torch\n\n"
        f"vector = torch.tensor({list(direction['vector'])!r})\n"
        f"torch.save(vector, {DIRECTION_FILE!r})\n"
        f"print(f'saved {DIRECTION_FILE}: {{vector.numel()}} values, norm {{vector.norm():.4f}}')\n"
    )


def conclude_arguments(verdict: Verdict) -> dict[str, Any]:
    """``conclude``'s structured claim for a verdict of rule 6 or 7, so the bench scores it."""
    if verdict.components is not None:
        return {"components": list(verdict.components)}
    if verdict.layers is not None:
        return {"layers": list(verdict.layers)}
    if verdict.direction is not None:
        layer = verdict.direction["layer"]
        return {"direction": DIRECTION_FILE, **({"layer": layer} if layer is not None else {})}
    return {}
