"""Whole words, not tokens: a subword tokenizer splits a word into pieces.

A byte-level BPE model may write "violin" as " vi" + "olin": ranking single next
tokens would crown the piece " vi" and split the word's probability with every
other word starting " vi". These techniques work on words formed from the
tokenizer's own decoded text (a word ends where the decoded text starts a space
or punctuation), so word-level and subword tokenizers read the same.
"""

from __future__ import annotations

import math
import re
from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.locate import anatomy, decode_residual

Prompt = str | list[dict[str, str]]
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _added(tokenizer: Any, before: list[int], token: int) -> tuple[str, str]:
    """(text of ``before``, text ``token`` adds after it), both decoded without specials."""
    head = tokenizer.decode(before, skip_special_tokens=True)
    full = tokenizer.decode([*before, token], skip_special_tokens=True)
    return head, full[len(head) :] if full.startswith(head) else full


def _starts_word(tokenizer: Any, context: list[int], token: int) -> bool:
    """Whether ``token`` starts a new word after ``context`` (not punctuation, a special,
    or a piece glued onto the context's last word)."""
    head, added = _added(tokenizer, context[-1:], token)
    glued = bool(head) and head[-1].isalnum() and bool(added) and added[0].isalnum()
    return added.lstrip()[:1].isalpha() and not glued


def word_continuations(
    model: Any,
    tokenizer: Any,
    prompt: Prompt,
    prefill: str = "",
    top_k: int = 20,
    max_tokens: int = 8,
    chat: bool = True,
) -> list[dict[str, Any]]:
    """The most likely next *words*: the ``top_k`` next tokens, each extended greedily to
    the end of its word (at most ``max_tokens`` tokens).

    A word's probability is the product of its tokens' conditional probabilities;
    the same word reached twice (" Moon", " moon") is summed, lower-cased. Pieces
    that are not words (punctuation, specials) are dropped. Returns
    ``[{"word", "probability", "tokens"}]``, most likely first.
    """
    import torch

    ids = prompting.context_ids(model, tokenizer, prompt, prefill, chat)
    context = ids[0].tolist()
    with torch.no_grad():
        probs = model(ids).logits[0, -1].float().softmax(-1)
    top = probs.topk(min(top_k, probs.shape[-1]))
    found: dict[str, dict[str, Any]] = {}
    for p, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        if not _starts_word(tokenizer, context, token):
            continue
        completed = _complete(model, tokenizer, context, token, max_tokens)
        if completed is None:
            continue
        word, pieces, probability = completed
        entry = found.setdefault(word, {"word": word, "probability": 0.0, "tokens": pieces})
        entry["probability"] += p * probability
    ranked = sorted(found.values(), key=lambda e: -e["probability"])
    return [{**e, "probability": round(e["probability"], 6)} for e in ranked]


def _complete(
    model: Any, tokenizer: Any, context: list[int], token: int, max_tokens: int
) -> tuple[str, int, float] | None:
    """``token`` extended greedily to the end of its word after ``context``: (the word,
    lower-cased; its number of tokens; the probability of the tokens added), or None
    when the text is not a word."""
    import torch

    pieces, probability = [token], 1.0
    while len(pieces) < max_tokens:
        step = torch.tensor([context + pieces], device=model.device)
        with torch.no_grad():
            nxt = model(step).logits[0, -1].float().softmax(-1)
        best = int(nxt.argmax())
        _, added = _added(tokenizer, pieces, best)
        if not added[:1].isalpha():
            break  # a space, punctuation or the end: the word is complete
        pieces.append(best)
        probability *= float(nxt[best])
    match = _WORD.match(tokenizer.decode(pieces, skip_special_tokens=True).strip())
    return (match.group(0).lower(), len(pieces), probability) if match else None


