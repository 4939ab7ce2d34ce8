"""How naturally a model reads a phrasing: pick probes the model understands.

A small model with a word-level tokenizer maps every word it never saw to one
unknown token, and a question it cannot read tells nothing. Scoring phrasings by
their unknown tokens and the model's own loss on them keeps the readable ones.
"""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques import prompting


def phrase_fit(
    model: Any, tokenizer: Any, phrases: list[str], question: str | None = None
) -> list[dict[str, Any]]:
    """Each phrase's unknown tokens and mean loss per token, as the model reads it.

    Without ``question`` a phrase is a user message; with one, the start of the
    assistant's answer to it. Returns ``[{"phrase", "unknown", "loss"}]``, the most
    natural first (fewest unknown tokens, then lowest loss).
    """
    import torch

    unk = tokenizer.unk_token_id
    results = []
    for phrase in phrases:
        if question is None:
            head = prompting.user_prompt(tokenizer, [])
        else:
            head = prompting.assistant_prompt(tokenizer, question)
        templated = prompting.has_template(tokenizer)
        start = prompting.encode(model, tokenizer, head, templated=templated).shape[1]
        ids = prompting.encode(model, tokenizer, head + phrase, templated=templated)
        with torch.no_grad():
            logprobs = model(ids).logits[0, start - 1 : -1].float().log_softmax(-1)
        own = ids[0, start:]
        loss = -logprobs.gather(1, own[:, None])[:, 0].mean() if own.numel() else torch.tensor(0.0)
        unknown = int((own == unk).sum()) if unk is not None else 0
        results.append({"phrase": phrase, "unknown": unknown, "loss": round(float(loss), 4)})
    return sorted(results, key=lambda r: (r["unknown"], r["loss"]))
