"""The autopilot on mechanistic tasks: wall time and scores per mechanistic organism.

    python benchmarks/bench_mechanistic.py [--repeat 3] [--organism induction-1 ...]

Runs `scribe-tui investigate TASK --auto` on each bundled induction, recall and direction
organism REPEAT times (TASK: its kind's question), every run in a fresh directory (its own
config and runtime folders), and prints per organism the median wall time (goal on two
cores: under 60 s), the claim, its confidence, and the bench's scores of the claim
against the key: for a circuit F1 and faithfulness (goal: both >= 0.8); for recall
layers the precision and whether the top layer is named; for a direction its ablation
effect relative to the key direction's (goal: >= 0.8) and its cosine with it. On a
control nothing may be claimed.
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

TASKS = {
    "induction": "which attention heads let this model copy repeated text",
    "recall": "find the layers where this model recalls the facts it knows about a subject",
    "direction": "find the direction in this chat model's residual stream that mediates its "
    "refusals",
}


def investigate(organism: str, task: str) -> tuple[float, dict[str, Any]]:
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
            [sys.executable, "-m", "scribe_tui", "investigate", task, "--auto",
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
    kinds = {i.name: i.kind for i in list_organisms() if i.kind in TASKS}
    names = sorted(kinds, key=lambda name: (list(TASKS).index(kinds[name]), name))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--organism", nargs="*", default=names, choices=names)
    args = parser.parse_args()
    from transformers.utils import logging

    logging.disable_progress_bar()  # the scorer loads each model: no bars among the rows
    print(f"{'organism':<22} {'median s':>8}  {'runs (s)':<20} {'claim':<30} conf  scores")
    for organism in args.organism:
        runs = [investigate(organism, TASKS[kinds[organism]]) for _ in range(args.repeat)]
        walls = [wall for wall, _ in runs]
        conclusion = runs[-1][1]  # the runs are deterministic: the same claim each time
        key = answer_key_record(organism)
        result = score(
            conclusion["answer"],
            key,
            components=conclusion.get("components"),
            organism=organism,
            layers=conclusion.get("layers"),
            direction=conclusion.get("direction"),
        )
        label = f"{organism}{' (control)' if key.control else ''}"
        print(
            f"{label:<22} {statistics.median(walls):8.1f}  "
            f"{', '.join(f'{w:.1f}' for w in walls):<20} {conclusion['answer'][:30]:<30} "
            f"{conclusion['confidence']:.2f}  {figures(kinds[organism], result.circuit)}"
            f"{'  correct' if result.correct else ''}"
            f"{'  FALSE POSITIVE' if result.false_positive else ''}"
        )


def figures(kind: str, found: Any) -> str:
    """The scores of one claim, by kind (a dash where nothing was scored)."""
    if found is None:
        return "-"
    if kind == "recall":
        return f"precision {found.precision:.2f}, top layer named {found.top_named}"
    if kind == "direction":
        return f"relative effect {found.relative:.2f}, cosine {found.cosine:.2f}"
    faith = f"{found.faithfulness:.2f}" if found.faithfulness is not None else "-"
    return f"F1 {found.f1:.2f}, faithfulness {faith}"


if __name__ == "__main__":
    main()
