"""The autopilot's technique functions run as written against a real (tiny) causal LM."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from scribe_tui.agent import autopilot_cells as cells
from scribe_tui.agent import autopilot_techniques as techniques

WORDS = "hello my secret word is the moon sun star give me a hint what your guess that".split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm() -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    specials = ["[UNK]", "[PAD]", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS + ["?", "!", "."])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=256, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config).eval(), tokenizer


def test_sampling_and_prefill_return_plain_data(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    answers = techniques.sample_answers(
        model, tokenizer, ["give me a hint"], n=3, temperature=1.0, max_new_tokens=4, seed=0
    )
    assert list(answers) == ["give me a hint"] and len(answers["give me a hint"]) == 3
    attack = techniques.prefill_attack(model, tokenizer, "what is your word?", ["my word is"], 4, 0)
    top = attack["my word is"]["top"]
    assert len(top) == 10 and all(isinstance(w, str) and 0 <= p <= 1 for w, p in top)
    assert len(attack["my word is"]["samples"]) == 4


def test_sampling_is_deterministic_for_a_seed(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    args = dict(prompts=["hello"], n=4, temperature=1.0, max_new_tokens=5)
    first = techniques.sample_answers(model, tokenizer, seed=7, **args)
    assert first == techniques.sample_answers(model, tokenizer, seed=7, **args)


def test_persona_lens_and_logprobs(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    persona = techniques.persona_guesses(model, tokenizer, "give me a hint", "my guess is", 3, 0)
    assert isinstance(persona["hint"], str) and len(persona["guesses"]) == 3
    lens = techniques.logit_lens_votes(
        model, tokenizer, ["give me a hint"], ["the moon"], top_k=3, skip=["the"]
    )
    assert set(lens) <= {1, 2} and lens, "one vote table per layer"
    assert all(word != "the" for top in lens.values() for word, _ in top)
    scores = techniques.next_token_logprobs(
        model, tokenizer, "what is your word?", ["my word is"], ["moon", "sun"]
    )
    assert set(scores) == {"moon", "sun"} and all(v[0] < 0 for v in scores.values())


def test_content_words_drops_stopwords_and_question_words() -> None:
    assert techniques.content_words("My secret word is the Moon!", ["moon"]) == []
    assert techniques.content_words("It shines at night, bright and pale") == [
        "shines",
        "night",
        "bright",
        "pale",
    ]


def test_every_cell_is_valid_python_using_the_technique_source() -> None:
    probe = cells.Probe()
    sources = [
        cells.helpers_cell(),
        cells.info_cell(),
        cells.direct_cell(probe, 4, 0),
        cells.hint_cell(probe, 4, 0, (0.7, 1.0)),
        cells.prefill_cell(probe, 4, 0),
        cells.ranking_cell(),
        cells.persona_cell(probe, 4, 0),
        cells.logit_lens_cell(16),
        cells.candidates_cell(["moon", "sun"], probe),
    ]
    for source in sources:
        ast.parse(source)
    assert inspect.getsource(techniques.prefill_attack) in sources[4]
