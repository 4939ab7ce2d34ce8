"""Regenerate ``examples/induction.ipynb``: the induction story on a bundled organism.

    python examples/make_induction.py            # writes examples/induction.ipynb
    python examples/make_induction.py --organism induction-2 --out control.ipynb  # the control

The notebook is a real investigation: this script plays a fixed sequence of tool calls
(the markdown and code cells below) through scribe-tui's own loop, with the same sealed
kernel, model host and receipt as ``scribe-tui investigate``, so ``scribe-tui reproduce
examples/induction.ipynb`` re-executes it like any recorded run. The cells are fixed; what
the prose says about the results (which heads, how much, the claimed circuit) is read from
the cells' outputs as they come, never written in advance: on the control, the same
script writes a control's story and concludes ``none``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scribe_tui.agent.launch import RunSettings, Workbench
from scribe_tui.agent.loop import InvestigationConfig
from scribe_tui.agent.provider import TurnRequest
from scribe_tui.agent.scripted import SESSION, ScriptedProvider, tool
from scribe_tui.organisms.registry import list_organisms

ORGANISM = "induction-1"
CONTROL = "induction-2"
ROLE_MIN = 0.25  # mean attention on the key a role names, for the prose to call it a role
HERE = Path(__file__).resolve().parent
TASK = "find the attention heads that let this model copy repeated text (worked example)"

INTRO = """\
# Induction heads in a two-layer transformer: a worked example

**The question.** `organism:{organism}` is a tiny attention-only transformer (2 layers of 4
heads) trained on synthetic text of made-up words. A model that has learned to *copy*
predicts the next word of a repeated span from its first occurrence. Does this one, and
which heads do it?

The classic answer (Olsson et al., 2022) is a two-head circuit: a **previous-token head**
writes into each position which token came just before it, and a later **induction head**
uses that to look up the earlier occurrence of the current token and attend to the token
*after* it, copying it into the prediction. This notebook tests that story with the causal
techniques in `scribe_tui.techniques`, each run where the model lives with `client.run`:

1. the behaviour: does the model copy at all?
2. attention patterns: per-head previous-token and induction scores;
3. ablation: which heads the behaviour needs (mean ablation, one head at a time);
4. attribution: which heads write the answer directly (direct logit attribution), and
   whether a first-order estimate (attribution patching) agrees with real patching;
5. composition: path patching from the previous-token head into layer 1;
6. the circuit's faithfulness: what it keeps alone and what is lost without it,
   on fresh prompts too.

Every number below is printed by a cell; `scribe-tui reproduce` on this notebook re-runs them
all against a fresh sealed model host and reports any drift."""

INFO = """\
info = client.info()
layers = info["layers"]
print(f"{info['model']}: {info['architecture']}, {layers} layers, "
      f"{info['parameters']:,} parameters, {info['device']} {info['dtype']}")"""

PROBE_INTRO = """\
## 1. The behaviour: does it copy?

A probe the model cannot solve without copying: spans of 10 random words, repeated, cut
before a word of the repeat. The word's log-probability there is compared with the same
word at its first occurrence, where nothing earlier predicts it (about `-log 400` for a
400-word vocabulary). `ablate_components` with no components ablated is just the target's
log-probability, measured the way every ablation below measures it."""

PROBE = """\
import random

from scribe_tui.techniques import ablate_components


def vocabulary(model, tokenizer):
    \"\"\"The tokenizer's words (this organism's tokenizer is word-level), specials left out.\"\"\"
    special = set(tokenizer.all_special_ids)
    return [tokenizer.decode([i]).strip() for i in range(len(tokenizer)) if i not in special]


def repeat_probe(words, n, span, seed):
    \"\"\"n prompts: a span of random words, then its start again, cut before span[cut].
    Also the same target at its first occurrence, and a corrupted twin of each prompt for
    patching: the same length and the same ending, but its first copy replaced by fresh
    words, so nothing earlier predicts the target.\"\"\"
    rng = random.Random(seed)
    prompts, firsts, corrupted, targets = [], [], [], []
    for _ in range(n):
        chosen = rng.sample(words, span + span)
        first, fresh = chosen[:span], chosen[span:]
        cut = rng.randrange(2, span)
        prompts.append(" ".join(first + first[:cut]))
        firsts.append(" ".join(first[:cut]))
        corrupted.append(" ".join(fresh + first[:cut]))
        targets.append(first[cut])
    return prompts, firsts, corrupted, targets


