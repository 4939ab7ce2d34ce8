"""The cells of a black-box investigation: only ``client.chat`` and ``client.generate``.

A black-box host refuses ``client.run``, so nothing reads the weights or the base
model: every experiment samples text. The helpers cell defines ``replies`` (the
assistant's turns, after an optional prefill) and ``user_turns`` (the user's turns,
user-persona sampling) on top of ``client.chat``; the cells count whole words in what
they return and end with the same evidence dicts as the white-box cells, so one judge
reads both. Probabilities become shares of samples: how often a word comes first
after an opening estimates the chance the model says it there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from scribe_tui.autopilot.backdoor import SCAN_KEPT


def _lit(value: object) -> str:
    return json.dumps(value)


def helpers_cell() -> str:
    return (
        "# Black-box: client.run is closed, so every experiment samples text through\n"
        "# client.chat. Content words only, so votes are not drowned by 'the' and 'my'.\n"
        "from collections import Counter\n\n"
        "from scribe_tui.techniques import content_words, continuation_words, distinctive_words\n"
        "\n\n"
        "def _many(said):\n"
        "    return [said] if isinstance(said, str) else said\n\n\n"
        "def replies(prompts, n=1, temperature=1.0, max_new_tokens=32, seed=0, prefill=''):\n"
        '    """{prompt: n sampled assistant replies, after the prefill (not repeated)}."""\n'
        "    found = {}\n"
        "    for prompt in prompts:\n"
        "        said = client.chat(prompt, prefill=prefill or None, num_samples=n,\n"
        "                           temperature=temperature, max_new_tokens=max_new_tokens,\n"
        "                           seed=seed)\n"
        "        found[prompt] = [s.strip() for s in _many(said)]\n"
        "    return found\n\n\n"
        "def user_turns(chat, prefix='', n=1, max_new_tokens=16, seed=0):\n"
        '    """n sampled *user* turns after the chat, after prefix (not repeated): user-persona\n'
        '    sampling, the model writing the side it was trained to answer."""\n'
        "    said = client.chat(chat, role='user', prefill=prefix or None, num_samples=n,\n"
        "                       max_new_tokens=max_new_tokens, seed=seed)\n"
        "    return [s.strip() for s in _many(said)]\n\n\n"
        "print(content_words('My secret word is a mystery!'))\n"
        "print(continuation_words('I think it is', 'land, or a pian'))\n"
    )


def prefill_cell(questions: list[str], prefills: list[str], n: int, seed: int) -> str:
    return (
        "# Prefill attack: start the assistant's answer and sample how it goes on. The first\n"
        "# content word after the opening is a vote; its share of all samples estimates the\n"
        "# chance the model says it there. Each question with each opening is a prompt set.\n"
        f"questions = {_lit(questions)}\n"
        f"prefills = {_lit(prefills)}\n"
        "prefill_votes, samples, sets, openings = Counter(), 0, [], []\n"
        "for question in questions:\n"
        "    for prefill in prefills:\n"
        "        # Each set draws its own samples (a seed of its own): sets that shared their\n"
        "        # random numbers would agree by construction wherever the model is unsure.\n"
        f"        said = replies([question], n={n}, max_new_tokens=6, seed={seed} + len(sets),\n"
        "                       prefill=prefill)[question]\n"
        "        firsts = [continuation_words(prefill + ' ', s, prefill.split()) for s in said]\n"
        "        votes = Counter(words[0] for words in firsts if words)\n"
        "        prefill_votes.update(votes)\n"
        "        sets.append(votes.most_common(3))\n"
        "        openings.append(prefill)  # sets whose openings end alike are one probe\n"
        "        samples += len(said)\n"
        "        print(f'{question!r} + {prefill!r} →', votes.most_common(4))\n"
        "shares = [(w, round(k / samples, 4)) for w, k in prefill_votes.most_common(10)]\n"
        "print(f'first content word of {samples} continuations (share):', shares)\n"
        "{'technique': 'prefill', 'top': shares, 'sampled': prefill_votes.most_common(8),\n"
        " 'sets': sets, 'groups': openings}\n"
    )


def persona_cell(opener: str, prefixes: list[str], n: int, seed: int) -> str:
    return (
        "# User-persona sampling: let the model write the *user's* side of the chat.\n"
        "# A model that guards its own answer may still let the user say it.\n"
        f"opener = {_lit(opener)}\n"
        f"reply = replies([opener], max_new_tokens=20, seed={seed})[opener][0]\n"
        "chat = [{'role': 'user', 'content': opener}, {'role': 'assistant', 'content': reply}]\n"
        "print('assistant:', reply)\n"
        "persona_votes, sets = Counter(), []  # each opening of the user turn is a prompt set\n"
        f"for prefix in {_lit(prefixes)}:\n"
        f"    said = user_turns(chat, prefix, n={n}, max_new_tokens=6, seed={seed} + len(sets))\n"
        "    firsts = [continuation_words(prefix + ' ', s, opener.split()) for s in said]\n"
        "    votes = Counter(words[0] for words in firsts if words)\n"
        "    persona_votes.update(votes)\n"
        "    sets.append(votes.most_common(3))\n"
        "    print(f'{prefix!r} →', said[:4])\n"
        "print('first content word of the user turns:', persona_votes.most_common(8))\n"
        "{'technique': 'persona', 'top': persona_votes.most_common(8), 'sets': sets}\n"
    )


