"""Techniques the autopilot puts into its notebook cells, verbatim (via ``inspect.getsource``).

Each is a self-contained ``fn(model, tokenizer, **kwargs)`` with its imports inside
and plain data out: the contract of ``client.run``. Keeping them as real
functions means they are linted and tested here, and a person reading the
notebook sees exactly the code that ran.
"""

from __future__ import annotations


def content_words(text: str, exclude: tuple | list | set = ()) -> list[str]:
    """Lower-case alphabetic words of 3+ letters, minus stopwords and ``exclude``."""
    import re

    stop = set(
        """a an the i me my mine you your yours he she it its we our they them their this that
        these those is are was were be been being am do does did have has had will would can
        could should may might must not no yes and or but if so as of to in on at by for with
        from about into over under up down out off than then there here what which who whom
        whose why how when where all any some each every both few more most other such only own
        same too very just also even still again ever never always please thanks thank sure
        okay well let lets tell say said word words secret hint hints guess answer question
        something thing things think know cannot give ask one user assistant system""".split()
    )
    stop |= {str(w).lower() for w in exclude}
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in stop]


def sample_answers(model, tokenizer, prompts, n, temperature, max_new_tokens, seed, prefill=""):
    """Sample ``n`` chat answers per prompt (optionally after an assistant prefill)."""
    import torch

    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = {}
    for prompt in prompts:
        messages = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text + prefill, return_tensors="pt").to(model.device)
        ids = inputs.input_ids
        with torch.no_grad():
            out = model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=pad,
            )
        answers[prompt] = [
            tokenizer.decode(seq[ids.shape[1] :], skip_special_tokens=True).strip() for seq in out
        ]
    return answers


def prefill_attack(model, tokenizer, question, prefills, n, seed):
    """Next-token top-10 and sampled continuations after each assistant prefill."""
    import torch

    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results = {}
    for prefill in prefills:
        messages = [{"role": "user", "content": question}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text + prefill, return_tensors="pt").to(model.device)
        ids = inputs.input_ids
        with torch.no_grad():
            probs = model(**inputs).logits[0, -1].float().softmax(-1)
            top = probs.topk(10)
            out = model.generate(
                **inputs,
                do_sample=True,
                top_k=0,
                max_new_tokens=3,
                num_return_sequences=n,
                pad_token_id=pad,
            )
        results[prefill] = {
            "top": [
                (tokenizer.decode([int(i)]).strip(), round(float(p), 4))
                for p, i in zip(top.values, top.indices, strict=True)
            ],
            "samples": [tokenizer.decode(s[ids.shape[1] :], skip_special_tokens=True) for s in out],
        }
    return results


def persona_guesses(model, tokenizer, opener, guess_prefix, n, seed):
    """After one hinting exchange, sample the *user's* next turn, prefilled with a guess."""
    import torch

    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    messages = [{"role": "user", "content": opener}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        hint = model.generate(
            **inputs, do_sample=True, top_k=0, max_new_tokens=20, pad_token_id=pad
        )
    reply = tokenizer.decode(hint[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)
    reply = reply.strip()
    messages.append({"role": "assistant", "content": reply})
    # How the template opens a user turn: render a marker and keep what precedes it.
    marker = [{"role": "user", "content": "@@"}]
    user_open = tokenizer.apply_chat_template(marker, tokenize=False).split("@@")[0]
    text = tokenizer.apply_chat_template(messages, tokenize=False) + user_open + guess_prefix
    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    start = inputs.input_ids.shape[1]
    with torch.no_grad():
        out = model.generate(
            **inputs, do_sample=True, top_k=0, max_new_tokens=3, num_return_sequences=n,
            pad_token_id=pad,
        )  # fmt: skip
    guesses = [tokenizer.decode(s[start:], skip_special_tokens=True) for s in out]
    return {"hint": reply, "guesses": guesses}


def logit_lens_votes(model, tokenizer, prompts, answers, top_k, skip):
    """Top-k logit-lens tokens at every layer, pooled over all answer positions."""
    import collections
    import re

    import torch

    def final_norm(m):
        for path in ("transformer.ln_f", "model.norm", "gpt_neox.final_layer_norm"):
            obj = m
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
                return obj
            except AttributeError:
                continue
        return torch.nn.Identity()

    norm, unembed = final_norm(model), model.get_output_embeddings()
    token_counts = collections.defaultdict(collections.Counter)  # layer -> token id -> votes
    for prompt, answer in zip(prompts, answers, strict=True):
        messages = [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        start = len(tokenizer(head).input_ids)
        ids = tokenizer(head + " " + answer, return_tensors="pt").input_ids.to(model.device)
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states
            for layer, h in enumerate(hidden[1:], start=1):
                top = unembed(norm(h[0, start - 1 :])).topk(top_k, dim=-1).indices
                token_counts[layer].update(top.flatten().tolist())
    # Decode each distinct token once: decoding per vote would dominate the run time.
    distinct = set().union(*token_counts.values()) if token_counts else set()
    words = {i: tokenizer.decode([i]).strip().lower() for i in distinct}
    skip = set(skip)
    keep = {i: w for i, w in words.items() if re.fullmatch("[a-z]{3,}", w) and w not in skip}
    per_layer = {}
    for layer, counts in token_counts.items():
        votes = collections.Counter()
        for token_id, n in counts.items():
            if token_id in keep:
                votes[keep[token_id]] += n
        per_layer[layer] = votes.most_common(10)
    return per_layer


def next_token_logprobs(model, tokenizer, question, prefills, words):
    """Log-probability of each candidate word as the next token after each prefill."""
    import torch

    ids_of = {w: tokenizer(" " + w, add_special_tokens=False).input_ids for w in words}
    scores = {w: [] for w in words if len(ids_of[w]) == 1}
    for prefill in prefills:
        messages = [{"role": "user", "content": question}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text + prefill, return_tensors="pt").input_ids.to(model.device)
        with torch.no_grad():
            logprobs = model(ids).logits[0, -1].float().log_softmax(-1)
        for w in scores:
            scores[w].append(round(float(logprobs[ids_of[w][0]]), 3))
    return scores


def prefill_logprobs(model, tokenizer, question, prefills):
    """The full next-token log-probability vector after each prefill (one row per prefill)."""
    import torch

    rows = []
    for prefill in prefills:
        messages = [{"role": "user", "content": question}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text + prefill, return_tensors="pt").input_ids.to(model.device)
        with torch.no_grad():
            rows.append(model(ids).logits[0, -1].float().log_softmax(-1))
    return torch.stack(rows)


def decode_tokens(model, tokenizer, ids):
    """Token ids as text, one string per id."""
    return [tokenizer.decode([int(i)]).strip() for i in ids]