words = client.run(vocabulary)
prompts, firsts, corrupted, targets = repeat_probe(words, n=40, span=10, seed=0)
repeat = client.run(ablate_components, prompts=prompts, components=[], target=targets)
first = client.run(ablate_components, prompts=firsts, components=[], target=targets)
gain = repeat["mean_clean"] - first["mean_clean"]
better = sum(r > f for r, f in zip(repeat["clean"], first["clean"], strict=True))
print(f"{len(words)} words; e.g. {prompts[0]!r} -> {targets[0]!r}")
print(f"mean log p(target) at its first occurrence: {first['mean_clean']:.3f}")
print(f"mean log p(target) in the repeat:           {repeat['mean_clean']:.3f}")
print(f"copying gain: {gain:.3f} nats; the repeat helps on {better} of {len(prompts)} prompts")"""

SCORES_INTRO = """\
## 2. Attention patterns

`head_scores` runs sequences of random tokens repeated once and reads each head's mean
attention on the key a role names: the token just before (previous-token), the token after
the current token's earlier occurrence (induction), or that occurrence itself
(duplicate-token). Scores are in [0, 1]; a head that attends uniformly over 30-odd keys
scores about 0.03."""

SCORES = """\
import matplotlib.pyplot as plt
import numpy as np

from scribe_tui.techniques import head_scores

scores = client.run(head_scores, length=24, samples=8, seed=0)["scores"]
heads = 1 + max(int(name.split("H")[1]) for name in scores["induction"])


def grid(values):
    \"\"\"Per-head values as a [layer, head] array, rounded for the plot.\"\"\"
    cells = [[values[f"L{layer}H{head}"] for head in range(heads)] for layer in range(layers)]
    return np.round(np.array(cells, dtype=float), 2)


def heatmap(ax, values, title, cmap, vmin=None, vmax=None):
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(heads), yticks=range(layers))
    for (layer, head), value in np.ndenumerate(values):
        red, green, blue, _ = image.cmap(image.norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark cells
        ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    return image


fig, axes = plt.subplots(1, 3, figsize=(10, 2.4), constrained_layout=True)
for ax, name in zip(axes, ("previous_token", "induction", "duplicate_token"), strict=True):
    image = heatmap(ax, grid(scores[name]), name.replace("_", "-"), "Blues", 0, 1)
fig.colorbar(image, ax=axes, shrink=0.8, label="mean attention")
plt.show()

previous_head = max(scores["previous_token"], key=scores["previous_token"].get)

for name in scores:
    ranked = sorted(scores[name], key=lambda head: -scores[name][head])[:3]
    shown = ", ".join(f"{head} ({scores[name][head]:.2f})" for head in ranked)
    print(f"top {name.replace('_', '-')} heads: {shown}")"""

ABLATION_INTRO = """\
## 3. Ablation: what the behaviour needs

Patterns say what a head attends to, not whether the model uses it. `ablation_scan` replaces
one head at a time with its mean activation over the probe (mean ablation keeps the
activation on-distribution, unlike zeroing it) and reports the change in the target's
log-probability. The scale is set by ablating *everything*: `total` is what all components
together contribute. A head is counted as part of the circuit when it alone removes more
than an equal share of that total (`total / N` for the `N` components scanned): a rule with
no tuned constant."""

ABLATION = """\
from scribe_tui.techniques import ablation_scan

scan = client.run(ablation_scan, prompts=prompts, target=targets, method="mean")
everything = client.run(ablate_components, prompts=prompts, components=[], target=targets,
                        method="mean", complement=True)
clean, floor = everything["mean_clean"], everything["mean_ablated"]
total = clean - floor
share = total / len(scan["changes"])
removed = {name: -change for name, change in scan["changes"].items()}
# Without a copying gain there is no behaviour to explain, so no circuit either.
circuit = [name for name in scan["ranked"] if removed[name] > share] if gain >= 1 else []
if circuit:  # from here on: the circuit's head with the highest previous-token score
    previous_head = max(circuit, key=lambda name: scores["previous_token"].get(name, 0.0))

fig, ax = plt.subplots(figsize=(4.2, 2.4), constrained_layout=True)
image = heatmap(ax, grid(removed), "log p removed (mean ablation)", "Reds", 0)
fig.colorbar(image, ax=ax, label="nats")
plt.show()

print(f"clean {clean:.3f}, everything ablated {floor:.3f}: total {total:.3f} nats; "
      f"equal share {share:.3f} over {len(removed)} components")
for name in scan["ranked"][:6]:
    print(f"  {name:<5} removes {removed[name]:6.3f}{'  > share' if name in circuit else ''}")
print("MLPs remove", ", ".join(f"{n} {removed[n]:.3f}" for n in removed if n.startswith("mlp")))
print("circuit by the equal-share rule:", ", ".join(circuit))
print(f"previous-token head for the cells below: {previous_head} "
      f"(score {scores['previous_token'][previous_head]:.2f})")"""

ATTRIBUTION_INTRO = """\
## 4. Attribution: direct effects, and a cheap estimate against the real thing

**Direct logit attribution** splits the target's logit into what each head writes straight
into the residual stream (through the final norm, frozen, and the unembedding); the parts add
up to the logit exactly. A head that matters by ablation but writes little directly must act
*through* later heads.

**Attribution patching** estimates, from one forward and one backward pass, how the metric
would move if each head's activation were patched from a corrupted prompt (the first copy
replaced by fresh words: the same ending, nothing earlier to copy from). The real patching
is a resample ablation from those same corrupted prompts (`ablation_scan(method="resample",
reference=corrupted)`), one run per head; the scatter shows how far the linear estimate can
be trusted here."""

ATTRIBUTION = """\
from scribe_tui.techniques import attribution_patching, direct_logit_attribution

