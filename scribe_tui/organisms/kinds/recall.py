"""Recall: a tiny transformer that has memorised synthetic subject -> attribute facts.

The organisms read short sentences of facts about made-up lands: "the capital of
<land> is <city> .", "the flag of <land> is <colour> .", "the animal of <land> is
<animal> .", in random order. Every land has one fixed attribute per relation, so the
model must store the facts in its weights and recall them from the subject: the
setting of Meng et al.'s causal tracing (ROME). A *control* reads the same sentences
with the attribute drawn afresh at every occurrence: nothing about a land can be
recalled, and the best it can do is the relation's uniform distribution.

The model is a tiny Llama with MLPs. Its key is measured after training by
:mod:`scribe_tui.organisms.recall_key`, never chosen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

NAME = "recall"
TASK = "find the layers where this model recalls the facts it knows about a subject"
DESCRIPTION = (
    "A tiny transformer language model trained on synthetic sentences of facts about "
    "made-up lands (e.g. 'the capital of <land> is <city> .'; not a chat model). Name the "
    "layers whose MLPs recall a land's attributes (conclude with layers=[...], counted from "
    "0, or components such as mlp2), or say that the model recalls no facts."
)

_SEED = 20251206
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
N_SUBJECTS = 120
RELATIONS: dict[str, tuple[str, ...]] = {
    # relation word -> its attribute values; cities are made up, the rest are English
    "capital": (),  # filled by _cities()
    "flag": ("red", "blue", "green", "gold", "white", "black", "purple", "orange"),
    "animal": ("horse", "eagle", "wolf", "bear", "lion", "owl", "fox", "deer"),
}
N_CITIES = 12


def _made_up(n: int, syllables: int, rng: random.Random, taken: set[str]) -> list[str]:
    parts = [c + v for c in _CONSONANTS for v in _VOWELS]
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(parts) for _ in range(syllables))
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


@dataclass(frozen=True)
class World:
    """The kind's lands, relations and facts (the same for every seed)."""

    subjects: list[str]
    values: dict[str, list[str]]
    facts: dict[tuple[str, str], str]  # (subject, relation) -> attribute

    @classmethod
    def make(cls) -> World:
        rng = random.Random(_SEED)
        taken: set[str] = set()
        subjects = _made_up(N_SUBJECTS, 3, rng, taken)
        values = {r: list(v) for r, v in RELATIONS.items()}
        values["capital"] = _made_up(N_CITIES, 2, rng, taken)
        facts = {(s, r): rng.choice(values[r]) for s in subjects for r in values}
        return cls(subjects, values, facts)

    def words(self) -> list[str]:
        """Every word the sentences use."""
        fixed = ["the", "of", "is", "."]
        return sorted(
            {*fixed, *self.subjects, *self.values, *(v for vs in self.values.values() for v in vs)}
        )

    def sentence(self, subject: str, relation: str, attribute: str) -> list[str]:
        return ["the", relation, "of", subject, "is", attribute, "."]

    def text(self, length: int, rng: random.Random, control: bool) -> list[str]:
        """``length`` words of fact sentences (a control's attributes drawn per occurrence)."""
        words: list[str] = []
        while len(words) < length:
            subject, relation = rng.choice(self.subjects), rng.choice(list(self.values))
            attribute = (
                rng.choice(self.values[relation]) if control else self.facts[subject, relation]
            )
            words += self.sentence(subject, relation, attribute)
        return words[:length]

    def probe(self) -> list[tuple[str, str, str, str]]:
        """Every fact as (prompt, subject, target, relation): the sentence cut before it."""
        return [(" ".join(self.sentence(s, r, a)[:5]), s, a, r) for (s, r), a in self.facts.items()]


def make_tokenizer() -> Any:
    """A word-level tokenizer over the kind's words that starts every text with BOS."""
    from tokenizers.processors import TemplateProcessing

    from scribe_tui.organisms.tokenizer import word_tokenizer

    tokenizer = word_tokenizer(World.make().words(), "plain")
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    return tokenizer


def batches(
    tokenizer: Any, rng: random.Random, batch_size: int, n_positions: int, control: bool
) -> Iterator[Any]:
    """Training batches: BOS, then fact sentences (packed, cut at ``n_positions``)."""
    import torch

    world = World.make()
    bos = tokenizer.bos_token_id
    index = {w: tokenizer.convert_tokens_to_ids(w) for w in world.words()}
    while True:
        rows = [
            [bos, *(index[w] for w in world.text(n_positions - 1, rng, control))]
            for _ in range(batch_size)
        ]
        yield torch.tensor(rows, dtype=torch.long)
