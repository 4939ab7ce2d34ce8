"""The autopilot's mechanistic plan: which heads and MLPs carry in-context copying.

The behaviour is measured on the autopilot's own prompts: random one-token words said
once and then again, cut before a word of the repeat (the earlier occurrence is the
only way to predict it), each paired with an *unrepeated* prompt, the same second half
after other random words, with the same target word. The metric is the target's
log-probability; the copying gain of a prompt is its log-probability repeated minus
unrepeated. Every ablation is a mean ablation over the prompt set it runs on.

A component *stands out* when ablating it alone removes more of the target's
log-probability on the repeated prompts than both (a) the largest effect any single
component has on the unrepeated prompts, where nothing can be copied (the null), and
(b) an equal share of the copying gain among all N heads and MLPs. Copying is *present*
when the gain itself exceeds the null's largest effect. The candidate set (what stands
out) is then ablated jointly: *lost* is the share of the behaviour (clean minus
everything ablated) that ablating the set removes, *kept* the share that the set alone
keeps with everything else ablated, and its faithfulness is min(kept, lost).

Confidence comes from a bootstrap over prompts (paired: a resample draws prompt pairs):
for a named circuit, the share of resamples in which copying is present, the rule
selects a set matching the claim (F1 >= 0.8) and the claim keeps and loses at least 0.8
of the behaviour (the bar a circuit claim is held to); for ``none``, the share in which
no component stands out. The answer is the set when its confidence is at least 0.5,
``none`` when copying is absent and that confidence is at least 0.5, ``unknown``
otherwise (copying present but carried by no component that stands out alone).
Attribution patching ranks candidates first and is reported as a cross-check; the
decision rests on the ablations.

A mechanistic plan is a :class:`MechanisticPlan`: its steps, the cells they run, its
markdown and its conclusion read from the judging cell. Another kind of mechanistic
task (layers that recall facts, a direction) is another such plan.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

PROMPTS = 32  # prompt pairs; the bootstrap resamples these
LENGTH = 12  # words said once before the repeat
PAIRS = 8  # prompt pairs attribution patching averages over
RESAMPLES = 1000
PASS = 0.8  # the F1 and faithfulness a circuit claim is held to

# The judging cell's figures as the conclusion's evidence names them.
FIGURES = {
    "gain": "copying gain {} nats",
    "null": "null {} nats",
    "share": "equal share {}",
    "p_present": "copying present in {} of resamples",
    "support": "share of resamples selecting each component {}",
    "attribution_agrees": "F1 with the attribution ranking {}",
    "kept": "kept {}",
    "lost": "lost {}",
    "faithfulness": "faithfulness {}",
}
# What the conclusion's confidence counts, by its claim (the module docstring's bootstrap).
CONFIDENCE = {
    "named": f"the share of resamples in which copying is present, the chosen set is within F1 "
    f"{PASS:.2f} of the claim, and the claim is faithful (keeps and loses at least {PASS:.2f})",
    "none": "the share of resamples in which no component stands out",
}

# What the judging cell prints: the procedure, as the module docstring states it.
PROCEDURE = " ".join(" ".join((__doc__ or "").split("\n\n")[1:4]).split())


@dataclass(frozen=True)
class MechanisticPlan:
    """One kind of mechanistic task: the experiments in order, what each needs, why it
    runs, the code of its cells, the markdown around them, and the arguments of
    ``conclude`` read from the evidence (its last step's cell prints the verdict)."""

    kind: str
    steps: tuple[str, ...]
    needs: Mapping[str, tuple[str, ...]]
    why: Mapping[str, str]
    code: Callable[[str, dict[str, dict[str, Any]], int], str]
    plan_note: Callable[[], str]
    procedure: str  # the stated rule, the notebook's "How I judge" note
    summary_note: Callable[[dict[str, dict[str, Any]], dict[str, str]], str]
    conclusion: Callable[[dict[str, dict[str, Any]]], dict[str, Any]]


# -- statistics -------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _resampled(values: Sequence[float], idx: Sequence[int]) -> float:
    return sum(values[i] for i in idx) / len(idx)


def f1(claimed: Sequence[str], other: Sequence[str]) -> float:
    """F1 overlap of two component sets (1 when both are empty)."""
    a, b = set(claimed), set(other)
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0


def _selection(
    gain: float, repeated: Mapping[str, float], unrepeated: Mapping[str, float]
) -> tuple[list[str], float, float]:
    """(the components that stand out, the null's largest effect, the equal share)."""
    null = max((abs(v) for v in unrepeated.values()), default=0.0)
    share = gain / max(len(repeated), 1)
    if gain <= null:
        return [], null, share  # no copying to carry
    bar = max(null, share)
    return [c for c, v in repeated.items() if v > bar], null, share


def faithfulness(confirm: Mapping[str, Sequence[float]], idx: Sequence[int] | None = None) -> dict:
    """``{"kept", "lost", "faithfulness"}`` of the confirm cell's per-prompt scores
    (``clean``, ``everything`` ablated, ``without`` the set, the set ``alone``), over
    the prompts ``idx`` (default: all); None where there is no behaviour to keep."""
    idx = list(range(len(confirm["clean"]))) if idx is None else idx
    m = {k: _resampled(confirm[k], idx) for k in ("clean", "everything", "without", "alone")}
    total = m["clean"] - m["everything"]
    if total < 0.01:
        return {"kept": None, "lost": None, "faithfulness": None}
    kept = min(1.0, max(0.0, (m["alone"] - m["everything"]) / total))
    lost = min(1.0, max(0.0, (m["clean"] - m["without"]) / total))
    faithful = round(min(kept, lost), 4)
    return {"kept": round(kept, 4), "lost": round(lost, 4), "faithfulness": faithful}


@dataclass
class Scan:
    """The per-component ablation effects and what stands out (means over prompts)."""

    gain: float
    repeated: dict[str, float]  # mean log-probability removed on the repeated prompts
    unrepeated: dict[str, float]  # ... on the unrepeated prompts: the null
    null: float  # the null's largest effect
    share: float  # the copying gain / N
    selected: list[str]
    support: dict[str, float]  # share of resamples in which each component stands out

    def table(self, limit: int = 16) -> str:
        bar = max(self.null, self.share)
        rows = [
            f"copying gain {self.gain:.3f} nats; null (largest effect on unrepeated text) "
            f"{self.null:.3f}; equal share {self.share:.3f}; a component must remove > {bar:.3f}",
            f"{'component':>10} {'repeated':>9} {'unrepeated':>10} {'support':>8}",
        ]
        ranked = sorted(self.repeated, key=lambda c: -self.repeated[c])
        for c in ranked[:limit]:
            mark = "  <- stands out" if c in self.selected else ""
            rows.append(
                f"{c:>10} {self.repeated[c]:9.3f} {self.unrepeated[c]:10.3f} "
                f"{self.support[c]:8.3f}{mark}"
            )
        if len(ranked) > limit:
            rows.append(f"({len(ranked) - limit} more, each removing less)")
        return "\n".join(rows)

    def record(self) -> dict[str, Any]:
        """The ablation cell's evidence dict (compact: the notebook keeps the rest)."""
        top = sorted(self.repeated, key=lambda c: -self.repeated[c])[:8]
        return {
            "technique": "ablate",
            "selected": self.selected,
            "gain": round(self.gain, 4),
            "null": round(self.null, 4),
            "share": round(self.share, 4),
            "top": [[c, round(self.repeated[c], 4), round(self.support[c], 3)] for c in top],
        }


def _resamples(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(n) for _ in range(n)] for _ in range(RESAMPLES)]