sample = range(12)
dla = {name: 0.0 for name in removed}
for i in sample:
    parts = client.run(direct_logit_attribution, prompt=prompts[i], target=targets[i])
    assert abs(parts["total"] - parts["logit"]) < 1e-3  # the parts add up to the logit
    for name, value in parts["components"].items():
        dla[name] += value / len(sample)

estimate = {name: 0.0 for name in removed}
for i in sample:
    patched = client.run(attribution_patching, clean_prompt=prompts[i],
                         corrupted_prompt=corrupted[i], target=targets[i])
    for name, value in patched["components"].items():
        estimate[name] += value / len(sample)
actual = client.run(ablation_scan, prompts=[prompts[i] for i in sample],
                    target=[targets[i] for i in sample], method="resample",
                    reference=[corrupted[i] for i in sample])["changes"]

names = [name for name in removed if not name.startswith("mlp")]
x = np.round([actual[n] for n in names], 2)
y = np.round([estimate[n] for n in names], 2)
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), constrained_layout=True)
image = heatmap(axes[0], grid(dla), "direct logit attribution (logits)", "RdBu_r", -2.5, 2.5)
fig.colorbar(image, ax=axes[0])
axes[1].axline((0, 0), slope=1, color="grey", lw=0.8, ls="--")
axes[1].scatter(x, y, color=["tab:red" if n in circuit else "tab:blue" for n in names])
for name, a, b in zip(names, x, y, strict=True):
    axes[1].annotate(name, (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
axes[1].set(title="attribution patching vs patching", xlabel="patched: change in log p",
            ylabel="estimate")
plt.show()

print("direct logit attribution, mean over", len(sample), "prompts:")
for name in sorted(names, key=lambda n: -abs(dla[n])):
    print(f"  {name:<5} {dla[name]:7.3f}   patched {actual[name]:7.3f}"
          f"   estimated {estimate[name]:7.3f}")
corr = float(np.corrcoef(x, y)[0, 1])
print(f"estimate vs patching over the heads: correlation {corr:.2f}")"""

PATH_INTRO = """\
## 5. Composition: does the previous-token head act through layer 1?

Path patching sends the previous-token head's corrupted activation along one path only,
everything else kept clean: straight to the logits, or into the later heads' inputs (the
queries, keys and values they read from the residual stream). If the head is the first half
of an induction circuit, its effect goes through layer 1, not to the logits."""

PATH = """\
from scribe_tui.techniques import path_patching


def layer_of(name):
    return int(name[1:].split("H")[0])


receivers = [name for name in names if layer_of(name) > layer_of(previous_head)]
paths = {"logits": "logits", "later heads": receivers} if receivers else {"logits": "logits"}
effects = dict.fromkeys(paths, 0.0)
for i in sample:
    for key, to in paths.items():
        result = client.run(path_patching, clean_prompt=prompts[i], corrupted_prompt=corrupted[i],
                            sender=previous_head, receivers=to, target=targets[i])
        effects[key] += result["effect"] / len(sample)
print(f"receivers: {', '.join(receivers) or f'none ({previous_head} is in the last layer)'}")
for key, value in effects.items():
    print(f"{previous_head} -> {key:<11} change in log p: {value:7.3f}")"""

FAITH_INTRO = """\
## 6. The circuit and its faithfulness

Two questions about the claimed circuit `C`, both with mean ablation and on the scale of
`total` (everything ablated = 0, the whole model = 1):

- **kept**: ablate every head *except* `C`: how much of the behaviour does `C` alone keep?
- **lost**: ablate `C` alone: how much is lost?

Faithfulness is the smaller of the two: a circuit must both suffice and be needed. The same
numbers on fresh prompts (another seed and span length) check that the claim was not fitted
to the probe it was found on. The previous-token head alone is shown for comparison."""

FAITH = """\
def faithfulness(components, prompts, targets):
    \"\"\"(kept, lost) of components, each clipped to [0, 1], and the four scores behind them.\"\"\"
    kw = dict(prompts=prompts, target=targets, method="mean")
    alone = client.run(ablate_components, components=components, complement=True, **kw)
    without = client.run(ablate_components, components=components, **kw)
    floor = client.run(ablate_components, components=[], complement=True, **kw)["mean_ablated"]
    clean, total = alone["mean_clean"], alone["mean_clean"] - floor
    scores = [clean, alone["mean_ablated"], without["mean_ablated"], floor]
    if total < 0.01:  # no behaviour: nothing to keep or to lose
        return float("nan"), float("nan"), scores
    kept = min(1.0, max(0.0, (alone["mean_ablated"] - floor) / total))
    lost = min(1.0, max(0.0, (clean - without["mean_ablated"]) / total))
    return kept, lost, scores


fresh_prompts, _, _, fresh_targets = repeat_probe(words, n=40, span=14, seed=1)
claims = [claim for claim in (circuit, [previous_head]) if claim]
rows = {}
for label, ps, ts in (("probe", prompts, targets), ("fresh", fresh_prompts, fresh_targets)):
    for claim in claims:
        rows[label, ", ".join(claim)] = faithfulness(claim, ps, ts)

_, _, bars = rows["probe", ", ".join(claims[0])]
fig, ax = plt.subplots(figsize=(5, 2.4), constrained_layout=True)
labels = ["whole model", "C only", "C ablated", "all ablated"]
ax.barh(labels, np.round(bars, 2), color=["black", "tab:red", "tab:blue", "grey"])
ax.invert_yaxis()  # top to bottom in the order of the labels
ax.set(xlabel="mean log p(target)", title=f"C = {', '.join(claims[0])} (probe prompts)")
plt.show()

for (label, claim), (kept, lost, _) in rows.items():
    print(f"{label:<6} {claim:<24} kept {kept:.3f}  lost {lost:.3f}  "
          f"faithfulness {min(kept, lost):.3f}")"""


def _last_output(request: TurnRequest) -> str:
    """The text of the newest tool result in the conversation (what the last cell printed)."""
    for message in reversed(request.messages):
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for block in reversed(content):
            if block.get("type") == "tool_result":
                parts = block.get("content")
                if isinstance(parts, str):
                    return parts
                return "\n".join(p.get("text", "") for p in parts or [] if p.get("type") == "text")
    raise RuntimeError("no tool result yet")


def _find(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:  # the cells changed, or a cell failed: stop rather than guess
        raise RuntimeError(f"expected {pattern!r} in the cell's output:\n{text}")
    return found


class Story:
    """The turns of the worked example on ``organism``; prose about results is read from
    the outputs, so on a control the same script tells a control's story."""

    def __init__(self, organism: str) -> None:
        self.organism = organism
        self.facts: dict[str, Any] = {}

    def turns(self) -> list[Any]:
        return [
            [tool("start_new_session", experiment_name="induction")],
            [tool("init_session", session_id=SESSION)],  # the session id is known from here on
            self._step(INTRO.format(organism=self.organism), INFO),
            self._step(PROBE_INTRO, PROBE),
            self._after(self._behaviour, SCORES_INTRO, SCORES),
            self._after(self._patterns, ABLATION_INTRO, ABLATION),
            self._after(self._ablation, ATTRIBUTION_INTRO, ATTRIBUTION),
            self._after(self._attribution, PATH_INTRO, PATH),
            self._after(self._path, FAITH_INTRO, FAITH),
            self._conclude,
        ]

    @staticmethod
    def _step(markdown: str, code: str) -> list[dict[str, Any]]:
        return [
            tool("add_markdown", content=markdown, session_id=SESSION),
            tool("execute_code", code=code, session_id=SESSION),
        ]

    def _after(
        self, read: Callable[[str], str], markdown: str, code: str
    ) -> Callable[[TurnRequest], list[dict[str, Any]]]:
        """A turn that first writes what the previous cell showed, then the next step."""

        def turn(request: TurnRequest) -> list[dict[str, Any]]:
            return [
                tool("add_markdown", content=read(_last_output(request)), session_id=SESSION),
                *self._step(markdown, code),
            ]

        return turn

    def _behaviour(self, out: str) -> str:
        gain = float(_find(r"copying gain: (-?[\d.]+) nats", out).group(1))
        helped = _find(r"helps on (\d+) of (\d+) prompts", out)
        self.facts["gain"] = gain
        if gain < 1:
            return (
                f"The earlier occurrence changes the target's log-probability by {gain:.2f} "
                f"nats on average (better on {helped.group(1)} of {helped.group(2)} prompts): "
                "this model does not copy. The cells below look anyway, as a check that they "
                "find no circuit where there is no behaviour."
            )
        return (
            f"The model copies: the earlier occurrence raises the target's log-probability by "
            f"**{gain:.2f} nats** on average (the word becomes about {math.exp(gain):.0f} times "
            f"likelier), on {helped.group(1)} of {helped.group(2)} prompts. So there is "
            "something to explain."
        )

    def _patterns(self, out: str) -> str:
        previous = _find(
            r"^top previous-token heads: (L(\d+)H\d+) \(([\d.]+)\), (L\d+H\d+) \(([\d.]+)\)", out
        )
        induction = _find(r"^top induction heads: (L(\d+)H\d+ \(([\d.]+)\).*)$", out)
        duplicate = float(_find(r"^top duplicate-token heads: L\d+H\d+ \(([\d.]+)\)", out).group(1))
        prev, prev_layer, prev_score = previous.group(1), int(previous.group(2)), previous.group(3)
        roles = float(prev_score) >= ROLE_MIN and float(induction.group(3)) >= ROLE_MIN
        self.facts.update(previous=prev, roles=roles)
        if not roles:
            return (
                f"No head has a clear role: the highest previous-token score is {prev_score} "
                f"({prev}), the highest induction score {induction.group(3)}, the highest "
                f"duplicate-token score {duplicate:.2f}. The cells below still use {prev} as "
                "the previous-token candidate."
            )
        second, second_score = previous.group(4), float(previous.group(5))
        if second_score < 0.8 * float(prev_score):
            text = (
                f"One head stands out as a previous-token head: **{prev}** puts "
                f"{float(prev_score):.0%} of its attention on the token just before. "
            )
        else:
            text = (
                f"Two heads look like previous-token heads: **{prev}** and **{second}** put "
                f"{float(prev_score):.0%} and {second_score:.0%} of their attention on the "
                "token just before. "
            )
        text += f"The highest induction scores: {induction.group(1)}. "
        if int(induction.group(2)) > prev_layer:
            text += (
                "That is the layout of an induction circuit: an induction head must know, at "
                "each earlier position, which token came before it, and only a head in an "
                f"earlier layer can have written that there ({prev} is in layer {prev_layer}). "
            )
        if duplicate < ROLE_MIN:
            text += f"No head is a duplicate-token head (the highest score is {duplicate:.2f}). "
        return text + "Patterns are suggestive only; the ablations decide."

    def _ablation(self, out: str) -> str:
        found = _find(r"^circuit by the equal-share rule: (.*)$", out).group(1).strip()
        circuit = found.split(", ") if found else []
        total = float(_find(r"total (-?[\d.]+) nats", out).group(1))
        share = float(_find(r"equal share (-?[\d.]+)", out).group(1))
        removed = {
            m.group(1): float(m.group(2))
            for m in re.finditer(r"^  (L\d+H\d+)\s+removes\s+(-?[\d.]+)", out, re.MULTILINE)
        }
        mlps = [float(v) for v in re.findall(r"mlp\d+ (-?[\d.]+)", out)]
        self.facts.update(circuit=circuit, share=share, removed=removed, total=total)
        text = f"Together the components carry {total:.2f} nats. "
        chosen = _find(r"^previous-token head for the cells below: (L\d+H\d+)", out).group(1)
        if chosen != self.facts["previous"]:
            text += (
                f"Of the previous-token heads, the circuit holds {chosen}, not "
                f"{self.facts['previous']} (the highest score): the cells below follow "
                f"{chosen}. "
            )
            self.facts["previous"] = chosen
        if not circuit:
            return (
                text + "With no copying to explain, no head is a circuit: there is none to claim."
            )
        head = circuit[0]
        if head == self.facts["previous"]:
            text += f"The behaviour needs the previous-token head {head} most: ablating it "
        else:
            text += f"The behaviour needs {head} most: ablating it "
        text += f"removes {removed[head]:.2f} nats. "
        if circuit[1:]:
            text += f"Beyond it, {', '.join(circuit[1:])} each remove more than an equal share. "
        if all(abs(v) < 0.01 for v in mlps):
            text += "The MLPs remove nothing: this model is attention-only (its MLPs are zero). "
        return text + f"Candidate circuit: **{', '.join(circuit)}**."

    def _attribution(self, out: str) -> str:
        prev = self.facts["previous"]
        rows = {
            m.group(1): tuple(float(m.group(i)) for i in (2, 3, 4))
            for m in re.finditer(
                r"^  (L\d+H\d+)\s+(-?[\d.]+)\s+patched\s+(-?[\d.]+)\s+estimated\s+(-?[\d.]+)",
                out,
                re.MULTILINE,
            )
        }
        corr = _find(r"correlation (\S+)", out).group(1)
        direct, patched, estimated = rows[prev]
        writers = [name for name, row in rows.items() if row[0] > 0.5]
        text = (
            f"The heads that write more than half a logit of the answer directly: "
            f"{', '.join(writers) or 'none'}. {prev} writes {direct:.2f} logits of it "
            f"directly; patching it alone changes the log-probability by {patched:.2f}. "
        )
        if abs(patched) >= 0.5 and abs(direct) < 0.25 * abs(patched):
            text += "Its effect must go through later heads. "
        text += f"Attribution patching against real patching, over the heads: correlation {corr}. "
        if abs(patched) >= 0.5 and abs(estimated) < 0.5 * abs(patched):
            text += (
                f"Yet for {prev} the estimate is only {estimated:.2f}: a first-order estimate "
                "misses most of an effect this large (corrupting the previous-token head moves "
                "the layer-1 heads' attention far from where the gradient was taken). Use "
                "attribution patching to rank candidates cheaply, and confirm with real "
                "patching, as here."
            )
        return text

    def _path(self, out: str) -> str:
        prev = self.facts["previous"]
        direct = _find(r"-> logits\s+change in log p:\s+(-?[\d.]+)", out).group(1)
        logits = round(float(direct), 2) + 0.0  # + 0.0: a rounded -0.0 reads as 0.00
        later = re.search(r"-> later heads\s+change in log p:\s+(-?[\d.]+)", out)
        text = (
            f"Corrupting {prev} along its direct path to the logits changes the target's "
            f"log-probability by {logits:.2f}"
        )
        self.facts["path"] = f"{prev} -> logits {logits:.2f}"
        if later is None:
            return text + f"; no head comes after it ({prev} is in the last layer)."
        heads = float(later.group(1))
        self.facts["path"] += f", -> later heads {heads:.2f}"
        text += f"; along its path into the later heads, by {heads:.2f}. "
        if abs(heads) >= 0.5 and abs(heads) > 5 * abs(logits):
            text += (
                f"So {prev} works through layer 1: it writes which token came before, and the "
                "layer-1 heads use that to find the earlier occurrence (the two-step induction "
                "mechanism)."
            )
        return text

    def _conclude(self, request: TurnRequest) -> list[dict[str, Any]]:
        out = _last_output(request)
        circuit, prev = self.facts["circuit"], self.facts["previous"]
        if not circuit:
            evidence = (
                f"No copying to explain: an earlier occurrence changes the target's "
                f"log-probability by {self.facts['gain']:.2f} nats, and all heads and MLPs "
                f"together carry {self.facts['total']:.2f} nats of it. "
                + ("" if self.facts["roles"] else "No head has a clear attention role. ")
                + f"Path patching: {self.facts['path']} (change in log p)."
            )
            closing = f"**No circuit.** {evidence}"
            claim = {"answer": "none", "confidence": 0.9}
        else:
            closing, evidence = self._found(out, circuit, prev)
            claim = {"answer": ", ".join(circuit), "components": circuit}
            kept, lost = self.facts["faithfulness"]
            claim["confidence"] = round(min(0.95, 0.5 + min(kept, lost) / 2), 2)
        return [
            tool("add_markdown", content=closing, session_id=SESSION),
            tool("conclude", evidence=evidence, session_id=SESSION, **claim),
        ]

    def _found(self, out: str, circuit: list[str], prev: str) -> tuple[str, str]:
        """The closing markdown and the evidence when there is a circuit."""
        claim = ", ".join(circuit)
        rows = {
            (m.group(1), m.group(2).strip()): (float(m.group(3)), float(m.group(4)))
            for m in re.finditer(
                r"^(probe|fresh)\s+(.+?)\s+kept ([\d.]+)\s+lost ([\d.]+)", out, re.MULTILINE
            )
        }
        kept, lost = self.facts["faithfulness"] = rows["probe", claim]
        fresh_kept, fresh_lost = rows["fresh", claim]
        prev_kept, prev_lost = rows["probe", prev]
        summary = (
            f"The circuit {claim} alone keeps {kept:.0%} of the behaviour and ablating it "
            f"loses {lost:.0%} (faithfulness {min(kept, lost):.2f}); on fresh prompts "
            f"{fresh_kept:.0%} and {fresh_lost:.0%}. The previous-token head {prev} alone "
            f"keeps {prev_kept:.0%} and its ablation loses {prev_lost:.0%}."
        )
        share, removed = self.facts["share"], self.facts["removed"]
        narrowest = min(circuit, key=lambda name: removed[name] - share)
        limits = "Limits: every ablation here is a mean ablation over the probe's own prompts."
        if removed[narrowest] - share < 0.25 * share:
            limits += (
                f" {narrowest} passes the equal-share rule only narrowly ({removed[narrowest]:.2f} "
                f"nats against a share of {share:.2f}): the layer-1 heads share the work, and "
                "where the circuit's edge falls depends on the probe."
            )
        closing = (
            f"{summary}\n\n**What was found.** {prev} is a previous-token head; the layer-1 "
            "heads of the circuit read what it writes and copy the word that followed the "
            "current word's earlier occurrence (induction); path patching showed that "
            f"{prev} acts through them. {limits}\n\n"
            f"**A control.** `organism:{CONTROL}` has the same architecture but was trained on "
            "text without repeated spans: a method that finds a circuit there finds what it "
            "looks for, not what is there. This notebook's script runs the same cells on it "
            "(and writes its prose from the outputs, as here):\n\n"
            f"    python examples/make_induction.py --organism {CONTROL} --out control.ipynb\n\n"
            "There the copying gain is about zero, no head has a clear role, and the "
            "investigation concludes `none`."
        )
        evidence = f"{summary} Path patching: {self.facts['path']} (change in log p)."
        return closing, evidence


async def record(out: Path, organism: str = ORGANISM) -> Path:
    """Run the story through the real loop in a scratch folder; copy the notebook to ``out``.

    The scratch folder (with the transcript) is kept when the run does not conclude.
    """
    scratch = Path(tempfile.mkdtemp(prefix="make_induction_"))
    provider = ScriptedProvider(
        Story(organism).turns(), name="script", model="examples/make_induction.py"
    )
    settings = RunSettings(
        task=TASK,
        agent="script",
        model=f"organism:{organism}",
        device="cpu",  # recorded, so a reproduction anywhere runs on the same device
        notebooks_dir=scratch,
        experiment_name="induction",
        config=InvestigationConfig(max_turns=20, checkpoint_every=0),
    )
    bench = await Workbench.open(settings, provider)
    try:
        assert bench.investigation is not None
        outcome = await bench.investigation.run()
    finally:
        await bench.close()
    if outcome.reason != "concluded" or outcome.notebook_path is None:
        raise SystemExit(f"the example did not conclude ({outcome.reason}): see {scratch}")
    shutil.copyfile(outcome.notebook_path, out)
    shutil.rmtree(scratch)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE / "induction.ipynb", help="default: %(default)s"
    )
    kinds = sorted(info.name for info in list_organisms() if info.kind == "induction")
    parser.add_argument(
        "--organism",
        default=ORGANISM,
        choices=kinds,
        help=f"default {ORGANISM}; {CONTROL}: a control",
    )
    args = parser.parse_args(argv)
    path = asyncio.run(record(args.out, args.organism))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
