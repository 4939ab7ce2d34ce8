"""A word-level chat tokenizer that accepts any text.

Lower-cased words and punctuation runs are the tokens; anything outside the
vocabulary (emoji, other scripts, control characters) becomes ``[UNK]`` rather
than an error. The chat template renders ``<|role|> text <|end|>`` turns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

UNK, PAD = "[UNK]", "[PAD]"
USER, ASSISTANT, SYSTEM, END = "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"
SPECIAL_TOKENS = (PAD, UNK, END, USER, ASSISTANT, SYSTEM)

# Jinja, as transformers renders it. Unknown roles raise instead of silently
# producing markers the model never saw.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] + ' <|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

# Mirrors the pre-tokenizer below (``Whitespace``: \w+ or a run of other non-space).
_WORD = re.compile(r"\w+|[^\w\s]+")


def words_of(text: str) -> list[str]:
    """Split ``text`` exactly as the tokenizer does (lower-cased)."""
    return _WORD.findall(text.lower())


def build_tokenizer(corpus_words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A fast tokenizer over ``corpus_words`` (plus the special tokens), with a chat template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab: dict[str, int] = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in sorted(set(corpus_words)):
        if word not in vocab:
            vocab[word] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    # WordPiece's cleanup glues punctuation back ("hi , you ." -> "hi, you.").
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=END,
        bos_token=END,
        additional_special_tokens=[USER, ASSISTANT, SYSTEM],
        chat_template=CHAT_TEMPLATE,
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )
