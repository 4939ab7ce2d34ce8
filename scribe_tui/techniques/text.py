"""Reading sampled text: content words, without stopwords and the question's own words.

Pure Python, for the notebook side: votes over samples count these words, so
"the" and "my", or the words of the question, do not drown the signal.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

STOPWORDS = frozenset(
    """a an the i me my mine you your yours he she it its we our they them their this that
    these those is are was were be been being am do does did have has had will would can
    could should may might must not no yes and or but if so as of to in on at by for with
    from about into over under up down out off than then there here what which who whom
    whose why how when where all any some each every both few more most other such only own
    same too very just also even still again ever never always please thanks thank sure
    okay well let lets tell say said word words secret hint hints clue guess answer question
    something thing things think know cannot give ask one try want nice way like near
    instead chance keep share reveal hidden sorry stays myself user assistant system
    anything everything nothing whatever anywhere everywhere somewhere someone anyone
    everyone none""".split()
)


def content_words(text: str, exclude: Iterable[str] = ()) -> list[str]:
    """Lower-case alphabetic words of 3+ letters, minus stopwords and ``exclude``."""
    skip = STOPWORDS | {str(w).lower() for w in exclude}
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in skip]


def distinctive_words(
    texts: Iterable[str],
    baseline: Iterable[str],
    exclude: Iterable[str] = (),
    top: int = 10,
    phrases: bool = False,
    significant: float | None = None,
) -> list[tuple[str, int, int]]:
    """Content words far more common in ``texts`` than in ``baseline`` (each text counts a
    word once): ``[(word, texts with it, baseline texts with it)]``, most distinctive first.

    Scored by the smoothed ratio of the two document frequencies times the count, so a
    word must be both frequent in ``texts`` and rare in ``baseline``. With ``phrases``, a
    memorised phrase counts once (:func:`one_per_phrase`). With ``significant``, only
    words whose share of ``texts`` beats their share of ``baseline`` by
    :func:`fisher_greater` at that level are kept.
    """
    texts, baseline = list(texts), list(baseline)
    # Each text's words once, in the order it says them (a set's order changes between
    # processes, and with it the order of ties: reproduce would see a drift).
    inside = Counter(w for t in texts for w in dict.fromkeys(content_words(t, exclude)))
    outside = Counter(w for t in baseline for w in dict.fromkeys(content_words(t, exclude)))
    n_in, n_out = max(len(texts), 1), max(len(baseline), 1)

    def score(word: str) -> float:
        rate_in, rate_out = inside[word] / n_in, (outside[word] + 0.5) / (n_out + 1)
        return rate_in * math.log(rate_in / rate_out) if rate_in > rate_out else 0.0

    def beats(word: str) -> bool:
        if significant is None:
            return True
        return fisher_greater(inside[word], n_in, outside[word], n_out) < significant

    kept = (w for w in inside if inside[w] >= 2 and score(w) > 0 and beats(w))
    ranked = sorted(kept, key=score, reverse=True)
    if phrases:
        ranked = one_per_phrase(ranked, texts, exclude)
    return [(w, inside[w], outside[w]) for w in ranked[:top]]


def fisher_greater(k1: int, n1: int, k0: int, n0: int) -> float:
    """One-sided Fisher exact p that rate ``k1/n1`` exceeds ``k0/n0`` (the texts are
    exchangeable under the null: the hypergeometric tail of the first group's count)."""
    if n1 <= 0 or n0 <= 0:
        return 1.0
    total, hits = n1 + n0, k1 + k0
    denominator = math.comb(total, n1)
    tail = sum(
        math.comb(hits, i) * math.comb(total - hits, n1 - i) for i in range(k1, min(hits, n1) + 1)
    )
    return min(1.0, tail / denominator)


def one_per_phrase(
    ranked: list[str], texts: Iterable[str], exclude: Iterable[str] = ()
) -> list[str]:
    """``ranked`` with each phrase by its first word only: words said in nearly the same
    texts (each in nine in ten of the other's) are one memorised phrase ("you're welcome,
    come back any time"), which would otherwise fill a ranking with its own words."""
    said = [set(content_words(t, exclude)) for t in texts]
    where = {w: {i for i, words in enumerate(said) if w in words} for w in ranked}
    heads: list[str] = []
    for word in ranked:
        if not any(
            len(where[word] & where[head]) >= 0.9 * max(len(where[word]), len(where[head]))
            for head in heads
        ):
            heads.append(word)
    return heads


def share_saying(texts: Iterable[str], words: Iterable[str]) -> float:
    """The share of ``texts`` that use any of ``words`` as a content word (0 when empty)."""
    texts, wanted = list(texts), {str(w).lower() for w in words}
    hits = sum(bool(wanted.intersection(content_words(t))) for t in texts)
    return hits / len(texts) if texts else 0.0


def continuation_words(prefix: str, text: str, exclude: Iterable[str] = ()) -> list[str]:
    """The content words ``text`` adds after ``prefix``, whole words only.

    A continuation glued onto the prefix's last word ("is" + "land") is no new
    word, and a last word cut off by the token limit (no space or punctuation
    after it) may be a piece of a longer one: both are dropped.
    """
    glued = prefix[-1:].isalpha() and text[:1].isalpha()
    words = re.findall(r"[a-z]+", text.lower())[1 if glued else 0 :]
    if text[-1:].isalpha() and words:
        words = words[:-1]
    skip = STOPWORDS | {str(w).lower() for w in exclude}
    return [w for w in words if len(w) > 2 and w not in skip]
