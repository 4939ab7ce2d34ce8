"""Black-box techniques: generation, assistant prefill, multi-turn and user-persona sampling."""

from __future__ import annotations

from typing import Any

from scribe_tui.techniques import prompting


def _generate(model: Any, tokenizer: Any, ids: Any, max_new_tokens: int) -> Any:
    """The model's own generation (greedy unless its config says otherwise), within its context."""
    import torch

    prompting.quiet_dropped_mask_warning()
    with torch.no_grad():
        return model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=prompting.room(model, ids, max_new_tokens),
            pad_token_id=prompting.pad_id(tokenizer),
        )


def generate_text(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 50) -> str:
    """Continue raw ``prompt`` with the model's own generation settings; prompt + continuation."""
    ids = prompting.encode(model, tokenizer, prompt, templated=False)
    out = _generate(model, tokenizer, ids, max_new_tokens)
    return tokenizer.decode(out[0], skip_special_tokens=True)


def prefill_attack(
    model: Any, tokenizer: Any, user_prompt: str, prefill_text: str, max_new_tokens: int = 50
) -> str:
    """Start the assistant's reply with ``prefill_text`` and return what the model adds."""
    templated = prompting.has_template(tokenizer)
    text = prompting.assistant_prompt(tokenizer, user_prompt, prefill_text)
    ids = prompting.encode(model, tokenizer, text, templated=templated)
    out = _generate(model, tokenizer, ids, max_new_tokens)
    return tokenizer.decode(out[0][ids.shape[1] :], skip_special_tokens=True)


def sample_chat(
    model: Any,
    tokenizer: Any,
    prompts: str | list[str],
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    seed: int | None = 0,
    prefill: str = "",
    system: str | None = None,
) -> dict[str, list[str]]:
    """``n`` sampled assistant replies to each prompt, after an optional ``prefill``.

    Returns ``{prompt: [reply, ...]}`` (the text after the prefill, stripped).
    ``seed=None`` continues the current random stream instead of reseeding.
    """
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    templated = prompting.has_template(tokenizer)
    replies: dict[str, list[str]] = {}
    for prompt in [prompts] if isinstance(prompts, str) else prompts:
        text = prompting.assistant_prompt(tokenizer, prompt, prefill, system)
        ids = prompting.encode(model, tokenizer, text, templated=templated)
        texts = prompting.sample(
            model, tokenizer, ids, n=n, temperature=temperature, max_new_tokens=max_new_tokens
        )
        replies[prompt] = [t.strip() for t in texts]
    return replies


def persona_sample(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]],
    user_prefix: str = "",
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 16,
    seed: int | None = 0,
) -> list[str]:
    """Sample the *user's* next turn after ``messages``, starting with ``user_prefix``.

    A model that guards a secret as the assistant may let the user say it. Returns the
    ``n`` sampled continuations (after the prefix, unstripped).
    """
    text = prompting.user_prompt(tokenizer, messages, user_prefix)
    return _continue_chat(model, tokenizer, text, n, temperature, max_new_tokens, seed)


def reply_sample(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]],
    prefill: str = "",
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 16,
    seed: int | None = 0,
) -> list[str]:
    """Sample the *assistant's* next turn after a whole conversation, after ``prefill``.

    For multi-turn probes (the model's answer to a guess it was led into). Returns the
    ``n`` sampled replies (after the prefill, stripped).
    """
    text = prompting.assistant_prompt(tokenizer, messages, prefill)
    texts = _continue_chat(model, tokenizer, text, n, temperature, max_new_tokens, seed)
    return [t.strip() for t in texts]


def _continue_chat(
    model: Any,
    tokenizer: Any,
    text: str,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int | None,
) -> list[str]:
    """``n`` samples continuing a rendered conversation (reseeded unless ``seed`` is None)."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    ids = prompting.encode(model, tokenizer, text, templated=prompting.has_template(tokenizer))
    return prompting.sample(
        model, tokenizer, ids, n=n, temperature=temperature, max_new_tokens=max_new_tokens
    )