def stand_out(
    gains: Sequence[float],
    repeated: Mapping[str, Sequence[float]],
    unrepeated: Mapping[str, Sequence[float]],
    seed: int = 0,
) -> Scan:
    """Which components stand out, by the rule of the module docstring, from per-prompt
    copying gains and per-prompt log-probability removed by ablating each component."""
    if not gains or not repeated:
        raise ValueError("stand_out needs per-prompt gains and at least one component's effects")
    means = {c: _mean(v) for c, v in repeated.items()}
    nulls = {c: _mean(unrepeated[c]) for c in repeated}
    selected, null, share = _selection(_mean(gains), means, nulls)
    counts = dict.fromkeys(repeated, 0)
    for idx in _resamples(len(gains), seed):
        chosen, _, _ = _selection(
            _resampled(gains, idx),
            {c: _resampled(v, idx) for c, v in repeated.items()},
            {c: _resampled(unrepeated[c], idx) for c in repeated},
        )
        for c in chosen:
            counts[c] += 1
    support = {c: counts[c] / RESAMPLES for c in repeated}
    return Scan(_mean(gains), means, nulls, null, share, selected, support)


@dataclass
class Verdict:
    """The claim, its confidence, why, and the figures it was decided from."""

    answer: str  # the components joined, "none" or "unknown"
    components: list[str]
    confidence: float
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The judging cell's evidence dict: the autopilot concludes with it."""
        return {
            "technique": "judging",
            "answer": self.answer,
            "components": self.components,
            "confidence": self.confidence,
            "reason": self.reason,
            "figures": self.figures,
        }


