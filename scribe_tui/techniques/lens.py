"""The logit lens: read the residual stream after each layer as a next-token guess.

Each layer's residual goes through the model's final norm and unembedding (and
Gemma 2's logit soft-cap), exactly as the last layer's does; skipping the norm,
the classic bug, makes middle layers look like noise. transformers' last
``hidden_states`` entry has already been normalised, so it is decoded as is.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.locate import anatomy, decode_residual
from scribe_tui.techniques.seed_forms import accepts_text


def _seed_rows(lens: dict[str, Any]) -> list[dict[str, Any]]:
    """The seed document's shape: per layer, its top token and that token's probability."""
    return [
        {
            "layer": row["layer"],
            "top_token": row["top_tokens"][0]["token"],
            "probability": row["top_tokens"][0]["probability"],
        }
        for row in lens["layers"]
    ]


@accepts_text(_seed_rows)
def logit_lens(
    model: Any,
    tokenizer: Any,
    prompt: str,
    top_k: int = 10,
    layers: list[int] | None = None,
    position: int = -1,
    chat: bool = False,
) -> dict[str, Any]:
    """Top-``top_k`` next-token guesses at every layer, at one position of ``prompt``.

    Layer 0 is the embedding output and layer i the residual after block i, so the
    last layer is the model's own prediction. Returns ``{"prompt", "num_layers",
    "final_norm", "layers": [{"layer", "top_tokens": [{"token", "token_id",
    "probability"}]}]}``; ``chat=True`` formats ``prompt`` as a user turn first.

    The seed document's form, ``logit_lens(text=..., layers=[0, 6, 12])``, returns its
    shape: ``[{"layer", "top_token", "probability"}]`` (read through the final norm).
    """
    import torch

    parts = anatomy(model)
    ids = prompting.context_ids(model, tokenizer, prompt, "", chat)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
        last = len(hidden) - 1
        chosen = range(len(hidden)) if layers is None else [_index(i, len(hidden)) for i in layers]
        results = []
        for layer in chosen:
            logits = decode_residual(parts, hidden[layer][0, position], normed=layer == last)
            top = logits.softmax(-1).topk(min(top_k, logits.shape[-1]))
            tokens = [
                {"token": tokenizer.decode([int(i)]), "token_id": int(i), "probability": float(p)}
                for p, i in zip(top.values, top.indices, strict=True)
            ]
            results.append({"layer": layer, "top_tokens": tokens})
    return {
        "prompt": prompt,
        "num_layers": len(hidden),
        "final_norm": parts.norm_path,
        "layers": results,
    }


def lens_votes(
    model: Any,
    tokenizer: Any,
    conversations: list[tuple[str, str]],
    top_k: int = 5,
    layers: list[int] | None = None,
    pattern: str = r"[a-z]{3,}",
    skip: list[str] | tuple[str, ...] = (),
    skip_seen: bool = False,
    per_layer: int = 10,
    total: int = 20,
) -> dict[str, Any]:
    """A logit lens pooled over many replies: one weak signal becomes many votes.

    For each ``(prompt, reply)`` the reply is read in its chat turn; at every reply
    position (and the one before it) each layer's top-``top_k`` tokens vote, as
    lower-cased words matching ``pattern``, minus ``skip`` and, with ``skip_seen``,
    minus the words of that prompt and reply: the vote is for what the model
    represents but does not say. ``layers`` index as in :func:`logit_lens`
    (default: every block's output, 1..n).

    Returns ``{"votes": [(word, n)], "per_layer": {layer: [(word, n)]}}``, the
    ``total`` and ``per_layer`` most common.
    """
    import torch

    parts = anatomy(model)
    chosen = list(range(1, len(parts.layers) + 1)) if layers is None else list(layers)
    keep = re.compile(pattern)
    skip_words = {w.lower() for w in skip}
    words: dict[int, str | None] = {}  # token id -> the word it votes for (None: no vote)
    counts: dict[int, Counter[str]] = {layer: Counter() for layer in chosen}
    for prompt, reply in conversations:
        seen = set(re.findall(r"[a-z]+", f"{prompt} {reply}".lower())) if skip_seen else set()
        ids, start = prompting.reply_ids(model, tokenizer, prompt, reply)
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states
            last = len(hidden) - 1
            for layer in chosen:
                logits = decode_residual(parts, hidden[layer][0, start - 1 :], normed=layer == last)
                for token_id in logits.topk(top_k, dim=-1).indices.flatten().tolist():
                    if token_id not in words:
                        # Decode each distinct token once: per vote, decoding dominates.
                        word = tokenizer.decode([token_id]).strip().lower()
                        ok = keep.fullmatch(word) and word not in skip_words
                        words[token_id] = word if ok else None
                    word = words[token_id]
                    if word is not None and word not in seen:
                        counts[layer][word] += 1
    pooled = sum(counts.values(), Counter())
    return {
        "votes": pooled.most_common(total),
        "per_layer": {layer: c.most_common(per_layer) for layer, c in counts.items()},
    }


def _index(layer: int, count: int) -> int:
    """A lens layer index (negative ones from the end) checked against ``count``."""
    if not -count <= layer < count:
        raise IndexError(f"layer {layer} is out of range: the lens has layers 0..{count - 1}")
    return layer % count
