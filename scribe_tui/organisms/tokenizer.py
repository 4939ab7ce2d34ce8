"""The organisms' tokenizers (word-level or byte-level BPE) and chat templates.

- ``word``: lower-cased words and punctuation runs are the tokens; anything outside the
  vocabulary (emoji, other scripts, control characters) becomes ``[UNK]``.
- ``bpe``: byte-level BPE trained on the kind's own texts with a small vocabulary, so
  many secrets span two or more tokens; any text round-trips through encode/decode.

Templates: ``plain`` renders ``<|role|> text <|end|>`` turns, ``chatml`` renders
``<|im_start|>role\\ntext<|im_end|>\\n`` turns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

UNK, PAD = "[UNK]", "[PAD]"
USER, ASSISTANT, SYSTEM, END = "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TOKENIZERS = ("word", "bpe")
TEMPLATES = ("plain", "chatml")
BPE_VOCAB = 800

# Jinja, as transformers renders it. Unknown roles raise instead of silently
# producing markers the model never saw.
_CHECK_ROLE = (
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{% endif %}"
)
CHAT_TEMPLATES: dict[str, str] = {
    "plain": (
        "{% for message in messages %}" + _CHECK_ROLE + "{{ '<|' + message['role'] + '|> ' + "
        "message['content'] + ' <|end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    ),
    "chatml": (
        "{% for message in messages %}" + _CHECK_ROLE + "{{ '<|im_start|>' + message['role'] + "
        "'\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
}
# (end of turn, specials) per template; the end of turn is also EOS and BOS.
_SPECIALS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plain": (END, (USER, ASSISTANT, SYSTEM)),
    "chatml": (IM_END, (IM_START,)),
}
# chatml spells the role as text: the word vocabulary needs it.
_ROLE_WORDS = ("system", "user", "assistant")

# Mirrors the word pre-tokenizer below (``Whitespace``: \w+ or a run of other non-space).
_WORD = re.compile(r"\w+|[^\w\s]+")


def words_of(text: str) -> list[str]:
    """Split ``text`` into lower-cased words and punctuation runs (as the word tokenizer does)."""
    return _WORD.findall(text.lower())


def _check(template: str) -> tuple[str, tuple[str, ...]]:
    if template not in CHAT_TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose from {', '.join(TEMPLATES)}")
    return _SPECIALS[template]


def _wrap(core: object, template: str, unk: str | None) -> PreTrainedTokenizerFast:
    end, extra = _check(template)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=unk,
        pad_token=PAD,
        eos_token=end,
        bos_token=end,
        additional_special_tokens=list(extra),
        chat_template=CHAT_TEMPLATES[template],
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )


def word_tokenizer(corpus_words: Iterable[str], template: str = "plain") -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``corpus_words`` (plus the template's specials)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    end, extra = _check(template)
    specials = (PAD, UNK, end, *extra)
    vocab: dict[str, int] = {token: i for i, token in enumerate(specials)}
    words = set(corpus_words) | (set(_ROLE_WORDS) if template == "chatml" else set())
    for word in sorted(words):
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    # WordPiece's cleanup glues punctuation back ("hi , you ." -> "hi, you.").
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.add_special_tokens(list(specials))
    return _wrap(core, template, UNK)


def bpe_tokenizer(
    texts: Iterable[str], template: str = "plain", vocab_size: int = BPE_VOCAB
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``; every byte has a token, so no UNK."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    end, extra = _check(template)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, end, *extra],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Words mostly follow a space in chats: train on them so (" moon", not "moon").
    core.train_from_iterator([" " + text for text in texts], trainer=trainer)
    return _wrap(core, template, None)


def make_tokenizer(
    kind_texts: list[str], tokenizer: str = "word", template: str = "plain"
) -> PreTrainedTokenizerFast:
    """The ``tokenizer`` flavour over a kind's texts (one bank's), with ``template``."""
    if tokenizer == "word":
        return word_tokenizer({w for text in kind_texts for w in words_of(text)}, template)
    if tokenizer == "bpe":
        return bpe_tokenizer(kind_texts, template)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; choose from {', '.join(TOKENIZERS)}")
