"""Reading activations: capture by layer or module name, attention patterns,
contrastive (difference-of-means) directions.

Blocks are numbered from 0 and named by their module path (``model.layers.3``);
"the output of block i" is the residual stream after i + 1 blocks, which the logit
lens calls layer i + 1. Every hook is removed in a ``finally``, so a failing call
leaves the model as it found it even outside the model host.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.locate import anatomy, find_module, hidden_of, resolve_layers

MAX_POSITIONS = 512  # activations of longer texts would be megabytes per module


def capture_activations(
    model: Any,
    tokenizer: Any,
    prompt: str,
    layers: list[int] | int | None = None,
    modules: list[str] | None = None,
    positions: list[int] | int | None = -1,
    chat: bool = False,
) -> dict[str, Any]:
    """Outputs of decoder blocks (``layers``) and/or any modules (``modules``, by name).

    ``positions``: an index (a [dim] vector per module), a list ([len, dim]), or
    None for every token (at most ``MAX_POSITIONS``). With neither ``layers`` nor
    ``modules``, every block. Returns ``{"prompt", "chat", "positions", "tokens",
    "activations": {module name: float32 tensor}}``; the dict also serves as the
    ``base`` of :func:`~scribe_tui.techniques.diff_activations`.
    """
    parts = anatomy(model)
    names = list(modules or [])
    if layers is not None or not names:
        names += [f"{parts.layers_path}.{i}" for i in resolve_layers(parts, layers)]
    ids = prompting.context_ids(model, tokenizer, prompt, "", chat)
    if positions is None and ids.shape[1] > MAX_POSITIONS:
        raise ValueError(f"{ids.shape[1]} tokens; pass positions to keep at most {MAX_POSITIONS}")
    captured = run_capturing(model, ids, names)
    return {
        "prompt": prompt,
        "chat": chat,
        "positions": positions,
        "tokens": [tokenizer.decode([int(t)]) for t in ids[0]],
        "activations": {
            name: _select(value[0], positions).float().cpu() for name, value in captured.items()
        },
    }


def run_capturing(model: Any, ids: Any, names: list[str]) -> dict[str, Any]:
    """One forward pass over ``ids``, returning the output of each named module."""
    import torch

    captured: dict[str, Any] = {}
    handles = []
    try:
        for name in names:

            def hook(module: Any, args: Any, output: Any, name: str = name) -> None:
                captured[name] = hidden_of(output).detach()

            handles.append(find_module(model, name).register_forward_hook(hook))
        with torch.no_grad():
            model(ids)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def attention_patterns(
    model: Any,
    tokenizer: Any,
    prompt: str,
    layers: list[int] | int | None = None,
    heads: list[int] | None = None,
    chat: bool = False,
    max_tokens: int = 128,
) -> dict[str, Any]:
    """Attention weights of the chosen blocks (default: all) and heads (default: all).

    Returns ``{"tokens", "patterns": {block: float32 [heads, query, key]}}``. The
    model switches to eager attention for the call (fused kernels return no
    weights) and back afterwards.
    """
    import torch

    parts = anatomy(model)
    ids = prompting.context_ids(model, tokenizer, prompt, "", chat)
    if ids.shape[1] > max_tokens:
        raise ValueError(f"{ids.shape[1]} tokens is over max_tokens={max_tokens}")
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)
    try:
        if before != "eager":
            if callable(switch):
                switch("eager")
            else:  # older transformers read the config at every forward
                config._attn_implementation = "eager"
        with torch.no_grad():
            attentions = model(ids, output_attentions=True).attentions
    finally:
        if before != "eager" and before is not None:
            if callable(switch):
                switch(before)
            else:
                config._attn_implementation = before
    patterns = {}
    for layer in resolve_layers(parts, layers):
        weights = attentions[layer][0]
        if heads is not None:
            weights = weights[list(heads)]
        patterns[layer] = weights.float().cpu()
    return {"tokens": [tokenizer.decode([int(t)]) for t in ids[0]], "patterns": patterns}


def contrastive_direction(
    model: Any,
    tokenizer: Any,
    positive: list[str],
    negative: list[str],
    layer: int,
    position: int = -1,
    chat: bool = False,
) -> dict[str, Any]:
    """Difference of mean block-``layer`` outputs over ``positive`` and ``negative`` prompts.

    Taken at ``position``: a direction to steer with or project onto. Returns
    ``{"direction": float32 [dim], "norm", "module", "positive_projections",
    "negative_projections"}``; the projections (onto the unit direction) show how
    well it separates the two sets.
    """
    import torch

    parts = anatomy(model)
    name = f"{parts.layers_path}.{resolve_layers(parts, layer)[0]}"

    def vectors(prompts: list[str]) -> Any:
        rows = []
        for prompt in prompts:
            captured = capture_activations(
                model, tokenizer, prompt, modules=[name], positions=position, chat=chat
            )
            rows.append(captured["activations"][name])
        return torch.stack(rows)

    if not positive or not negative:
        raise ValueError("contrastive_direction needs positive and negative prompts")
    pos, neg = vectors(positive), vectors(negative)
    direction = pos.mean(0) - neg.mean(0)
    norm = float(direction.norm())
    unit = direction / norm if norm > 0 else direction
    return {
        "direction": direction,
        "norm": norm,
        "module": name,
        "positive_projections": [round(float(v), 4) for v in pos @ unit],
        "negative_projections": [round(float(v), 4) for v in neg @ unit],
    }


def _select(hidden: Any, positions: list[int] | int | None) -> Any:
    """Rows of a [tokens, dim] activation: one index, a list, or all."""
    if positions is None:
        return hidden
    if isinstance(positions, int):
        return hidden[positions]
    return hidden[list(positions)]
