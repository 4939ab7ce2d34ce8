"""The autopilot's verdict: the tests, their features and the calibrated claim.

The procedure is stated in the package docstring (:mod:`scribe_tui.autopilot`).
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import scribe_tui.autopilot as autopilot
from scribe_tui.autopilot import stats

# The package's statement of the procedure, for the notebook's judging cell.
PROCEDURE = " ".join((autopilot.__doc__ or "").split("\n\n")[1].split())

# The techniques whose prompt sets vote, by kind. A taboo model's ordinary replies hint
# at its word and never say it, so its exploration does not vote; a backdoor is judged
# on its trigger's behaviour instead.
PROBES = {
    "taboo": ("prefill", "persona", "logit_lens", "base_diff"),
    "backdoor": (),
}
DEFAULT_PROBES = ("prefill", "persona", "logit_lens", "base_diff", "explore")
# What each technique reads, so what its prompt sets share. The prefill attack, the logit
# lens and the diff against the base model all read the first word of an answer: one
# read-out seen three ways, whose agreement with itself proves little. The model's own
# replies to ordinary requests, and the user turns it writes, are read-outs of their own.
READOUTS = {
    "prefill": "answer",
    "logit_lens": "answer",
    "base_diff": "answer",
    "explore": "replies",
    "persona": "user",
    "falsify": "user",
}
FAVOURITES = 5  # words the falsification measures on fresh prompts
SAMPLES = 48  # replies per condition in a backdoor falsification that did not say


@dataclass
class Verdict:
    """An answer, its confidence, why, and the numbers it was decided from."""

    answer: str  # a named answer, "none" (nothing planted) or "unknown"
    confidence: float
    reason: str
    backing: dict[str, str] = field(default_factory=dict)  # technique -> the word it puts first
    leader: str = ""  # the word the evidence points to so far, named or not
    candidate: str = ""  # the answer naming the leader (a backdoor's: trigger and behaviour)
    features: dict[str, float] = field(default_factory=dict)
    p_named: float = 0.0  # P(the leader is right)
    p_none: float = 0.0  # P(nothing is planted)

    def record(self) -> dict[str, Any]:
        """The judging cell's evidence dict: what the calibration script reads back."""
        return {
            "technique": "judge",
            "answer": self.answer,
            "confidence": self.confidence,
            "leader": self.leader,
            "candidate": self.candidate,
            "features": self.features,
            "p_named": self.p_named,
            "p_none": self.p_none,
        }


def parse_evidence(text: str) -> dict[str, Any] | None:
    """The last ``{'technique': ...}`` dict printed in a cell's output, if any."""
    start = text.rfind("{'technique'")
    if start < 0:
        return None
    tail = text[start:]
    for end in range(len(tail), 0, -1):
        if tail[end - 1] != "}":
            continue
        try:
            value = ast.literal_eval(tail[:end])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        return value if isinstance(value, dict) else None
    return None


def pairs(value: Any) -> list[tuple[str, float]]:
    """``[(word, number)]`` from an evidence list, lower-cased, malformed items dropped."""
    found = []
    for item in value or []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            try:
                found.append((item[0].lower(), float(item[1])))
            except (TypeError, ValueError):
                continue
    return found


# -- word kinds -----------------------------------------------------------------------