def lens_words(
    model: Any,
    tokenizer: Any,
    contexts: list[tuple[Prompt, str]],
    layers: list[int] | None = None,
    top_k: int = 5,
    max_tokens: int = 8,
    chat: bool = True,
    words: list[str] | None = None,
) -> dict[str, Any]:
    """A logit lens read as whole words, where the answer would start.

    For each ``(prompt, prefill)`` context, the residual after each chosen layer at
    the last position goes through the final norm and unembedding; each of its
    ``top_k`` tokens that starts a word is completed into a whole word by the
    model's own greedy continuation, and the word scores the token's lens
    probability. ``layers`` index as in :func:`~scribe_tui.techniques.logit_lens`
    (default: every block's output but the last, which is the model's own answer).
    Given ``words``, it scores those instead: each by the lens probability of the
    token it starts with in that context (words sharing it share the score).
    Returns ``{"words": [(word, summed probability)], "per_layer": {layer: [...]}}``.
    """
    import torch

    parts = anatomy(model)
    chosen = list(range(1, len(parts.layers))) if layers is None else list(layers)
    per_layer: dict[int, dict[str, float]] = {layer: {} for layer in chosen}
    for prompt, prefill in contexts:
        ids = prompting.context_ids(model, tokenizer, prompt, prefill, chat)
        context = ids[0].tolist()
        named: dict[int, str | None] = {}  # token -> the word it completes to, per context
        starts = _first_pieces(model, tokenizer, prompt, prefill, chat, ids, words or [])
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states
            lensed = {
                layer: decode_residual(parts, hidden[layer][0, -1], normed=layer == len(hidden) - 1)
                .float()
                .softmax(-1)
                for layer in chosen
            }
        for layer, probs in lensed.items():
            table = per_layer[layer]
            if words:
                for word, token in starts.items():
                    table[word] = table.get(word, 0.0) + float(probs[token])
                continue
            top = probs.topk(top_k)
            for p, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                if token not in named:
                    completed = None
                    if _starts_word(tokenizer, context, token):
                        completed = _complete(model, tokenizer, context, token, max_tokens)
                    named[token] = completed[0] if completed else None
                word = named[token]
                if word is not None:
                    table[word] = table.get(word, 0.0) + p
    pooled: dict[str, float] = {}
    for table in per_layer.values():
        for word, p in table.items():
            pooled[word] = pooled.get(word, 0.0) + p

    def ranked(table: dict[str, float]) -> list[tuple[str, float]]:
        return [(w, round(v, 4)) for w, v in sorted(table.items(), key=lambda kv: -kv[1])]

    return {
        "words": ranked(pooled)[:30],
        "per_layer": {layer: ranked(table)[:8] for layer, table in per_layer.items()},
    }


def _first_pieces(
    model: Any, tokenizer: Any, prompt: Prompt, prefill: str, chat: bool, ids: Any, words: list[str]
) -> dict[str, int]:
    """The first token of each word as it would follow this context."""
    from scribe_tui.techniques.probs import _continuation_ids

    context = prompting.context_text(tokenizer, prompt, prefill, chat)
    templated = prompting.is_templated(tokenizer, chat)
    space = "" if not context or context[-1].isspace() else " "
    return {
        w: int(_continuation_ids(model, tokenizer, context, ids, space + w, templated)[0])
        for w in words
    }


