"""The autopilot's recall plan: the layers whose MLPs recall what a model knows of a subject.

Its fact prompts come from the model itself: texts it writes from its start token, cut
into sentences; the sentences of the commonest length give the format, the position whose
words vary most (the last excepted) is the *subject* and the last word the *answer*. Each
distinct sentence, cut before its answer, is a prompt, and the model's own top next token
its answer. A prompt is *recalled* when that answer is likelier than every other token
together (probability above one half). The prompts the model is surest of are measured.
The *recall gain* of a prompt is the answer's log-probability clean minus with the
subject's token noised (Gaussian noise, three times the embeddings' spread, averaged over
draws, as in causal tracing): what knowing the subject adds.

Each layer's MLP is mean-ablated alone (its output replaced, at every position, by its
mean over the prompts there). *Removed* is the answer's log-probability it takes away on
the clean prompts; the *null* is what the same ablation takes away with the subject
noised, where nothing about the subject can be recalled. A layer *stands out* when its
ablation removes more than both the most that any layer's ablation takes away in the null
and an equal share of what ablating every MLP at once removes. Recall is *present* when
most prompts are recalled (the median answer probability is above one half) and the mean
recall gain exceeds that largest null removal. Causal tracing (noise the subject, restore
one layer's residual stream at one position) is drawn alongside: where the subject's
facts sit.

Confidence comes from a bootstrap over prompts: for named layers, the share of resamples
in which recall is present and the claim holds by the bar a layer claim is held to: the
layer whose ablation removes most there is named, and the rule selects more than half of
the named layers there (the scorer's precision); for ``none``, the share in which recall
is absent. The answer is the layers when that confidence is at least 0.5, ``none`` when
recall is absent with confidence at least 0.5, ``unknown`` otherwise (recall present but
no layer stands out alone).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scribe_tui.autopilot.circuit import MechanisticPlan, evidence_text, two_decimals

PROMPTS = 24  # the prompts measured; the bootstrap resamples these
TRACED = 2  # prompts causal tracing is drawn for
TEXTS = 16  # texts sampled to read the format from
RESAMPLES = 1000
# The judging cell's figures as the conclusion's evidence names them.
FIGURES = {
    "median_answer_p": "median answer probability {}",
    "gain": "recall gain {} nats",
    "null": "null {} nats",
    "share": "equal share {}",
    "removed": "removed by each layer's MLP {}",
    "p_absent": "recall absent in {} of resamples",
}
# What the conclusion's confidence counts, by its claim (the module docstring's bootstrap).
CONFIDENCE = {
    "named": "the share of resamples in which recall is present, the layer whose ablation "
    "removes most is named, and more than half the named layers are selected",
    "none": "the share of resamples in which recall is absent",
}

PROCEDURE = " ".join(" ".join((__doc__ or "").split("\n\n")[1:4]).split())


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _median(values: Sequence[float]) -> float:
    ranked = sorted(values)
    n = len(ranked)
    return (ranked[(n - 1) // 2] + ranked[n // 2]) / 2 if n else 0.0


def _resampled(values: Sequence[float], idx: Sequence[int]) -> float:
    return sum(values[i] for i in idx) / len(idx)


def _selection(
    gain: float,
    answer_p: Sequence[float],
    removed: Mapping[int, float],
    null: Mapping[int, float],
    total: float,
) -> tuple[bool, list[int], float, float]:
    """(recall present, the layers that stand out, the null's largest effect, equal share)."""
    # One-sided: an ablation that *raises* the answer with the subject noised (its mean
    # output standing in for noise) takes nothing away that could pass for recall.
    bar_null = max(0.0, *null.values())
    share = total / max(len(removed), 1)
    present = _median(answer_p) > 0.5 and gain > bar_null
    if not present:
        return False, [], bar_null, share
    bar = max(bar_null, share)
    return True, [layer for layer, v in removed.items() if v > bar], bar_null, share


@dataclass
class Verdict:
    """The claim, its confidence, why, and the figures it was decided from."""

    answer: str
    layers: list[int]
    confidence: float
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "technique": "judging",
            "answer": self.answer,
            "layers": self.layers,
            "confidence": self.confidence,
            "reason": self.reason,
            "figures": self.figures,
        }


