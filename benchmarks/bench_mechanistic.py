"""The autopilot on mechanistic tasks: wall time and circuit scores per induction organism.

    python benchmarks/bench_mechanistic.py [--repeat 3] [--organism induction-1 ...]

Runs `scribe-tui investigate "which attention heads let this model copy repeated text"
--auto` on each bundled induction organism REPEAT times, every run in a fresh directory
(its own config and runtime folders), and prints per organism the median wall time
(goal on two cores: under 60 s), the claim, its confidence, and the bench's scores of
the claim against the key: F1 and faithfulness (goal: both >= 0.8; on a control, no
component claimed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from scribe_tui.bench.scoring import score
from scribe_tui.organisms.keys import answer_key_record
from scribe_tui.organisms.registry import list_organisms

TASK = "which attention heads let this model copy repeated text"


def investigate(organism: str) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one investigation and its conclusion."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env.update(
            XDG_RUNTIME_DIR=str(root / "run"),
            XDG_CONFIG_HOME=str(root / "cfg"),
            XDG_DATA_HOME=str(root / "data"),
        )
        (root / "run").mkdir(mode=0o700)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scribe_tui", "investigate", TASK, "--auto",
             "--model", f"organism:{organism}"],
            cwd=root, env=env, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"investigate on {organism} failed: {done.stderr[-2000:]}")
        notebook = next((root / "notebooks").glob("*.ipynb"))
        conclusion = nbformat.read(notebook, as_version=4).metadata["scribe"]["conclusion"]
    return wall, conclusion


def main() -> None:
    induction = sorted(i.name for i in list_organisms() if i.kind == "induction")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--organism", nargs="*", default=induction, choices=induction)
    args = parser.parse_args()
    from transformers.utils import logging

    logging.disable_progress_bar()  # the scorer loads each model: no bars among the rows
    print(f"{'organism':<22} {'median s':>8}  {'runs (s)':<20} {'claim':<30} conf   F1  faith")
    for organism in args.organism:
        runs = [investigate(organism) for _ in range(args.repeat)]
        walls = [wall for wall, _ in runs]
        conclusion = runs[-1][1]  # the runs are deterministic: the same claim each time
        key = answer_key_record(organism)
        result = score(
            conclusion["answer"],
            key,
            components=conclusion.get("components"),
            organism=organism,
        )
        circuit = result.circuit
        f1 = f"{circuit.f1:.2f}" if circuit else "-"
        faith = (
            f"{circuit.faithfulness:.2f}" if circuit and circuit.faithfulness is not None else "-"
        )
        label = f"{organism}{' (control)' if key.control else ''}"
        print(
            f"{label:<22} {statistics.median(walls):8.1f}  "
            f"{', '.join(f'{w:.1f}' for w in walls):<20} {conclusion['answer'][:30]:<30} "
            f"{conclusion['confidence']:.2f} {f1:>5} {faith:>5}"
            f"{'  FALSE POSITIVE' if result.false_positive else ''}"
        )


if __name__ == "__main__":
    main()