def verdict(
    gains: Sequence[float],
    repeated: Mapping[str, Sequence[float]],
    unrepeated: Mapping[str, Sequence[float]],
    confirm: Mapping[str, Any] | None,
    seed: int = 0,
    attributed: Sequence[str] = (),
) -> Verdict:
    """The conclusion the measurements support, by the procedure of the module docstring.

    ``confirm`` is the confirm cell's dict (its ``set`` and per-prompt scores), None
    where it did not run; ``attributed`` ranks components by attribution (cross-check).
    """
    scan = stand_out(gains, repeated, unrepeated, seed)
    chosen = scan.selected
    # The joint ablations count only when they were of the set the rule selects.
    joint = confirm if confirm and chosen and list(confirm.get("set") or []) == chosen else None
    faith = faithfulness(joint) if joint is not None else {}
    present = named = empty = 0
    for idx in _resamples(len(gains), seed + 1):
        gain = _resampled(gains, idx)
        picked, null, _ = _selection(
            gain,
            {c: _resampled(v, idx) for c, v in repeated.items()},
            {c: _resampled(unrepeated[c], idx) for c in repeated},
        )
        present += gain > null
        empty += not picked
        if joint is not None and gain > null and f1(picked, chosen) >= PASS:
            again = faithfulness(joint, idx)["faithfulness"]
            named += again is not None and again >= PASS
    p_present, p_named, p_none = present / RESAMPLES, named / RESAMPLES, empty / RESAMPLES
    cross = list(attributed[: len(chosen)]) if chosen else []
    figures = {
        "gain": round(scan.gain, 4),
        "null": round(scan.null, 4),
        "share": round(scan.share, 4),
        "p_present": p_present,
        "support": {c: scan.support[c] for c in chosen},
        **({"attribution_agrees": round(f1(cross, chosen), 3)} if cross else {}),
        **{k: v for k, v in faith.items() if v is not None},
    }
    if chosen and joint is None:
        reason = "the candidate set was not ablated jointly, so its faithfulness is unknown"
        return Verdict("unknown", [], 0.0, reason, figures)
    if chosen and p_named >= 0.5:
        reason = (
            f"{len(chosen)} components stand out of the null ({scan.null:.3f} nats) and the "
            f"equal share ({scan.share:.3f}); together they keep {faith.get('kept')} and lose "
            f"{faith.get('lost')} of the copying"
        )
        return Verdict(", ".join(chosen), chosen, round(p_named, 3), reason, figures)
    if chosen:
        reason = f"a candidate set stands out but holds in only {p_named:.2f} of resamples"
        return Verdict("unknown", [], round(1 - p_named, 3), reason, figures)
    if p_present < 0.5 and p_none >= 0.5:
        reason = (
            f"copying gains {scan.gain:.3f} nats, within the null ({scan.null:.3f}); no "
            "component's effect stands out of it"
        )
        return Verdict("none", [], round(p_none, 3), reason, figures)
    reason = (
        f"the model copies (gain {scan.gain:.3f} nats) but no single component stands out: "
        "the work is spread"
    )
    return Verdict("unknown", [], round(1 - p_present, 3), reason, figures)


class _Judged(Protocol):
    answer: str
    confidence: float
    reason: str
    figures: dict[str, Any]


