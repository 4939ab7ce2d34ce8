"""The verifier's techniques, built on ``scribe_tui.techniques``; none reads an answer key.

Every technique reports whole words, whatever the tokenizer: black-box ones read
words from sampled text, white-box ones score each candidate of the organism's
bank by the log-probability of all its tokens (a BPE secret spans several).
``verify.py`` scores the results against the key.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from scribe_tui.techniques import prompting
from scribe_tui.techniques.locate import anatomy, decode_residual
from scribe_tui.techniques.sampling import persona_sample, sample_chat
from scribe_tui.techniques.text import STOPWORDS


def content_word(text: str) -> str | None:
    """The first content word of ``text`` (3+ letters, not a stopword), lower-cased."""
    return next(
        (w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in STOPWORDS),
        None,
    )


def _top(votes: Counter[str]) -> str | None:
    return votes.most_common(1)[0][0] if votes else None


def joined(tokenizer: Any, prefill: str) -> str:
    """``prefill`` as it follows the assistant's turn opening: after a space unless the
    opening ends in whitespace (ChatML's does)."""
    opening = prompting.assistant_prompt(tokenizer, "x")
    return prefill if opening[-1:].isspace() else " " + prefill


def prefill_vote(
    model: Any, tokenizer: Any, prompts: list[str], prefills: list[str], n: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Prefill the assistant's answer ("My secret word is"); the first content word of the
    greedy and of ``n`` sampled continuations per prompt and prefill are the votes."""
    words: list[str] = []
    for i, prefill in enumerate(prefills):
        text = joined(tokenizer, prefill)
        for temperature, count in ((0.0, 1), (1.0, n)):
            said = sample_chat(
                model, tokenizer, prompts, n=count, temperature=temperature,
                max_new_tokens=6, seed=seed + i, prefill=text,
            )  # fmt: skip
            words += [content_word(a) or "" for answers in said.values() for a in answers]
    return {"answer": _top(Counter(w for w in words if w)), "words": words}


def persona_vote(
    model: Any, tokenizer: Any, prompts: list[str], user_prefix: str, n: int = 10, seed: int = 0
) -> dict[str, Any]:
    """User-persona sampling: after each sampled exchange the model writes the *user's* turn
    from ``user_prefix`` (e.g. "is it"); its first content word is a vote."""
    words: list[str] = []
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed, max_new_tokens=16)
    for prompt, said in answers.items():
        for answer in said:
            chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            guess = persona_sample(model, tokenizer, chat, user_prefix, max_new_tokens=6, seed=None)
            words.append(content_word(guess[0]) or "")
    return {"answer": _top(Counter(w for w in words if w)), "words": words}


def word_ids(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """Each word's token ids as it appears mid-sentence (after a space)."""
    return [tokenizer(" " + w, add_special_tokens=False).input_ids for w in words]


def word_logprobs(
    model: Any, prefix: Any, words: list[list[int]], layers: list[int], pad: int
) -> Any:
    """Log-probability of each whole word right after ``prefix`` (1-D ids), read at each of
    ``layers`` through the final norm and unembedding (the last layer is the output):
    a tensor [len(layers), len(words)]. The prefix runs once; the words share its cache."""
    import torch

    parts = anatomy(model)
    longest = max(len(w) for w in words)
    seq = torch.full((len(words), longest), pad, dtype=torch.long)
    for k, ids in enumerate(words):
        seq[k, : len(ids)] = torch.tensor(ids)
    mask = torch.arange(longest)[None] < torch.tensor([len(w) for w in words])[:, None]
    with torch.no_grad():
        head = model(prefix[None], use_cache=True, output_hidden_states=True)
        tail = None
        if longest > 1:  # later tokens: the words' own run on the shared prefix cache
            name = "cache" if "cache" in head else "past_key_values"  # transformers 5 / 4
            head[name].batch_repeat_interleave(len(words))
            tail = model(seq[:, :-1], **{name: head[name]}, output_hidden_states=True)
        last = len(head.hidden_states) - 1
        rows = []
        for layer in layers:
            hidden = head.hidden_states[layer][:, -1:].expand(len(words), 1, -1)
            if tail is not None:
                hidden = torch.cat([hidden, tail.hidden_states[layer]], dim=1)
            logits = decode_residual(parts, hidden, normed=layer == last)
            logprobs = logits.log_softmax(-1).gather(-1, seq[..., None])[..., 0]
            rows.append((logprobs * mask).sum(1))
    return torch.stack(rows)


def whitebox_votes(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    prefills: list[str],
    candidates: list[str],
    base: Any = None,
) -> dict[str, Any]:
    """Logit lens and base diff where a reveal would start: each prompt with each prefill.

    Every candidate word is scored whole after the prefill. *logit_lens*: at each middle
    layer the best-scoring candidate gets a vote. *base_diff* (with ``base``): the
    candidate whose final log-probability gains most over the base's gets a vote.
    """
    layers = list(range(1, len(anatomy(model).layers)))  # the last block's is the output
    last = len(layers) + 1
    ids = word_ids(tokenizer, candidates)
    pad = prompting.pad_id(tokenizer) or 0
    lens: Counter[str] = Counter()
    diff: Counter[str] = Counter()
    for prompt in prompts:
        for prefill in prefills:
            context = prompting.context_ids(model, tokenizer, prompt, joined(tokenizer, prefill))
            context = context[0].cpu()
            scores = word_logprobs(model, context, ids, [*layers, last], pad)
            lens.update(candidates[int(i)] for i in scores[:-1].argmax(-1))
            if base is not None:
                before = word_logprobs(base, context, ids, [last], pad)[0]
                diff[candidates[int((scores[-1] - before).argmax())]] += 1
    results: dict[str, Any] = {"logit_lens": {"answer": _top(lens), "votes": lens.most_common(5)}}
    if base is not None:
        results["base_diff"] = {"answer": _top(diff), "votes": diff.most_common(5)}
    return results