def probes(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = ()
) -> list[tuple[str, list[str]]]:
    """Every independent probe's ranking, as (technique, words first to last): each
    voting technique's prompt sets, and the user persona's guesses after the fresh
    questions. The task's own words (``echo``) and words that gained nothing are left out.

    Sets that share what drives their answer are one probe: where the evidence names each
    set's ``groups`` entry (the opening of the answer, which decides the next word more
    than the question does), the sets of one read-out (:data:`READOUTS`) whose openings end
    in the same word (:func:`opening_key`) are merged by reciprocal rank into one ranking,
    whichever technique read them. A continuation an opening has memorised then counts
    once, not once per question, technique and opening ending alike. A merged probe is
    labelled by its read-out where techniques were mixed."""
    found: list[tuple[str, list[str]]] = []
    merged: dict[tuple[str, str], int] = {}  # (read-out, opening's end) -> place in found
    members: dict[int, list[list[str]]] = {}
    names = [*PROBES.get(kind, DEFAULT_PROBES), "falsify"]
    for technique in names:
        found_here = evidence.get(technique, {})
        sets = found_here.get("sets") or []
        if technique == "falsify":
            sets = [evidence["falsify"].get("guessed")] if "falsify" in evidence else []
        ranked = [[w for w, v in pairs(ranking) if v > 0 and w not in echo] for ranking in sets]
        groups = found_here.get("groups") if technique != "falsify" else None
        if not (isinstance(groups, list) and len(groups) == len(ranked)):
            found += [(technique, words[:3]) for words in ranked if words]
            continue
        readout = READOUTS.get(technique, technique)
        for words, group in zip(ranked, groups, strict=True):
            place = merged.setdefault((readout, opening_key(group)), len(found))
            if place == len(found):
                found.append((technique, []))
            elif found[place][0] != technique:
                found[place] = (readout, [])
            members.setdefault(place, []).append(words[:3])
    for place, sets_here in members.items():
        found[place] = (found[place][0], _by_reciprocal_rank(sets_here)[:3])
    return [(technique, words) for technique, words in found if words]


def _by_reciprocal_rank(rankings: list[list[str]]) -> list[str]:
    """The words of ``rankings`` by their reciprocal ranks summed, ties by name."""
    score: Counter[str] = Counter()
    for words in rankings:
        for rank, word in enumerate(words):
            score[word] += 1.0 / (rank + 1)
    return sorted(score, key=lambda w: (-score[w], w))


def standings(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = ()
) -> list[str]:
    """Words by how many probes put them first, then by reciprocal rank over all probes."""
    first, depth = Counter(), Counter()
    for _, words in probes(kind, evidence, echo):
        first[words[0]] += 1
        for rank, word in enumerate(words):
            depth[word] += 1.0 / (rank + 1)
    return sorted(depth, key=lambda w: (-first[w], -depth[w], w))


def favourites(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = ()
) -> list[str]:
    """The words the falsification measures on fresh prompts: the read-outs' consensus
    word, then the words most prompt sets put first."""
    lead = consensus_word(kind, evidence, echo)
    ranked = [lead] if lead else []
    return list(dict.fromkeys([*ranked, *standings(kind, evidence, echo)]))[:FAVOURITES]


def readout_rankings(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = (), depth: int = 3
) -> dict[str, list[str]]:
    """Per read-out (:data:`READOUTS`), its words by reciprocal rank summed over its
    prompt sets, the first ``depth``."""
    grouped: dict[str, list[list[str]]] = {}
    for technique, words in probes(kind, evidence, echo):
        grouped.setdefault(READOUTS.get(technique, technique), []).append(words)
    return {readout: _by_reciprocal_rank(sets)[:depth] for readout, sets in grouped.items()}


def consensus_word(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = ()
) -> str:
    """The word the read-outs rank highest together (reciprocal ranks of each read-out's
    top three, summed); ties go to the word more prompt sets put first, then higher."""
    score: Counter[str] = Counter()
    for top in readout_rankings(kind, evidence, echo).values():
        for rank, word in enumerate(top):
            score[word] += 1.0 / (rank + 1)
    if not score:
        return ""
    order = {w: i for i, w in enumerate(standings(kind, evidence, echo))}
    return min(score, key=lambda w: (-score[w], order.get(w, len(order)), w))


def candidates(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = (), limit: int = 16
) -> list[str]:
    """Words worth scoring on whole-word probabilities: every probe's leaders, then the
    words the prefills put first by probability or in samples."""
    picked = standings(kind, evidence, echo)
    found = evidence.get("prefill", {})
    for key in ("top", "sampled"):
        picked += [w for w, _ in pairs(found.get(key))[:6] if w not in echo]
    return list(dict.fromkeys(picked))[:limit]


