"""Attention-pattern scores per head: previous-token, induction and duplicate-token.

Scored on sequences of random tokens repeated once (``r r``, after a BOS when the
tokenizer has one): in the second copy, an induction head attends to the token
*after* the earlier occurrence of the current token, a duplicate-token head to the
earlier occurrence itself, and a previous-token head, everywhere, to the token
just before. Random tokens leave nothing but the repetition to go on.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques.components import eager_attention, layout

SCORES = ("previous_token", "induction", "duplicate_token")


def pattern_scores(pattern: Any, length: int, start: int = 0) -> dict[str, list[float]]:
    """Scores per head of attention weights ``[heads, query, key]`` (or with a leading
    batch axis, averaged) over a sequence whose tokens ``start : start + length`` repeat
    at ``start + length : start + 2 * length``.

    Each score is the mean attention weight on the key the pattern names: ``q - 1``
    for every query after ``start`` (previous-token); ``q - length + 1`` (induction)
    and ``q - length`` (duplicate-token) for queries in the second copy.
    """
    import torch

    weights = torch.as_tensor(pattern).float()
    if weights.dim() == 3:
        weights = weights[None]
    if weights.shape[-2] < start + 2 * length:
        raise ValueError(f"the pattern has {weights.shape[-2]} queries, not {start + 2 * length}")
    previous = torch.arange(start + 1, start + 2 * length)
    second = torch.arange(start + length, start + 2 * length)

    def mean_on(queries: Any, keys: Any) -> list[float]:
        return weights[:, :, queries, keys].mean(dim=(0, 2)).tolist()

    return {
        "previous_token": mean_on(previous, previous - 1),
        "induction": mean_on(second, second - length + 1),
        "duplicate_token": mean_on(second, second - length),
    }


def head_scores(
    model: Any,
    tokenizer: Any,
    length: int = 24,
    samples: int = 4,
    seed: int = 0,
    top_k: int = 5,
) -> dict[str, Any]:
    """Previous-token, induction and duplicate-token scores of every head, on ``samples``
    seeded sequences of ``length`` random tokens repeated once.

    Returns ``{"length", "samples", "scores": {score: {"L0H0": value, ...}}, "top":
    {score: [[head, value], ...]}}`` (values in [0, 1]: mean attention on the key the
    score names; ``top`` has the ``top_k`` highest per score).
    """
    import torch

    plan = layout(model)
    special = set(tokenizer.all_special_ids)
    vocabulary = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    generator = torch.Generator().manual_seed(seed)
    tokens = vocabulary[torch.randint(len(vocabulary), (samples, length), generator=generator)]
    ids = torch.cat([tokens, tokens], dim=1)
    bos = tokenizer.bos_token_id
    if bos is not None:
        ids = torch.cat([torch.full((samples, 1), bos), ids], dim=1)
    start = 1 if bos is not None else 0
    device = next(model.parameters()).device
    with eager_attention(model), torch.no_grad():
        attentions = model(ids.to(device), output_attentions=True).attentions
    scores: dict[str, dict[str, float]] = {name: {} for name in SCORES}
    for layer in range(len(plan.blocks)):
        for name, values in pattern_scores(attentions[layer].cpu(), length, start).items():
            for head, value in enumerate(values):
                scores[name][f"L{layer}H{head}"] = round(value, 6)
    return {
        "length": length,
        "samples": samples,
        "scores": scores,
        "top": {
            name: [[h, v] for h, v in sorted(values.items(), key=lambda kv: -kv[1])[:top_k]]
            for name, values in scores.items()
        },
    }
