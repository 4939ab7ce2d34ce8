"""Attribution: direct logit attribution, and attribution patching (gradient x difference).

Direct logit attribution reads each component's write into the residual stream
through the final norm, its per-token scale frozen at the clean run's value (as is
standard: the norm is then linear), and the unembedding. The parts then add up
exactly to the logit the model computed: the embeddings, every head, every MLP, and
the biases (output-projection biases, the final LayerNorm's bias, an unembedding
bias). Gemma 2's norms of each sublayer's output are frozen the same way, and its
logit soft-cap is left out: attributions are in logits before the cap.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques.components import (
    FrozenNorm,
    capture,
    encode_all,
    freeze_norm,
    hooked,
    layout,
    score,
    token_id,
)
from scribe_tui.techniques.locate import anatomy


def direct_logit_attribution(
    model: Any,
    tokenizer: Any,
    prompt: str,
    target: str | None = None,
    foil: str | None = None,
    position: int = -1,
    chat: bool = False,
    top_k: int = 10,
) -> dict[str, Any]:
    """Each head's and MLP's direct contribution to ``target``'s logit at ``position``
    (minus ``foil``'s when given; None: the model's top token).

    Returns ``{"target_token", "foil_token", "logit", "total", "embeddings", "biases",
    "components": {"L0H0": value, ..., "mlp0": value, ...}, "top": [[component, value],
    ...]}``: ``total`` (embeddings + biases + every component) equals ``logit``, the
    model's own (pre-soft-cap) logit, and ``top`` holds the ``top_k`` largest by size.
    """
    import torch

    plan, parts = layout(model), anatomy(model)
    ids = encode_all(model, tokenizer, prompt, chat)[0]
    n = len(plan.blocks)
    seen: dict[str, Any] = {}

    def keep(key: str) -> Any:
        def edit(value: Any) -> None:
            seen[key] = value.detach()[0, position].float()

        return edit

    with (
        hooked(
            model,
            plan,
            heads={i: keep(f"heads{i}") for i in range(n)},
            attentions={i: keep(f"attn{i}") for i in range(n)},
            mlp_writes={i: keep(f"mlp{i}") for i in range(n)},
            block_inputs={0: keep("embeddings")},
            outputs=[(parts.layers[-1], keep("final")), (parts.unembedding, keep("logits"))],
        ),
        torch.no_grad(),
    ):
        model(ids)
    target_id = int(seen["logits"].argmax()) if target is None else token_id(tokenizer, target)
    foil_id = token_id(tokenizer, foil) if foil is not None else None
    weight = parts.unembedding.weight.detach()
    direction = weight[target_id].float() - (weight[foil_id].float() if foil_id is not None else 0)
    final = _freeze(parts.final_norm, seen["final"])

    def dla(vectors: Any) -> Any:
        """Direct logit attribution of residual writes ``[n, dim]``."""
        return (final.apply(vectors) * direction).sum(-1)

    biases = float((final.bias * direction).sum())
    unembedding_bias = getattr(parts.unembedding, "bias", None)
    if unembedding_bias is not None:
        biases += float(unembedding_bias[target_id]) - (
            float(unembedding_bias[foil_id]) if foil_id is not None else 0.0
        )
    components = {}
    for layer, block in enumerate(plan.blocks):
        heads, bias = _head_writes(block.out_proj, seen[f"heads{layer}"])
        if block.attn_post_norm is not None:
            post = freeze_norm(block.attn_post_norm, seen[f"attn{layer}"][None])
            heads, bias = post.apply(heads), post.apply(bias)
        for head, value in enumerate(dla(heads).tolist()):
            components[f"L{layer}H{head}"] = value
        biases += float(dla(bias)[0])
        components[f"mlp{layer}"] = float(dla(seen[f"mlp{layer}"][None])[0])
    embeddings = float(dla(seen["embeddings"][None])[0])
    logit = float(seen["logits"][target_id]) - (
        float(seen["logits"][foil_id]) if foil_id is not None else 0.0
    )
    total = embeddings + biases + sum(components.values())
    top = sorted(components.items(), key=lambda item: -abs(item[1]))[:top_k]
    return {
        "target_token": tokenizer.decode([target_id]),
        "foil_token": tokenizer.decode([foil_id]) if foil_id is not None else None,
        "logit": round(logit, 6),
        "total": round(total, 6),
        "embeddings": round(embeddings, 6),
        "biases": round(biases, 6),
        "components": {k: round(v, 6) for k, v in components.items()},
        "top": [[k, round(v, 6)] for k, v in top],
    }


def _freeze(norm: Any, x: Any) -> FrozenNorm:
    """The final norm frozen at ``x`` ``[dim]``; the identity when the model has none."""
    import torch

    if norm is None:
        return FrozenNorm(torch.ones_like(x)[None], False, torch.zeros_like(x))
    return freeze_norm(norm, x[None])


def _head_writes(out_proj: Any, z: Any) -> tuple[Any, Any]:
    """What each head writes through the output projection, ``[heads, dim]``, and the
    projection's bias ``[1, dim]``, from the heads' activations ``z`` ``[heads, head_dim]``.

    The projection is applied as the model applies it (a Linear, GPT-2's Conv1D, a LoRA
    layer) to one head's slice at a time, the others zero; the bias is its output on zeros.
    """
    import torch

    heads, size = z.shape
    dtype = next(out_proj.parameters()).dtype
    alone = torch.zeros(heads, heads, size, device=z.device)
    index = torch.arange(heads, device=z.device)
    alone[index, index] = z
    with torch.no_grad():
        bias = out_proj(torch.zeros(1, heads * size, device=z.device, dtype=dtype)).float()
        writes = out_proj(alone.reshape(heads, heads * size).to(dtype)).float() - bias
    return writes, bias


def attribution_patching(
    model: Any,
    tokenizer: Any,
    clean_prompt: str,
    corrupted_prompt: str,
    target: str | None = None,
    foil: str | None = None,
    position: int = -1,
    metric: str = "logprob",
    chat: bool = False,
    top_k: int = 10,
) -> dict[str, Any]:
    """First-order estimate, per head and MLP, of the metric change when that component's
    activation on the clean prompt is replaced by its value on the corrupted one.

    The estimate is gradient x (corrupted - clean activation), summed over positions and
    the component's activation, with the gradient of the metric taken on the clean run;
    one forward and one backward pass give every component. The metric is as in
    :func:`~scribe_tui.techniques.ablate_components` (``target`` None: the clean top
    token). The prompts must have equal token counts. Returns ``{"clean", "corrupted",
    "target_token", "foil_token", "components": {name: estimate}, "top": [[name,
    estimate], ...]}`` (``top``: the ``top_k`` largest by size).
    """
    import torch

    plan = layout(model)
    clean_ids, corrupted_ids = encode_all(model, tokenizer, [clean_prompt, corrupted_prompt], chat)
    if clean_ids.shape[1] != corrupted_ids.shape[1]:
        raise ValueError(
            f"attribution patching needs prompts of equal length "
            f"({clean_ids.shape[1]} vs {corrupted_ids.shape[1]} tokens)"
        )
    corrupted_acts = capture(model, plan, corrupted_ids)
    n = len(plan.blocks)
    # Zero-valued leaves added to each activation: their gradients are the metric's
    # gradients with respect to the activations, along every downstream path.
    probes: dict[str, Any] = {}
    clean_acts: dict[str, Any] = {}

    def probe(key: str) -> Any:
        def edit(value: Any) -> Any:
            clean_acts[key] = value.detach()
            probes[key] = torch.zeros_like(value, requires_grad=True)
            return value + probes[key]

        return edit

    with (
        hooked(
            model,
            plan,
            heads={i: probe(f"heads{i}") for i in range(n)},
            mlps={i: probe(f"mlps{i}") for i in range(n)},
        ),
        torch.enable_grad(),
    ):
        logits = model(clean_ids).logits
        target_id = (
            int(logits[0, position].argmax()) if target is None else token_id(tokenizer, target)
        )
        foil_id = token_id(tokenizer, foil) if foil is not None else None
        value = score(logits, position, target_id, foil_id, metric)[0]
        keys = list(probes)
        grads = dict(zip(keys, torch.autograd.grad(value, [probes[k] for k in keys]), strict=True))
    with torch.no_grad():
        corrupted = float(
            score(model(corrupted_ids).logits, position, target_id, foil_id, metric)[0]
        )
    components = {}
    for layer in range(n):
        key = f"heads{layer}"
        moved = corrupted_acts["heads"][layer].float() - clean_acts[key].float()
        per_head = (grads[key].float() * moved).sum(dim=(0, 1, 3))
        for head, estimate in enumerate(per_head.tolist()):
            components[f"L{layer}H{head}"] = estimate
        key = f"mlps{layer}"
        moved = corrupted_acts["mlps"][layer].float() - clean_acts[key].float()
        components[f"mlp{layer}"] = float((grads[key].float() * moved).sum())
    top = sorted(components.items(), key=lambda item: -abs(item[1]))[:top_k]
    return {
        "clean": round(float(value.detach()), 6),  # no autograd warning from float()
        "corrupted": round(corrupted, 6),
        "target_token": tokenizer.decode([target_id]),
        "foil_token": tokenizer.decode([foil_id]) if foil_id is not None else None,
        "components": {k: round(v, 6) for k, v in components.items()},
        "top": [[k, round(v, 6)] for k, v in top],
    }