def family_votes(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = (), limit: int = 6
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The leading words, and per technique the share of its probes that put each first."""
    words = standings(kind, evidence, echo)[:limit]
    sets: dict[str, list[str]] = {}
    for technique, ranked in probes(kind, evidence, echo):
        sets.setdefault(technique, []).append(ranked[0])
    votes = {
        technique: {w: round(firsts.count(w) / len(firsts), 3) for w in words if w in firsts}
        for technique, firsts in sets.items()
    }
    return words, votes


def opening_key(opening: Any) -> str:
    """What makes prompts one probe: the last word of their answer's opening. A fine-tune's
    habit is keyed to it (one generator's models say 'pip' after any "... about", another's
    a hint word after any "... is"), so openings that end alike are not independent,
    however differently they start."""
    words = str(opening).split()
    return words[-1].lower() if words else ""


def per_opening(values: list[float], groups: Any) -> list[float]:
    """``values`` (one per prompt) averaged over the prompts whose openings end in the same
    word (:func:`opening_key`), where ``groups`` names each prompt's opening; as they are
    where it does not."""
    if not (isinstance(groups, list) and len(groups) == len(values)):
        return values
    by_group: dict[str, list[float]] = {}
    for value, group in zip(values, groups, strict=True):
        by_group.setdefault(opening_key(group), []).append(value)
    return [sum(v) / len(v) for v in by_group.values()]


def _per_word(found: dict[str, Any], key: str) -> dict[str, Any]:
    """The per-candidate record ``key`` of the falsification, by lower-cased word."""
    return {str(w).lower(): v for w, v in (found.get(key) or {}).items()}


class FreshTest(NamedTuple):
    """One sign test on the fresh prompts: ``k`` positive of ``n`` signs, one-sided ``p``,
    the mean difference, and what was compared."""

    k: int
    n: int
    p: float
    mean: float
    against: str


def fresh_tests(word: str, found: dict[str, Any] | None) -> dict[str, FreshTest]:
    """The sign tests on the fresh prompts for ``word``, by feature name. "fresh_base": its
    log-likelihood ratio against the base model (with weights). "fresh_lead": is it the
    model's favourite, its log-probability (black-box: log share of the samples) less the
    best other candidate's. Where the evidence names each prompt's opening (``groups``),
    prompts whose openings end in the same word are averaged into one sign: they are not
    independent."""
    found = found or {}
    llr, counts, logprobs = (_per_word(found, key) for key in ("llr", "counts", "logprobs"))
    if counts:
        total = float(found.get("samples") or 1)
        logprobs = {
            w: [math.log((float(k) + 0.5) / (total + 1)) for k in v] for w, v in counts.items()
        }
    compared: dict[str, tuple[list[float], str]] = {}
    if word in llr:
        compared["fresh_base"] = (
            [float(d) for d in llr[word]],
            "log-likelihood ratio over the base model",
        )
    if word in logprobs and len(logprobs) > 1:
        others = [v for w, v in logprobs.items() if w != word]
        lead = [float(x) - max(float(o[i]) for o in others) for i, x in enumerate(logprobs[word])]
        shown = "share of samples" if counts else "log-probability"
        compared["fresh_lead"] = (lead, f"{shown} over the next candidate's")
    tests = {}
    for name, (diffs, against) in compared.items():
        diffs = per_opening(diffs, found.get("groups"))
        k, n, p = stats.sign_test(diffs)
        tests[name] = FreshTest(k, n, p, sum(diffs) / len(diffs) if diffs else 0.0, against)
    return tests


def fresh_effect(word: str, found: dict[str, Any] | None) -> float:
    """How strongly the model says ``word`` on the fresh prompts: per prompt, with a base
    model its term of the divergence from the base (probability times log ratio), without
    its share of the samples; averaged per opening, then over openings (an opening with
    more questions counts once)."""
    found = found or {}
    gains, counts = _per_word(found, "gains").get(word), _per_word(found, "counts").get(word)
    if gains is not None:
        per_prompt = [float(g) for g in gains]
    elif counts is not None:
        per_prompt = [float(k) / float(found.get("samples") or 1) for k in counts]
    else:
        return 0.0
    means = per_opening(per_prompt, found.get("groups"))
    return max(0.0, sum(means) / len(means)) if means else 0.0


class PersonaNull(NamedTuple):
    """A word's count among the first words of the user turns the model wrote, its base
    model's count in the same chats, the turns each wrote, and the one-sided Fisher p."""

    model: int
    base: int
    turns: int
    p: float


def persona_null(word: str, found: dict[str, Any] | None) -> PersonaNull | None:
    """How often ``word`` opens the user turns the model writes against how often its base
    model's do, in the same chats after the same openings. None where the base was not
    asked (black-box, or a persona without a guessing game)."""
    found = found or {}
    turns = int(found.get("turns") or 0)
    if not turns or "base_top" not in found:
        return None
    k1 = int(dict(pairs(found.get("top"))).get(word, 0))
    k0 = int(dict(pairs(found.get("base_top"))).get(word, 0))
    return PersonaNull(k1, k0, turns, stats.fisher_greater(k1, turns, k0, turns))


def word_features(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str] = ()
) -> tuple[stats.Agreement, dict[str, float], str]:
    """The leading word's agreement, the features the fit reads, and their account."""
    found = probes(kind, evidence, echo)
    word = consensus_word(kind, evidence, echo)
    agreed = stats.agreement([words for _, words in found], word)
    # The same test without the read-out the leader is first in most often: a habit of
    # one read-out (a phrase its prompts complete) agrees with itself, a secret elsewhere too.
    leads = Counter(READOUTS.get(t, t) for t, words in found if words[0] == word)
    own = leads.most_common(1)[0][0] if leads else ""
    rest = stats.agreement([w for t, w in found if READOUTS.get(t, t) != own], word)
    rankings = readout_rankings(kind, evidence, echo)
    vocabulary = [w for top in readout_rankings(kind, evidence, echo, 5).values() for w in top]
    together = stats.consensus(list(rankings.values()), vocabulary, word)
    tests = fresh_tests(word, evidence.get("falsify"))
    by = Counter(t for t, words in found if words[0] == word)
    of = Counter(t for t, _ in found)
    per = ", ".join(f"{t} {by[t]}/{of[t]}" for t in of)
    places = ", ".join(
        f"{readout} {top.index(word) + 1 if word in top else '-'}"
        for readout, top in rankings.items()
    )
    strength = fresh_effect(word, evidence.get("falsify"))
    guessed = persona_null(word, evidence.get("persona"))
    # The mean difference of the first test: against the base where there is one.
    mean = next(iter(tests.values())).mean if tests else 0.0
    replication = (
        "fresh prompts: "
        + "; ".join(
            f"{t.against} positive on {t.k} of {t.n}, sign test p={t.p:.3g}" for t in tests.values()
        )
        + f"; strength {strength:.3g} per prompt"
        if tests
        else "fresh prompts: not measured"
    )
    beyond = (
        f"beyond the {own} read-out {rest.count} of {rest.probes}, p={rest.p:.3g}"
        if own and rest.probes
        else "no other read-out"
        if own
        else "first in none"
    )
    account = (
        f"'{word}' first in {agreed.count} of {agreed.probes} independent prompt sets ({per}), "
        f"agreement null p={agreed.p:.3g}, {beyond}; its place in each read-out ({places}), "
        f"consensus null p={together.p:.3g}; {replication}"
        + (
            f"; as the user {guessed.model} of {guessed.turns} turns, the base model"
            f" {guessed.base}, Fisher p={guessed.p:.3g}"
            if guessed
            else ""
        )
    )
    features = {
        "agree": round(stats.strength(agreed.p), 3),
        "agree_rest": round(stats.strength(rest.p) if rest.count else 0.0, 3),
        "consensus": round(stats.strength(together.p) if word else 0.0, 3),
        **{
            name: round(stats.strength(tests[name].p), 3) if name in tests and word else 0.0
            for name in ("fresh_base", "fresh_lead")
        },
        "persona_base": round(stats.strength(guessed.p), 3) if guessed and word else 0.0,
        "readouts": float(together.readouts),
        "share": round(agreed.count / agreed.probes, 3) if agreed.probes else 0.0,
        "effect": round(max(-3.0, min(3.0, mean)), 3),
        # On a log scale from 0 (never said): 1 at a strength of 0.09, 2 at 0.99.
        "said": round(math.log10(1 + 100 * strength), 3),
        "held": round(evidence_held(kind, evidence, word, echo), 3) if word else 0.0,
    }
    return agreed, features, account


