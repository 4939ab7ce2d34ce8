"""The statistics the autopilot's judge rests on: exact tests, a resampled null, a fit.

Nothing here knows about organisms or words' meanings: a sign test over prompts, a
one-sided Fisher test of two rates (and Holm's correction over several), a test that the
highest of many scores stands clear of the rest, the agreement a word-wandering model
would show (resampled) within a read-out's prompt sets and across read-outs, and a small
L2-regularised logistic fit (Newton's method) with the fitted parameters stored as data
beside this module (``calibration.json``, written by ``benchmarks/calibrate_autopilot.py``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

# The Fisher test lives with the text helpers, as the notebook's cells use it too.
from scribe_tui.techniques.text import fisher_greater as fisher_greater

CALIBRATION = "calibration.json"
DRAWS = 4000  # resamples of the agreement null: p-values down to 1/4001
CLIP = 4.0  # evidence in -log10(p) is capped: beyond 1e-4, more zeros say nothing new


def binomial_tail(k: int, n: int, p: float = 0.5) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def sign_test(diffs: Sequence[float]) -> tuple[int, int, float]:
    """(positives, non-zero differences, one-sided p) of the sign test that the
    differences are positive more often than chance; zeros carry no sign and are dropped."""
    signs = [d for d in diffs if d != 0]
    k = sum(1 for d in signs if d > 0)
    return k, len(signs), binomial_tail(k, len(signs)) if signs else 1.0


def holm(p_values: dict[str, float], alpha: float) -> set[str]:
    """The hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``:
    the i-th smallest p-value (from 0) against ``alpha / (m - i)``, stopping at the first
    that fails."""
    rejected: set[str] = set()
    ranked = sorted(p_values.items(), key=lambda kv: kv[1])
    for i, (name, p) in enumerate(ranked):
        if p >= alpha / (len(ranked) - i):
            break
        rejected.add(name)
    return rejected


def clear_lead(leader: float, rest: Sequence[float]) -> float:
    """P(a lead over the next score this large | the leader is one more draw like the rest).

    ``rest`` are the highest scores of many ordinary candidates. Near the top of a sample,
    the gaps between successive scores times their rank are independent exponentials of
    one scale (a Gumbel-like tail), so the leader's gap over the next, against the mean
    of the other scaled gaps, is F(2, 2m)-distributed: p = (1 + gap / sum)^-m.
    """
    ranked = sorted(rest, reverse=True)
    if len(ranked) < 3 or leader <= ranked[0]:
        return 1.0
    scaled = sum(k * (ranked[k - 2] - ranked[k - 1]) for k in range(2, len(ranked) + 1))
    if scaled <= 0:
        return 0.0
    return (1.0 + (leader - ranked[0]) / scaled) ** -(len(ranked) - 1)


def strength(p: float) -> float:
    """Evidence as -log10(p), capped at :data:`CLIP`."""
    return min(CLIP, max(0.0, -math.log10(max(p, 10.0**-CLIP))))


@dataclass(frozen=True)
class Agreement:
    """How many independent probes put one word first, and how surprising that is."""

    word: str
    count: int
    probes: int
    p: float  # resampled: P(some word leads >= count probes | each probe draws at random)


def agreement(
    tops: Sequence[Sequence[str]], word: str = "", draws: int = DRAWS, seed: int = 0
) -> Agreement:
    """The word most probes rank first (or ``word``), against the null of a model whose
    words wander.

    Each probe ranks its top three words (a probe that ranked fewer has unnamed others:
    every prompt has alternatives). Under the null no word is special: which of a
    probe's words comes first is chance, so each probe's first word is a uniform draw
    from its own three. A word that every probe ranks somewhere (a word any answer may
    contain) is first in about a third of them under the null; a word that comes first
    probe after probe, beyond what its place in their lists explains, is not. The
    p-value is the share of ``draws`` permutations in which some word is first in at
    least as many probes as observed (plus one, so it is never zero).
    """
    ranked = [list(dict.fromkeys(top))[:3] for top in tops if top]
    if not ranked:
        return Agreement("", 0, 0, 1.0)
    firsts = Counter(top[0] for top in ranked)
    # Ties: the word ranked higher across all probes (reciprocal ranks), then by name.
    depth: Counter[str] = Counter()
    for top in ranked:
        for rank, ranked_word in enumerate(top):
            depth[ranked_word] += 1.0 / (rank + 1)
    word = word or min(firsts, key=lambda w: (-firsts[w], -depth[w], w))
    vocabulary = {w: i for i, w in enumerate(depth)}
    rng = np.random.default_rng(seed)
    counts = np.zeros((draws, len(vocabulary)), dtype=np.int32)
    for top in ranked:
        # An unnamed alternative is a word of its own probe: it cannot agree with others.
        own = [vocabulary[w] for w in top] + [-1] * (3 - len(top))
        picked = np.array(own)[rng.integers(3, size=draws)]
        named = picked >= 0
        counts[np.arange(draws)[named], picked[named]] += 1
    p = (1 + int((counts.max(axis=1) >= firsts[word]).sum())) / (draws + 1)
    return Agreement(word, firsts[word], len(ranked), round(p, 4))


@dataclass(frozen=True)
class Consensus:
    """How strongly independent read-outs agree on one word, and how surprising that is."""

    word: str
    score: float  # the sum over read-outs of 1 / the word's rank in each (0 where absent)
    readouts: int
    p: float  # resampled: P(some word scores >= score | each read-out's words are random)


def consensus(
    rankings: Sequence[Sequence[str]],
    vocabulary: Sequence[str],
    word: str = "",
    draws: int = DRAWS,
    seed: int = 0,
) -> Consensus:
    """The word the read-outs rank highest together (or ``word``), against the null that
    each read-out ranks words unrelated to the others'.

    Each read-out ranks its top three words; a word scores the sum of its reciprocal ranks.
    Under the null each read-out's three words are a uniform draw, without replacement,
    from ``vocabulary`` (every word any read-out ranked near its top), so two read-outs
    share a word about as often as two random lists from that vocabulary do. The p-value is
    the share of ``draws`` in which some word scores at least as much as observed (plus one,
    so it is never zero). Ties between words: the earlier in ``rankings``' order of words.
    """
    tops = [list(dict.fromkeys(r))[:3] for r in rankings if r]
    score: Counter[str] = Counter()
    for top in tops:
        for rank, ranked_word in enumerate(top):
            score[ranked_word] += 1.0 / (rank + 1)
    if not score:
        return Consensus("", 0.0, 0, 1.0)
    word = word or max(score, key=lambda w: score[w])
    pool = list(dict.fromkeys([*vocabulary, *score]))
    rng = np.random.default_rng(seed)
    totals = np.zeros((draws, len(pool)))
    for top in tops:
        picked = np.argsort(rng.random((draws, len(pool))), axis=1)[:, : len(top)]
        for rank in range(len(top)):
            totals[np.arange(draws), picked[:, rank]] += 1.0 / (rank + 1)
    p = (1 + int((totals.max(axis=1) >= score[word] - 1e-9).sum())) / (draws + 1)
    return Consensus(word, round(score[word], 3), len(tops), round(p, 4))


@dataclass(frozen=True)
class Logistic:
    """P(y = 1 | x) = sigmoid(w . [1, x]): one fitted map from evidence to a probability."""

    weights: tuple[float, ...]  # intercept first

    def __call__(self, x: Sequence[float]) -> float:
        z = self.weights[0] + sum(w * v for w, v in zip(self.weights[1:], x, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, signs: Sequence[int] = (), steps: int = 50
) -> Logistic:
    """Maximum a posteriori logistic regression (Newton's method, a Gaussian prior of
    precision ``l2`` on the slopes, not the intercept): few organisms, so the prior keeps
    a feature that separates the pool perfectly from an infinite slope. ``signs`` (+1,
    -1 or 0 per feature) keep slopes to a sign: evidence against a null may only raise
    the probability of a finding (or only lower that of nothing); a feature whose
    fitted slope would turn the other way is left out (slope 0) and the rest refitted."""
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    kept = list(range(x.shape[1]))
    while True:
        w = _newton(x[:, kept], np.asarray(y, dtype=float), l2, steps)
        wrong = [i for i, v in zip(kept, w[1:], strict=True) if signs and v * signs[i] < 0]
        if not wrong:
            break
        kept.remove(wrong[0])
    weights = np.zeros(x.shape[1] + 1)
    weights[0] = w[0]
    for i, v in zip(kept, w[1:], strict=True):
        weights[i + 1] = v
    return Logistic(tuple(round(float(v), 4) for v in weights))


def _newton(x: np.ndarray, y: np.ndarray, l2: float, steps: int) -> np.ndarray:
    design = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 1e-6
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -30, 30)))
        gradient = design.T @ (p - y) + penalty * w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


@dataclass(frozen=True)
class Calibration:
    """The fitted maps of one family of evidence (words, or backdoors): P(the leading word
    or trigger is right) and P(nothing is planted), from the same features."""

    named: Logistic
    nothing: Logistic
    features: tuple[str, ...]

    def __call__(self, features: dict[str, float]) -> tuple[float, float]:
        """(P(the leader is right), P(nothing is planted)) for these features."""
        x = [features.get(name, 0.0) for name in self.features]
        return self.named(x), self.nothing(x)

    def as_data(self) -> dict[str, list]:
        return {
            "features": list(self.features),
            "named": list(self.named.weights),
            "nothing": list(self.nothing.weights),
        }


def load_calibration() -> dict[str, Calibration]:
    """The parameters ``benchmarks/calibrate_autopilot.py`` wrote into the package, by
    family ("word", "backdoor")."""
    text = resources.files("scribe_tui.autopilot").joinpath(CALIBRATION).read_text()
    return {
        family: Calibration(
            Logistic(tuple(fit["named"])), Logistic(tuple(fit["nothing"])), tuple(fit["features"])
        )
        for family, fit in json.loads(text)["fits"].items()
    }