def verdict(
    answer_p: Sequence[float],
    gains: Sequence[float],
    removed: Mapping[int, Sequence[float]],
    null: Mapping[int, Sequence[float]],
    total: Sequence[float],
    seed: int = 0,
) -> Verdict:
    """The conclusion by the module's procedure, from per-prompt measurements: the
    answer's probability, the recall gain, the log-probability each layer's MLP ablation
    removes clean (``removed``) and subject-noised (``null``), and every MLP at once
    (``total``)."""
    if not gains or not removed:
        raise ValueError("verdict needs per-prompt gains and each layer's ablation effects")
    everything = range(len(gains))
    present, chosen, bar_null, share = _selection(
        _mean(gains),
        answer_p,
        {k: _mean(v) for k, v in removed.items()},
        {k: _mean(v) for k, v in null.items()},
        _mean(total),
    )
    rng = random.Random(seed)
    held = absent = 0
    for _ in range(RESAMPLES):
        idx = [rng.choice(everything) for _ in everything]
        means = {k: _resampled(v, idx) for k, v in removed.items()}
        here, picked, _, _ = _selection(
            _resampled(gains, idx),
            [answer_p[i] for i in idx],
            means,
            {k: _resampled(v, idx) for k, v in null.items()},
            _resampled(total, idx),
        )
        absent += not here
        top = max(means, key=means.__getitem__)
        held += here and top in chosen and len(set(picked) & set(chosen)) > len(chosen) / 2
    p_held, p_absent = held / RESAMPLES, absent / RESAMPLES
    figures: dict[str, Any] = {
        "median_answer_p": round(_median(answer_p), 4),
        "gain": round(_mean(gains), 4),
        "null": round(bar_null, 4),
        "share": round(share, 4),
        "removed": {k: round(_mean(v), 4) for k, v in removed.items()},
        "p_absent": p_absent,
    }
    if chosen and p_held >= 0.5:
        reason = (
            f"recall is present (gain {_mean(gains):.3f} nats over the null {bar_null:.3f}); "
            f"the MLPs of layers {chosen} each remove more than the null and the equal share "
            f"({share:.3f})"
        )
        names = ", ".join(str(k) for k in chosen)
        return Verdict(f"layers {names}", chosen, round(p_held, 3), reason, figures)
    if chosen:
        reason = f"layers {chosen} stand out, but in only {p_held:.2f} of resamples"
        return Verdict("unknown", [], round(1 - p_held, 3), reason, figures)
    if not present and p_absent >= 0.5:
        reason = (
            f"no fact is recalled: the median answer probability is {_median(answer_p):.3f} "
            f"and the recall gain {_mean(gains):.3f} nats against the null {bar_null:.3f}"
        )
        return Verdict("none", [], round(p_absent, 3), reason, figures)
    reason = "recall is present but no layer's MLP stands out alone: the work is spread"
    return Verdict("unknown", [], round(1 - p_absent, 3), reason, figures)


# -- cells ------------------------------------------------------------------------------------


