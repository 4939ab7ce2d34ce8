"""Probabilities: of next tokens, of given candidates, of whole (multi-token) words."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.seed_forms import accepts_text

if TYPE_CHECKING:
    import torch

Prompt = str | list[dict[str, str]]


@accepts_text()
def analyze_token_probs(
    model: Any, tokenizer: Any, prompt: str, target_tokens: list[str] | None = None, top_k: int = 10
) -> dict[str, dict[str, Any]] | list[dict[str, Any]]:
    """Next-token probabilities after raw ``prompt``: of each target's first token, or of the
    ``top_k`` most likely.

    With ``target_tokens``: ``{target: {"token_id", "probability", "num_tokens"}}``; a
    target of several tokens is scored by its first one only (``num_tokens`` says so):
    use :func:`word_probs` for whole words. Without: ``[{"token", "token_id",
    "probability"}]``, most likely first, as the seed document's
    ``analyze_token_probs(text=..., top_k=5)`` returns.
    """
    import torch

    ids = prompting.encode(model, tokenizer, prompt, templated=False)
    with torch.no_grad():
        probs = model(ids).logits[0, -1].float().softmax(-1)
    if target_tokens is None:
        return _ranked(tokenizer, probs, top_k)
    results = {}
    for target in target_tokens:
        token_ids = tokenizer.encode(target, add_special_tokens=False)
        if not token_ids:
            raise ValueError(f"{target!r} encodes to no tokens")
        results[target] = {
            "token_id": token_ids[0],
            "probability": float(probs[token_ids[0]]),
            "num_tokens": len(token_ids),
        }
    return results


def next_token_probs(
    model: Any,
    tokenizer: Any,
    prompt: Prompt,
    top_k: int = 10,
    prefill: str = "",
    chat: bool = True,
) -> list[dict[str, Any]]:
    """The ``top_k`` most likely next tokens after the chat-formatted prompt and ``prefill``.

    ``chat=False`` reads the prompt as raw text. Returns
    ``[{"token", "token_id", "probability"}]``.
    """
    import torch

    ids = prompting.context_ids(model, tokenizer, prompt, prefill, chat)
    with torch.no_grad():
        probs = model(ids).logits[0, -1].float().softmax(-1)
    return _ranked(tokenizer, probs, top_k)


def _ranked(tokenizer: Any, probs: torch.Tensor, top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` tokens of a probability vector, most likely first."""
    top = probs.topk(min(top_k, probs.shape[-1]))
    return [
        {"token": tokenizer.decode([int(i)]), "token_id": int(i), "probability": float(p)}
        for p, i in zip(top.values, top.indices, strict=True)
    ]


def word_probs(
    model: Any,
    tokenizer: Any,
    prompt: Prompt,
    words: list[str],
    prefill: str = "",
    chat: bool = True,
    batch: int = 128,
) -> dict[str, dict[str, Any]]:
    """Probability that each whole word comes next, however many tokens it has.

    The product of its tokens' conditional probabilities, the word tokenized as
    the model would see it in context (after a space unless the context ends in
    whitespace); words of one length run in batches of ``batch``. Returns
    ``{word: {"probability", "log_probability", "tokens"}}``.
    """
    import torch

    context = prompting.context_text(tokenizer, prompt, prefill, chat)
    templated = prompting.is_templated(tokenizer, chat)
    context_ids = prompting.encode(model, tokenizer, context, templated=templated)
    space = "" if not context or context[-1].isspace() else " "
    n = context_ids.shape[1]
    pieces = {
        w: _continuation_ids(model, tokenizer, context, context_ids, space + w, templated)
        for w in words
    }
    by_length: dict[int, list[str]] = {}
    for word, word_ids in pieces.items():
        by_length.setdefault(len(word_ids), []).append(word)
    results = {}
    # Words of one length run together, unpadded: each row reads as it would alone.
    for length, group in by_length.items():
        for at in range(0, len(group), batch):
            chunk = group[at : at + batch]
            ids = torch.stack([torch.cat([context_ids[0], pieces[w]]) for w in chunk])
            with torch.no_grad():
                logprobs = model(ids).logits[:, n - 1 : n - 1 + length].float().log_softmax(-1)
            for i, word in enumerate(chunk):
                steps = logprobs[i].gather(1, pieces[word][:, None])[:, 0]
                total = float(steps.sum())
                results[word] = {
                    "probability": math.exp(total),
                    "log_probability": round(total, 6),
                    "tokens": [tokenizer.decode([int(t)]) for t in pieces[word]],
                }
    return results


def next_token_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: list[Prompt],
    prefill: str | list[str] = "",
    chat: bool = True,
) -> torch.Tensor:
    """The full next-token log-probability vector after each prompt: [len(prompts), vocab].

    ``prefill`` is appended to every prompt, or given as a list, one per prompt.
    """
    import torch

    prefills = prefill if isinstance(prefill, list) else [prefill] * len(prompts)
    if len(prefills) != len(prompts):
        raise ValueError(f"{len(prefills)} prefills for {len(prompts)} prompts")
    rows = []
    for prompt, one_prefill in zip(prompts, prefills, strict=True):
        ids = prompting.context_ids(model, tokenizer, prompt, one_prefill, chat)
        with torch.no_grad():
            rows.append(model(ids).logits[0, -1].float().log_softmax(-1).cpu())
    return torch.stack(rows)


def response_logprobs(
    model: Any, tokenizer: Any, prompt: Prompt, response: str, chat: bool = True
) -> torch.Tensor:
    """Log-probabilities at every position of a reply: [reply tokens + 1, vocab].

    Row i, from the last prompt token on, predicts reply token i; the last row, what follows.
    """
    import torch

    ids, start = prompting.reply_ids(model, tokenizer, prompt, response, chat=chat)
    with torch.no_grad():
        return model(ids).logits[0, start - 1 :].float().log_softmax(-1).cpu()


def _continuation_ids(
    model: Any, tokenizer: Any, context: str, context_ids: Any, piece: str, templated: bool
) -> Any:
    """The ids ``piece`` adds after ``context``: from tokenizing them together, so a
    leading space merges into the word as it would in running text; alone when the
    tokenizer merges across the boundary (the context's own ids would change)."""
    full = prompting.encode(model, tokenizer, context + piece, templated=templated)[0]
    n = context_ids.shape[1]
    if full.shape[0] > n and bool((full[:n] == context_ids[0]).all()):
        return full[n:]
    alone = tokenizer(piece, add_special_tokens=False, return_tensors="pt").input_ids[0]
    if alone.numel() == 0:
        raise ValueError(f"{piece.strip()!r} encodes to no tokens")
    return alone.to(context_ids.device)