def figures_text(figures: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """A verdict's figures as readable text, e.g. ``kept 0.97, lost 1.00``: ``labels`` names
    each figure, ``{}`` where its value goes (a figure it does not name is named by its key)."""
    return ", ".join(
        labels.get(key, key.replace("_", " ") + " {}").format(_figure(value))
        for key, value in figures.items()
    )


def _figure(value: object) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}: {_figure(v)}" for k, v in value.items()) + ")"
    if isinstance(value, float):  # two decimals, or two significant digits where that reads 0
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
    return str(value)


def two_decimals(text: str) -> str:
    """``text`` with every decimal number as the figures show them (``keep 0.9703 and lose 1.0``
    reads ``keep 0.97 and lose 1.00``): a verdict's reason is worded in the kernel, at the
    precision its judging cell prints, and is kept as printed there."""
    return re.sub(r"\d+\.\d+", lambda number: _figure(float(number.group())), text)


def evidence_text(
    found: Mapping[str, Any], labels: Mapping[str, str], counts: Mapping[str, str]
) -> str:
    """``conclude``'s evidence from a judging cell's verdict: its reason, its figures, and what
    its confidence counts (``counts`` says it for a ``named`` claim and for ``none``)."""
    figures = figures_text(found.get("figures") or {}, labels)
    answer = found.get("answer", "unknown")
    counted = None if answer == "unknown" else counts.get("none" if answer == "none" else "named")
    return (
        f"{two_decimals(str(found.get('reason', '')))}."
        + (f" Figures: {figures}." if figures else "")
        + (f" Confidence: {counted}." if counted else "")
    )


def judging_table(found: _Judged) -> str:
    """A mechanistic plan's verdict as its judging cell prints it (every plan's)."""
    rows = [f"{k}: {v}" for k, v in found.figures.items()]
    rows += [f"answer: {found.answer}", f"confidence: {found.confidence}", f"why: {found.reason}"]
    return "\n".join(rows)


# -- cells ------------------------------------------------------------------------------------


def _lit(value: object) -> str:
    return json.dumps(value)


def copying_cell(seed: int) -> str:
    return (
        "# The behaviour: in-context copying. Random one-token words, then the same words\n"
        "# again, cut before one: only the earlier occurrence predicts it. Each prompt's\n"
        "# control is the same second half after *other* random words (nothing to copy),\n"
        "# with the same target word.\n"
        "import random\n\n"
        "from scribe_tui.techniques import ablate_components\n\n\n"
        "def one_token_words(model, tokenizer):\n"
        "    '''Lower-case words the tokenizer reads as one token, and every component.'''\n"
        "    from scribe_tui.techniques.components import format_components, layout\n\n"
        "    special = set(tokenizer.all_special_ids)\n"
        "    found = set()\n"
        "    for token in range(len(tokenizer)):\n"
        "        word = tokenizer.decode([token]).strip()\n"
        "        if token in special or not (word.isalpha() and word.islower()):\n"
        "            continue\n"
        "        if len(tokenizer(' ' + word, add_special_tokens=False).input_ids) == 1:\n"
        "            found.add(word)\n"
        "    return sorted(found), format_components(layout(model).all())\n\n\n"
        "words, components = client.run(one_token_words)\n"
        f"rng = random.Random({seed})\n"
        "repeated, unrepeated, targets = [], [], []\n"
        f"for _ in range({PROMPTS}):\n"
        f"    span = rng.sample(words, {LENGTH})\n"
        "    other = rng.sample([w for w in words if w not in span], len(span))\n"
        "    cut = rng.randrange(1, len(span))\n"
        "    # A space before every word, the first too: one token per word, so a prompt and\n"
        "    # its control have the same length in tokens.\n"
        "    repeated.append(' ' + ' '.join(span + span[:cut]))\n"
        "    unrepeated.append(' ' + ' '.join(other + span[:cut]))\n"
        "    targets.append(span[cut])\n"
        "# The metric every ablation below uses (the target's log-probability), with nothing\n"
        "# ablated: the copying gain is how much the earlier occurrence raises it.\n"
        "clean = {name: client.run(ablate_components, prompts=texts, components=[],\n"
        "                          target=targets)['clean']\n"
        "         for name, texts in (('repeated', repeated), ('unrepeated', unrepeated))}\n"
        "gains = [r - u for r, u in zip(clean['repeated'], clean['unrepeated'])]\n"
        "for i in range(2):\n"
        "    print(f'{repeated[i]!r} -> {targets[i]!r}: log p {clean[\"repeated\"][i]:.2f}, '\n"
        "          f'unrepeated {clean[\"unrepeated\"][i]:.2f}')\n"
        "gain = sum(gains) / len(gains)\n"
        "raised = sum(g > 0 for g in gains) / len(gains)\n"
        "print(f'{len(words)} one-token words, {len(components)} components; copying gain '\n"
        "      f'{gain:.3f} nats (raised on {raised:.0%} of {len(gains)} prompts)')\n"
        "{'technique': 'copying', 'prompts': len(gains), 'components': len(components),\n"
        " 'gain': round(gain, 4), 'raised': round(raised, 3)}\n"
    )