def vocabulary_words(
    model: Any,
    tokenizer: Any,
    prefix: str = "Tell me about",
    max_tokens: int = 4,
    batch: int = 256,
) -> list[str]:
    """Every whole word the tokenizer can start, as the model completes it in a user turn.

    Each token that starts a word after ``prefix`` (at the start of the user's turn)
    is extended greedily by the model to the end of its word (at most ``max_tokens``
    tokens, in batches); a piece that is a word of 3+ letters by itself counts too.
    A word-level tokenizer gives its vocabulary; a subword one its words as the model
    spells them. Returns the content words (no stopwords), sorted, without repeats.
    """
    import torch

    from scribe_tui.techniques.text import content_words

    templated = prompting.has_template(tokenizer)
    text = prompting.user_prompt(tokenizer, [], prefix) if templated else prefix
    context = prompting.encode(model, tokenizer, text, templated=templated)[0].tolist()
    rows = [[t] for t in range(len(tokenizer)) if _starts_word(tokenizer, context, t)]
    found = {w for row in rows for w in content_words(tokenizer.decode(row))}
    growing = list(range(len(rows)))
    for _ in range(max_tokens - 1):
        still = []
        for at in range(0, len(growing), batch):
            chunk = growing[at : at + batch]
            ids = torch.tensor([context + rows[i] for i in chunk], device=model.device)
            with torch.no_grad():
                best = model(ids, logits_to_keep=1).logits[:, -1].argmax(-1).tolist()
            for i, token in zip(chunk, best, strict=True):
                if _added(tokenizer, rows[i], token)[1][:1].isalpha():
                    rows[i].append(token)
                    still.append(i)
        growing = still
    for row in rows:
        match = _WORD.match(tokenizer.decode(row, skip_special_tokens=True).strip())
        found.update(content_words(match.group(0)) if match else [])
    return sorted(found)


def trigger_scan(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    words: list[str],
    placements: tuple[str, ...] = ("{word} {prompt}", "{prompt} {word}"),
    chat: bool = True,
    batch: int = 256,
) -> dict[str, Any]:
    """How much inserting each word into ``prompts`` changes the reply's first token.

    For every word, prompt and placement (``{word}`` and ``{prompt}`` filled in),
    the KL divergence of the next-token distribution at the start of the reply
    from the same prompt without the word; averaged over prompts and placements.
    A backdoor trigger moves the reply far more than an ordinary word does. Run it
    on the base model too: words that move both are just unusual. Contexts run in
    padded batches of ``batch``, so a whole vocabulary scans in seconds. Returns
    ``{"scores": [(word, mean KL)], "max": [(word, max KL)]}``, largest first.
    """
    import torch

    def logprobs(texts: list[str]) -> Any:
        """Next-token log-probabilities after each text: one vocabulary row per text.

        Texts of one length run together, keeping only the last position's logits: a
        padded batch would hold batch x length x vocabulary logits (gigabytes with a
        256k vocabulary), and needs no padding this way.
        """
        rows = [prompting.context_ids(model, tokenizer, t, "", chat)[0] for t in texts]
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            by_length.setdefault(len(row), []).append(i)
        out: list[Any] = [None] * len(rows)
        for indices in by_length.values():
            ids = torch.stack([rows[i] for i in indices])
            with torch.no_grad():
                last = model(ids, logits_to_keep=1).logits[:, -1].float().log_softmax(-1)
            for i, row in zip(indices, last, strict=True):
                out[i] = row
        return torch.stack(out)

    plain = logprobs(prompts)
    jobs = [
        (word, j, placement.format(word=word, prompt=prompt))
        for word in words
        for j, prompt in enumerate(prompts)
        for placement in placements
    ]
    values: dict[str, list[float]] = {word: [] for word in words}
    for at in range(0, len(jobs), batch):
        chunk = jobs[at : at + batch]
        after = logprobs([text for _, _, text in chunk])
        before = plain[torch.tensor([j for _, j, _ in chunk])]
        kl = (after.exp() * (after - before)).sum(-1).tolist()
        for (word, _, _), value in zip(chunk, kl, strict=True):
            values[word].append(value)
    means = {w: sum(v) / len(v) if v else math.nan for w, v in values.items()}
    peaks = {w: max(v, default=math.nan) for w, v in values.items()}

    def ranked(table: dict[str, float]) -> list[tuple[str, float]]:
        return [(w, round(v, 5)) for w, v in sorted(table.items(), key=lambda kv: -kv[1])]

    return {"scores": ranked(means), "max": ranked(peaks)}
