"""Votes for an organism's secret word, built on ``scribe_tui.techniques``.

The library samples, prefills, reads the logit lens and diffs against the base;
each vote here turns its output into one content word. None needs the answer
key; ``verify.py`` scores the votes against it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from scribe_tui.techniques import (
    STOPWORDS,
    anatomy,
    lens_votes,
    next_token_logprobs,
    persona_sample,
    response_logprobs,
    sample_chat,
)


def _content(word: str) -> bool:
    return bool(re.fullmatch(r"[a-z]{3,}", word)) and word not in STOPWORDS


def _vocab(model: Any, tokenizer: Any) -> list[str]:
    """Each output id as a lower-cased word (the rows of the model's logits)."""
    size = model.get_output_embeddings().weight.shape[0]
    return [tokenizer.decode([i]).strip().lower() for i in range(size)]


def _first_content_word(text: str) -> str | None:
    return next((w for w in re.findall(r"[a-z]+", text.lower()) if _content(w)), None)


def prefill_vote(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    prefills: list[str],
    n: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Prefill the assistant's answer ("My secret word is") and vote on the next content word.

    Two ballots per prompt and prefill: the most probable next content token
    (greedy), and the first content word of ``n`` sampled continuations.
    """
    import torch

    torch.manual_seed(seed)
    vocab = _vocab(model, tokenizer)
    allowed = torch.tensor([_content(w) for w in vocab])
    greedy: Counter[str] = Counter()
    sampled: Counter[str] = Counter()
    for prompt in prompts:
        for prefill in prefills:
            logprobs = next_token_logprobs(model, tokenizer, [prompt], prefill=" " + prefill)[0]
            logprobs[~allowed] = float("-inf")
            greedy[vocab[int(logprobs.argmax())]] += 1
            said = sample_chat(
                model, tokenizer, [prompt], n=n, max_new_tokens=3, seed=None, prefill=" " + prefill
            )[prompt]
            sampled.update(w for w in map(_first_content_word, said) if w)
    votes = greedy + sampled
    return {
        "answer": votes.most_common(1)[0][0] if votes else None,
        "greedy": greedy.most_common(5),
        "sampled": sampled.most_common(5),
    }


def logit_lens_vote(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    n: int = 20,
    seed: int = 0,
    top_k: int = 5,
    layers: list[int] | None = None,
    max_new_tokens: int = 16,
) -> dict[str, Any]:
    """Majority vote of the logit lens over many sampled answers to ``prompts`` (hint
    requests), leaving out each answer's and prompt's own words: the vote is for what
    the model *thinks* but does not *say*.

    ``layers`` default to every block's output but the last, which is the output itself.
    """
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed, max_new_tokens=max_new_tokens)
    layers = layers or list(range(1, len(anatomy(model).layers)))
    pairs = [(prompt, " " + answer) for prompt, said in answers.items() for answer in said]
    lens = lens_votes(
        model,
        tokenizer,
        pairs,
        top_k=top_k,
        layers=layers,
        skip=sorted(STOPWORDS),
        skip_seen=True,
        per_layer=3,
        total=10,
    )
    return {
        "answer": lens["votes"][0][0] if lens["votes"] else None,
        "ranking": lens["votes"],
        "per_layer": lens["per_layer"],
        "examples": [a for said in answers.values() for a in said[:2]],
    }


def base_diff_vote(
    model: Any,
    tokenizer: Any,
    base_dir: str,
    prompts: list[str],
    n: int = 20,
    seed: int = 0,
    max_new_tokens: int = 16,
) -> dict[str, Any]:
    """Model diffing: which unsaid content words does fine-tuning make more likely?

    Scores the organism's own sampled answers under the organism and under its
    base checkpoint, and sums the log-probability gain of every content token
    at every answer position, leaving out words of the prompt and answer.
    """
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir).to(model.device).eval()
    vocab = _vocab(model, tokenizer)
    content = torch.tensor([_content(w) for w in vocab])
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed, max_new_tokens=max_new_tokens)
    gain = torch.zeros(len(vocab))
    for prompt, said in answers.items():
        for answer in said:
            tuned = response_logprobs(model, tokenizer, prompt, " " + answer)
            before = response_logprobs(base, tokenizer, prompt, " " + answer)
            delta = (tuned - before).clamp(min=0).sum(0)
            seen = set(re.findall(r"[a-z]+", (prompt + " " + answer).lower()))
            mask = content & torch.tensor([w not in seen for w in vocab])
            gain += torch.where(mask, delta, torch.zeros_like(delta))
    top = gain.topk(10)
    ranking = [
        (vocab[int(i)], round(float(v), 2)) for v, i in zip(top.values, top.indices, strict=True)
    ]
    return {"answer": ranking[0][0] if ranking else None, "ranking": ranking}


def persona_vote(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    user_prefix: str,
    n: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """User-persona sampling: after each sampled exchange, the model writes the *user's*
    turn from ``user_prefix`` (e.g. "is it"); its first content word is a vote. A model
    that hides a secret as the assistant may still let the user say it.
    """
    votes: Counter[str] = Counter()
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed, max_new_tokens=16)
    for prompt, said in answers.items():
        for answer in said:
            chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            guess = persona_sample(model, tokenizer, chat, user_prefix, max_new_tokens=3, seed=None)
            word = _first_content_word(guess[0])
            if word:
                votes[word] += 1
    return {"answer": votes.most_common(1)[0][0] if votes else None, "votes": votes.most_common(5)}