def patterns_cell(seed: int) -> str:
    return (
        "# Attention patterns on random tokens repeated once: how much each head attends to\n"
        "# the previous token, to the token after the earlier copy of the current one\n"
        "# (induction) and to that earlier copy itself (duplicate-token). Copying by induction\n"
        "# is a previous-token head feeding an induction head.\n"
        "import matplotlib.pyplot as plt\n\n"
        "from scribe_tui.techniques import head_scores\n\n"
        f"patterns = client.run(head_scores, length=24, samples=8, seed={seed})\n"
        "heads = [c for c in components if not c.startswith('mlp')]\n"
        "n_layers = 1 + max(int(h[1:].split('H')[0]) for h in heads)\n"
        "n_heads = 1 + max(int(h.split('H')[1]) for h in heads)\n"
        "fig, axes = plt.subplots(1, 3, figsize=(10, 2.6), constrained_layout=True)\n"
        "for ax, (score, values) in zip(axes, patterns['scores'].items()):\n"
        "    grid = [[values[f'L{l}H{h}'] for h in range(n_heads)] for l in range(n_layers)]\n"
        "    image = ax.imshow(grid, vmin=0, vmax=1, cmap='viridis', aspect='auto')\n"
        "    ax.set(title=score.replace('_', '-'), xlabel='head', ylabel='layer',\n"
        "           xticks=range(n_heads), yticks=range(n_layers))\n"
        "fig.colorbar(image, ax=list(axes), label='mean attention')\n"
        "plt.show()\n"
        "top = {score: [[h, round(v, 3)] for h, v in rows[:3]]\n"
        "       for score, rows in patterns['top'].items()}\n"
        "print('strongest heads per pattern:', top)\n"
        "{'technique': 'patterns', 'top': top}\n"
    )


def attribution_cell() -> str:
    return (
        "# Candidates by attribution patching: a first-order estimate of how much each head\n"
        "# and MLP changes the target's log-probability when its activation on a repeated\n"
        "# prompt is replaced by its value on the unrepeated one (gradient x difference).\n"
        "from scribe_tui.techniques import attribution_patching\n\n"
        f"pairs = list(zip(repeated, unrepeated, targets))[:{PAIRS}]\n"
        "estimates = dict.fromkeys(components, 0.0)\n"
        "for clean_text, other_text, target in pairs:\n"
        "    found = client.run(attribution_patching, clean_prompt=clean_text,\n"
        "                       corrupted_prompt=other_text, target=target)\n"
        "    for name, value in found['components'].items():\n"
        "        estimates[name] += value / len(pairs)\n"
        "# Most negative first: the patch that would cost copying most.\n"
        "attributed = sorted(components, key=estimates.get)\n"
        "print('estimated change when patched, most needed first:',\n"
        "      [(c, round(estimates[c], 3)) for c in attributed[:8]])\n"
        "{'technique': 'attribution', 'candidates': attributed[:8]}\n"
    )


