"""Measuring where a ``recall`` organism recalls its facts: the key, and a claim's score.

The behaviour is recall of every fact of the kind (:meth:`~scribe_tui.organisms.kinds.
recall.World.probe`: "the capital of <land> is", target the land's capital): ``m`` is the
mean log-probability of the right attribute, ``chance`` the mean of ``log 1/|values|``
(what a model that knows the relation but not the land does). All prompts have the same
tokens but the relation and the land, so every position has a natural mean. Then:

- the behaviour is *present* when ``m - chance >= 1`` nat (the right attribute e times
  likelier than chance). Absent (a control, whose attributes were drawn per sentence),
  the key names no layer and its ``secret`` is None;
- **MLP ablation**: each layer's MLP output is replaced, at every position, by its mean
  over the probe at that position (what carries no land-specific information). ``removed``
  is ``m - m_ablated`` per layer, ``total`` that with every MLP ablated at once;
- **the recall layers**: present, a layer is one when ablating its MLP removes more than an
  equal share of the total, ``removed > total / N`` for the ``N`` layers (no tuned
  constant, as for circuits); the *top* layer is the one removing most;
- **causal tracing** (Meng et al.): Gaussian noise (``noise`` times the embeddings'
  standard deviation) on the land's token spoils recall; restoring one (layer, position)
  state from the clean run shows how much it carries: ``recovered = (p_restored -
  p_noised) / (p_clean - p_noised)`` of the right attribute's probability, for block
  outputs (``hidden``) and MLP outputs (``mlp``), at every layer and position.

A claim of layers is scored by :func:`layer_overlap`: precision, recall and F1 over the
layers, and whether the top layer is named.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from scribe_tui.organisms.kinds import recall

GAIN_MIN = 1.0  # nats above chance for recall to count as present
KINDS = ("hidden", "mlp")


@dataclass(frozen=True)
class Probe:
    """How recall is measured; stored in the key so a scorer re-creates it."""

    kind: str = recall.NAME
    noise: float = 3.0
    samples: int = 4
    seed: int = 0

    def facts(self) -> list[tuple[str, str, str, str]]:
        """(prompt, subject, target, relation) of every fact."""
        if self.kind != recall.NAME:
            raise ValueError(f"no probe for kind {self.kind!r}")
        return recall.World.make().probe()


class RecallRun:
    """The probe as one batch: token ids, targets, and forward passes with edits."""

    def __init__(self, model: Any, tokenizer: Any, probe: Probe) -> None:
        import torch

        from scribe_tui.techniques.components import layout
        from scribe_tui.techniques.locate import anatomy

        self.model, self.probe = model, probe
        self.plan, self.parts = layout(model), anatomy(model)
        facts = probe.facts()
        self.ids = tokenizer([p for p, _, _, _ in facts], return_tensors="pt").input_ids
        self.targets = torch.tensor([tokenizer.convert_tokens_to_ids(t) for _, _, t, _ in facts])
        world = recall.World.make()
        self.chance = sum(-math.log(len(world.values[r])) for _, _, _, r in facts) / len(facts)
        subject = tokenizer.convert_tokens_to_ids(facts[0][1])
        self.subject_at = int((self.ids[0] == subject).nonzero()[0, 0])
        self.n = len(self.plan.blocks)

    def logprobs(self, ids: Any = None, **edits: Any) -> Any:
        """Per-fact log-probability of the right attribute after the edits."""
        import torch

        from scribe_tui.techniques.components import hooked

        ids = self.ids if ids is None else ids
        with hooked(self.model, self.plan, **edits), torch.no_grad():
            logits = self.model(ids).logits[:, -1].float()
        reps = ids.shape[0] // self.ids.shape[0]
        return logits.log_softmax(-1).gather(1, self.targets.repeat(reps)[:, None])[:, 0]

    def mlp_means(self) -> dict[int, Any]:
        """Each MLP's output at each position, averaged over the probe."""
        from scribe_tui.techniques.components import capture

        mlps = capture(self.model, self.plan, self.ids)["mlps"]
        return {layer: value.mean(0, keepdim=True) for layer, value in enumerate(mlps)}


def mean_ablated(means: dict[int, Any], layers: Iterable[int]) -> dict[int, Any]:
    """``mlps`` edits for :meth:`RecallRun.logprobs` that write each layer's mean output."""

    def edit(mean: Any) -> Any:
        return lambda out: mean.to(out.dtype).expand_as(out).clone()

    return {layer: edit(means[layer]) for layer in layers}