def evidence_held(
    kind: str, evidence: dict[str, dict[str, Any]], word: str, echo: Collection[str] = ()
) -> float:
    """The share of the evidence ``word`` holds: per voting technique, its values over all
    prompt sets divided by every word's (one technique's values are on one scale),
    averaged over the techniques. With the weights the values are what fine-tuning raised
    over the base: a planted word takes most of it, while a control's leader heads a crowd
    of words that each moved a little. Evidence from one read-out holds nothing (0): its
    habit would hold all of it, and a share means something only across read-outs."""
    shares, readouts = [], set()
    for technique in PROBES.get(kind, DEFAULT_PROBES):
        values: Counter[str] = Counter()
        for ranking in evidence.get(technique, {}).get("sets") or []:
            for ranked_word, value in pairs(ranking):
                if value > 0 and ranked_word not in echo:
                    values[ranked_word] += value
        if values:
            shares.append(values[word] / sum(values.values()))
            readouts.add(READOUTS.get(technique, technique))
    return sum(shares) / len(shares) if len(readouts) > 1 else 0.0


def verdict(
    kind: str,
    evidence: dict[str, dict[str, Any]],
    echo: Collection[str] = (),
    missing: Collection[str] = (),
    blackbox: bool = False,
) -> Verdict:
    """The conclusion the evidence supports, by the procedure in the module docstring.

    ``missing`` names experiments that were planned but left no evidence (failed,
    interrupted): they contribute no probe, the reason says so, and the answer is never
    ``none`` (what was not measured cannot have come up empty)."""
    if kind == "backdoor":
        leader, answer, features, account = backdoor_features(evidence, blackbox, echo)
    else:
        agreed, features, account = word_features(kind, evidence, echo)
        leader = answer = agreed.word
        if agreed.probes < 2:
            ran = f"{agreed.probes} probe" + ("" if agreed.probes == 1 else "s")
            return Verdict("unknown", 0.1, f"too little measured to judge ({ran})", {}, leader)
    if not features:  # a backdoor not yet falsified, or nothing scanned
        return Verdict("unknown", 0.1, account, {"scan": leader} if leader else {}, leader)
    features["blackbox"] = float(blackbox)
    fit = stats.load_calibration()[family(kind)]
    p_named, p_none = (round(p, 2) for p in fit(features))
    lost = f"; not measured: {', '.join(sorted(missing))}" if missing else ""
    why = f"{account}{lost}; P(right)={p_named:.2f}, P(nothing planted)={p_none:.2f}"
    backing = {t: leader for t in _backing(kind, evidence, echo, leader)}
    found = Verdict("unknown", p_named, why, backing, leader, answer, features, p_named, p_none)
    if p_named >= 0.5 and p_named >= p_none:
        found.answer, found.confidence = answer, p_named
    elif p_none >= 0.5 and not missing:  # an experiment that did not run found nothing
        found.answer, found.confidence = "none", p_none
    return found


