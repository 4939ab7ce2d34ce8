"""Chat formatting, encoding and sampling shared by the techniques.

A prefill is appended verbatim to the rendered turn opening, as the seed's
``prefill_attack`` does: write ``" My secret is"`` with its leading space when the
tokenizer needs one. Text rendered from a chat template already holds its special
tokens (a BOS, turn markers), so it is encoded without adding them again; plain
text gets the tokenizer's usual specials.
"""

from __future__ import annotations

import logging
from typing import Any

# Rendered in place of a turn's content, then cut: what precedes it opens that turn.
_MARK = "SCRIBEMARK7F3A"
Messages = list[dict[str, str]]


def has_template(tokenizer: Any) -> bool:
    """Whether the tokenizer has a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def is_templated(tokenizer: Any, chat: bool) -> bool:
    """Whether text formatted with ``chat`` came from a template (so holds its specials)."""
    return chat and has_template(tokenizer)


def as_messages(prompt: str | Messages, system: str | None = None) -> Messages:
    """A user prompt (or a conversation) as a message list, with an optional system turn."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages):
        raise TypeError("messages must be a string or a list of {'role': ..., 'content': ...}")
    return [{"role": "system", "content": system}, *messages] if system else messages


def render(tokenizer: Any, messages: Messages, *, add_generation_prompt: bool = False) -> str:
    """The conversation as text; without a template, as ``User: ...`` / ``Assistant: ...`` lines
    (the seed's convention for base models)."""
    if has_template(tokenizer):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
    return text + ("\nAssistant: " if add_generation_prompt else "")


def assistant_prompt(
    tokenizer: Any, prompt: str | Messages, prefill: str = "", system: str | None = None
) -> str:
    """The conversation, the opening of the assistant's reply, then ``prefill``."""
    messages = as_messages(prompt, system)
    return render(tokenizer, messages, add_generation_prompt=True) + prefill


def user_prompt(tokenizer: Any, messages: Messages, prefill: str = "") -> str:
    """The conversation, the opening of the *user's* next turn, then ``prefill``.

    The opening is what the template renders before a user message's content, cut
    from a rendering of the conversation plus a marker turn: so a default system
    prompt or BOS appears once, where the template puts it.
    """
    rendered = render(tokenizer, [*as_messages(messages), {"role": "user", "content": _MARK}])
    if _MARK not in rendered:
        raise ValueError("the chat template dropped the user's message; cannot open a user turn")
    return rendered.split(_MARK)[0] + prefill


def encode(model: Any, tokenizer: Any, text: str, *, templated: bool) -> Any:
    """Token ids of ``text`` (shape [1, n]) on the model's device."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=not templated).input_ids
    return ids.to(model.device)


def pad_id(tokenizer: Any) -> int | None:
    """The id generate pads with: the pad token, else the EOS token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class _DroppedMaskWarning(logging.Filter):
    """Drops transformers' "We strongly recommend passing in an `attention_mask`" warning.

    ``generate`` discards the all-ones mask it is given, then the model warns when a
    finished sample's padding is the last input: a false alarm (finished samples are
    cut from the output), printed into whichever cell samples first.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "recommend passing in an `attention_mask`" not in record.getMessage()


_DROPPED_MASK = _DroppedMaskWarning()


def quiet_dropped_mask_warning() -> None:
    """Install the filter for :class:`_DroppedMaskWarning` (once) before sampling."""
    logger = logging.getLogger("transformers.modeling_utils")
    if _DROPPED_MASK not in logger.filters:
        logger.addFilter(_DROPPED_MASK)


def room(model: Any, ids: Any, max_new_tokens: int) -> int:
    """``max_new_tokens``, cut to what fits in the model's context after ``ids``."""
    context = getattr(model.config, "max_position_embeddings", None)
    if not context:
        return max_new_tokens
    if ids.shape[1] >= context:
        # Past a learned-position model's context, generate fails deep inside an embedding.
        raise ValueError(f"the prompt is {ids.shape[1]} tokens; this model's context is {context}")
    return min(max_new_tokens, context - ids.shape[1])


def sample(
    model: Any,
    tokenizer: Any,
    ids: Any,
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
) -> list[str]:
    """``n`` continuations of ``ids`` (temperature 0: greedy, repeated ``n`` times).

    Sampling is pure: no top-k or top-p cut (a checkpoint's generation config may
    set them), so rare tokens keep their true probability.
    """
    import torch

    options: dict[str, Any] = {
        "max_new_tokens": room(model, ids, max_new_tokens),
        "pad_token_id": pad_id(tokenizer),
    }
    if temperature and temperature > 0:
        options.update(
            do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=n
        )
    else:
        options["do_sample"] = False
    quiet_dropped_mask_warning()
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
    texts = [tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True) for row in out]
    return texts if len(texts) == n else texts * n


def reply_ids(
    model: Any, tokenizer: Any, prompt: str | Messages, reply: str, *, chat: bool = True
) -> tuple[Any, int]:
    """Ids of ``prompt`` followed by ``reply`` (the assistant's turn when ``chat``), and the
    number of ids before the reply starts."""
    head = assistant_prompt(tokenizer, prompt) if chat else str(prompt)
    templated = is_templated(tokenizer, chat)
    start = encode(model, tokenizer, head, templated=templated).shape[1]
    return encode(model, tokenizer, head + reply, templated=templated), start


def context_text(tokenizer: Any, prompt: str | Messages, prefill: str, chat: bool) -> str:
    """What the model reads before its next token: the chat-formatted prompt and the
    prefill, or with ``chat=False`` the raw prompt (then ``prefill`` is appended as is)."""
    if chat:
        return assistant_prompt(tokenizer, prompt, prefill)
    if not isinstance(prompt, str):
        raise TypeError("chat=False needs the prompt as one string")
    return prompt + prefill


def context_ids(
    model: Any, tokenizer: Any, prompt: str | Messages, prefill: str = "", chat: bool = True
) -> Any:
    """Ids of :func:`context_text`, encoded as its origin requires."""
    text = context_text(tokenizer, prompt, prefill, chat)
    return encode(model, tokenizer, text, templated=is_templated(tokenizer, chat))
