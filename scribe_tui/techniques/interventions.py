"""Interventions: steering with a direction, and activation patching between prompts.

Both edit a decoder block's output through a forward hook that is removed in a
``finally``; weights are never touched.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.activations import run_capturing
from scribe_tui.techniques.locate import anatomy, hidden_of, resolve_layers, with_hidden


def steer(
    model: Any,
    tokenizer: Any,
    prompt: str,
    direction: Any,
    layer: int,
    scale: float = 4.0,
    max_new_tokens: int = 32,
    chat: bool = True,
    prefill: str = "",
    n: int = 1,
    temperature: float = 0.0,
    seed: int | None = 0,
) -> dict[str, list[str]]:
    """Generate with ``scale * direction`` added to block ``layer``'s output, and without.

    The vector is added at every position; both runs start from the same seed.
    ``direction`` is a [dim] tensor or list (e.g. ``contrastive_direction(...)["direction"]``);
    it is used as given, not normalised. Returns ``{"steered": [...], "baseline": [...]}``
    (``n`` replies each; temperature 0 is greedy).
    """
    import torch

    parts = anatomy(model)
    block = parts.layers[resolve_layers(parts, layer)[0]]
    weight = parts.unembedding.weight
    vector = torch.as_tensor(direction, dtype=weight.dtype, device=weight.device).flatten()
    if vector.shape[0] != weight.shape[1]:
        raise ValueError(f"direction has {vector.shape[0]} dims, the residual {weight.shape[1]}")
    ids = prompting.context_ids(model, tokenizer, prompt, prefill, chat)

    def generate() -> list[str]:
        if seed is not None:
            torch.manual_seed(seed)
        texts = prompting.sample(
            model, tokenizer, ids, n=n, temperature=temperature, max_new_tokens=max_new_tokens
        )
        return [t.strip() for t in texts]

    def add(module: Any, args: Any, output: Any) -> Any:
        hidden = hidden_of(output)
        return with_hidden(output, hidden + scale * vector.to(hidden.device, hidden.dtype))

    baseline = generate()
    handle = block.register_forward_hook(add)
    try:
        steered = generate()
    finally:
        handle.remove()
    return {"steered": steered, "baseline": baseline}


def activation_patching(
    model: Any,
    tokenizer: Any,
    clean_prompt: str,
    corrupted_prompt: str,
    target: str,
    foil: str | None = None,
    layers: list[int] | None = None,
    position: int | None = -1,
    chat: bool = False,
) -> dict[str, Any]:
    """Which blocks carry what makes ``clean_prompt`` predict ``target``?

    Runs ``corrupted_prompt`` once per block with that block's output at ``position``
    (None: every position; the prompts must then have equal token counts) replaced
    by its value on the clean prompt, and scores the next token: the log-probability
    of ``target``'s first token, minus ``foil``'s when given. ``restored`` is the
    share of the clean-minus-corrupted gap that patching recovers (1: the block
    carries all of it).

    Returns ``{"clean", "corrupted", "target_token", "foil_token", "layers":
    [{"layer", "score", "restored"}]}``.
    """
    import torch

    parts = anatomy(model)
    clean_ids = prompting.context_ids(model, tokenizer, clean_prompt, chat=chat)
    corrupted_ids = prompting.context_ids(model, tokenizer, corrupted_prompt, chat=chat)
    if position is None and clean_ids.shape[1] != corrupted_ids.shape[1]:
        raise ValueError(
            f"patching every position needs prompts of equal length "
            f"({clean_ids.shape[1]} vs {corrupted_ids.shape[1]} tokens); pass position"
        )
    target_id = _first_token(tokenizer, target)
    foil_id = _first_token(tokenizer, foil) if foil is not None else None

    def score(ids: Any) -> float:
        with torch.no_grad():
            logprobs = model(ids).logits[0, -1].float().log_softmax(-1)
        value = logprobs[target_id] - (logprobs[foil_id] if foil_id is not None else 0.0)
        return float(value)

    chosen = resolve_layers(parts, layers)
    names = [f"{parts.layers_path}.{i}" for i in chosen]
    clean_acts = run_capturing(model, clean_ids, names)
    clean, corrupted = score(clean_ids), score(corrupted_ids)
    gap = clean - corrupted
    results = []
    for layer, name in zip(chosen, names, strict=True):
        source = clean_acts[name]

        def patch(module: Any, args: Any, output: Any, source: Any = source) -> Any:
            hidden = hidden_of(output).clone()
            if position is None:
                hidden[:] = source
            else:
                hidden[:, position] = source[:, position]
            return with_hidden(output, hidden)

        handle = parts.layers[layer].register_forward_hook(patch)
        try:
            patched = score(corrupted_ids)
        finally:
            handle.remove()
        restored = (patched - corrupted) / gap if abs(gap) > 1e-9 else 0.0
        results.append({"layer": layer, "score": round(patched, 6), "restored": round(restored, 4)})
    return {
        "clean": round(clean, 6),
        "corrupted": round(corrupted, 6),
        "target_token": tokenizer.decode([target_id]),
        "foil_token": tokenizer.decode([foil_id]) if foil_id is not None else None,
        "layers": results,
    }


def _first_token(tokenizer: Any, word: str) -> int:
    """The first token of ``word`` as it follows other text (with a leading space),
    unless that space is a token of its own."""
    spaced = tokenizer(" " + word.strip(), add_special_tokens=False).input_ids
    bare = tokenizer(word.strip(), add_special_tokens=False).input_ids
    ids = spaced if spaced and tokenizer.decode(spaced[:1]).strip() else bare
    if not ids:
        raise ValueError(f"{word!r} encodes to no tokens")
    return ids[0]