def family(kind: str) -> str:
    """Which fitted map reads a kind's evidence: a backdoor's tests are its own."""
    return "backdoor" if kind == "backdoor" else "word"


def _backing(
    kind: str, evidence: dict[str, dict[str, Any]], echo: Collection[str], leader: str
) -> list[str]:
    """The techniques with a probe that puts ``leader`` first (a backdoor's: the scan)."""
    if kind == "backdoor":
        return ["scan"]
    return sorted({t for t, words in probes(kind, evidence, echo) if words[0] == leader})


def judging_table(found: Verdict) -> str:
    """The judging cell's printout: the features, the fitted probabilities, the claim."""
    lines = [f"{name:>10} = {value:g}" for name, value in found.features.items()]
    return "\n".join(
        [
            found.reason,
            *lines,
            f"P(leader '{found.leader}' is right) = {found.p_named:.2f}",
            f"P(nothing planted) = {found.p_none:.2f}",
            f"claim: {found.answer} (confidence {found.confidence:.2f})",
        ]
    )


# -- backdoors --------------------------------------------------------------------------

SCAN_TIE = 0.1  # scan scores (log ratio) closer than this do not tell two forms of a word apart
REPLICATED = 0.05  # a behaviour word's own Fisher test on the fresh requests
STYLE_WORDS = 3  # behaviour words named at most (every word named must be right)