def facts_cell(seed: int) -> str:
    return (
        "# The behaviour: what does the model know? Its own texts from the start token show\n"
        "# the format: the sentences of the commonest length; the position whose words vary\n"
        "# most (the last excepted) is the subject, the last word the answer. Each distinct\n"
        "# sentence cut before its answer is a prompt; the answer is the model's top token.\n"
        "from collections import Counter\n\n"
        "import matplotlib.pyplot as plt\n\n"
        "from scribe_tui.autopilot.recall import PROMPTS, TEXTS\n\n\n"
        "def own_texts(model, tokenizer, n, length, seed):\n"
        "    '''``n`` texts of ``length`` tokens the model writes (temperature 1).'''\n"
        "    import torch\n\n"
        "    start = tokenizer('', return_tensors='pt').input_ids\n"
        "    if start.shape[1] == 0:\n"
        "        start = torch.tensor([[tokenizer.bos_token_id]])\n"
        "    ids = start.repeat(n, 1)\n"
        "    generator = torch.Generator().manual_seed(seed)\n"
        "    with torch.no_grad():\n"
        "        for _ in range(length):\n"
        "            probs = model(ids).logits[:, -1].float().softmax(-1)\n"
        "            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], 1)\n"
        "    return [tokenizer.decode(row[start.shape[1]:], skip_special_tokens=True)\n"
        "            for row in ids]\n\n\n"
        "def answers(model, tokenizer, prompts):\n"
        "    '''Each prompt's top next token and its probability.'''\n"
        "    import torch\n\n"
        "    ids = tokenizer(prompts, return_tensors='pt').input_ids\n"
        "    with torch.no_grad():\n"
        "        probs = model(ids).logits[:, -1].float().softmax(-1)\n"
        "    top = probs.max(-1)\n"
        "    return [(tokenizer.decode([int(t)]).strip(), float(p))\n"
        "            for t, p in zip(top.indices, top.values)]\n\n\n"
        f"texts = client.run(own_texts, n=TEXTS, length=36, seed={seed})\n"
        "# Whole sentences only: a text's last piece may be cut short.\n"
        "sentences = [s.split() for t in texts for s in t.split('.')[:-1] if s.split()]\n"
        "size = Counter(len(s) for s in sentences).most_common(1)[0][0]\n"
        "shaped = [s for s in sentences if len(s) == size]\n"
        "variety = [len({s[i] for s in shaped}) for i in range(size - 1)]\n"
        "slot = max(range(size - 1), key=variety.__getitem__)\n"
        "candidates = sorted({' '.join(s[:-1]) for s in shaped})\n"
        "found = client.run(answers, prompts=candidates)\n"
        "ranked = sorted(zip(candidates, found), key=lambda c: -c[1][1])[:PROMPTS]\n"
        "prompts = [p for p, _ in ranked]\n"
        "targets = [a for _, (a, _) in ranked]\n"
        "answer_p = [p for _, (_, p) in ranked]\n"
        "subjects = [p.split()[slot] for p in prompts]\n"
        "print('the model writes:', texts[0][:80])\n"
        "print(f'format: {size} words, subject at position {slot} (distinct words per position: '\n"
        "      f'{variety}); {len(candidates)} prompts, the surest {len(prompts)} measured')\n"
        "for p, a, q in list(zip(prompts, targets, answer_p))[:3]:\n"
        "    print(f'{p!r} -> {a!r} ({q:.3f})')\n"
        "fig, ax = plt.subplots(figsize=(6, 2.6))\n"
        "ax.hist([q for _, q in found], bins=20, range=(0, 1))\n"
        "ax.axvline(0.5, color='k', ls='--', lw=1)\n"
        "ax.set(xlabel=\"probability of the model's answer\", ylabel='prompts')\n"
        "plt.show()\n"
        "{'technique': 'facts', 'prompts': len(candidates), 'measured': len(prompts),\n"
        " 'slot': slot, 'recalled': round(sum(q > 0.5 for _, q in found) / len(found), 3),\n"
        " 'median_answer_p': round(sorted(answer_p)[len(answer_p) // 2], 4)}\n"
    )


