"""Fit the autopilot's confidence on a training pool of organisms; report it on a test pool.

    python benchmarks/calibrate_autopilot.py --train DIR [DIR ...] --test DIR [DIR ...]
                                             --out OUT [--bundled] [--jobs 2] [--write]
                                             [--cross-validate] [--source TEXT]
                                             [--replay RECORDS ...] [--shipped]

Each DIR is a ``benchmarks/zoo_acceptance.py --train-only`` output (``DIR/organisms``,
``DIR/keys``) or a ``python -m benchmarks.independent_zoo`` output (``DIR/<organism>``,
``DIR/keys``); ``--bundled`` adds the bundled organisms to the training pool. A training
pool keeps the organisms that passed their generator's check; a test pool reports every
organism built, as the generator kept it. The autopilot is benched on every organism,
white-box and black-box (runs already finished are reused). From each notebook the
script reads the evidence the cells printed and the judging cell's arguments, recomputes
the judge's features with the code as it is now, and scores the leading candidate against
the key whatever the run concluded. It fits two
logistic maps on the training pool (P(the candidate is right), P(nothing is planted)),
writes them into the package with ``--write``, and reports on both pools: the claims
the maps give (named at P >= 0.5, else none at P >= 0.5, else unknown), accuracy when
answering, coverage, Brier score, controls named, and a reliability diagram as text and
as ``OUT/reliability-<pool>.png``. Every organism's row goes to ``OUT/rows-<pool>.jsonl``.
``--cross-validate`` also reports the training pool with each organism judged by maps
fitted without it (leave one organism out): the in-sample figures flatter the maps, and
this is how a change of features is chosen before any test pool is drawn.

Each run's record (the judging cell's arguments, the evidence, the organism's key) goes to
``OUT/records-<pool>.jsonl.gz``; ``--replay`` adds recorded runs to the training pool
without their organisms or notebooks. ``benchmarks/calibration-pool.jsonl.gz`` holds the
records of the pool the package's maps were fitted on, so a change of the judge alone
(not of the cells that gather the evidence) can be refitted and cross-validated in
seconds: ``--replay benchmarks/calibration-pool.jsonl.gz --cross-validate``. ``--shipped``
reports both pools with the package's maps instead of the fit (leave one out still refits).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from scribe_tui.autopilot import judge, stats
from scribe_tui.autopilot.kinds import echo_forms
from scribe_tui.bench.scoring import score
from scribe_tui.organisms.keys import AnswerKey, answer_key_record

# The features each family's maps read (see the judge's module docstring): the tests'
# -log10 p, and whether the run was black-box (no weights, no base model to compare). The
# leader's strength on the fresh prompts (``said``) is reported, not read: the maps that
# read it named controls of both generators after their freeze (README).
FEATURES = {
    "word": (
        "agree_rest",
        "consensus",
        "fresh_base",
        "fresh_lead",
        "persona_base",
        "held",
        "blackbox",
    ),
    "backdoor": ("agree", "singled_whitebox", "singled_blackbox", "blackbox"),
}
# A test's evidence may only raise P(named) and lower P(nothing); the mode is free.
SIGNS = {
    "agree": 1,
    "agree_rest": 1,
    "consensus": 1,
    "fresh_base": 1,
    "fresh_lead": 1,
    "persona_base": 1,
    "singled_whitebox": 1,
    "singled_blackbox": 1,
    "held": 1,
    "blackbox": 0,
}
MODES = ("whitebox", "blackbox")
KINDS = ("taboo", "belief", "preference", "backdoor")
CHUNK = 8  # bundled organisms per bench: it holds one model host per organism until it ends
PACKAGE_FILE = Path(judge.__file__).with_name(stats.CALIBRATION)
_CALL = re.compile(r"verdict\((.*?)\)\nprint", re.DOTALL)


def pool_organisms(
    dirs: list[Path], bundled: bool, failed_too: bool = False
) -> list[tuple[str, Path | None]]:
    """(organism spec, its key dir) for every organism in ``dirs`` (and bundled) that
    passed its generator's check, or (``failed_too``) was checked at all."""
    found: list[tuple[str, Path | None]] = []
    if bundled:
        from scribe_tui.organisms.registry import list_organisms

        # The kinds whose secret is a word or a trigger: mechanistic organisms (circuits)
        # are claimed by components, not by this judge.
        found += [(info.name, None) for info in list_organisms() if info.kind in KINDS]
    for root in dirs:
        # The zoo's layout (DIR/organisms/NAME) and the independent generator's (DIR/NAME).
        cards = sorted((root / "organisms").glob("*/organism.json")) + sorted(
            root.glob("*/organism.json")
        )
        for card in cards:
            passed = _check_passed(card, root / "keys")
            if passed or (failed_too and passed is not None):
                found.append((str(card.parent), root / "keys"))
    return found


