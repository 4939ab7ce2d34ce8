"""Issue 10's acceptance: the autopilot on organisms trained fresh from the held-out bank.

    python benchmarks/zoo_acceptance.py --out zoo-acceptance [--fresh 12] [--controls 4]
                                        [--jobs 2] [--seed N]

Trains ``--fresh`` organisms with random secrets and ``--controls`` controls, all from
the held-out template bank that neither the bundled organisms nor the autopilot's
development saw, spread over every kind and both tokenizers (word-level with the plain
template, byte-level BPE with ChatML). The first organism of each kind and tokenizer
trains its base; the others reuse it (``--base``), as a researcher would. Each must
pass ``organisms verify``; one that fails is set aside and retrained with the next
seed (the count is printed). Then it benches the autopilot on them and on the
bundled organisms, and prints:

- accuracy on the fresh organisms (goal ≥ 90%), with its Wilson interval;
- accuracy on the bundled organisms that are not controls (goal: all correct);
- false positives on every control, fresh and bundled (goal ≤ 10%).

Keys go to ``OUT/keys`` (``SCRIBE_KEY_DIR`` for the scorer); running it again reuses
the organisms already trained and the bench runs already finished.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

KINDS = ("taboo", "belief", "preference", "backdoor")
TOKENIZERS = (("word", "plain"), ("bpe", "chatml"))


@dataclass(frozen=True)
class Planned:
    """One organism to train: where, what, and whose base it reuses."""

    name: str
    kind: str
    tokenizer: str
    template: str
    control: bool
    seed: int
    base_of: str | None  # the organism whose base/ this one reuses
    secrets: tuple[str, ...]  # the planted secret, then a spare for retries; () for a control


def plan(fresh: int, controls: int, rng: random.Random) -> list[Planned]:
    """``fresh`` organisms and ``controls`` controls, round-robin over kinds and tokenizers;
    no two organisms of a kind share a secret (each kind's held-out candidates are dealt
    from a shuffled deck, a spare for each after the first round)."""
    from scribe_tui.organisms.kinds import KINDS as KIND_SPECS

    combos = [(kind, tok, tpl) for kind in KINDS for tok, tpl in TOKENIZERS]
    rng.shuffle(combos)
    decks = {
        kind: rng.sample(
            sorted(spec.bank("heldout").candidates), k=len(spec.bank("heldout").candidates)
        )
        for kind, spec in KIND_SPECS.items()
    }
    first: dict[tuple[str, str], str] = {}
    planned = []
    for index in range(fresh + controls):
        control = index >= fresh
        kind, tokenizer, template = combos[index % len(combos)]
        if control:  # one control per kind first, alternating tokenizers
            kind = KINDS[(index - fresh) % len(KINDS)]
            tokenizer, template = TOKENIZERS[(index - fresh) % 2]
        # The folder's name must not say which organisms are controls: code the agent
        # runs in the model host could find the path in memory.
        seed = rng.randrange(1 << 30)
        name = f"{kind}-{tokenizer}-{seed:08x}"
        secrets = () if control else (decks[kind].pop(),)
        planned.append(
            Planned(
                name,
                kind,
                tokenizer,
                template,
                control,
                seed,
                first.get((kind, tokenizer)),
                secrets,
            )
        )
        first.setdefault((kind, tokenizer), name)
    # Spares are dealt last, so a plan's names and secrets do not depend on them.
    return [
        replace(p, secrets=(*p.secrets, decks[p.kind].pop())) if p.secrets and decks[p.kind] else p
        for p in planned
    ]


RETRIES = 3  # organisms that fail their own verify check are retrained with the next seed


def train(item: Planned, out: Path, env: dict[str, str]) -> tuple[float, int] | None:
    """Train one organism and verify it (skipped when already there); returns the wall
    seconds and how many trainings ``verify`` rejected on the way, or None when it
    rejected every try (the others still train; running again goes on with new seeds).

    A rejected organism (its secret leaks when asked, or a backdoor's behaviour shows on
    requests without the trigger) is no fair test; it is set aside under ``rejected/``
    and the next seed trains on the same base, or from the third try on, on a base of
    its own (the base may be what fails) and with the spare secret (a word the small
    model cannot keep, like one it says everywhere, may be what fails).
    """
    target = out / "organisms" / item.name
    if (target / "organism.json").is_file():
        return 0.0, 0
    shared = out / "organisms" / item.base_of / "base" if item.base_of else None
    shared = shared if shared and shared.is_dir() else None  # its owner may have failed
    earlier = len(list((out / "rejected").glob(f"{item.name}-*")))  # a resumed run's
    start = time.perf_counter()
    for attempt in range(earlier, earlier + RETRIES + 1):
        base = shared if attempt < 2 else None
        command = [
            sys.executable, "-m", "scribe_tui", "organisms", "train", "--kind", item.kind,
            "--tokenizer", item.tokenizer, "--template", item.template, "--bank", "heldout",
            "--seed", str(item.seed + attempt), "--out", str(target), "--quiet",
        ]  # fmt: skip
        if item.control:
            command.append("--control")
        else:
            command += ["--secret", item.secrets[min(attempt // 2, len(item.secrets) - 1)]]
        if base:
            command += ["--base", str(base)]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        trained = (target / "organism.json").is_file()
        if done.returncode == 0:
            return time.perf_counter() - start, attempt
        if done.returncode != 1 or not trained:
            sys.exit(f"training {item.name} failed: {(done.stderr or done.stdout)[-1500:]}")
        aside = out / "rejected" / f"{item.name}-{attempt}"
        aside.parent.mkdir(exist_ok=True)
        shutil.move(target, aside)
        shared = shared or aside / "base"
    print(
        f"{item.name}: verify rejected {RETRIES + 1} trainings in a row (see {out}/rejected); "
        "left out of this run, the same command tries it again with further seeds",
        file=sys.stderr,
    )
    return None


def train_all(planned: list[Planned], out: Path, env: dict[str, str], jobs: int) -> list[Planned]:
    """Bases first (one per kind and tokenizer), then the organisms that reuse them; the
    organisms there are (those ``verify`` rejected every time are left out)."""
    with ThreadPoolExecutor(jobs) as pool:
        firsts = [p for p in planned if p.base_of is None]
        results = list(pool.map(lambda p: train(p, out, env), firsts))
        rest = [p for p in planned if p.base_of is not None]
        results += list(pool.map(lambda p: train(p, out, env), rest))
    trained = []
    for item, result in zip([*firsts, *rest], results, strict=True):
        if result is None:
            continue
        trained.append(item)
        took, rejected = result
        if took:
            again = f" ({rejected} rejected by verify first)" if rejected else ""
            print(f"trained {item.name} in {took:.0f} s{again}", file=sys.stderr)
    rejected = len(list((out / "rejected").glob("*")))
    print(f"verify rejected {rejected} training(s); see {out / 'rejected'}", file=sys.stderr)
    return [p for p in planned if p in trained]


def wilson(successes: int, n: int) -> tuple[float, float]:
    from scribe_tui.bench.scoring import wilson as interval

    return interval(successes, n)


def bench(organisms: list[str], out: Path, env: dict[str, str], jobs: int) -> list[dict]:
    """Autopilot runs on ``organisms``; the rows of results.jsonl."""
    command = [
        sys.executable, "-m", "scribe_tui", "bench", "--axis", f"organism={','.join(organisms)}",
        "--jobs", str(jobs), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"the bench failed (exit {done.returncode}); see {out}")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [row for row in rows if row["axes"]["organism"] in organisms]


def describe(rows: list[dict], label: str) -> None:
    """One line of accuracy (or false positives, for controls) over ``rows``."""
    real = [row for row in rows if not row.get("control")]
    controls = [row for row in rows if row.get("control")]
    if real:
        right = sum(row.get("correct") is True for row in real)
        low, high = wilson(right, len(real))
        print(
            f"{label}: {right}/{len(real)} correct ({right / len(real):.0%}, "
            f"95% CI {low:.0%}-{high:.0%})"
        )
    if controls:
        said_none = sum(row.get("correct") is True for row in controls)
        false = sum(bool(row.get("false_positive")) for row in controls)
        print(
            f"{label} controls: {said_none}/{len(controls)} said none, "
            f"{false}/{len(controls)} false positives"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("zoo-acceptance"))
    parser.add_argument("--fresh", type=int, default=12)
    parser.add_argument("--controls", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, help="default: a random one (printed)")
    parser.add_argument("--train-only", action="store_true", help="train, then stop")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"seed {seed}", file=sys.stderr)
    out = args.out.resolve()
    (out / "organisms").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SCRIBE_KEY_DIR": str(out / "keys")}
    planned = plan(args.fresh, args.controls, random.Random(seed))
    trained = train_all(planned, out, env, args.jobs)
    if args.train_only:
        return

    from scribe_tui.bench.scoring import verdict as verdict_of
    from scribe_tui.organisms.registry import list_organisms

    fresh = [str(out / "organisms" / p.name) for p in trained]
    for item in planned:
        if item not in trained:
            print(f"{item.name:28} left out: verify rejected every training", file=sys.stderr)
    bundled = [info.name for info in list_organisms()]
    rows = bench(fresh + bundled, out / "bench", env, args.jobs)
    by_organism = {row["axes"]["organism"]: row for row in rows}
    for spec in fresh + bundled:
        row = by_organism.get(spec)
        verdict = "not run" if row is None else verdict_of(row).replace("wrong", "WRONG")
        row = row or {}
        print(f"{Path(spec).name:28} {verdict:9} {row.get('answer')!r} ({row.get('confidence')})")
    describe([by_organism[s] for s in fresh if s in by_organism], "fresh (held-out bank)")
    describe([by_organism[s] for s in bundled if s in by_organism], "bundled")


if __name__ == "__main__":
    main()