def ablate_cell(seed: int) -> str:
    return (
        "# Confirming by ablation, one component at a time: every head and MLP, mean-ablated,\n"
        "# on the repeated prompts and, as the null, on the unrepeated ones where nothing can\n"
        "# be copied. 'Removed' is the log-probability of the target the ablation takes away.\n"
        "# The rule (stated in the method cell): a component stands out when it removes more\n"
        "# than any component removes from unrepeated text and more than an equal share of\n"
        "# the copying gain; support is the share of bootstrap resamples where it does.\n"
        "import matplotlib.pyplot as plt\n\n"
        "from scribe_tui.autopilot.circuit import stand_out\n"
        "from scribe_tui.techniques import ablate_components\n\n"
        "removed = {'repeated': {}, 'unrepeated': {}}\n"
        "for name in components:\n"
        "    for kind, texts in (('repeated', repeated), ('unrepeated', unrepeated)):\n"
        "        found = client.run(ablate_components, prompts=texts, components=[name],\n"
        "                           target=targets, method='mean')\n"
        "        removed[kind][name] = [-change for change in found['change']]\n"
        f"scan = stand_out(gains, removed['repeated'], removed['unrepeated'], seed={seed})\n"
        "print(scan.table())\n"
        "fig, ax = plt.subplots(figsize=(max(6, len(components) * 0.35), 3))\n"
        "xs = range(len(components))\n"
        "ax.bar([x - 0.2 for x in xs], [scan.repeated[c] for c in components], 0.4,\n"
        "       label='repeated')\n"
        "ax.bar([x + 0.2 for x in xs], [scan.unrepeated[c] for c in components], 0.4,\n"
        "       label='unrepeated (null)')\n"
        "ax.axhline(max(scan.null, scan.share), color='k', ls='--', lw=1, label='bar')\n"
        "ax.set_xticks(list(xs), components, rotation=90, fontsize=7)\n"
        "ax.set_ylabel('log p removed (nats)')\n"
        "ax.legend(fontsize=8)\n"
        "plt.show()\n"
        "scan.record()\n"
    )


def confirm_cell(candidates: list[str]) -> str:
    tested = "the candidate set" if candidates else "the strongest component alone (none stood out)"
    return (
        f"# Confirming {tested} jointly, with the same mean ablation: is copying lost\n"
        "# when it is ablated, and kept when everything else is? Both are measured against\n"
        "# ablating every component (faithfulness = min(kept, lost)).\n"
        "from scribe_tui.autopilot.circuit import faithfulness\n"
        "from scribe_tui.techniques import ablate_components\n\n"
        + (
            f"candidate_set = {_lit(candidates)}\n"
            if candidates
            else "candidate_set = [max(components, key=scan.repeated.get)]\n"
        )
        + "\n\ndef ablated(chosen, complement, texts=repeated):\n"
        "    return client.run(ablate_components, prompts=texts, components=chosen,\n"
        "                      target=targets, method='mean', complement=complement)\n\n\n"
        "everything = ablated([], True)\n"
        "confirm = {'set': candidate_set, 'clean': everything['clean'],\n"
        "           'everything': everything['ablated_scores'],\n"
        "           'without': ablated(candidate_set, False)['ablated_scores'],\n"
        "           'alone': ablated(candidate_set, True)['ablated_scores']}\n"
        "faith = faithfulness(confirm)\n"
        "on_null = ablated(candidate_set, False, unrepeated)['mean_change']\n"
        "print(f\"{candidate_set}: clean {everything['mean_clean']:.3f}, everything ablated \"\n"
        "      f\"{everything['mean_ablated']:.3f}; {faith}\")\n"
        "print(f'the set ablated on unrepeated text changes log p by {on_null:.3f}')\n"
        "{'technique': 'confirm', 'set': candidate_set, **faith,\n"
        " 'null_change': round(on_null, 4)}\n"
    )


def judging_cell(seed: int) -> str:
    return (
        "# Judging, by the procedure above, from the per-prompt measurements of the cells\n"
        "# above: the candidate set, its bootstrap confidence, and the claim.\n"
        "from scribe_tui.autopilot.circuit import judging_table, verdict\n\n"
        "found = verdict(gains, removed['repeated'], removed['unrepeated'],\n"
        "                globals().get('confirm'), "
        f"seed={seed}, attributed=globals().get('attributed', []))\n"
        "print(judging_table(found))\n"
        "found.record()\n"
    )


# -- markdown ---------------------------------------------------------------------------------


