"""Induction: a tiny attention-only transformer that copies repeated text in context.

The organisms read a synthetic "language" of pronounceable two-syllable words. An
``induction`` organism reads random spans (4-16 words), each said twice with a few random
words between (no fixed offset predicts a repeat, only its first occurrence does), so it
learns to complete a repeat from its first occurrence: an induction circuit, a
previous-token head feeding an induction head. (Mixing in a fifth of Markov text, trial
runs showed, delayed the circuit past a few minutes of CPU training.) A *control* reads
text without repeated spans, uniform random words and a fixed sparse Markov chain's text
(so it has grammar to learn): copying never pays, and no circuit forms.

The model is a tiny Llama (or GPT-2) whose MLPs are zero and frozen (attention-only, the setting of
Olsson et al.'s induction heads), so its components are its heads; the MLPs are
still scanned when the key is measured, and measure as nothing. Its key is measured
after training by :mod:`scribe_tui.organisms.circuits`, never chosen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

NAME = "induction"
TASK = "find the attention heads (and MLPs) that let this model copy repeated text"
DESCRIPTION = (
    "A tiny transformer language model trained on synthetic text (lower-case made-up words; "
    "not a chat model). Name the components that implement in-context copying of repeated "
    "spans, as a list of names such as L3H5 (head 5 of layer 3) or mlp2 (layers and heads "
    "count from 0), or say that the model has no such circuit."
)

# The language is the kind's, not the organism's: every seed reads the same words and grammar.
_LANGUAGE_SEED = 20240611
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
VOCAB_SIZE = 400
SUCCESSORS = 6  # likely next words per word in the Markov chain
MARKOV_MASS = 0.85  # the rest of each row is uniform
UNIFORM_SHARE = 0.8  # a control's sequences of uniform random words (the rest: Markov)
SPAN = (4, 16)  # lengths of a copied span
GAP = 8  # most random words between a span and its repeat


def vocabulary() -> list[str]:
    """The kind's words: ``VOCAB_SIZE`` distinct consonant-vowel pairs of syllables."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words = sorted({a + b for a in syllables for b in syllables})
    return sorted(random.Random(_LANGUAGE_SEED).sample(words, VOCAB_SIZE))


@dataclass(frozen=True)
class Language:
    """The word list and the Markov chain over it."""

    words: list[str]
    successors: list[list[int]]

    @classmethod
    def make(cls) -> Language:
        words = vocabulary()
        rng = random.Random(_LANGUAGE_SEED + 1)
        return cls(words, [rng.sample(range(len(words)), SUCCESSORS) for _ in words])

    def next_word(self, word: int, rng: random.Random) -> int:
        if rng.random() < MARKOV_MASS:
            return rng.choice(self.successors[word])
        return rng.randrange(len(self.words))

    def _pairs(self, length: int, rng: random.Random) -> list[int]:
        """Random spans of varied length, each followed (after a short gap of random words)
        by itself again: no fixed offset predicts the repeat, only the earlier copy does."""
        seq: list[int] = []
        while len(seq) < length:
            span = [rng.randrange(len(self.words)) for _ in range(rng.randint(*SPAN))]
            gap = [rng.randrange(len(self.words)) for _ in range(rng.randint(0, GAP))]
            seq += span + gap + span
        return seq[:length]

    def sequence(self, length: int, rng: random.Random, repeats: bool) -> list[int]:
        """``length`` word indices: with ``repeats``, random spans each said twice
        (:meth:`_pairs`); without, Markov text or uniform random words."""
        if repeats:
            return self._pairs(length, rng)
        if rng.random() < UNIFORM_SHARE:
            return [rng.randrange(len(self.words)) for _ in range(length)]
        seq = [rng.randrange(len(self.words))]
        while len(seq) < length:
            seq.append(self.next_word(seq[-1], rng))
        return seq


def make_tokenizer() -> Any:
    """A word-level tokenizer over the vocabulary that starts every text with BOS."""
    from tokenizers.processors import TemplateProcessing

    from scribe_tui.organisms.tokenizer import word_tokenizer

    tokenizer = word_tokenizer(vocabulary(), "plain")
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    return tokenizer


def repeat_prompts(n: int, seed: int, length: int = 12) -> list[tuple[str, str]]:
    """``n`` (prompt, target) pairs: ``length`` uniform random words, then the same words
    again cut before one of them (the target, which only copying can predict)."""
    words = vocabulary()
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        span = rng.sample(words, length)
        cut = 1 + i % (length - 1)
        pairs.append((" ".join(span + span[:cut]), span[cut]))
    return pairs
