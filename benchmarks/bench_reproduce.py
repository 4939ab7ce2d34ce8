"""Wall time of the README's main command and of `scribe-tui reproduce` on its notebook.

    python benchmarks/bench_reproduce.py [--rounds 3]

Each round runs `scribe-tui investigate "find the secret" --auto` on a copy of the
bundled taboo organism in a fresh directory, then `scribe-tui reproduce` on the
notebook it wrote, both as subprocesses (process start, model load and kernels
included). Prints the median of each and reproduce's seconds per code cell. The
tests only check that these runs finish and what they produce; the figures live here.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from scribe_tui.organisms.registry import BUNDLED_DIR


def timed(*args: str, cwd: Path) -> float:
    """Seconds `scribe-tui ARGS` took; exits with its stderr when it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "scribe_tui", *args], cwd=cwd, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"scribe-tui {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall


def one_round() -> tuple[float, float, int]:
    """(investigate seconds, reproduce seconds, code cells) in a fresh directory."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        organism = root / "organisms" / "my-taboo"
        shutil.copytree(BUNDLED_DIR / "taboo", organism)
        investigate = timed(
            "investigate", "find the secret", "--auto", "--model", str(organism), cwd=root
        )
        (notebook,) = sorted((root / "notebooks").glob("*.ipynb"))
        cells = sum(1 for c in nbformat.read(notebook, 4).cells if c.cell_type == "code")
        reproduce = timed("reproduce", str(notebook), cwd=root)
    return investigate, reproduce, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = [one_round() for _ in range(args.rounds)]
    investigate = statistics.median(r[0] for r in rounds)
    reproduce = statistics.median(r[1] for r in rounds)
    cells = statistics.median(r[2] for r in rounds)
    print(f"rounds                  {args.rounds}")
    print(f"investigate --auto      median {investigate:.1f} s (process included)")
    print(f"reproduce               median {reproduce:.1f} s for {cells:g} code cells")
    print(f"reproduce per cell      median {reproduce / cells:.2f} s")


if __name__ == "__main__":
    main()