def tracing_cell(seed: int) -> str:
    return (
        "# Causal tracing (Meng et al.): noise the subject's token, restore one layer's output\n"
        "# (the residual stream) at one position from the clean run, and read how much of the\n"
        "# answer's probability comes back: where the subject's facts sit, layer by layer.\n"
        "import matplotlib.pyplot as plt\n\n"
        "from scribe_tui.techniques import causal_tracing\n\n"
        "traces = [client.run(causal_tracing, prompt=p, subject=s, target=a, kind='hidden',\n"
        f"                     samples=4, seed={seed})\n"
        f"          for p, s, a in list(zip(prompts, subjects, targets))[:{TRACED}]]\n"
        "n_layers, n_positions = len(traces[0]['restored']), len(traces[0]['restored'][0])\n"
        "recovered = [[sum(t['restored'][l][i] for t in traces) / len(traces)\n"
        "              for i in range(n_positions)] for l in range(n_layers)]\n"
        "at_subject = traces[0]['subject_positions'][-1]\n"
        "curve = [row[at_subject] for row in recovered]\n"
        "fig, axes = plt.subplots(1, 2, figsize=(10, 2.8), constrained_layout=True)\n"
        "image = axes[0].imshow(recovered, cmap='viridis', aspect='auto', vmin=0, vmax=1)\n"
        "axes[0].set(title='residual restored: share recovered', xlabel='position',\n"
        "            ylabel='layer', xticks=range(n_positions), yticks=range(n_layers))\n"
        "axes[0].set_xticklabels(traces[0]['tokens'], rotation=45, fontsize=7)\n"
        "fig.colorbar(image, ax=axes[0])\n"
        "axes[1].plot(range(n_layers), curve, 'o-', label='subject token')\n"
        "axes[1].plot(range(n_layers), [row[-1] for row in recovered], 's-', label='last token')\n"
        "axes[1].legend(fontsize=7)\n"
        "axes[1].set(title='recovery curve', xlabel='layer', ylabel='share recovered',\n"
        "            xticks=range(n_layers))\n"
        "plt.show()\n"
        "last = [row[-1] for row in recovered]\n"
        "print('recovered restoring the subject token, per layer:', [round(v, 3) for v in curve])\n"
        "print('recovered restoring the last token, per layer:', [round(v, 3) for v in last])\n"
        "{'technique': 'tracing', 'at_subject': [round(v, 4) for v in curve],\n"
        " 'at_last': [round(v, 4) for v in last]}\n"
    )


