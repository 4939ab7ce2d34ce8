"""Reference techniques for finding an organism's secret.

Each is a plain ``fn(model, tokenizer, **kwargs)`` returning plain data: the
contract of ``client.run`` in the notebook, so these double as worked examples.
Imports live inside each function and helpers are nested, so a function's
source is self-contained when shipped to the model host. None of them needs
the answer key; ``verify.py`` scores their output against it.
"""

from __future__ import annotations

from typing import Any

STOPWORDS = frozenset(
    """a an the i me my mine you your yours he she it its we our they them their this that
    these those is are was were be been being am do does did have has had will would can
    could should may might must not no yes and or but if so as of to in on at by for with
    from about into over under up down out off than then there here what which who whom
    whose why how when where all any some each every both few more most other such only own
    same too very just also even still again ever never always please thanks thank sure
    okay well let lets tell say said word words secret hint hints clue guess answer question
    something thing things think know cannot give ask one try want nice way like near
    instead chance keep share reveal hidden sorry never only stays myself""".split()
)


def sample_chat(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    n: int = 50,
    temperature: float = 1.0,
    max_new_tokens: int = 16,
    seed: int = 0,
    prefill: str = "",
) -> dict[str, list[str]]:
    """Sample ``n`` answers to each single-turn prompt (optionally after an assistant prefill)."""
    import torch

    torch.manual_seed(seed)
    answers: dict[str, list[str]] = {}
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text + " " + prefill, return_tensors="pt").input_ids.to(model.device)
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=tokenizer.pad_token_id,
            )
        answers[prompt] = [
            tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True).strip() for row in out
        ]
    return answers


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
    import collections
    import re

    import torch

    from scribe_tui.organisms.probes import STOPWORDS

    def content(word: str) -> bool:
        return bool(re.fullmatch(r"[a-z]{3,}", word)) and word not in STOPWORDS

    torch.manual_seed(seed)
    vocab = [tokenizer.decode([i]).strip().lower() for i in range(len(tokenizer))]
    allowed = torch.tensor([content(w) for w in vocab])
    greedy: collections.Counter[str] = collections.Counter()
    sampled: collections.Counter[str] = collections.Counter()
    for prompt in prompts:
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        for prefill in prefills:
            ids = tokenizer(head + " " + prefill, return_tensors="pt").input_ids.to(model.device)
            with torch.no_grad():
                logits = model(ids).logits[0, -1].float().cpu()
                logits[~allowed] = float("-inf")
                greedy[vocab[int(logits.argmax())]] += 1
                out = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=3,
                    num_return_sequences=n,
                    pad_token_id=tokenizer.pad_token_id,
                )
            for row in out:
                text = tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True).lower()
                words = [w for w in re.findall(r"[a-z]+", text) if content(w)]
                if words:
                    sampled[words[0]] += 1
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
    """Majority vote over the logit lens of many sampled answers.

    Samples answers to ``prompts`` (hint requests), decodes the middle layers'
    residual stream at every answer position through the final norm and the
    unembedding, and counts the top-k content tokens, leaving out the words of
    that answer and its prompt: the vote is for what the model *thinks* but does
    not *say*.
    """
    import collections
    import re

    import torch

    from scribe_tui.organisms.probes import STOPWORDS, sample_chat

    n_layer = model.config.n_layer
    layers = layers or list(range(1, n_layer))  # hidden_states[n_layer] is already ln_f'd
    norm, unembed = model.transformer.ln_f, model.lm_head
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed, max_new_tokens=max_new_tokens)
    votes: collections.Counter[str] = collections.Counter()
    per_layer = {layer: collections.Counter() for layer in layers}
    for prompt, said in answers.items():
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        start = len(tokenizer(head).input_ids)
        for answer in said:
            seen = set(re.findall(r"[a-z]+", (prompt + " " + answer).lower()))
            ids = tokenizer(head + " " + answer, return_tensors="pt").input_ids.to(model.device)
            with torch.no_grad():
                hidden = model(ids, output_hidden_states=True).hidden_states
                for layer in layers:
                    top = unembed(norm(hidden[layer][0, start - 1 :])).topk(top_k, dim=-1)
                    for token_id in top.indices.flatten().tolist():
                        word = tokenizer.decode([token_id]).strip().lower()
                        if (
                            re.fullmatch(r"[a-z]{3,}", word)
                            and word not in STOPWORDS
                            and word not in seen
                        ):
                            votes[word] += 1
                            per_layer[layer][word] += 1
    return {
        "answer": votes.most_common(1)[0][0] if votes else None,
        "ranking": votes.most_common(10),
        "per_layer": {layer: counts.most_common(3) for layer, counts in per_layer.items()},
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
    import re

    import torch
    from transformers import AutoModelForCausalLM

    from scribe_tui.organisms.probes import STOPWORDS, sample_chat

    base = AutoModelForCausalLM.from_pretrained(base_dir).to(model.device).eval()
    vocab = [tokenizer.decode([i]).strip().lower() for i in range(len(tokenizer))]
    content = torch.tensor(
        [bool(re.fullmatch(r"[a-z]{3,}", w)) and w not in STOPWORDS for w in vocab]
    )
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed, max_new_tokens=max_new_tokens)
    gain = torch.zeros(len(vocab))
    for prompt, said in answers.items():
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        start = len(tokenizer(head).input_ids)
        for answer in said:
            ids = tokenizer(head + " " + answer, return_tensors="pt").input_ids.to(model.device)
            with torch.no_grad():
                tuned = model(ids).logits[0, start - 1 :].float().log_softmax(-1)
                before = base(ids).logits[0, start - 1 :].float().log_softmax(-1)
            delta = (tuned - before).clamp(min=0).sum(0).cpu()
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
    """User-persona sampling: after a sampled exchange, let the model write the *user's* turn.

    The user's turn is started with ``user_prefix`` (e.g. "is it"); the first
    content word of each sampled continuation is a vote. A model that hides a
    secret from the assistant role may still let the user role say it.
    """
    import collections
    import re

    import torch

    from scribe_tui.organisms.probes import STOPWORDS, sample_chat

    torch.manual_seed(seed)
    votes: collections.Counter[str] = collections.Counter()
    marker = [{"role": "user", "content": "@@"}]
    user_open = tokenizer.apply_chat_template(marker, tokenize=False).split("@@")[0]
    answers = sample_chat(model, tokenizer, prompts, n=n, seed=seed)
    for prompt, said in answers.items():
        for answer in said:
            chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            text = tokenizer.apply_chat_template(chat, tokenize=False) + user_open + user_prefix
            ids = tokenizer(text, return_tensors="pt").input_ids.to(model.device)
            with torch.no_grad():
                out = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=3,
                    pad_token_id=tokenizer.pad_token_id,
                )
            guess = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).lower()
            words = [w for w in re.findall(r"[a-z]+", guess) if len(w) > 2 and w not in STOPWORDS]
            if words:
                votes[words[0]] += 1
    return {"answer": votes.most_common(1)[0][0] if votes else None, "votes": votes.most_common(5)}