def plan_note() -> str:
    return (
        "## Plan\n\n"
        "The task asks which components (attention heads, MLPs) implement in-context "
        "copying. I will:\n\n"
        "1. **Measure the behaviour** on my own prompts: random words repeated, each paired "
        "with the same words after unrelated ones (nothing to copy).\n"
        "2. **Attention patterns** of every head (previous-token, induction, "
        "duplicate-token), as a heat map.\n"
        "3. **Attribution patching** from repeated to unrepeated prompts: first candidates.\n"
        "4. **Ablate every head and MLP** alone on both prompt sets; keep what stands out "
        "of the null.\n"
        "5. **Confirm** the candidate set jointly: faithfulness (kept and lost).\n"
        "6. **Judge** by a stated rule, with a bootstrap confidence; `none` if nothing "
        "stands out."
    )


def summary_note(evidence: dict[str, dict[str, Any]], missing: dict[str, str]) -> str:
    """The distilled claim from the judging cell's verdict, the evidence and the limits."""
    found = evidence.get("judging") or {}
    copying, scan = evidence.get("copying") or {}, evidence.get("ablate") or {}
    confirm, patterns = evidence.get("confirm") or {}, evidence.get("patterns") or {}
    answer = found.get("answer", "unknown")
    if answer == "none":
        claim = f"**No copying circuit.** {found.get('reason', '')}."
    elif answer == "unknown":
        claim = f"**I cannot tell.** {found.get('reason', 'the judging cell did not run')}."
    else:
        claim = (
            f"**The copying circuit is {answer}.** {found.get('reason', '')}; faithfulness "
            f"{confirm.get('faithfulness')}."
        )
    lines = [
        "## Summary\n",
        two_decimals(
            f"1. {claim} Confidence {found.get('confidence', 0.0)} (bootstrap over prompts)."
        ),
        f"2. Copying gain {copying.get('gain')} nats on {copying.get('prompts')} prompts; "
        f"strongest ablations: {scan.get('top', [])[:5]}.",
        f"3. Attention patterns (strongest heads): {patterns.get('top', {})}.",
        "4. Limits: one behaviour metric (the repeated word's log-probability) on random "
        "words; components are judged alone and as one set, not path by path.",
    ]
    if missing:
        lines.append(f"5. Did not run: {', '.join(f'{s} ({why})' for s, why in missing.items())}.")
    return "\n".join(lines)


def _code(step: str, evidence: dict[str, dict[str, Any]], seed: int) -> str:
    chosen = [str(c) for c in (evidence.get("ablate") or {}).get("selected") or []]
    return {
        "copying": lambda: copying_cell(seed),
        "patterns": lambda: patterns_cell(seed),
        "attribution": attribution_cell,
        "ablate": lambda: ablate_cell(seed),
        "confirm": lambda: confirm_cell(chosen),
        "judging": lambda: judging_cell(seed),
    }[step]()


def conclusion(evidence: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The arguments of ``conclude`` (answer, confidence, evidence, and the components
    of a named circuit) from the judging cell's verdict."""
    found = evidence.get("judging")
    if not found:
        return {"answer": "unknown", "confidence": 0.0, "evidence": "no verdict was judged"}
    components = [str(c) for c in found.get("components") or []]
    arguments = {
        "answer": str(found.get("answer") or "unknown"),
        "confidence": float(found.get("confidence") or 0.0),
        "evidence": evidence_text(found, FIGURES, CONFIDENCE),
    }
    return {**arguments, **({"components": components} if components else {})}


PLAN = MechanisticPlan(
    kind="circuit",
    steps=("copying", "patterns", "attribution", "ablate", "confirm", "judging"),
    needs={
        "patterns": ("copying",),
        "attribution": ("copying",),
        "ablate": ("copying",),
        "confirm": ("ablate",),
        "judging": ("ablate",),
    },
    why={
        "copying": "First: measuring the copying behaviour on my own prompts.",
        "patterns": "Attention patterns of every head, as a heat map.",
        "attribution": "Attribution patching: first candidates.",
        "ablate": "Ablating every head and MLP alone, against a null.",
        "confirm": "Confirming the candidate set jointly: faithfulness.",
        "judging": "Judging the evidence.",
    },
    code=_code,
    plan_note=plan_note,
    procedure=PROCEDURE,
    summary_note=summary_note,
    conclusion=conclusion,
)
