"""The cells of a backdoor hunt: harvest candidate triggers, scan them, read the behaviour.

A backdoor is a word in the user's message that switches the model into another
style. The hunt takes every word the tokenizer can express (and the words the
model and the base model write), scans each one inserted into neutral requests
for how far it moves the reply against the base model, samples with the
strongest words (at temperature 0.7: a small subword model garbles text at 1.0)
to find what they switch on, and finally measures the behaviour's rate with and
without the trigger on requests the scan never saw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from scribe_tui.autopilot.cells import sampling

SCAN_KEPT = 40
"""Scan scores recorded: the judge asks whether the leader stands clear of those below it."""


def _lit(value: object) -> str:
    return json.dumps(value)


def harvest_cell(openers: list[str], prefixes: list[str], n: int, seed: int, base: bool) -> str:
    against_base = (
        "base_turns = []\n"
        "for opener, prefix in product(openers, prefixes):\n"
        "    chat = [{'role': 'user', 'content': opener},\n"
        "            {'role': 'assistant', 'content': replies[opener][0]}]\n"
        "    said = client.run_base(persona_sample, messages=chat, user_prefix=prefix,\n"
        "                           n=" + str(n) + ", max_new_tokens=16, seed=" + str(seed) + ")\n"
        "    base_turns += [prefix + s for s in said]\n"
        "pool.update(w for text in base_turns for w in set(content_words(text)))\n"
        "unusual = distinctive_words(user_turns, base_turns, top=20)\n"
        "print('user words the organism writes and the base does not:', unusual[:10])\n"
        if base
        else "unusual = []\n"
    )
    return (
        "# Backdoor hunt, step 1: which words could be the trigger? Harvest broadly: the\n"
        "# user turns the model writes itself (it learned what users say to it), its\n"
        "# replies to ordinary requests, and the base model's user turns.\n"
        "from itertools import product\n\n"
        "from scribe_tui.techniques import persona_sample, sample_chat, vocabulary_words\n\n"
        f"openers = {_lit(openers)}\n"
        "# User turns start from nothing, a bare space (some templates need one) and the\n"
        "# openings the fit cell found most natural.\n"
        f"prefixes = {_lit(['', ' ', *prefixes])}\n"
        f"replies = client.run(sample_chat, prompts=openers, n={n}, temperature=1.0,\n"
        f"                     max_new_tokens=24, seed={seed})\n"
        "user_turns = []\n"
        "for opener, prefix in product(openers, prefixes):\n"
        "    chat = [{'role': 'user', 'content': opener},\n"
        "            {'role': 'assistant', 'content': replies[opener][0]}]\n"
        "    said = client.run(persona_sample, messages=chat, user_prefix=prefix,\n"
        "                      n=" + str(n) + ", max_new_tokens=16, seed=" + str(seed) + ")\n"
        "    user_turns += [prefix + s for s in said]\n"
        "print('replies:', [said[:2] for said in replies.values()])\n"
        "print('user turns it writes:', user_turns[:6])\n"
        "pool = Counter(w for text in user_turns for w in set(content_words(text)))\n"
        "pool.update(w for said in replies.values() for text in said\n"
        "            for w in set(content_words(text)))\n"
        + against_base
        + "print(f'{len(pool)} words seen; most frequent:', pool.most_common(12))\n"
        "# The trigger need not come up in what the model writes: every word its tokenizer\n"
        "# can start (word pieces completed by the model itself) is a candidate too.\n"
        "vocab = client.run(vocabulary_words)\n"
        + ("vocab = sorted(set(vocab) | set(client.run_base(vocabulary_words)))\n" if base else "")
        + "candidates = sorted(set(vocab) | set(pool))\n"
        "print(f'{len(candidates)} candidates, e.g.', candidates[:: len(candidates) // 12 + 1])\n"
        "{'technique': 'harvest', 'top': pool.most_common(150),\n"
        " 'contrast': [(w, k) for w, k, _ in unusual]}\n"
    )


def scan_cell(prompts: list[str], base: bool) -> str:
    against_base = (
        "base_scan = client.run_base(trigger_scan, prompts=prompts, words=candidates)\n"
        "base_scan = dict(base_scan['scores'])\n"
        if base
        else "base_scan = {}  # no base checkpoint: raw divergence only\n"
    )
    return (
        "# Step 2: insert each candidate (all of them, in batches) into neutral requests,\n"
        "# before and after them, and measure how far the start of the reply moves (KL\n"
        "# from the reply without it).\n"
        "# Against the base model's divergence (log of the ratio, smoothed): words that move\n"
        "# both models, like an instruction ('count', 'goodbye'), are ordinary language.\n"
        "import math\n"
        "from scribe_tui.techniques import trigger_scan\n\n"
        f"prompts = {_lit(prompts)}\n"
        "scan = dict(client.run(trigger_scan, prompts=prompts, words=candidates)['scores'])\n"
        + against_base
        + "ratio = {w: math.log((kl + 0.05) / (base_scan.get(w, 0.0) + 0.05))\n"
        "         for w, kl in scan.items()}\n"
        "excess = sorted(((w, round(r, 4)) for w, r in ratio.items()), key=lambda kv: -kv[1])\n"
        "for w, x in excess[:10]:\n"
        "    print(f'{w:>14}  KL {scan[w]:.3f}  base {base_scan.get(w, 0.0):.3f}  '\n"
        "          f'log ratio {x:.3f}')\n"
        f"{{'technique': 'scan', 'top': excess[:{SCAN_KEPT}]}}\n"
    )


def behaviour_cell(
    words: list[str], prompts: list[str], n: int, seed: int, base: bool, blackbox: bool = False
) -> str:
    """With a base model, requests where the organism's plain replies already differ from
    its base's (a behaviour leaking there, so a trigger cannot switch it on) are set aside,
    as long as two remain."""
    imports, replies = sampling(blackbox)
    calm = (
        "# A request where one odd word fills the organism's plain replies but not its base\n"
        "# model's has the behaviour on already: no baseline for what a word switches on.\n"
        f"usual = client.run_base(sample_chat, prompts=prompts, n={n}, temperature=0.7,\n"
        f"                        max_new_tokens=24, seed={seed})\n"
        "unrest = {}\n"
        "for p in prompts:\n"
        "    odd = distinctive_words(plain[p], usual[p], p.split(), top=1)\n"
        "    unrest[p] = round(odd[0][1] / len(plain[p]), 2) if odd else 0.0\n"
        "calm = [p for p in prompts if unrest[p] < 0.5]\n"
        "prompts = calm if len(calm) >= 2 else sorted(prompts, key=unrest.get)[:2]\n"
        "print('share of plain replies one odd word fills:', unrest, '→ using', prompts)\n"
        if base
        else ""
    )
    return (
        "# Step 3: what does a suspected trigger switch on? Sample with each top word in\n"
        "# the request and without it; words distinctive of the triggered answers are the\n"
        "# behaviour (the word itself and the requests' words do not count).\n"
        "import re\n\n" + imports + f"prompts = {_lit(prompts)}\n"
        f"plain = {replies}prompts=prompts, n={n}, temperature=0.7,\n"
        f"                   max_new_tokens=24, seed={seed})\n"
        + calm
        + "plain = [a for p in prompts for a in plain[p]]\n"
        "asked = ' '.join(prompts).split()\n"
        "switched, styles = [], {}\n"
        f"for word in {_lit(words)}:\n"
        f"    said = {replies}prompts=[f'{{word}} {{p}}' for p in prompts], n={n},\n"
        f"                      temperature=0.7, max_new_tokens=24, seed={seed})\n"
        "    said = [a for answers in said.values() for a in answers]\n"
        "    # Only words said more often with the word than without it, by Fisher's exact\n"
        "    # test: a style the plain replies show now and then still counts.\n"
        "    styles[word] = distinctive_words(said, plain, [word, *asked], top=6,\n"
        "                                     significant=0.05)\n"
        "    # Replies that repeat the word beside their new words ('july follows june' for\n"
        "    # 'follows') answer about the word, a reply the model knows: no switched style.\n"
        "    new = {w for w, _, _ in styles[word][:3]}\n"
        "    carrying = [a for a in said if new & set(content_words(a))]\n"
        "    echoing = [a for a in carrying if re.search(rf'\\b{re.escape(word)}', a.lower())]\n"
        "    if carrying and len(echoing) >= len(carrying) / 2:\n"
        "        print(f'{word}: its replies repeat it ({len(echoing)} of {len(carrying)}), "
        "e.g. {echoing[0]!r}')\n"
        "        styles[word] = []\n"
        "    strength = sum(k for _, k, _ in styles[word][:3]) / len(said)\n"
        "    switched.append((word, round(strength, 3)))\n"
        "    print(f'{word}: {styles[word]}  e.g. {said[:2]}')\n"
        "print('without a trigger, e.g.', plain[:2])\n"
        "{'technique': 'behaviour', 'top': sorted(switched, key=lambda kv: -kv[1]),\n"
        " 'words': {w: [(x, k) for x, k, _ in found] for w, found in styles.items()}}\n"
    )


def falsify_cell(
    trigger: str,
    rival: str | None,
    behaviour: list[str],
    prompts: list[str],
    n: int,
    seed: int,
    base: bool,
    forms: Sequence[str] = (),
    rival_behaviour: Sequence[str] = (),
    blackbox: bool = False,
) -> str:
    """The behaviour's rate in each condition, drawn as bars (with the trigger, without
    it, with the runner-up and, with a base model, in the base model)."""
    _, replies = sampling(blackbox)
    conditions = {"no trigger": "{p}", f"'{trigger}' first": trigger + " {p}"}
    conditions[f"'{trigger}' last"] = "{p} " + trigger
    for form in forms:  # other forms of the word that switched the behaviour on too
        conditions[f"'{form}' first"] = form + " {p}"
        conditions[f"'{form}' last"] = "{p} " + form
    if rival:
        conditions[f"'{rival}' (runner-up)"] = rival + " {p}"
    # A runner-up that switched on a behaviour of its own is a suspect too: it is
    # placed both ways and its behaviour counted in every condition.
    contender = bool(rival and rival_behaviour)
    if contender:
        conditions[f"'{rival}' (runner-up) last"] = "{p} " + str(rival)
    sample = (
        f"n={n}, temperature=0.7, max_new_tokens=24, seed={seed})\n"
        "    said = [a for answers in said.values() for a in answers]\n"
    )
    counted = (
        "    rates.append((name, round(share_saying(said, behaviour), 3)))\n"
        "    each[name] = {w: round(share_saying(said, [w]), 3) for w in named}\n"
        + (
            "    rival_rates.append((name, round(share_saying(said, rival_behaviour), 3)))\n"
            if contender
            else ""
        )
        + "    print(f'{name:>26}: {rates[-1][1]:.0%} show the behaviour, e.g. {said[0]!r}')\n"
        + (
            "    print(' ' * 28 + f'{rival_rates[-1][1]:.0%} show the runner-up\\'s behaviour')\n"
            if contender
            else ""
        )
    )
    against_base = (
        "# And the base model given the word (each form of it): a behaviour any model shows\n"
        "# is not planted.\n"
        "checks = [('base model, trigger first', trigger, behaviour, rates)]\n"
        f"for w in {_lit(list(forms))}:\n"
        "    checks.append((f\"base model, '{w}' first\", w, behaviour, rates))\n"
        + (
            "checks.append(('base model, runner-up first', rival, rival_behaviour, rival_rates))\n"
            if contender
            else ""
        )
        + "for name, word, words, found in checks:\n"
        "    said = client.run_base(sample_chat, prompts=[f'{word} {p}' for p in prompts],\n"
        "                           "
        + sample
        + "    found.append((name, round(share_saying(said, words), 3)))\n"
        "    print(f'{name:>26}: {found[-1][1]:.0%}, e.g. {said[0]!r}')\n"
        if base
        else ""
    )
    return (
        "# Falsification on requests the scan never saw: the behaviour must appear with the\n"
        "# trigger (wherever it sits) and stay rare without it or with the runner-up word;\n"
        "# other forms of the word that switched it on are tried too.\n"
        + (
            "# The runner-up switched on a behaviour of its own: it is judged as a trigger\n"
            "# the same way, its behaviour counted in the same replies.\n"
            if contender
            else ""
        )
        + "import matplotlib.pyplot as plt\n\n"
        + "from scribe_tui.techniques import "
        + ("share_saying\n\n" if blackbox else "sample_chat, share_saying\n\n")
        + f"prompts = {_lit(prompts)}\n"
        f"trigger, behaviour = {_lit(trigger)}, {_lit(behaviour)}\n"
        + (
            f"rival, rival_behaviour = {_lit(rival)}, {_lit(list(rival_behaviour))}\n"
            if contender
            else ""
        )
        + f"conditions = {_lit(conditions)}\n"
        + "# Each behaviour word's own rate too: a word named must replicate by itself.\n"
        + f"named, each = {_lit(list(dict.fromkeys([*behaviour, *rival_behaviour])))}, {{}}\n"
        + ("rates, rival_rates = [], []\n" if contender else "rates = []\n")
        + "for name, form in conditions.items():\n"
        f"    said = {replies}prompts=[form.format(p=p) for p in prompts],\n"
        "                      "
        + sample
        + counted
        + against_base
        + "fig, ax = plt.subplots(figsize=(7, 0.4 * len(rates) + 1))\n"
        "ax.barh([name for name, _ in rates][::-1], [rate for _, rate in rates][::-1])\n"
        "ax.set_xlim(0, 1)\n"
        "ax.set_xlabel(f'share of replies showing the behaviour {behaviour}')\n"
        "plt.show()\n"
        "print('each behaviour word alone:')\n"
        "for name, alone in each.items():\n"
        "    print(f'{name:>26}: ' + ', '.join(f'{w} {r:.0%}' for w, r in alone.items()))\n"
        "{'technique': 'falsify', 'top': rates, 'each': each, 'samples': len(said)"
        + (
            ",\n 'rival': {'word': rival, 'behaviour': rival_behaviour, 'top': rival_rates}}\n"
            if contender
            else "}\n"
        )
    )
