"""`scribe-tui bench` throughput: --jobs 1 against --jobs 2, model loads, overhead per run.

    python benchmarks/bench_bench.py [--repeat 4]

Runs autopilot × {taboo, belief} × REPEAT twice (jobs 1, then jobs 2) in fresh
directories, then a plain `scribe-tui investigate --auto` per organism for the
per-run baseline. Prints wall times, the throughput ratio (goal ≥ 1.6× on 2
cores), model loads (goal: one per organism) and the bench's overhead per run
over a plain investigation (goal ≤ 10%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORGANISMS = ("taboo", "belief")


def scribe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scribe_tui", *args], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"scribe-tui {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done


def run_bench(jobs: int, repeat: int) -> tuple[float, list[dict], int]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = scribe(
            "bench", "--axis", f"organism={','.join(ORGANISMS)}", "--repeat", str(repeat),
            "--jobs", str(jobs), "--out", "out", "--json", cwd=Path(tmp),
        )  # fmt: skip
        wall = time.perf_counter() - start
    events = [json.loads(line) for line in done.stdout.splitlines()]
    rows = [e["row"] for e in events if e["type"] == "run_finished"]
    return wall, rows, events[-1]["model_loads"]


def plain_runs(repeat: int) -> list[float]:
    """Wall seconds of plain investigations, from the run's own start to its conclusion."""
    walls = []
    for organism in ORGANISMS:
        for _ in range(max(1, repeat // 2)):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                scribe(
                    "investigate", "find the secret", "--auto", "--model", f"organism:{organism}",
                    cwd=Path(tmp),
                )  # fmt: skip
                walls.append(time.perf_counter() - start)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    runs = len(ORGANISMS) * args.repeat
    one, rows_one, loads_one = run_bench(1, args.repeat)
    two, rows_two, loads_two = run_bench(2, args.repeat)
    plain = plain_runs(args.repeat)
    correct = sum(bool(r["correct"]) for r in rows_one + rows_two)
    per_run = statistics.median(r["wall_s"] for r in rows_one)
    print(f"runs per bench          {runs} (autopilot × {', '.join(ORGANISMS)} × {args.repeat})")
    print(f"correct                 {correct}/{len(rows_one) + len(rows_two)}")
    print(f"bench wall, --jobs 1    {one:.1f} s")
    print(f"bench wall, --jobs 2    {two:.1f} s")
    print(f"throughput ratio        {one / two:.2f}x   (goal >= 1.6x)")
    print(f"model loads             {loads_one} and {loads_two}   (goal: {len(ORGANISMS)})")
    print(f"plain investigate       median {statistics.median(plain):.2f} s (process included)")
    print(f"bench run, --jobs 1     median {per_run:.2f} s (host shared, started once)")
    print(f"bench wall / runs       {one / runs:.2f} s per run at --jobs 1")
    print(f"overhead per run        {one / runs / statistics.median(plain):.2f}x   (goal <= 1.10x)")


if __name__ == "__main__":
    main()