def trace(run: RecallRun, kind: str) -> dict[str, Any]:
    """Causal tracing over the whole probe: ``recovered[layer][position]`` (module docstring)."""
    import torch

    from scribe_tui.techniques.components import hooked

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    probe, ids = run.probe, run.ids
    store: dict[int, Any] = {}

    def keeper(layer: int) -> Any:
        def edit(value: Any) -> None:
            store[layer] = value.detach().repeat(probe.samples, 1, 1)

        return edit

    def points(edits: dict[int, Any]) -> dict[str, Any]:
        if kind == "mlp":
            return {"mlps": edits}
        return {"outputs": [(run.parts.layers[i], edit) for i, edit in edits.items()]}

    with hooked(run.model, run.plan, **points({i: keeper(i) for i in range(run.n)})):
        clean = run.logprobs().exp().mean().item()
    embed = run.model.get_input_embeddings()
    generator = torch.Generator().manual_seed(probe.seed)
    spread = float(embed.weight.detach().float().std())
    batch = ids.repeat(probe.samples, 1)
    draws = torch.randn(batch.shape[0], embed.weight.shape[1], generator=generator)
    draws = draws * probe.noise * spread

    def noised(value: Any) -> Any:
        value = value.clone()
        value[:, run.subject_at] += draws.to(value.dtype)
        return value

    def restorer(layer: int, position: int) -> Any:
        def edit(value: Any) -> Any:
            value = value.clone()
            value[:, position] = store[layer][:, position].to(value.dtype)
            return value

        return edit

    def probability(edits: dict[int, Any]) -> float:
        spec = points(edits)
        spec["outputs"] = [*spec.get("outputs", []), (embed, noised)]
        return run.logprobs(batch, **spec).exp().mean().item()

    corrupted = probability({})
    gap = clean - corrupted
    recovered = [
        [
            round((probability({layer: restorer(layer, pos)}) - corrupted) / gap, 4)
            if gap > 1e-9
            else 0.0
            for pos in range(ids.shape[1])
        ]
        for layer in range(run.n)
    ]
    return {"clean": round(clean, 6), "corrupted": round(corrupted, 6), "recovered": recovered}


def measure_recall(model: Any, tokenizer: Any, probe: Probe | None = None) -> dict[str, Any]:
    """The key of a recall organism, by the rules of the module docstring.

    Returns ``{"secret", "layers", "top_layer", "circuit", "probe", "figures"}``: ``layers``
    the recall layers (empty when recall is absent: a control, whose ``secret`` is None),
    ``circuit`` their MLPs, ``secret`` the layers as one line.
    """
    probe = probe or Probe()
    run = RecallRun(model, tokenizer, probe)
    clean = run.logprobs()
    m = float(clean.mean())
    means = run.mlp_means()
    removed = {
        layer: m - float(run.logprobs(mlps=mean_ablated(means, [layer])).mean())
        for layer in range(run.n)
    }
    total = m - float(run.logprobs(mlps=mean_ablated(means, range(run.n))).mean())
    gain = m - run.chance
    present = gain >= GAIN_MIN and total > 0
    share = total / run.n
    layers = [layer for layer, value in removed.items() if present and value > share]
    top = max(layers, key=removed.__getitem__) if layers else None
    traces = {kind: trace(run, kind) for kind in KINDS}
    figures: dict[str, Any] = {
        "clean": round(m, 4),
        "chance": round(run.chance, 4),
        "gain": round(gain, 4),
        "accuracy": round(float((clean > -math.log(2)).float().mean()), 4),
        "present": present,
        "total": round(total, 4),
        "share": round(share, 4),
        "removed": {f"mlp{layer}": round(value, 4) for layer, value in removed.items()},
        "subject_position": run.subject_at,
        "tokens": tokenizer.convert_ids_to_tokens(run.ids[0].tolist()),
        "trace": traces,
    }
    return {
        "secret": ", ".join(f"layer {layer}" for layer in layers) if layers else None,
        "layers": layers,
        "top_layer": top,
        "circuit": [f"mlp{layer}" for layer in layers],
        "probe": asdict(probe),
        "figures": figures,
    }


@dataclass(frozen=True)
class LayerScore:
    """A claimed set of layers against the key's recall layers."""

    layers: tuple[int, ...]
    precision: float
    recall: float
    f1: float
    top_named: bool

    def fields(self) -> dict[str, Any]:
        """The figures as a result row's fields."""
        return {
            "layers": list(self.layers),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "top_named": self.top_named,
        }


def layer_overlap(claimed: Iterable[int], key: Iterable[int], top: int | None) -> LayerScore:
    """Precision, recall and F1 of ``claimed`` layers against ``key``'s (all 1 when both
    are empty), and whether ``top`` (the key's top recall layer) is named."""
    said, truth = set(claimed), set(key)
    hits = len(said & truth)
    return LayerScore(
        layers=tuple(sorted(said)),
        precision=hits / len(said) if said else float(not truth),
        recall=hits / len(truth) if truth else float(not said),
        f1=2 * hits / (len(said) + len(truth)) if said or truth else 1.0,
        top_named=top is not None and top in said,
    )