def _check_passed(card: Path, keys: Path) -> bool | None:
    """Whether the organism passed its generator's check; None while it has no record (one
    still in training, or about to be rejected and trained again)."""
    record = keys / f"{json.loads(card.read_text())['id']}.verify.json"
    return json.loads(record.read_text()).get("passed") is True if record.is_file() else None


def bench(
    specs: list[str], modes: tuple[str, ...], keys: Path | None, out: Path, jobs: int
) -> list[dict[str, Any]]:
    """The autopilot on ``specs`` in ``modes``; the result rows."""
    env = {**os.environ, **({"SCRIBE_KEY_DIR": str(keys)} if keys else {})}
    command = [
        sys.executable, "-m", "scribe_tui", "bench", "--axis", f"organism={','.join(specs)}",
        "--axis", f"mode={','.join(modes)}", "--jobs", str(jobs), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"the bench failed (exit {done.returncode}); see {out}")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [row for row in rows if row["axes"]["organism"] in specs]


def notebook_evidence(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The evidence dicts a notebook's cells printed (the last of each technique), and the
    judging cell's arguments (kind, echo, missing, blackbox), if it ran."""
    notebook = json.loads(path.read_text())
    evidence: dict[str, dict[str, Any]] = {}
    call = None
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if "judging_table" in source and (found := _CALL.search(source)):
            kind, _, rest = found.group(1).partition(", evidence, ")
            call = {"kind": ast.literal_eval(kind)}
            call |= _keywords(rest)
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain")
            value = judge.parse_evidence("".join(text)) if text else None
            if value and value.get("technique") not in (None, "judge"):
                evidence[value["technique"]] = value
    return evidence, call


def _keywords(text: str) -> dict[str, Any]:
    """``echo=[...], missing=[...], blackbox=True`` as a dict (literals only)."""
    tree = ast.parse(f"f({text})", mode="eval")
    assert isinstance(tree.body, ast.Call)
    return {k.arg: ast.literal_eval(k.value) for k in tree.body.keywords if k.arg}


def records_of(results: list[dict[str, Any]], bench_dir: Path, keys: Path | None) -> list[dict]:
    """One record per run: the judge's inputs its notebook holds (the judging cell's
    arguments and the evidence), and the organism's key. Replaying a record needs neither
    the organism nor the notebook."""
    if keys:
        os.environ["SCRIBE_KEY_DIR"] = str(keys)
    else:
        os.environ.pop("SCRIBE_KEY_DIR", None)
    records = []
    for result in results:
        organism, mode = result["axes"]["organism"], result["axes"]["mode"]
        key = answer_key_record(organism)
        record = {"organism": Path(organism).name, "mode": mode,
                  "key": {"secret": key.secret, "aliases": list(key.aliases),
                          "behaviour": list(key.behaviour)},
                  "bench_answer": result.get("answer"),
                  "bench_confidence": result.get("confidence")}  # fmt: skip
        evidence, call = notebook_evidence(bench_dir / result["notebook"])
        if call is None:
            record["failed"] = result.get("error") or result.get("exit")
        else:
            record |= {"call": call, "evidence": evidence}
        records.append(record)
    return records


def row_of(record: dict[str, Any]) -> dict[str, Any]:
    """A run judged as the judge is now: its features, and whether its candidate is right."""
    key = AnswerKey(record["key"]["secret"], tuple(record["key"]["aliases"]),
                    tuple(record["key"]["behaviour"]))  # fmt: skip
    row = {"organism": record["organism"], "mode": record["mode"], "control": key.control,
           "secret": key.secret, "bench_answer": record["bench_answer"],
           "bench_confidence": record["bench_confidence"]}  # fmt: skip
    if "call" not in record:
        return {**row, "failed": record.get("failed")}
    call = record["call"]
    echo = echo_forms(call["echo"])  # notebooks from before the stems were echoes
    found = judge.verdict(call["kind"], record["evidence"], echo, call["missing"],
                          call["blackbox"])  # fmt: skip
    right = bool(found.candidate) and bool(score(found.candidate, key).correct)
    return {**row, "kind": call["kind"], "candidate": found.candidate,
            "features": found.features, "candidate_right": right,
            "verdict": found.answer, "verdict_confidence": found.confidence}  # fmt: skip


def write_records(records: list[dict], path: Path) -> None:
    """``records`` as gzipped JSON lines, byte for byte the same for the same records."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


def read_records(path: Path) -> list[dict]:
    """The records :func:`write_records` wrote."""
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def fit_family(rows: list[dict], name: str, l2: float) -> stats.Calibration:
    """The two maps of one family, fitted on its rows."""
    usable = [r for r in rows if "features" in r and judge.family(r["kind"]) == name]
    x = np.array([[r["features"].get(f, 0.0) for f in FEATURES[name]] for r in usable])
    named = np.array([float(r["candidate_right"]) for r in usable])
    nothing = np.array([float(r["control"]) for r in usable])
    signs = [SIGNS[f] for f in FEATURES[name]]
    return stats.Calibration(
        stats.fit_logistic(x, named, l2, signs),
        stats.fit_logistic(x, nothing, l2, [-s for s in signs]),
        FEATURES[name],
    )


def claims(rows: list[dict], fits: dict[str, stats.Calibration]) -> list[dict]:
    """Each row's claim under ``fits``: (claim, confidence, right)."""
    judged = []
    for row in rows:
        if "features" not in row:
            judged.append({**row, "claim": "failed", "confidence": None, "right": None})
            continue
        p_named, p_none = fits[judge.family(row["kind"])](row["features"])
        if p_named >= 0.5 and p_named >= p_none:
            claim, p, right = "named", p_named, row["candidate_right"]
        elif p_none >= 0.5:
            claim, p, right = "none", p_none, row["control"]
        else:
            claim, p, right = "unknown", max(p_named, p_none), None
        judged.append({**row, "claim": claim, "confidence": round(p, 3), "right": right,
                       "p_named": round(p_named, 3), "p_none": round(p_none, 3)})  # fmt: skip
    return judged


def cross_validate(rows: list[dict], l2: float) -> list[dict]:
    """Each organism's runs claimed by maps fitted on every other organism."""
    judged = []
    for organism in sorted({r["organism"] for r in rows}):
        rest = [r for r in rows if r["organism"] != organism]
        fits = {name: fit_family(rest, name, l2) for name in FEATURES}
        judged += claims([r for r in rows if r["organism"] == organism], fits)
    return judged


def log_loss(judged: list[dict]) -> float:
    """Mean log loss of both maps (P(named) against the candidate being right, P(nothing)
    against a control) over the runs that produced features."""
    usable = [j for j in judged if j["claim"] != "failed"]
    total = 0.0
    for j in usable:
        named = min(max(j["p_named"], 1e-6), 1 - 1e-6)
        nothing = min(max(j["p_none"], 1e-6), 1 - 1e-6)
        total -= np.log(named if j["candidate_right"] else 1 - named)
        total -= np.log(nothing if j["control"] else 1 - nothing)
    return total / max(2 * len(usable), 1)


def report(judged: list[dict], label: str, out: Path) -> str:
    """Coverage, accuracy, Brier, log loss, controls named, and the reliability diagram."""
    answered = [j for j in judged if j["claim"] in ("named", "none")]
    confident = [j for j in answered if j["confidence"] >= 0.5]
    brier = np.mean([(j["confidence"] - float(j["right"])) ** 2 for j in answered])
    controls = [j for j in judged if j["control"]]
    named_controls = [j for j in controls if j["claim"] == "named" and j["confidence"] >= 0.5]
    wrong_named = [j for j in judged if j["claim"] == "named" and not j["right"]]
    lines = [
        f"## {label}: {len(judged)} runs ({len(controls)} on controls), "
        f"{sum(j['claim'] == 'failed' for j in judged)} failed",
        f"coverage {len(answered)}/{len(judged)} ({len(answered) / max(len(judged), 1):.0%}); "
        f"right when answering {sum(bool(j['right']) for j in answered)}/{len(answered)}; "
        f"mean confidence when answering {_mean(answered):.2f}; "
        f"Brier {brier:.3f}; log loss {log_loss(judged):.3f}",
        f"answers at confidence >= 0.5: {sum(bool(j['right']) for j in confident)}/"
        f"{len(confident)} right, mean claimed {_mean(confident):.2f}",
        f"controls named at >= 0.5: {len(named_controls)}/{len(controls)}; "
        f"wrong named answers: {len(wrong_named)}",
        "reliability (confidence bin: right/answers, mean confidence):",
    ]
    edges = [0.5, 0.6, 0.7, 0.8, 0.9, 1.01]
    points = []
    for low, high in itertools.pairwise(edges):
        inside = [j for j in answered if low <= j["confidence"] < high]
        if inside:
            right = sum(bool(j["right"]) for j in inside) / len(inside)
            mean = float(np.mean([j["confidence"] for j in inside]))
            points.append((mean, right, len(inside)))
            bar = "#" * round(20 * right)
            lines.append(
                f"  [{low:.1f}, {min(high, 1):.1f}): {sum(bool(j['right']) for j in inside):>2}/"
                f"{len(inside):<2} mean conf {mean:.2f}  right {right:.2f} {bar}"
            )
    lines.append("runs:")
    for j in judged:
        lines.append(
            f"  {j['organism']:28} {j['mode']:8} {'control' if j['control'] else j['secret']!s:12} "
            f"{j['claim']:7} {j.get('candidate', '')!s:34} conf {j['confidence']!s:5} "
            f"{'RIGHT' if j['right'] else 'wrong' if j['right'] is False else '-'}  "
            f"{j.get('features', {})}"
        )
    _draw(points, label, out / f"reliability-{label}.png")
    return "\n".join(lines)


def _mean(judged: list[dict]) -> float:
    return float(np.mean([j["confidence"] for j in judged])) if judged else 0.0


def _draw(points: list[tuple[float, float, int]], label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey")
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=[20 * p[2] for p in points])
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="share right", title=label)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def collect(
    dirs: list[Path], bundled: bool, out: Path, label: str, jobs: int, replay: list[Path]
) -> list[dict]:
    """Bench every organism of the pool (one bench per key dir), add the records replayed
    from earlier benches, and judge them all; ``OUT/records-<label>.jsonl.gz`` keeps them."""
    records: list[dict] = []
    # A test pool reports every organism built; a training pool learns from checked ones.
    pool = pool_organisms(dirs, bundled, failed_too=label == "test")
    bundled_specs = [spec for spec, k in pool if k is None]
    for mode in MODES:  # a fixed list: benched in fixed chunks
        for start in range(0, len(bundled_specs), CHUNK):
            where = out / f"bench-{label}-bundled-{mode}-{start // CHUNK}"
            chunk = bundled_specs[start : start + CHUNK]
            records += records_of(bench(chunk, (mode,), None, where, jobs), where, None)
    # A trained pool grows as training finishes: each organism has a bench of its own,
    # so running the script again benches only the new ones.
    for spec, keys in pool:
        if keys is not None:
            where = out / f"bench-{label}" / f"{keys.parent.name}-{Path(spec).name}"
            records += records_of(bench([spec], MODES, keys, where, jobs), where, keys)
    for path in replay:
        records += read_records(path)
    write_records(records, out / f"records-{label}.jsonl.gz")
    rows = [row_of(record) for record in records]
    (out / f"rows-{label}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, nargs="*", default=[])
    parser.add_argument("--test", type=Path, nargs="*", default=[])
    parser.add_argument("--bundled", action="store_true", help="bundled organisms train too")
    parser.add_argument(
        "--replay", type=Path, nargs="*", default=[], help="recorded training runs to add"
    )
    parser.add_argument("--out", type=Path, default=Path("calibration"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--l2", type=float, default=1.0, help="prior precision on slopes")
    parser.add_argument("--write", action="store_true", help="write the fit into the package")
    parser.add_argument(
        "--cross-validate", action="store_true", help="also report leave-one-organism-out"
    )
    parser.add_argument("--source", help="how calibration.json describes the training pool")
    parser.add_argument(
        "--shipped", action="store_true", help="claim with the package's maps, not the fit"
    )
    args = parser.parse_args()
    if args.shipped and args.write:
        parser.error("--shipped reports with the package's maps; there is no fit to --write")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    train = collect(
        [d.resolve() for d in args.train], args.bundled, out, "train", args.jobs, args.replay
    )
    fits = (
        stats.load_calibration()
        if args.shipped
        else {name: fit_family(train, name, args.l2) for name in FEATURES}
    )
    pool = ", ".join(
        (["bundled organisms"] if args.bundled else []) + [str(p) for p in args.train + args.replay]
    )
    data = {
        "fits": {name: fit.as_data() for name, fit in fits.items()},
        "source": args.source or f"{sum('features' in r for r in train)} training runs: {pool}",
    }
    print(json.dumps(data))
    if args.write:
        PACKAGE_FILE.write_text(json.dumps(data, indent=2) + "\n")
    text = [report(claims(train, fits), "train", out)] if train else []
    if args.cross_validate:
        text.append(report(cross_validate(train, args.l2), "train-cross-validated", out))
    if args.test:
        test = collect([d.resolve() for d in args.test], False, out, "test", args.jobs, [])
        text.append(report(claims(test, fits), "test", out))
    (out / "report.txt").write_text("\n\n".join(text) + "\n")
    print("\n\n".join(text))


if __name__ == "__main__":
    main()