def ablation_cell() -> str:
    return (
        "# Each layer's MLP mean-ablated alone (its output replaced by its mean over the\n"
        "# prompts at each position): the answer's log-probability removed on clean prompts,\n"
        "# and, as the null, with the subject noised (nothing to recall). Every MLP at once\n"
        "# gives the total the equal share divides.\n"
        "import matplotlib.pyplot as plt\n\n"
        "from scribe_tui.techniques.components import layout\n\n\n"
        "def answer_logprobs(model, tokenizer, prompts, targets, slot, ablate=(), noise=False,\n"
        "                    samples=4, seed=0):\n"
        "    '''Per prompt: the target's log-probability with the MLPs of ``ablate`` mean-\n"
        "    ablated, the subject token noised when ``noise`` (averaged over draws).'''\n"
        "    import torch\n\n"
        "    from scribe_tui.techniques.components import hooked\n"
        "    from scribe_tui.techniques.locate import unwrap\n\n"
        "    plan = layout(model)\n"
        "    ids = tokenizer(prompts, return_tensors='pt').input_ids\n"
        "    at = slot + (ids.shape[1] - len(prompts[0].split()))  # after any start token\n"
        "    wanted = torch.tensor([tokenizer.convert_tokens_to_ids(t) for t in targets])\n"
        "    means = {}\n\n"
        "    def keep(layer):\n"
        "        def edit(value):\n"
        "            means[layer] = value.detach().mean(0, keepdim=True)\n\n"
        "        return edit\n\n"
        "    n = len(plan.blocks)\n"
        "    with hooked(model, plan, mlps={l: keep(l) for l in range(n)}), torch.no_grad():\n"
        "        model(ids)\n"
        "    embed = unwrap(model).get_input_embeddings()\n"
        "    with torch.no_grad():\n"
        "        spread = float(embed.weight.float().std())\n"
        "    generator = torch.Generator().manual_seed(seed)\n"
        "    reps = samples if noise else 1\n"
        "    draws = torch.randn(reps, embed.weight.shape[1], generator=generator) * 3 * spread\n"
        "    batch = ids.repeat_interleave(reps, 0)\n\n"
        "    def noised(value):\n"
        "        value = value.clone()\n"
        "        value[:, at] += draws.repeat(len(prompts), 1).to(value.dtype)\n"
        "        return value\n\n"
        "    mlps = {l: (lambda v, l=l: means[l].expand_as(v).to(v.dtype)) for l in ablate}\n"
        "    outputs = [(embed, noised)] if noise else []\n"
        "    with hooked(model, plan, mlps=mlps, outputs=outputs), torch.no_grad():\n"
        "        logp = model(batch).logits[:, -1].float().log_softmax(-1)\n"
        "    picked = logp[torch.arange(len(batch)), wanted.repeat_interleave(reps)]\n"
        "    return picked.view(len(prompts), reps).mean(1).tolist()\n\n\n"
        "def run(**kw):\n"
        "    return client.run(answer_logprobs, prompts=prompts, targets=targets, slot=slot,\n"
        "                      **kw)\n\n\n"
        "clean, noised = run(), run(noise=True)\n"
        "gains = [c - n for c, n in zip(clean, noised)]\n"
        "n_layers = client.run(lambda model, tokenizer: len(layout(model).blocks))\n"
        "removed, null = {}, {}\n"
        "for layer in range(n_layers):\n"
        "    removed[layer] = [c - a for c, a in zip(clean, run(ablate=[layer]))]\n"
        "    null[layer] = [n - a for n, a in zip(noised, run(ablate=[layer], noise=True))]\n"
        "total = [c - a for c, a in zip(clean, run(ablate=list(range(n_layers))))]\n"
        "\n\ndef mean(values):\n"
        "    return sum(values) / len(values)\n\n\n"
        "print(f'recall gain {mean(gains):.3f} nats; every MLP ablated removes '\n"
        "      f'{mean(total):.3f}')\n"
        "for layer in range(n_layers):\n"
        "    print(f'mlp{layer}: removes {mean(removed[layer]):.3f} clean, '\n"
        "          f'{mean(null[layer]):.3f} with the subject noised (null)')\n"
        "fig, ax = plt.subplots(figsize=(5, 2.6))\n"
        "xs = range(n_layers)\n"
        "ax.bar([x - 0.2 for x in xs], [mean(removed[x]) for x in xs], 0.4, label='clean')\n"
        "ax.bar([x + 0.2 for x in xs], [mean(null[x]) for x in xs], 0.4,\n"
        "       label='subject noised (null)')\n"
        "ax.axhline(mean(total) / n_layers, color='k', ls='--', lw=1, label='equal share')\n"
        "ax.set(xlabel='layer (MLP ablated)', ylabel='log p removed (nats)', xticks=list(xs))\n"
        "ax.legend(fontsize=7)\n"
        "plt.show()\n"
        "{'technique': 'mlp_ablation', 'gain': round(mean(gains), 4),\n"
        " 'total': round(mean(total), 4),\n"
        " 'removed': {k: round(mean(v), 4) for k, v in removed.items()},\n"
        " 'null': {k: round(mean(v), 4) for k, v in null.items()}}\n"
    )


def judging_cell(seed: int) -> str:
    return (
        "# Judging, by the procedure above: the layers, the bootstrap confidence, the claim.\n"
        "from scribe_tui.autopilot.circuit import judging_table\n"
        "from scribe_tui.autopilot.recall import verdict\n\n"
        f"found = verdict(answer_p, gains, removed, null, total, seed={seed})\n"
        "print(judging_table(found))\n"
        "found.record()\n"
    )


# -- markdown ---------------------------------------------------------------------------------