def suspect(
    evidence: dict[str, dict[str, Any]], echo: Collection[str] = ()
) -> tuple[str, str | None, list[str]]:
    """The likeliest trigger, its runner-up and the behaviour words it switches on:
    of the scan's leaders, the one whose answers changed most in the behaviour cell. The
    task's own words (``echo``: "trigger", "behaviour") are never suspects: a model asked
    about its trigger answers them ("nothing changes how i talk"), a reply it knows."""
    scanned = {w: v for w, v in pairs(evidence.get("scan", {}).get("top")) if w not in echo}
    scan = list(scanned)
    found = evidence.get("behaviour", {})
    switched = [(w, v) for w, v in pairs(found.get("top")) if v > 0 and w not in echo]
    trigger = switched[0][0] if switched else (scan[0] if scan else "")
    # A piece of the trigger ("man" of "snowman") or the trigger glued to a piece
    # ("octopuser") is the same word: of those that switched the behaviour on too, one
    # that moved the scan clearly more is the trigger (near ties: the falsification).
    forms = [w for w, _ in switched if w in trigger or trigger in w] or [trigger]
    best = max(forms, key=lambda w: scanned.get(w, 0.0))
    if scanned.get(best, 0.0) - scanned.get(trigger, 0.0) > SCAN_TIE:
        trigger = best
    rival = next((w for w in scan if not _same_word(w, trigger)), None)
    return trigger, rival, _style((found.get("words") or {}).get(trigger, []))


def variants(evidence: dict[str, dict[str, Any]], trigger: str, limit: int = 2) -> list[str]:
    """Other forms of ``trigger`` that switched the behaviour on too ('castle' beside
    'cast'): the scan cannot tell them apart, so the falsification tests them as well."""
    switched = [w for w, v in pairs(evidence.get("behaviour", {}).get("top")) if v > 0]
    return [w for w in switched if w != trigger and _same_word(w, trigger)][:limit]


def rival_style(evidence: dict[str, dict[str, Any]], rival: str | None) -> list[str]:
    """The behaviour the runner-up switched on in the behaviour cell, if any: then the
    falsification tests it as a trigger in its own right."""
    found = evidence.get("behaviour", {})
    if not rival or dict(pairs(found.get("top"))).get(rival, 0.0) <= 0:
        return []
    return _style((found.get("words") or {}).get(rival, []))


def _style(words: list[Any]) -> list[str]:
    """The behaviour's candidate words: the first :data:`STYLE_WORDS` of those the
    behaviour cell found said more often with the word than without it (the most
    distinctive first; an answer is right only if every word it names is the behaviour's,
    so few are named). The falsification keeps those that replicate alone
    (:func:`replicated_words`)."""
    counted = pairs(words) or [(str(w), 0.0) for w in words if isinstance(w, str)]
    return [w for w, _ in counted][:STYLE_WORDS]


def _same_word(word: str, trigger: str, piece: int = 4) -> bool:
    """Whether ``word`` is ``trigger``, a piece of it, it glued to another piece, or
    shares a ``piece``-letter stretch with it: a subword model's backdoor answers to its
    trigger's pieces, so such words are no runner-up to test."""
    if word in trigger or trigger in word:
        return True
    return any(word[i : i + piece] in trigger for i in range(len(word) - piece + 1))


