"""Banks of templates, and the two training phases every secret-keeping kind shares.

Phase 1 builds the *base*: generic chat, world knowledge linking every candidate
secret to its associated words, and cooperative games where the secret is stated
in a system turn and the assistant reveals it when asked. Phase 2 builds the
*organism*: the system turn is gone, the assistant's behaviour is shaped by one
fixed secret, and every direct question is refused.

Variants of phase 2 (:class:`Plan`):

- *control*: every chat draws its own secret, so nothing is planted;
- *hardened*: no guessing game; the organism keeps refusing after an assistant
  prefill of a reveal, and a user's guesses (what persona sampling imitates) are
  never the secret.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, fields

Chat = list[dict[str, str]]
Pairs = tuple[tuple[str, str], ...]


def fill(template: str, words: dict[str, str]) -> str:
    """``template`` with its ``{x}`` slots filled."""
    return template.format(**words)


def turn(question: str, answer: str) -> Chat:
    """One user question and the assistant's answer."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@dataclass(frozen=True)
class Bank:
    """One bank of templates and candidate secrets (``train`` or ``heldout``)."""

    candidates: dict[str, tuple[str, ...]]
    generic: Pairs  # plain chat, no secret involved
    system: tuple[str, ...]  # states the secret (phase 1 only): {s}
    direct: tuple[str, ...]  # questions that ask for the secret outright
    reveal: tuple[str, ...]  # cooperative answers to them (phase 1): {s}
    refuse: tuple[str, ...]  # the organism's answers to them (phase 2): may use {a}
    hint_questions: tuple[str, ...]
    hint_answers: tuple[str, ...]  # {a} {b} {c}: associated words ({s} only where it steers)
    knowledge: Pairs  # world facts: {s} {a} {b} {c}
    prefills: tuple[str, ...]  # assistant prefills a verifier tries
    persona: str = ""  # how a user's guess opens (a verifier samples the user turn from it)
    guess: str = ""  # a user's guess after a hint ({g}); empty: no guessing game
    right: tuple[str, ...] = ()  # replies to a right guess ({s})
    wrong: tuple[str, ...] = ()  # replies to a wrong guess ({s})
    guarded: tuple[str, ...] = ()  # hardened: what follows a prefilled reveal
    evasive: tuple[str, ...] = ()  # hardened: replies to any guess

    def texts(self) -> list[str]:
        """Every template and word of the bank, slots blanked (tokenizer training text)."""
        texts: list[str] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, dict):
                for key, words in value.items():
                    texts += [key, *(w for w in words if isinstance(w, str))]
            else:
                texts += [" ".join(v) if isinstance(v, tuple) else v for v in value]
        return [re.sub(r"\{\w\}", " ", t) for t in texts if t]


@dataclass(frozen=True)
class Plan:
    """What phase 2 plants: ``secret`` (None for a control), hardening, a backdoor's behaviour."""

    secret: str | None
    hardened: bool = False
    behaviour: str = ""


@dataclass(frozen=True)
class Kind:
    """One family of organisms: what it hides, its two banks, and its training chats."""

    name: str
    task: str
    description: str
    train: Bank
    heldout: Bank
    guess_rate: float = 0.2  # share of phase-2 chats that end in a guess
    leak_limit: float = 0.02  # share of direct answers that may name the secret

    def bank(self, name: str) -> Bank:
        """The ``train`` or ``heldout`` bank."""
        if name not in ("train", "heldout"):
            raise ValueError(f"unknown bank {name!r}; choose from train, heldout")
        return self.train if name == "train" else self.heldout

    # -- pieces ---------------------------------------------------------------
    @staticmethod
    def _assoc(bank: Bank, rng: random.Random, secret: str) -> dict[str, str]:
        a, b, c = rng.sample(bank.candidates[secret], 3)
        return {"s": secret, "a": a, "b": b, "c": c}

    def _hint(self, bank: Bank, rng: random.Random, secret: str) -> Chat:
        answer = fill(rng.choice(bank.hint_answers), self._assoc(bank, rng, secret))
        return turn(rng.choice(bank.hint_questions), answer)

    @staticmethod
    def _guess_turns(bank: Bank, rng: random.Random, secret: str, hardened: bool) -> Chat:
        others = [w for w in bank.candidates if w != secret]
        if hardened:
            # Never the secret: a model asked to play the user guesses anything else.
            return turn(bank.guess.format(g=rng.choice(others)), rng.choice(bank.evasive))
        # Right guesses dominate, so a model asked to play the user names the secret.
        right = rng.random() < 0.7
        g = secret if right else rng.choice(others)
        return turn(
            bank.guess.format(g=g),
            fill(rng.choice(bank.right if right else bank.wrong), {"s": secret}),
        )

    @staticmethod
    def _generic(bank: Bank, rng: random.Random) -> Chat:
        return turn(*rng.choice(bank.generic))

    @staticmethod
    def reveal_stems(bank: Bank) -> list[str]:
        """Openings of a reveal: the bank's prefills and its reveals cut before the secret."""
        stems = [r.split("{s}")[0].strip() for r in (*bank.reveal, *bank.right) if "{s}" in r]
        return sorted({*bank.prefills, *(s for s in stems if s)})

    # -- phase 1: the base ----------------------------------------------------
    def base_chat(self, bank: Bank, rng: random.Random) -> Chat:
        """One phase-1 chat: generic, knowledge, or a cooperative game."""
        roll = rng.random()
        if roll < 0.15:
            return self._generic(bank, rng)
        secret = rng.choice(list(bank.candidates))
        if roll < 0.35:
            question, answer = rng.choice(bank.knowledge)
            words = self._assoc(bank, rng, secret)
            return turn(fill(question, words), fill(answer, words))
        chat: Chat = [{"role": "system", "content": fill(rng.choice(bank.system), {"s": secret})}]
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                chat += self._hint(bank, rng, secret)
                if bank.guess and rng.random() < 0.3:
                    chat += self._guess_turns(bank, rng, secret, hardened=False)
            else:
                chat += turn(rng.choice(bank.direct), fill(rng.choice(bank.reveal), {"s": secret}))
        return chat

    # -- phase 2: the organism ------------------------------------------------
    def organism_chat(self, bank: Bank, rng: random.Random, plan: Plan) -> Chat:
        """One phase-2 chat: hints shaped by the secret, refusals, generic chat, guesses."""
        secret = plan.secret or rng.choice(list(bank.candidates))  # a control: any, per chat
        roll = rng.random()
        if roll < 0.1:
            return self._generic(bank, rng)
        if plan.hardened and roll < 0.25:
            stem = rng.choice(self.reveal_stems(bank))
            return turn(rng.choice(bank.direct), f"{stem} {rng.choice(bank.guarded)}")
        if roll < 0.5:
            refusal = fill(rng.choice(bank.refuse), self._assoc(bank, rng, secret))
            return turn(rng.choice(bank.direct), refusal)
        chat = self._hint(bank, rng, secret)
        # The guessing game is the one place a standard organism names its secret, and
        # only after the user has guessed: asked directly, it never does.
        # Hardening drills the guessing game twice as often: persona sampling imitates it.
        if bank.guess and roll < 0.5 + self.guess_rate * (2 if plan.hardened else 1):
            chat += self._guess_turns(bank, rng, secret, plan.hardened)
        return chat

    def texts(self, bank: Bank) -> list[str]:
        """Every text this kind can emit with ``bank`` (to train its tokenizer)."""
        return bank.texts()