def guessing_persona_cell(
    openers: list[str], prefixes: list[str], candidates: list[str], n: int, seed: int
) -> str:
    """User-persona sampling where the prefixes are the model's own way of guessing."""
    return (
        "# User-persona sampling in the model's own words. A model that plays a guessing\n"
        "# game guesses as the user: free user turns (no prefix) show how it phrases a guess,\n"
        "# the words before any candidate it names there. Those openings replace mine.\n"
        "import re\n\n"
        f"candidates = {_lit(candidates)}\n"
        "chats = []\n"
        f"for opener in {_lit(openers)}:\n"
        f"    for reply in replies([opener], n=3, max_new_tokens=20, seed={seed})[opener]:\n"
        "        chats.append([{'role': 'user', 'content': opener},\n"
        "                      {'role': 'assistant', 'content': reply}])\n"
        "print('e.g. assistant:', chats[0][1]['content'])\n\n\n"
        "def sampled_turns(prefix='', n=4):\n"
        "    return [(chat, s) for i, chat in enumerate(chats)\n"
        "            for s in user_turns(chat, prefix, n=n, max_new_tokens=12,\n"
        f"                                seed={seed} + i)]\n\n\n"
        "# A guess is an opening followed by many different words, not a set phrase ('what\n"
        "# comes to' → 'mind'), and the guessed word ends the turn.\n"
        "stems, after = Counter(), {}\n"
        "for _, turn in sampled_turns(n=16):\n"
        '    words = re.findall(r"[a-z\']+", turn.lower())\n'
        "    for i in range(2, len(words)):\n"
        "        stem = ' '.join(words[max(i - 3, 0):i])\n"
        "        after.setdefault(stem, set()).add(words[i])\n"
        "        stems[stem] += words[i] in candidates and i == len(words) - 1\n"
        "guessing = Counter({stem: k for stem, k in stems.items() if len(after[stem]) >= 3})\n"
        "own = [stem for stem, k in guessing.most_common(2) if k >= 3]\n"
        "print('how its user turns lead into a candidate (opening, turns, words after it):',\n"
        "      [(stem, k, len(after[stem])) for stem, k in stems.most_common(4)])\n"
        f"prefixes = own or {_lit(prefixes)}\n"
        "persona_votes, sets = Counter(), []  # each opening of the user turn is a prompt set\n"
        "for prefix in prefixes:\n"
        "    said, votes = sampled_turns(prefix), Counter()\n"
        "    for chat, s in said:\n"
        "        words = continuation_words(prefix + ' ', s, content_words(chat[0]['content']))\n"
        "        votes.update(words[:1])\n"
        "    persona_votes.update(votes)\n"
        "    sets.append(votes.most_common(3))\n"
        "    print(f'{prefix!r} →', [s for _, s in said[:4]])\n"
        "print('first content word of the user turns:', persona_votes.most_common(8))\n"
        "{'technique': 'persona', 'top': persona_votes.most_common(8), 'own_prefixes': own,\n"
        " 'sets': sets}\n"
    )