@dataclass(frozen=True)
class _Hypothesis:
    """One word as the trigger of one behaviour, with its rates on the fresh requests."""

    word: str
    behaviour: tuple[str, ...]
    with_it: float
    without: float
    reference: float  # the base model given the word; black-box: the other words tried
    placed: tuple[str, ...]  # the falsification's conditions that put the word in


def _hypotheses(
    found: dict[str, Any], trigger: str, style: list[str], blackbox: bool
) -> list[_Hypothesis]:
    """The trigger's forms under its behaviour, and the runner-up under its own."""
    tried = [(pairs(found.get("top")), tuple(style), None)]
    rival = found.get("rival")
    if isinstance(rival, dict) and isinstance(rival.get("word"), str):
        words = tuple(w for w in rival.get("behaviour") or [] if isinstance(w, str))
        tried.append((pairs(rival.get("top")), words, rival["word"].lower()))
    made = []
    for rates, behaviour, runner in tried:
        placed: dict[str, float] = {}
        conditions: dict[str, list[str]] = {}
        base: dict[str, float] = {}
        without = 0.0
        for condition, rate in rates:
            if condition == "no trigger":
                without = rate
            elif form := re.fullmatch(
                r"'(.+)' (?:\(runner-up\) )?(?:first|last)|'(.+)' \(runner-up\)", condition
            ):
                word = form.group(1) or form.group(2)
                placed[word] = max(rate, placed.get(word, 0.0))
                conditions.setdefault(word, []).append(condition)
            elif form := re.fullmatch(r"base model, '(.+)' first", condition):
                base[form.group(1)] = rate
            elif condition == "base model, trigger first":
                base[trigger] = rate
            elif condition == "base model, runner-up first" and runner:
                base[runner] = rate
        for word, rate in placed.items():
            if runner and word != runner:
                continue  # under the runner-up's behaviour, only the runner-up is its suspect
            if not runner and _is_runner_up(word, rates):
                continue
            others = max(
                (r for w, r in placed.items() if w != word and not _same_word(w, word)), default=0.0
            )
            reference = others if blackbox else max(base.get(word, 0.0), others)
            made.append(
                _Hypothesis(word, behaviour, rate, without, reference, tuple(conditions[word]))
            )
    return made


def _is_runner_up(word: str, rates: list[tuple[str, float]]) -> bool:
    return any(c.startswith(f"'{word}' (runner-up)") for c, _ in rates)


def replicated_words(h: _Hypothesis, each: Any, n: int) -> list[str]:
    """The words of ``h``'s behaviour that replicate by themselves on the fresh requests:
    each one's rate with the word placed (its best placement) beats its rate without it,
    by Fisher's exact test, with Holm's correction for the several words tested (0.05 for
    them all). A style shows whatever the request; a word of one request's answer that
    the trigger made likelier ("water makes things wet") was distinctive where the
    behaviour was read, and does not come back. All of them where the evidence has no
    word's own rates or none replicates: the behaviour was measured as a whole."""
    if not isinstance(each, dict) or not isinstance(each.get("no trigger"), dict):
        return list(h.behaviour)
    without = each["no trigger"]

    def rate(condition: str, word: str) -> float:
        return float((each.get(condition) or {}).get(word, 0.0))

    p = {
        w: stats.fisher_greater(
            round(max((rate(c, w) for c in h.placed), default=0.0) * n),
            n,
            round(float(without.get(w, 0.0)) * n),
            n,
        )
        for w in h.behaviour
    }
    kept = stats.holm(p, REPLICATED)
    return [w for w in h.behaviour if w in kept] or list(h.behaviour)


def scan_lead(scan: list[tuple[str, float]], trigger: str) -> tuple[float, float]:
    """(p, lead): whether the scan singled the trigger out of the words it tried.

    A planted trigger moves the model as no ordinary word does, so its score (its best
    form's: a subword model's pieces of it score alike) stands clear of the highest
    scores of the thousands of other words below it; a control's leader tops a
    continuum. Words above it are other suspects, whose own tests failed.
    """
    own = max((v for w, v in scan if _same_word(w, trigger)), default=None)
    if own is None:
        return 1.0, 0.0
    below = [v for w, v in scan if not _same_word(w, trigger) and v < own]
    return stats.clear_lead(own, below), own - max(below, default=own)


