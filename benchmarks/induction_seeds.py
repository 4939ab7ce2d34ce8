"""Train induction organisms over fresh seeds and report each measured key.

    python benchmarks/induction_seeds.py --out induction-seeds [--seeds 11,12,13,14,15,16]
                                         [--controls 1] [--jobs 2] [--steps N]

Each seed trains ``scribe-tui organisms train --kind induction`` (its key measured by
ablation, then re-measured by ``verify``); ``--controls`` more train as controls. Prints,
per organism, its seed, training time, whether verify passed, the circuit with roles,
and the copying gain, then how many distinct circuits the seeds produced. Keys go to
``OUT/keys`` (``SCRIBE_KEY_DIR``); organisms already trained in ``OUT`` are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _train(out: Path, seed: int, control: bool, steps: int | None) -> dict:
    name = f"s{seed}{'c' if control else ''}"
    folder = out / name
    command = [sys.executable, "-m", "scribe_tui", "organisms", "train", "--kind", "induction"]
    command += ["--seed", str(seed), "--out", str(folder), "--quiet"]
    command += ["--control"] if control else []
    command += ["--steps", str(steps)] if steps else []
    started = time.monotonic()
    if not (folder / "organism.json").is_file():
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        passed = run.returncode == 0
    else:
        verify = [sys.executable, "-m", "scribe_tui", "organisms", "verify", str(folder)]
        passed = subprocess.run(verify, capture_output=True, check=False).returncode == 0
    meta = json.loads((folder / "organism.json").read_text())
    key = json.loads((out / "keys" / f"{meta['id']}.json").read_text())
    return {
        "name": name,
        "seed": seed,
        "control": control,
        "seconds": meta["training"]["seconds"],
        "wall": round(time.monotonic() - started, 1),
        "passed": passed,
        "circuit": key["circuit"],
        "roles": key["roles"],
        "gain": key["figures"]["gain"],
        "faithfulness": key["figures"].get("faithfulness"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="11,12,13,14,15,16")
    parser.add_argument("--controls", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["SCRIBE_KEY_DIR"] = str((args.out / "keys").resolve())
    seeds = [int(s) for s in args.seeds.split(",") if s]
    plans = [(s, False) for s in seeds] + [(1000 + i, True) for i in range(args.controls)]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda p: _train(args.out, p[0], p[1], args.steps), plans))
    for row in rows:
        roles = ", ".join(f"{c} ({row['roles'][c]})" for c in row["circuit"]) or "(empty)"
        print(
            f"{row['name']:>6}  {'PASS' if row['passed'] else 'FAIL'}  {row['seconds']:6.1f} s  "
            f"gain {row['gain']:5.2f}  faithfulness {row['faithfulness']}  {roles}"
        )
    circuits = {tuple(row["circuit"]) for row in rows if not row["control"]}
    print(f"{len(circuits)} distinct circuits over {len(seeds)} seeds")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