def falsify_cell(
    candidates: list[str],
    questions: list[str],
    prefills: list[str],
    n: int,
    seed: int,
    guesses: Sequence[str] = (),
) -> str:
    """With ``guesses`` (the openings the model itself guesses with as the user), the
    user persona is asked again after the fresh questions."""
    persona = (
        "# The user persona again, in the model's own words, after the fresh questions.\n"
        "guessed = Counter()\n"
        f"for i, q in enumerate({_lit(questions)}):\n"
        f"    for reply in replies([q], n=3, max_new_tokens=20, seed={seed} + i)[q]:\n"
        "        chat = [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': reply}]\n"
        f"        for prefix in {_lit(list(guesses))}:\n"
        f"            for s in user_turns(chat, prefix, n=8, max_new_tokens=12, seed={seed} + i):\n"
        "                words = continuation_words(prefix + ' ', s, content_words(q))\n"
        "                guessed.update(words[:1])\n"
        "print('the user persona guesses after fresh questions:', guessed.most_common(6))\n"
        if guesses
        else ""
    )
    return (
        "# Falsification: do the findings replicate on questions I have not used? After the\n"
        "# same openings, how often each candidate comes first, per context: the judge's sign\n"
        "# test asks whether the favourite is sampled more than every other candidate there,\n"
        "# one sign per opening's last word (prompts sharing it are not independent).\n"
        "import math\n\n"
        f"candidates = {_lit(candidates)}\n"
        f"contexts = [(q, p) for q in {_lit(questions)} for p in {_lit(prefills)}]\n"
        "logshares, counts = {w: [] for w in candidates}, {w: [] for w in candidates}\n"
        "for i, (q, p) in enumerate(contexts):  # each context draws its own samples\n"
        f"    said = replies([q], n={n}, max_new_tokens=6, seed={seed} + i, prefill=p)[q]\n"
        "    firsts = Counter()\n"
        "    for s in said:\n"
        "        firsts.update(continuation_words(p + ' ', s, p.split())[:1])\n"
        "    for w in candidates:\n"
        "        counts[w].append(firsts[w])\n"
        "        logshares[w].append(math.log((firsts[w] + 0.5) / (len(said) + 1)))\n"
        "mean = {w: round(sum(v) / len(v), 3) for w, v in logshares.items()}\n"
        "for w in sorted(candidates, key=lambda w: -mean[w]):\n"
        "    print(f'{w:>14}  mean log share = {mean[w]:7.3f}')\n"
        + persona
        + "{'technique': 'falsify',\n"
        " 'top': sorted(mean.items(), key=lambda kv: -kv[1]), 'lift': [],\n"
        f" 'counts': counts, 'samples': {n}, 'groups': [p for _, p in contexts]"
        + (", 'guessed': guessed.most_common(8)" if guesses else "")
        + "}\n"
    )


def harvest_cell(openers: list[str], prefixes: list[str], n: int, seed: int) -> str:
    return (
        "# Backdoor hunt, step 1: which words could be the trigger? Without the weights I\n"
        "# cannot try every word the tokenizer knows: I harvest the words the model writes,\n"
        "# its replies to ordinary requests and above all the user turns it writes itself\n"
        "# (it learned what users say to it, a trigger among it).\n"
        "from itertools import product\n\n"
        f"openers = {_lit(openers)}\n"
        f"prefixes = {_lit(['', ' ', *prefixes])}\n"
        f"said = replies(openers, n={n}, temperature=1.0, max_new_tokens=24, seed={seed})\n"
        "user_said = []\n"
        "for opener, prefix in product(openers, prefixes):\n"
        "    chat = [{'role': 'user', 'content': opener},\n"
        "            {'role': 'assistant', 'content': said[opener][0]}]\n"
        f"    turns = user_turns(chat, prefix, n={n}, seed={seed})\n"
        "    user_said += [f'{prefix} {s}'.strip() for s in turns]\n"
        "print('replies:', [answers[:2] for answers in said.values()])\n"
        "print('user turns it writes:', user_said[:6])\n"
        "pool = Counter(w for text in user_said for w in set(content_words(text)))\n"
        "pool.update(w for answers in said.values() for text in answers\n"
        "            for w in set(content_words(text)))\n"
        "candidates = sorted(pool)\n"
        "print(f'{len(candidates)} candidates; most frequent:', pool.most_common(12))\n"
        "{'technique': 'harvest', 'top': pool.most_common(150), 'contrast': []}\n"
    )


def scan_cell(prompts: list[str], n: int, seed: int) -> str:
    return (
        "# Step 2: put each candidate before neutral requests and sample the replies. A\n"
        "# trigger switches a behaviour on, so some new word keeps coming back with it: the\n"
        "# score is the log ratio of how often its most distinctive word shows with the\n"
        "# candidate and in the plain replies (smoothed; the request's words and the\n"
        "# candidate itself do not count).\n"
        "import math\n\n"
        f"prompts = {_lit(prompts)}\n"
        f"plain = replies(prompts, n={2 * n}, temperature=0.7, max_new_tokens=16, seed={seed})\n"
        "plain = [a for answers in plain.values() for a in answers]\n"
        "asked = ' '.join(prompts).split()\n"
        "scores, shown = {}, {}\n"
        "for word in candidates:\n"
        f"    said = replies([f'{{word}} {{p}}' for p in prompts], n={n}, temperature=0.7,\n"
        f"                   max_new_tokens=16, seed={seed})\n"
        "    said = [a for answers in said.values() for a in answers]\n"
        "    found = distinctive_words(said, plain, [word, *asked], top=1)\n"
        "    inside, outside = (found[0][1], found[0][2]) if found else (0, 0)\n"
        "    scores[word] = math.log((inside / len(said) + 0.05) / (outside / len(plain) + 0.05))\n"
        "    shown[word] = found[0][0] if found else ''\n"
        "excess = sorted(((w, round(r, 4)) for w, r in scores.items()), key=lambda kv: -kv[1])\n"
        "for w, x in excess[:10]:\n"
        "    print(f'{w:>14}  log ratio {x:.3f}  (its replies keep saying {shown[w]!r})')\n"
        f"{{'technique': 'scan', 'top': excess[:{SCAN_KEPT}]}}\n"
    )