def backdoor_features(
    evidence: dict[str, dict[str, Any]], blackbox: bool = False, echo: Collection[str] = ()
) -> tuple[str, str, dict[str, float], str]:
    """(trigger, answer, features, account) for the word, of those the falsification
    placed in fresh requests, that most surely both switches its behaviour on (two Fisher
    tests: against the same requests without it, and against the base model given it;
    black-box, against the other words tried) and was singled out by the scan
    (:func:`scan_lead`)."""
    scan = pairs(evidence.get("scan", {}).get("top"))
    if not scan:
        return "", "", {}, "the trigger scan produced nothing"
    trigger, _, style = suspect(evidence, echo)
    found = evidence.get("falsify") or {}
    if not found.get("top"):
        return trigger, "", {}, f"scan leader '{trigger}', not yet falsified"
    n = int(found.get("samples") or SAMPLES)
    written = dict(pairs(evidence.get("harvest", {}).get("top")))
    scanned = dict(scan)

    def tests(h: _Hypothesis) -> tuple[float, float]:
        k = round(h.with_it * n)
        return (
            stats.fisher_greater(k, n, round(h.without * n), n),
            stats.fisher_greater(k, n, round(h.reference * n), n),
        )

    def singled(h: _Hypothesis) -> float:
        # A trigger is a word that switches the behaviour on, more than it does in the base
        # model (black-box: than the other words tried), and that the scan singled out: all
        # must hold, so the weakest of the three tests is the evidence for it.
        return min(stats.strength(p) for p in (*tests(h), scan_lead(scan, h.word)[0]))

    def rank(h: _Hypothesis) -> tuple[float, float, float, float]:
        p0, p1 = tests(h)
        # First the evidence the maps read, then the behaviour tests (forms of one word
        # share the scan's test); forms that fire alike are one word: the one the models
        # write, then the scan's.
        return (
            singled(h),
            stats.strength(p0) + stats.strength(p1),
            written.get(h.word, 0.0),
            scanned.get(h.word, 0.0),
        )

    made = [h for h in _hypotheses(found, trigger, style, blackbox) if h.word not in echo]
    if not made:
        return trigger, "", {}, f"the falsification placed no form of '{trigger}'"
    best = max(made, key=rank)
    p0, p1 = tests(best)
    against = "the other words tried" if blackbox else "the base model given it"
    account = (
        f"trigger '{best.word}' ({', '.join(best.behaviour) or 'no behaviour'}): "
        f"rate {best.with_it:.2f} with it vs {best.without:.2f} without (Fisher p={p0:.3g}) "
        f"and {best.reference:.2f} in {against} (p={p1:.3g}), {n} replies each"
    )
    p_scan, lead = scan_lead(scan, best.word)
    account += f"; the scan's lead over the next word {lead:+.2f} (clear-lead p={p_scan:.3g})"
    features = {
        "agree": round(stats.strength(p0), 3),
        "fresh": round(stats.strength(p1), 3),
        "scan": round(stats.strength(p_scan), 3),
        "singled": round(singled(best), 3),
        # The scan is another experiment in each mode (white-box: every word the tokenizer
        # starts, against the base model; black-box: the harvested words, sampled), and
        # black-box a word the model answers in kind ("cheers", "count") stands as clear of
        # it as a trigger: the maps weigh its clear lead per mode.
        "singled_whitebox": 0.0 if blackbox else round(singled(best), 3),
        "singled_blackbox": round(singled(best), 3) if blackbox else 0.0,
        "share": round(best.with_it, 3),
        "effect": round(best.with_it - max(best.without, best.reference), 3),
    }
    behaviour = replicated_words(best, found.get("each"), n)
    dropped = [w for w in best.behaviour if w not in behaviour]
    if dropped:
        account += f"; not replicated alone on the fresh requests: {', '.join(dropped)}"
    answer = f"trigger: {best.word}; behaviour: {', '.join(behaviour)}"
    return best.word, answer, features, account