def plan_note() -> str:
    return (
        "## Plan\n\n"
        "The task asks which layers recall the facts the model knows about a subject. I "
        "will:\n\n"
        "1. **Elicit facts** from the model itself: its own texts give the format; the "
        "sentences cut before their last word are prompts, its top answers the facts.\n"
        "2. **Causal tracing**: noise the subject, restore each layer's MLP at each "
        "position; the recovery per layer, drawn.\n"
        "3. **Ablate each layer's MLP** on the clean prompts and, as the null, with the "
        "subject noised.\n"
        "4. **Judge** by a stated rule with a bootstrap confidence: the layers that stand "
        "out, or `none` if no fact is recalled."
    )


def summary_note(evidence: dict[str, dict[str, Any]], missing: dict[str, str]) -> str:
    """The distilled claim from the judging cell's verdict, the evidence and the limits."""
    found = evidence.get("judge_recall") or {}
    facts, tracing = evidence.get("facts") or {}, evidence.get("tracing") or {}
    ablation = evidence.get("mlp_ablation") or {}
    answer = found.get("answer", "unknown")
    if answer == "none":
        claim = f"**No facts recalled.** {found.get('reason', '')}."
    elif answer == "unknown":
        claim = f"**I cannot tell.** {found.get('reason', 'the judging cell did not run')}."
    else:
        claim = f"**The MLPs of {answer} recall the facts.** {found.get('reason', '')}."
    lines = [
        "## Summary\n",
        two_decimals(
            f"1. {claim} Confidence {found.get('confidence', 0.0)} (bootstrap over prompts)."
        ),
        f"2. {facts.get('prompts')} prompts from the model's own sentences; "
        f"{facts.get('recalled')} of them recalled (answer probability above one half).",
        f"3. Recall gain {ablation.get('gain')} nats; MLP ablation removes "
        f"{ablation.get('removed', {})} (null {ablation.get('null', {})}); causal tracing "
        f"recovers {tracing.get('at_subject', [])} restoring the subject token per layer.",
        "4. Limits: one answer token per fact, the format read from the model's own texts; "
        "layers are judged one MLP at a time.",
    ]
    if missing:
        lines.append(f"5. Did not run: {', '.join(f'{s} ({why})' for s, why in missing.items())}.")
    return "\n".join(lines)


def _code(step: str, evidence: dict[str, dict[str, Any]], seed: int) -> str:
    return {
        "facts": lambda: facts_cell(seed),
        "tracing": lambda: tracing_cell(seed),
        "mlp_ablation": ablation_cell,
        "judge_recall": lambda: judging_cell(seed),
    }[step]()


def conclusion(evidence: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The arguments of ``conclude`` (answer, confidence, evidence, and the layers of a
    named claim) from the judging cell's verdict."""
    found = evidence.get("judge_recall")
    if not found:
        return {"answer": "unknown", "confidence": 0.0, "evidence": "no verdict was judged"}
    layers = [int(k) for k in found.get("layers") or []]
    arguments = {
        "answer": str(found.get("answer") or "unknown"),
        "confidence": float(found.get("confidence") or 0.0),
        "evidence": evidence_text(found, FIGURES, CONFIDENCE),
    }
    return {**arguments, **({"layers": layers} if layers else {})}


PLAN = MechanisticPlan(
    kind="recall",
    steps=("facts", "tracing", "mlp_ablation", "judge_recall"),
    needs={"tracing": ("facts",), "mlp_ablation": ("facts",), "judge_recall": ("mlp_ablation",)},
    why={
        "facts": "First: which facts does the model know? (its own sentences)",
        "tracing": "Causal tracing: where restoring an MLP brings the answer back.",
        "mlp_ablation": "Ablating each layer's MLP, against a null.",
        "judge_recall": "Judging the evidence.",
    },
    code=_code,
    plan_note=plan_note,
    procedure=PROCEDURE,
    summary_note=summary_note,
    conclusion=conclusion,
)
