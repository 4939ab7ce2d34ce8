"""Ablating attention heads and MLPs: zero, mean and resample ablation.

An ablated head's slice of the attention output (before the output projection) is
replaced at every position; an ablated MLP's output likewise. ``zero`` writes
zeros; ``mean`` writes the component's mean activation over every token of the
``reference`` prompts; ``resample`` writes the activation a ``reference`` prompt of
the same token length produced at the same position (prompt i takes reference i,
cycling; without a reference, prompt i takes prompt i + 1's). Resampling from a
corrupted prompt is activation patching of that component into the clean run.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques.components import (
    Component,
    as_list,
    capture,
    encode_all,
    format_components,
    hooked,
    layout,
    replacing,
    score,
    token_id,
)

METHODS = ("zero", "mean", "resample")


def ablate_components(
    model: Any,
    tokenizer: Any,
    prompts: str | list[str],
    components: str | list[str],
    target: str | list[str] | None = None,
    foil: str | list[str] | None = None,
    method: str = "zero",
    reference: list[str] | None = None,
    complement: bool = False,
    position: int = -1,
    metric: str = "logprob",
    chat: bool = False,
) -> dict[str, Any]:
    """The metric on each prompt with ``components`` (``"L1H3"``, ``"mlp2"``) ablated together.

    The metric is the ``target`` token's log-probability at ``position`` (``metric=
    "logit"``: its logit), minus ``foil``'s when given; ``target`` is one word or one
    per prompt, and None takes each prompt's own top token. ``complement=True``
    ablates every head and MLP *except* ``components`` (what a circuit keeps alone).
    Returns ``{"method", "ablated", "target_tokens", "clean", "ablated_scores",
    "change", "mean_clean", "mean_ablated", "mean_change"}`` (lists are per prompt).
    """
    job = _Job(model, tokenizer, prompts, target, foil, method, reference, position, metric, chat)
    chosen = job.plan.resolve(components)
    if complement:
        chosen = [c for c in job.plan.all() if c not in set(chosen)]
    ablated = job.run(chosen)
    change = [a - c for a, c in zip(ablated, job.clean, strict=True)]
    return {
        "method": method,
        "ablated": format_components(chosen),
        "target_tokens": [tokenizer.decode([t]) for t in job.targets],
        "clean": _round(job.clean),
        "ablated_scores": _round(ablated),
        "change": _round(change),
        "mean_clean": round(_mean(job.clean), 6),
        "mean_ablated": round(_mean(ablated), 6),
        "mean_change": round(_mean(change), 6),
    }


def ablation_scan(
    model: Any,
    tokenizer: Any,
    prompts: str | list[str],
    target: str | list[str] | None = None,
    foil: str | list[str] | None = None,
    method: str = "zero",
    reference: list[str] | None = None,
    components: list[str] | None = None,
    position: int = -1,
    metric: str = "logprob",
    chat: bool = False,
) -> dict[str, Any]:
    """Ablate each component alone (default: every head and MLP) and report the mean
    metric change it causes, as :func:`ablate_components` measures it.

    Returns ``{"method", "mean_clean", "changes": {component: mean change}, "ranked":
    [component, ...]}`` (most negative change first: what the behaviour needs most).
    """
    job = _Job(model, tokenizer, prompts, target, foil, method, reference, position, metric, chat)
    changes = {}
    for component in job.plan.resolve(components):
        ablated = job.run([component])
        changes[str(component)] = round(
            _mean([a - c for a, c in zip(ablated, job.clean, strict=True)]), 6
        )
    return {
        "method": method,
        "mean_clean": round(_mean(job.clean), 6),
        "changes": changes,
        "ranked": sorted(changes, key=changes.__getitem__),
    }


class _Job:
    """Prompts, targets, the clean scores and the replacement values of one ablation."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: str | list[str],
        target: str | list[str] | None,
        foil: str | list[str] | None,
        method: str,
        reference: list[str] | None,
        position: int,
        metric: str,
        chat: bool,
    ) -> None:
        import torch

        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        self.model, self.plan, self.position, self.metric = model, layout(model), position, metric
        self.method = method
        self.ids = encode_all(model, tokenizer, prompts, chat)
        n = len(self.ids)
        foils = as_list(foil, n, "foils")
        self.foils = [token_id(tokenizer, f) if f is not None else None for f in foils]
        targets = as_list(target, n, "targets")
        with torch.no_grad():
            logits = [model(ids).logits for ids in self.ids]
        self.targets = [
            token_id(tokenizer, t) if t is not None else int(lg[0, position].argmax())
            for t, lg in zip(targets, logits, strict=True)
        ]
        self.clean = [self._score(lg, i) for i, lg in enumerate(logits)]
        self.sources: list[dict[str, list[Any]]] = []
        self.means: dict[Component, Any] = {}
        if method != "zero":
            if reference is None and method == "mean":
                reference = [prompts] if isinstance(prompts, str) else list(prompts)
            if reference is None:
                if n < 2:
                    raise ValueError("resample ablation needs a reference or several prompts")
                reference_ids = self.ids[1:] + self.ids[:1]
            else:
                reference_ids = encode_all(model, tokenizer, reference, chat)
            self.sources = [capture(model, self.plan, ids) for ids in reference_ids]
            if method == "resample":
                for i, ids in enumerate(self.ids):
                    other = reference_ids[i % len(reference_ids)]
                    if other.shape[1] != ids.shape[1]:
                        raise ValueError(
                            f"resampling needs references of the prompt's token length "
                            f"(prompt {i}: {ids.shape[1]} tokens, reference {other.shape[1]})"
                        )

    def _score(self, logits: Any, i: int) -> float:
        return float(score(logits, self.position, self.targets[i], self.foils[i], self.metric)[0])

    def _values(self, components: list[Component], i: int) -> dict[Component, Any]:
        """What each ablated component's activation becomes on prompt ``i``."""
        import torch

        values = {}
        for c in components:
            if self.method == "resample":
                acts = self.sources[i % len(self.sources)]
                values[c] = acts["mlps" if c.head is None else "heads"][c.layer][0]
                if c.head is not None:
                    values[c] = values[c][:, c.head]
                continue
            if self.method == "mean":
                if c not in self.means:
                    kind = "mlps" if c.head is None else "heads"
                    rows = torch.cat([acts[kind][c.layer][0].float() for acts in self.sources])
                    self.means[c] = (rows if c.head is None else rows[:, c.head]).mean(0)
                values[c] = self.means[c]
            else:
                values[c] = torch.zeros(())
        return values

    def run(self, components: list[Component]) -> list[float]:
        import torch

        scores = []
        for i, ids in enumerate(self.ids):
            edits = replacing(self.plan, self._values(components, i))
            with hooked(self.model, self.plan, **edits), torch.no_grad():
                scores.append(self._score(self.model(ids).logits, i))
        return scores


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _round(values: list[float]) -> list[float]:
    return [round(v, 6) for v in values]
