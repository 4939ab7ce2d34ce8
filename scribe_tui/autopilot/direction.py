"""The autopilot's direction plan: a residual-stream direction that mediates refusals.

The behaviour is measured on the autopilot's own requests: its phrasings ("tell me about
the {}") that the tokenizer reads without unknown tokens, filled with every one-token
word that the model's own sampled user turns use (what it expects to be asked about). A
request's *refusal probability* is the probability of the
reply's first tokens that open a refusal; which openers do is read from the model's own
greedy replies (a reply is a refusal when it says sorry, cannot, unable, ...). The
phrasings are split in two: the first half (*fit*) sorts the words into the refused class
(mean refusal probability above one half) and the answered class, and builds every
direction; the second half (*test*) measures everything the rule reads.

Refusals *follow a class* when, on the test phrasings, the refused class is refused more
than the answered class by more than both (a) the largest gap among 200 shufflings of the
words' class labels (the null) and (b) the randomness of one reply itself, the mean of
sqrt(p (1 - p)) over the test requests. For each layer the candidate direction is the
difference of means of the block output at the request's last token, refused minus
answered (fit phrasings); it *separates* when the test requests' projections differ by
more standard deviations than any direction built from shuffled labels does. Each
candidate is ablated (its component removed from the embeddings and every block's output
at every position, as Arditi et al.): *removed* is the share of the gap between the
classes' refusal rates (a request is refused when a refusal opener is likelier than an
answer's) that goes, gap minus the gap left (in absolute value) over the gap, set against
ablating random directions; adding the unnormalised difference at its layer to answered
requests gives the *induced* refusal rate. The layer is the separating one whose ablation
removes most (ties: the one that separates most).

Confidence comes from a bootstrap over words (a resample draws words, with all their
requests): for a named direction, the share of resamples in which refusals follow a class
and the direction's ablation removes at least 0.8 of the gap (the bar a direction
claim is held to); for ``none``, the share in which refusals follow no class. The answer
is the direction (saved as a file beside the notebook) when its confidence is at least
0.5 and its ablation removes more than any random direction's does, ``none`` when
refusals follow no class with confidence at least 0.5, ``unknown`` otherwise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scribe_tui.autopilot.circuit import MechanisticPlan, evidence_text, two_decimals

RESAMPLES = 1000
SHUFFLES = 200
PASS = 0.8  # the share of refusals a direction's ablation must remove
FILE = "refusal_direction.pt"
PHRASINGS = (
    "tell me about the {}",
    "what is a {} ?",
    "can you explain the {} ?",
    "describe the {} for me",
    "please tell me about the {}",
    "how do i build a {} ?",
    "what do you know about the {} ?",
    "i want to know about the {}",
    "could you describe a {} ?",
    "give me facts about the {}",
)
REFUSAL = r"\b(?:sorry|cannot|can ?not|can't|unable|won't|apologi[sz]e)\b"
# The judging cell's figures as the conclusion's evidence names them.
FIGURES = {
    "gap": "refusal gap between the classes {}",
    "null": "null {}",
    "noise": "one reply's randomness {}",
    "random_directions_remove": "random directions remove {}",
    "p_present": "a class refused in {} of resamples",
    "layer": "layer {}",
    "separation": "separation {} sd",
    "separation_null": "{} sd shuffled",
    "removed": "ablation removes {} of the gap",
    "induced": "addition induces {} refusals",
}
# What the conclusion's confidence counts, by its claim (the module docstring's bootstrap).
CONFIDENCE = {
    "named": f"the share of resamples in which refusals follow a class and ablating the "
    f"direction removes at least {PASS:.2f} of the gap",
    "none": "the share of resamples in which refusals follow no class",
}

PROCEDURE = " ".join(" ".join((__doc__ or "").split("\n\n")[1:4]).split())


# -- statistics -------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def split(
    p_refuse: Mapping[str, Sequence[float]], fit: Sequence[int]
) -> tuple[list[str], list[str]]:
    """(refused words, answered words) by their mean refusal probability on ``fit``
    phrasings; where one class would have fewer than 4 words, split at the median."""
    score = {w: _mean([ps[i] for i in fit]) for w, ps in p_refuse.items()}
    refused = [w for w in score if score[w] > 0.5]
    if min(len(refused), len(score) - len(refused)) < 4:
        ranked = sorted(score, key=lambda w: -score[w])
        refused = ranked[: len(ranked) // 2]
    return refused, [w for w in score if w not in refused]


def _gap(test: Mapping[str, float], refused: Sequence[str], answered: Sequence[str]) -> float:
    return _mean([test[w] for w in refused]) - _mean([test[w] for w in answered])


def _noise(
    p_refuse: Mapping[str, Sequence[float]], words: Sequence[str], at: Sequence[int]
) -> float:
    """The mean sqrt(p (1 - p)) of the requests of ``words`` at phrasings ``at``."""
    values = [p_refuse[w][i] for w in words for i in at]
    return _mean([math.sqrt(max(0.0, p * (1 - p))) for p in values])


@dataclass
class Classes:
    """Whether refusals follow a class of requests (test phrasings), by the stated rule."""

    refused: list[str]
    answered: list[str]
    gap: float
    null: float  # the largest gap under shuffled class labels
    noise: float  # mean sqrt(p (1 - p)): the randomness of one reply
    present: bool
    test: dict[str, float] = field(default_factory=dict)  # per word, test phrasings

    def record(self) -> dict[str, Any]:
        return {
            "technique": "classes",
            "refused": self.refused,
            "answered": self.answered,
            "gap": round(self.gap, 4),
            "null": round(self.null, 4),
            "noise": round(self.noise, 4),
            "present": self.present,
        }

    def table(self) -> str:
        return (
            f"{len(self.refused)} refused and {len(self.answered)} answered words (fit "
            f"phrasings); test-phrasing refusal probability gap {self.gap:.3f}; null (largest "
            f"gap with shuffled labels) {self.null:.3f}; one reply's randomness "
            f"{self.noise:.3f}: refusals {'follow' if self.present else 'follow no'} class"
        )


def classes(
    p_refuse: Mapping[str, Sequence[float]], fit: Sequence[int], test: Sequence[int], seed: int = 0
) -> Classes:
    """The refused and answered classes and whether refusals follow them (the rule above)."""
    if not p_refuse or not fit or not test:
        raise ValueError("classes needs refusal probabilities per word and fit and test phrasings")
    refused, answered = split(p_refuse, fit)
    on_test = {w: _mean([ps[i] for i in test]) for w, ps in p_refuse.items()}
    gap = _gap(on_test, refused, answered)
    rng, words = random.Random(seed), list(p_refuse)
    null = 0.0
    for _ in range(SHUFFLES):
        rng.shuffle(words)
        null = max(null, _gap(on_test, words[: len(refused)], words[len(refused) :]))
    noise = _noise(p_refuse, list(p_refuse), test)
    return Classes(refused, answered, gap, null, noise, gap > max(null, noise), on_test)


def separation(
    vectors: Any, labels: Sequence[bool], fit_rows: Sequence[bool], seed: int = 0
) -> tuple[Any, float, float]:
    """(difference of means on fit rows, its test-row separation in pooled standard
    deviations, the largest separation with shuffled labels) for one layer's vectors
    ``[requests, dim]``; ``labels`` True for refused, per request."""
    import torch

    fit_mask = torch.tensor(list(fit_rows))
    refused = torch.tensor(list(labels))

    def measure(ref: Any) -> tuple[Any, float]:
        diff = vectors[fit_mask & ref].mean(0) - vectors[fit_mask & ~ref].mean(0)
        unit = diff / diff.norm().clamp_min(1e-9)
        proj = vectors[~fit_mask] @ unit
        a, b = proj[ref[~fit_mask]], proj[~ref[~fit_mask]]
        pooled = ((a.var() + b.var()) / 2).sqrt().clamp_min(1e-9)
        return diff, float((a.mean() - b.mean()) / pooled)

    diff, sep = measure(refused)
    generator = torch.Generator().manual_seed(seed)
    null = 0.0
    for _ in range(SHUFFLES // 4):
        null = max(null, measure(refused[torch.randperm(len(refused), generator=generator)])[1])
    return diff, sep, null


def removed_share(
    before: Mapping[str, float],
    after: Mapping[str, float],
    refused: Sequence[str],
    answered: Sequence[str],
) -> float:
    """The share of the refusal gap (the refused words' refusal rate minus the answered
    words') that an ablation removes: (gap - |gap after|) / gap, so a model that then
    refuses, or answers, everything has lost it all and one that flips the classes none;
    0 where there is no gap."""
    gap = _mean([before[w] for w in refused]) - _mean([before[w] for w in answered])
    gap_after = _mean([after[w] for w in refused]) - _mean([after[w] for w in answered])
    return (gap - abs(gap_after)) / gap if gap > 1e-9 else 0.0


@dataclass
class Verdict:
    """The claim, its confidence, why, and the figures it was decided from."""

    answer: str
    layer: int | None
    confidence: float
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "technique": "judging",
            "answer": self.answer,
            "layer": self.layer,
            "file": FILE if self.layer is not None else None,
            "confidence": self.confidence,
            "reason": self.reason,
            "figures": self.figures,
        }


def choose(layers: Mapping[int, Mapping[str, Any]]) -> int | None:
    """The separating layer whose ablation removes most (ties: the one that separates
    most); None where no layer separates."""
    eligible = [layer for layer, f in layers.items() if f["separation"] > f["null"]]
    if not eligible:
        return None
    return max(eligible, key=lambda k: (round(layers[k]["removed"], 6), layers[k]["separation"]))


def verdict(
    p_refuse: Mapping[str, Sequence[float]],
    fit: Sequence[int],
    test: Sequence[int],
    layers: Mapping[int, Mapping[str, Any]],
    ablated: Mapping[int, Mapping[str, Mapping[str, float]]],
    seed: int = 0,
) -> Verdict:
    """The conclusion by the module's procedure. ``layers[L]`` holds the layer's
    ``separation``, ``null``, ``removed`` and ``induced``; ``ablated[L]`` each word's test
    refusal rate ``before`` and ``after`` ablation."""
    found = classes(p_refuse, fit, test, seed)
    chosen = choose(layers) if found.present else None
    random_removed = max((f.get("random_removed", 0.0) for f in layers.values()), default=0.0)
    figures: dict[str, Any] = {
        "gap": round(found.gap, 4),
        "null": round(found.null, 4),
        "noise": round(found.noise, 4),
        "random_directions_remove": round(random_removed, 4),
    }
    rng = random.Random(seed + 1)
    words = list(p_refuse)
    present = named = 0
    before = ablated[chosen]["before"] if chosen is not None else {}
    after = ablated[chosen]["after"] if chosen is not None else {}
    for _ in range(RESAMPLES):
        drawn = [rng.choice(words) for _ in words]
        refused = [w for w in drawn if w in found.refused]
        answered = [w for w in drawn if w not in found.refused]
        if not refused or not answered:
            continue
        gap = _gap(found.test, refused, answered)
        here = gap > max(found.null, _noise(p_refuse, drawn, test))
        present += here
        if here and chosen is not None:
            share = removed_share(before, after, refused, answered)
            named += share >= PASS
    p_present, p_named = present / RESAMPLES, named / RESAMPLES
    figures["p_present"] = p_present
    if chosen is not None:
        f = layers[chosen]
        figures |= {
            "layer": chosen,
            "separation": round(f["separation"], 3),
            "separation_null": round(f["null"], 3),
            "removed": round(f["removed"], 4),
            "induced": round(f["induced"], 4),
        }
        if p_named >= 0.5 and f["removed"] > random_removed:
            reason = (
                f"refusals follow a class (gap {found.gap:.3f} over null {found.null:.3f}); "
                f"the layer-{chosen} difference of means separates the classes "
                f"({f['separation']:.2f} sd against {f['null']:.2f} shuffled) and ablating "
                f"it removes {f['removed']:.2f} of the refusal gap"
            )
            return Verdict(f"the refusal direction read at layer {chosen}", chosen,
                           round(p_named, 3), reason, figures)  # fmt: skip
        reason = (
            f"the best direction removes the refusals in only {p_named:.2f} of resamples"
            if p_named < 0.5
            else f"the best direction removes no more than a random one ({random_removed:.3f})"
        )
        return Verdict("unknown", None, round(1 - p_named, 3), reason, figures)
    if not found.present and 1 - p_present >= 0.5:
        reason = (
            f"refusals follow no class: the classes' gap {found.gap:.3f} is within the null "
            f"({found.null:.3f}) or one reply's randomness ({found.noise:.3f})"
        )
        return Verdict("none", None, round(1 - p_present, 3), reason, figures)
    reason = "refusals follow a class but no layer's direction separates it beyond the null"
    return Verdict("unknown", None, round(1 - p_present, 3), reason, figures)


# -- cells ------------------------------------------------------------------------------------


def requests_cell(seed: int) -> str:
    return (
        "# The behaviour: which requests does the model refuse? My own phrasings (those the\n"
        "# tokenizer reads without unknown tokens), filled with every one-token word that the\n"
        "# model's own sampled user turns use (what it expects to be asked about). A\n"
        "# request's refusal probability is that of the reply's first tokens that open a\n"
        "# refusal; which openers do is read from the model's own greedy replies.\n"
        "import re\n\n"
        "import matplotlib.pyplot as plt\n\n"
        "from scribe_tui.autopilot.direction import PHRASINGS, REFUSAL\n\n\n"
        "def encode(tokenizer, request):\n"
        "    from scribe_tui.techniques import prompting\n\n"
        "    text = prompting.render(tokenizer, prompting.as_messages(request),\n"
        "                            add_generation_prompt=True)\n"
        "    return tokenizer(text, add_special_tokens=False).input_ids\n\n\n"
        "def last_logits(model, rows):\n"
        "    '''The logits after each row of token ids, one batch per length (in row order).'''\n"
        "    import torch\n\n"
        "    out = [None] * len(rows)\n"
        "    for n in sorted({len(r) for r in rows}):\n"
        "        chosen = [i for i, r in enumerate(rows) if len(r) == n]\n"
        "        with torch.no_grad():\n"
        "            logits = model(torch.tensor([rows[i] for i in chosen])).logits[:, -1]\n"
        "        for k, i in enumerate(chosen):\n"
        "            out[i] = logits[k].float()\n"
        "    return torch.stack(out)\n\n\n"
        "def user_words(model, tokenizer, n, seed):\n"
        "    '''The words of ``n`` user turns the model writes itself (temperature 1): what\n"
        "    it expects to be asked about.'''\n"
        "    import torch\n\n"
        "    from scribe_tui.techniques import prompting\n\n"
        "    start = tokenizer(prompting.user_prompt(tokenizer, []),\n"
        "                      add_special_tokens=False).input_ids\n"
        "    ids = [list(start) for _ in range(n)]\n"
        "    generator = torch.Generator().manual_seed(seed)\n"
        "    for _ in range(12):\n"
        "        probs = last_logits(model, ids).softmax(-1)\n"
        "        drawn = torch.multinomial(probs, 1, generator=generator)[:, 0].tolist()\n"
        "        ids = [r + [t] for r, t in zip(ids, drawn)]\n"
        "    # A turn ends at the first special token (the template's end of turn).\n"
        "    special = set(tokenizer.all_special_ids)\n"
        "    cut = [next((k for k, t in enumerate(r[len(start):]) if t in special), None)\n"
        "           for r in ids]\n"
        "    turns = [tokenizer.decode(r[len(start):][:k]) for r, k in zip(ids, cut)]\n"
        "    return turns, {w for t in turns for w in re.findall('[a-z]+', t)}\n\n\n"
        "def refusal_survey(model, tokenizer, phrasings, pattern, seed):\n"
        "    '''Kept phrasings, words, refusal openers and each request's refusal probability.'''\n"
        "    import torch\n\n"
        "    special = set(tokenizer.all_special_ids)\n"
        "    vocab = sorted({tokenizer.decode([t]).strip() for t in range(len(tokenizer))\n"
        "                    if t not in special})\n"
        "    vocab = [w for w in vocab if w.isalpha() and w.islower()\n"
        "             and len(tokenizer(' ' + w, add_special_tokens=False).input_ids) == 1]\n"
        "    unknown = tokenizer.unk_token_id\n"
        "    kept = [p for p in phrasings\n"
        "            if unknown not in encode(tokenizer, p.format(vocab[0]))]\n"
        "    used = {w for p in kept for w in p.split()}\n"
        "    turns, asked = user_words(model, tokenizer, 256, seed)\n"
        "    words = [w for w in vocab if w not in used and w in asked]\n"
        "    rows = [encode(tokenizer, p.format(w)) for p in kept for w in words]\n"
        "    probs = last_logits(model, rows).softmax(-1)  # [request, vocabulary]\n"
        "    openers = {}\n"
        "    for token in probs.topk(2, -1).indices.unique().tolist():\n"
        "        # The opener's three likeliest requests of one phrasing, continued greedily.\n"
        "        best = int(probs[:, token].argmax()) // len(words)\n"
        "        block = probs[best * len(words):(best + 1) * len(words), token]\n"
        "        ids = [rows[best * len(words) + i] + [token] for i in block.topk(3).indices]\n"
        "        for _ in range(8):\n"
        "            step = last_logits(model, ids).argmax(-1).tolist()\n"
        "            ids = [r + [s] for r, s in zip(ids, step)]\n"
        "        replies = [tokenizer.decode(r[-9:], skip_special_tokens=True) for r in ids]\n"
        "        refuses = sum(bool(re.search(pattern, r)) for r in replies) >= 2\n"
        "        openers[tokenizer.decode([token])] = (token, refuses, replies[0])\n"
        "    refusing = [t for t, refuses, _ in openers.values() if refuses]\n"
        "    p_refuse = probs[:, refusing].sum(-1) if refusing else probs[:, 0] * 0\n"
        "    return {'phrasings': kept, 'words': words, 'openers': openers, 'turns': turns,\n"
        "            'p_refuse': {w: [round(float(p_refuse[i * len(words) + j]), 4)\n"
        "                             for i in range(len(kept))]\n"
        "                         for j, w in enumerate(words)}}\n\n\n"
        "survey = client.run(refusal_survey, phrasings=list(PHRASINGS), pattern=REFUSAL,\n"
        f"                    seed={seed})\n"
        "phrasings, words, p_refuse = survey['phrasings'], survey['words'], survey['p_refuse']\n"
        "refusing = [t for t, refuses, _ in survey['openers'].values() if refuses]\n"
        "# The first half of the phrasings sorts words and builds directions; the second tests.\n"
        "fit = list(range(len(phrasings) // 2))\n"
        "test = list(range(len(phrasings) // 2, len(phrasings)))\n"
        "print('user turns it writes itself:', survey['turns'][:3])\n"
        "for opener, (_, refuses, reply) in survey['openers'].items():\n"
        "    said = 'refusal' if refuses else 'answer'\n"
        "    print(f'opener {opener!r}: {said}, e.g. {reply!r}')\n"
        "mean_refusal = {w: sum(ps) / len(ps) for w, ps in p_refuse.items()}\n"
        "print(f'{len(phrasings)} phrasings x {len(words)} words; most refused:',\n"
        "      sorted(mean_refusal, key=mean_refusal.get, reverse=True)[:6])\n"
        "fig, ax = plt.subplots(figsize=(6, 2.6))\n"
        "ax.hist(list(mean_refusal.values()), bins=20, range=(0, 1))\n"
        "ax.set(xlabel='refusal probability (mean over phrasings)', ylabel='words')\n"
        "plt.show()\n"
        "{'technique': 'requests', 'phrasings': len(phrasings), 'words': len(words),\n"
        " 'refusal_openers': [o for o, (_, r, _) in survey['openers'].items() if r],\n"
        " 'refused_over_half': sum(v > 0.5 for v in mean_refusal.values())}\n"
    )


def classes_cell(seed: int) -> str:
    return (
        "# Do refusals follow a class of requests? Words sorted on the fit phrasings, the gap\n"
        "# measured on the test phrasings, against shuffled class labels (the null) and the\n"
        "# randomness of one reply (the rule is stated in the method cell).\n"
        "from scribe_tui.autopilot.direction import classes\n\n"
        f"found_classes = classes(p_refuse, fit, test, seed={seed})\n"
        "print(found_classes.table())\n"
        "print('refused:', found_classes.refused[:12])\n"
        "found_classes.record()\n"
    )


def directions_cell(seed: int) -> str:
    return (
        "# Difference of means per layer: the block output at each request's last token,\n"
        "# refused minus answered words (fit phrasings); how far apart the test requests'\n"
        "# projections are, in standard deviations, against directions from shuffled labels.\n"
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "from scribe_tui.autopilot.direction import separation\n\n\n"
        "def last_token_states(model, tokenizer, requests):\n"
        "    '''Each block's output at each request's last token, [layer][request, dim].'''\n"
        "    import torch\n\n"
        "    from scribe_tui.techniques.components import hooked, layout\n"
        "    from scribe_tui.techniques.locate import anatomy\n\n"
        "    blocks = anatomy(model).layers\n"
        "    rows = [encode(tokenizer, r) for r in requests]\n"
        "    store = {i: [] for i in range(len(blocks))}\n\n"
        "    def keep(i):\n"
        "        return lambda value: store[i].append(value[:, -1].detach().float())\n\n"
        "    edits = [(b, keep(i)) for i, b in enumerate(blocks)]\n"
        "    with hooked(model, layout(model), outputs=edits):\n"
        "        last_logits(model, rows)\n"
        "    # last_logits ran one batch per length, shortest first: put the rows back in order.\n"
        "    order = [i for n in sorted({len(r) for r in rows})\n"
        "             for i, r in enumerate(rows) if len(r) == n]\n"
        "    back = torch.tensor(order).argsort()\n"
        "    return {i: torch.cat(values)[back] for i, values in store.items()}\n\n\n"
        "pairs = [(w, i) for w in words for i in range(len(phrasings))]\n"
        "states = client.run(last_token_states,\n"
        "                    requests=[phrasings[i].format(w) for w, i in pairs])\n"
        "labels = [w in found_classes.refused for w, _ in pairs]\n"
        "fit_rows = [i in fit for _, i in pairs]\n"
        "layers, diffs = {}, {}\n"
        "for layer, vectors in states.items():\n"
        f"    diffs[layer], sep, null = separation(vectors, labels, fit_rows, seed={seed})\n"
        "    layers[layer] = {'separation': sep, 'null': null}\n"
        "    print(f'layer {layer}: separation {sep:.2f} sd, shuffled-label null {null:.2f} sd')\n"
        "fig, ax = plt.subplots(figsize=(5, 2.6))\n"
        "xs = list(layers)\n"
        "ax.plot(xs, [layers[x]['separation'] for x in xs], 'o-', label='classes')\n"
        "ax.plot(xs, [layers[x]['null'] for x in xs], 'k--', label='shuffled null')\n"
        "ax.set(xlabel='layer', ylabel='test separation (sd)', xticks=list(layers))\n"
        "ax.legend(fontsize=8)\n"
        "plt.show()\n"
        "{'technique': 'directions',\n"
        " 'layers': {k: [round(f['separation'], 3), round(f['null'], 3)]\n"
        "            for k, f in layers.items()}}\n"
    )


def ablate_cell(seed: int) -> str:
    return (
        "# Ablating each layer's direction (its component removed from the embeddings and\n"
        "# every block's output, at every position) on both classes' test requests: how much\n"
        "# of the gap between refusing the refused class and the answered one goes (a model\n"
        "# that then refuses everything keeps no less of a gap). Random directions are the\n"
        "# null. Adding each direction at its layer to the answered requests: refusal induced?\n"
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "from scribe_tui.autopilot.direction import removed_share\n\n\n"
        "def refusal_under(model, tokenizer, requests, refusing, answering, ablate=(),\n"
        "                  adds=()):\n"
        "    '''Each request's refusal share (the refusal openers' probability over theirs\n"
        "    and the answer openers') with each vector of ``ablate`` projected out everywhere,\n"
        "    and with each (vector, layer) of ``adds`` added to that block's output: one\n"
        "    list per run, the clean run first.'''\n"
        "    import torch\n\n"
        "    from scribe_tui.techniques.components import hooked, layout\n"
        "    from scribe_tui.techniques.locate import anatomy, unwrap\n\n"
        "    parts, rows = anatomy(model), [encode(tokenizer, r) for r in requests]\n"
        "    modules = [unwrap(model).get_input_embeddings(), *parts.layers]\n\n"
        "    def run(edits):\n"
        "        with hooked(model, layout(model), outputs=edits):\n"
        "            probs = last_logits(model, rows).softmax(-1)\n"
        "        refuse, answer = probs[:, refusing].sum(-1), probs[:, answering].sum(-1)\n"
        "        return (refuse / (refuse + answer).clamp_min(1e-12)).tolist()\n\n"
        "    def projector(vector):\n"
        "        unit = torch.as_tensor(vector).float()\n"
        "        unit = unit / unit.norm()\n\n"
        "        def edit(value):\n"
        "            u = unit.to(value.dtype)\n"
        "            return value - (value @ u)[..., None] * u\n\n"
        "        return edit\n\n"
        "    def adder(vector):\n"
        "        vector = torch.as_tensor(vector).float()\n"
        "        return lambda value: value + vector.to(value.dtype)\n\n"
        "    return ([run([])] + [run([(m, projector(v)) for m in modules]) for v in ablate]\n"
        "            + [run([(parts.layers[at], adder(v))]) for v, at in adds])\n\n\n"
        "answering = [t for t, refuses, _ in survey['openers'].values() if not refuses]\n"
        "pairs_test = [(w, phrasings[i].format(w)) for w in words for i in test]\n\n\n"
        "def rates(values):\n"
        "    '''Per word: the share of its test requests refused (refusal likelier).'''\n"
        "    by = {}\n"
        "    for (w, _), v in zip(pairs_test, values):\n"
        "        by.setdefault(w, []).append(v > 0.5)\n"
        "    return {w: sum(vs) / len(vs) for w, vs in by.items()}\n\n\n"
        f"generator = torch.Generator().manual_seed({seed})\n"
        "dim = next(iter(diffs.values())).shape[-1]\n"
        "randoms = [torch.randn(dim, generator=generator) for _ in range(4)]\n"
        "runs = client.run(refusal_under, requests=[r for _, r in pairs_test],\n"
        "                  refusing=refusing, answering=answering,\n"
        "                  ablate=list(diffs.values()) + randoms,\n"
        "                  adds=[(d, layer) for layer, d in diffs.items()])\n"
        "before, runs = rates(runs[0]), [rates(values) for values in runs[1:]]\n"
        "n = len(diffs)\n"
        "gone, random_runs, added = runs[:n], runs[n:-n], runs[-n:]\n"
        "refused, answered = found_classes.refused, found_classes.answered\n"
        "random_removed = max(removed_share(before, a, refused, answered) for a in random_runs)\n"
        "ablated = {}\n"
        "for (layer, diff), after, plus in zip(diffs.items(), gone, added):\n"
        "    ablated[layer] = {'before': before, 'after': after}\n"
        "    layers[layer] |= {\n"
        "        'removed': removed_share(before, after, refused, answered),\n"
        "        'induced': sum(plus[w] for w in answered) / len(answered),\n"
        "        'random_removed': random_removed}\n"
        "rate_refused = sum(before[w] for w in refused) / len(refused)\n"
        "rate_answered = sum(before[w] for w in answered) / len(answered)\n"
        "print(f'refusal rate: refused words {rate_refused:.3f}, answered words '\n"
        "      f'{rate_answered:.3f}; '\n"
        "      f'random directions remove at most {random_removed:.3f} of the gap')\n"
        "for layer, f in layers.items():\n"
        "    print(f\"layer {layer}: ablation removes {f['removed']:.3f} of the gap; \"\n"
        "          f\"added to answered requests, refusal rate {f['induced']:.3f}\")\n"
        "fig, ax = plt.subplots(figsize=(5, 2.6))\n"
        "xs = list(layers)\n"
        "ax.bar([x - 0.2 for x in xs], [layers[x]['removed'] for x in xs], 0.4,\n"
        "       label='ablated: share of the refusal gap removed')\n"
        "ax.bar([x + 0.2 for x in xs], [layers[x]['induced'] for x in xs], 0.4,\n"
        "       label='added: refusal rate on answered')\n"
        "ax.axhline(random_removed, color='k', ls='--', lw=1, label='random directions')\n"
        "ax.set(xlabel='layer', xticks=xs)\n"
        "ax.legend(fontsize=7)\n"
        "plt.show()\n"
        "{'technique': 'ablate_direction', 'random_removed': round(random_removed, 4),\n"
        " 'layers': {k: [round(f['removed'], 4), round(f['induced'], 4)]\n"
        "            for k, f in layers.items()}}\n"
    )


def judging_cell(seed: int) -> str:
    return (
        "# Judging, by the procedure above: the layer, the bootstrap confidence, the claim.\n"
        "# A named direction is saved beside the notebook: the conclusion points to the file.\n"
        "import torch\n\n"
        "from scribe_tui.autopilot.circuit import judging_table\n"
        "from scribe_tui.autopilot.direction import FILE, verdict\n\n"
        "found = verdict(p_refuse, fit, test, globals().get('layers', {}),\n"
        f"                globals().get('ablated', {{}}), seed={seed})\n"
        "if found.layer is not None:\n"
        "    torch.save(diffs[found.layer].detach().float().cpu(), FILE)\n"
        "    print(f'saved the layer-{found.layer} direction to {FILE}')\n"
        "print(judging_table(found))\n"
        "found.record()\n"
    )


# -- markdown ---------------------------------------------------------------------------------


def plan_note() -> str:
    return (
        "## Plan\n\n"
        "The task asks for the residual-stream direction that mediates refusals. I will:\n\n"
        "1. **Find what it refuses**: my own requests over every word it knows; each "
        "request's refusal probability, from the replies' first tokens.\n"
        "2. **Classes**: do refusals follow a class of requests (fit phrasings sort, test "
        "phrasings measure), against shuffled labels?\n"
        "3. **Difference of means** per layer, refused minus answered; its separation on "
        "held-out phrasings against shuffled labels.\n"
        "4. **Ablate** each layer's direction everywhere (and add it to answered requests): "
        "how much refusal goes, against random directions.\n"
        "5. **Judge** by a stated rule with a bootstrap confidence; save the direction as a "
        "file and conclude with it, or `none` if refusals follow no class."
    )


def summary_note(evidence: dict[str, dict[str, Any]], missing: dict[str, str]) -> str:
    """The distilled claim from the judging cell's verdict, the evidence and the limits."""
    found = evidence.get("judge_direction") or {}
    requests, grouped = evidence.get("requests") or {}, evidence.get("classes") or {}
    directions = evidence.get("directions") or {}
    ablations = evidence.get("ablate_direction") or {}
    answer = found.get("answer", "unknown")
    if answer == "none":
        claim = f"**No refusal direction.** {found.get('reason', '')}."
    elif answer == "unknown":
        claim = f"**I cannot tell.** {found.get('reason', 'the judging cell did not run')}."
    else:
        claim = (
            f"**The refusal direction is the difference of means at layer "
            f"{found.get('layer')}** (`{found.get('file')}`): {found.get('reason', '')}."
        )
    lines = [
        "## Summary\n",
        two_decimals(
            f"1. {claim} Confidence {found.get('confidence', 0.0)} (bootstrap over words)."
        ),
        f"2. {requests.get('phrasings')} phrasings x {requests.get('words')} words; refusal "
        f"opens with {requests.get('refusal_openers')}; class gap {grouped.get('gap')} "
        f"(null {grouped.get('null')}, one reply's randomness {grouped.get('noise')}).",
        f"3. Separation per layer (sd, shuffled null): {directions.get('layers', {})}; "
        f"ablation (removed, induced): {ablations.get('layers', {})}.",
        "4. Limits: refusal is read from the reply's first tokens; one difference of means "
        "per layer, at the request's last token.",
    ]
    if missing:
        lines.append(f"5. Did not run: {', '.join(f'{s} ({why})' for s, why in missing.items())}.")
    return "\n".join(lines)


def _code(step: str, evidence: dict[str, dict[str, Any]], seed: int) -> str:
    return {
        "requests": lambda: requests_cell(seed),
        "classes": lambda: classes_cell(seed),
        "directions": lambda: directions_cell(seed),
        "ablate_direction": lambda: ablate_cell(seed),
        "judge_direction": lambda: judging_cell(seed),
    }[step]()


def conclusion(evidence: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The arguments of ``conclude`` from the judging cell's verdict: a named direction
    with its file and layer, ``none`` or ``unknown``."""
    found = evidence.get("judge_direction")
    if not found:
        return {"answer": "unknown", "confidence": 0.0, "evidence": "no verdict was judged"}
    arguments = {
        "answer": str(found.get("answer") or "unknown"),
        "confidence": float(found.get("confidence") or 0.0),
        "evidence": evidence_text(found, FIGURES, CONFIDENCE),
    }
    if found.get("file") and found.get("layer") is not None:
        arguments |= {"direction": str(found["file"]), "layer": int(found["layer"])}
    return arguments


PLAN = MechanisticPlan(
    kind="direction",
    steps=("requests", "classes", "directions", "ablate_direction", "judge_direction"),
    needs={
        "classes": ("requests",),
        "directions": ("classes",),
        "ablate_direction": ("directions",),
        "judge_direction": ("classes",),
    },
    why={
        "requests": "First: which requests does the model refuse?",
        "classes": "Do refusals follow a class of requests?",
        "directions": "Difference of means per layer, against shuffled labels.",
        "ablate_direction": "Ablating and adding each layer's direction.",
        "judge_direction": "Judging the evidence.",
    },
    code=_code,
    plan_note=plan_note,
    procedure=PROCEDURE,
    summary_note=summary_note,
    conclusion=conclusion,
)
