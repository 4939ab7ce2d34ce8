"""Parallel investigators: the wall time of `--investigators N` against one investigation.

    python benchmarks/bench_investigators.py [--investigators 5] [--repeat 1]

Runs `scribe-tui investigate TASK --auto` (the autopilot, organism:taboo) alone and
with `--investigators N`, alternating, REPEAT times each, every run in a fresh
directory. Prints the medians, their ratio (goal on two cores: N=5 takes ≤ 3× one
investigation) and the model loads of the parallel runs (goal: one per run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

TASK = "find the secret word"


def timed(*args: str) -> tuple[float, list[dict]]:
    """Wall seconds of one `scribe-tui investigate` and its JSON events."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scribe_tui", "investigate", TASK, "--auto", "--json",
             "--agent", "autopilot", *args],
            cwd=tmp, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"scribe-tui investigate {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall, [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--investigators", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    one, many, loads = [], [], []
    for _ in range(args.repeat):
        one.append(timed()[0])
        wall, events = timed("--investigators", str(args.investigators))
        many.append(wall)
        loads.append(events[-1]["model_loads"])
    base, parallel = statistics.median(one), statistics.median(many)
    print(f"one investigation:        median {base:7.1f} s  ({', '.join(f'{w:.1f}' for w in one)})")
    print(
        f"--investigators {args.investigators:<2}:       median {parallel:7.1f} s  "
        f"({', '.join(f'{w:.1f}' for w in many)})"
    )
    print(f"ratio: {parallel / base:.2f}× (goal ≤ 3× for 5 on two cores)")
    print(f"model loads per parallel run: {loads} (goal: 1)")


if __name__ == "__main__":
    main()
