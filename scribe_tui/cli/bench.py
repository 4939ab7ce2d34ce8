"""``scribe-tui bench``: expand a grid, run it, score it, report it.

scribe-tui bench [SPEC.toml] [--axis KEY=V1,V2 ...] [--repeat N] [--jobs N] [--out DIR]
                 [--backend local|modal] [--gpu GPU] [--json] [--dry-run] [--unscored]
                 [--no-sandbox] [--allow-network]
scribe-tui bench report DIR
scribe-tui bench export DIR --to inspect [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from scribe_tui.bench.grid import (
    AXES,
    GridError,
    RunSpec,
    build_grid,
    expand,
    load_spec,
    organism_label,
    parse_axis,
)
from scribe_tui.cli.common import CommandParser
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

USAGE = (
    "scribe-tui bench [SPEC.toml] [--axis KEY=V1,V2 ...] [--repeat N] [--jobs N] [--out DIR] ...\n"
    "       scribe-tui bench report DIR\n"
    "       scribe-tui bench export DIR --to inspect [--out FILE]"
)


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="scribe-tui bench",
        usage=USAGE,
        description="Score investigators on model organisms: every combination of the axes, "
        "each run an ordinary investigation under DIR/runs/, scored against answer keys "
        "the agents never see. `scribe-tui bench report DIR` prints the table again and "
        "rewrites DIR/report.md; `scribe-tui bench export DIR --to inspect` writes an Inspect "
        "eval log for `inspect view`.",
        epilog="examples:\n"
        "  scribe-tui bench --axis organism=taboo,belief --repeat 3 --out out\n"
        "  scribe-tui bench --axis organism=taboo --axis methodology=on,off --jobs 2\n"
        "  scribe-tui bench spec.toml --dry-run\n"
        "  scribe-tui bench report out\n"
        "  scribe-tui bench export out --to inspect\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", nargs="?", type=Path, help="a TOML spec ([grid] and [run])")
    parser.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help=f"values for one axis; axes: {', '.join(AXES)}",
    )
    parser.add_argument("--repeat", type=int, metavar="N", help="runs per grid cell (default 1)")
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="investigations at once (default: cores, memory)"
    )
    parser.add_argument("--out", type=Path, help="the bench directory (default bench/)")
    parser.add_argument(
        "--backend",
        choices=["local", "modal"],
        help="where the subject models run: local (this machine, the default) or modal (each "
        "organism's model in a Modal GPU container; the agents, sealed kernels and scoring stay "
        "here, so no key reaches Modal; needs `modal token new`)",
    )
    parser.add_argument("--gpu", help="the Modal GPU type with --backend modal (default L4)")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and its size")
    parser.add_argument("--unscored", action="store_true", help="allow organisms without a key")
    parser.add_argument("--no-sandbox", action="store_true", help="run kernels unsealed")
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="let sealed kernels and model hosts open TCP connections (closed by default)",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run the bench command line; returns the exit code."""
    if argv[:1] == ["report"]:
        return _report_command(argv[1:])
    if argv[:1] == ["export"]:
        return _export_command(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        runs, options = _plan(args)
    except GridError as exc:
        print(f"scribe-tui bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out: Path = options["out"]
    if args.dry_run:
        _print_grid(runs, out, options)
        return EXIT_OK
    from scribe_tui.paths import writable_folder

    unwritable = writable_folder(out, "the bench's runs", "choose another folder with --out")
    if unwritable:
        print(f"scribe-tui bench: {unwritable}", file=sys.stderr)
        return EXIT_USAGE
    from scribe_tui.bench.modal_backend import ModalBenchRunner, ModalUnavailable
    from scribe_tui.bench.runner import BenchRunner

    progress = Progress(len(runs), sys.stderr, json_out=sys.stdout if args.json else None)
    settings: dict[str, Any] = dict(
        jobs=options["jobs"],
        scored=not options["unscored"],
        sandbox=not args.no_sandbox,
        allow_network=args.allow_network,
        on_event=progress.event,
    )
    if options["backend"] == "modal":
        runner: BenchRunner = ModalBenchRunner(out, runs, gpu=options["gpu"], **settings)
    else:
        runner = BenchRunner(out, runs, **settings)
    try:
        asyncio.run(runner.run())
    except KeyboardInterrupt:
        progress.close()
        print(
            f"scribe-tui bench: interrupted; finished runs are scored in {out / 'results.jsonl'}; "
            "run the same command to resume the rest",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except ModalUnavailable as exc:
        progress.close()
        print(f"scribe-tui bench: {exc} (finished runs are kept in {out}/)", file=sys.stderr)
        return EXIT_FAILED
    progress.close()
    failed = _finish(out, quiet=args.json)
    return EXIT_FAILED if failed else EXIT_OK


def _plan(args: argparse.Namespace) -> tuple[list[RunSpec], dict[str, Any]]:
    spec_grid, run = load_spec(args.spec) if args.spec else ({}, {})
    grid = build_grid(spec_grid, [parse_axis(a) for a in args.axis])
    options = {
        "repeat": args.repeat if args.repeat is not None else int(run.get("repeat", 1)),
        "jobs": args.jobs if args.jobs is not None else run.get("jobs"),
        "out": args.out or Path(run.get("out", "bench")),
        "backend": args.backend or run.get("backend", "local"),
        "gpu": args.gpu or run.get("gpu"),
        "unscored": args.unscored or bool(run.get("unscored", False)),
    }
    if options["backend"] not in ("local", "modal"):
        raise GridError(f"backend {options['backend']!r}: use local or modal")
    if options["backend"] == "modal" and not args.dry_run:
        _check_modal()
    if options["jobs"] is not None and int(options["jobs"]) < 1:
        raise GridError(f"--jobs must be at least 1, got {options['jobs']}")
    if options["jobs"] is None and options["backend"] == "modal":
        from scribe_tui.bench.modal_backend import DEFAULT_JOBS

        options["jobs"] = DEFAULT_JOBS
    elif options["jobs"] is None:
        from scribe_tui.bench.runner import default_jobs

        options["jobs"] = default_jobs()
    runs = expand(grid, options["repeat"])
    if not options["unscored"]:
        _check_keys(grid["organism"])
    if any(a.startswith("claude") for a in grid["agent"]) and not os.environ.get(
        "ANTHROPIC_API_KEY"
    ):
        raise GridError("agent claude needs ANTHROPIC_API_KEY set (or bench agent=autopilot)")
    return runs, options


def _check_modal() -> None:
    """The Modal SDK and a token, checked in milliseconds, before anything starts."""
    import importlib.util

    from scribe_tui.runtime.modal_host import modal_credentials_problem

    if importlib.util.find_spec("modal") is None:
        raise GridError("--backend modal needs the modal package: pip install 'scribe-tui[modal]'")
    problem = modal_credentials_problem()
    if problem:
        raise GridError(problem)


def _check_keys(organisms: list[str]) -> None:
    from scribe_tui.organisms.keys import answer_key_record
    from scribe_tui.organisms.registry import UnknownOrganism

    for organism in organisms:
        try:
            answer_key_record(organism)
        except UnknownOrganism:
            raise GridError(
                f"organism {organism_label(organism)} has no answer key, so runs on it cannot "
                "be scored; pass --unscored to run it anyway"
            ) from None


def _print_grid(runs: list[RunSpec], out: Path, options: dict[str, Any]) -> None:
    from scribe_tui.bench.report import methodology_note

    axes: dict[str, list[Any]] = {}
    for run in runs:
        for key, value in run.axes:
            shown = organism_label(value) if key == "organism" else value
            axes.setdefault(key, [])
            if shown not in axes[key]:
                axes[key].append(shown)
    for key, values in axes.items():
        print(f"{key:17} {', '.join(str(v) for v in values)}")
    cells = len(runs) // options["repeat"]
    print(
        f"{len(runs)} runs = {cells} grid cells × {options['repeat']} repeat(s); "
        f"{options['jobs']} at once; into {out}/"
    )
    note = methodology_note([{"axes": run.to_dict()} for run in runs])
    if note:
        print(note)


def _finish(out: Path, *, quiet: bool, by: list[str] | None = None) -> int:
    """Write the report (its rows grouped ``by`` these axes, default: those that vary),
    print the table; the number of failed runs."""
    from scribe_tui.bench.report import (
        default_by,
        format_mechanistic_tables,
        format_table,
        load_results,
        methodology_note,
        write_report,
    )
    from scribe_tui.bench.scoring import is_failed, summarise

    rejected: list[str] = []
    rows = load_results(out, rejected)
    by = by or default_by(rows)
    report = write_report(out, by)
    if rejected:
        print(
            f"scribe-tui bench: left out {len(rejected)} rows of {out / 'results.jsonl'} that fail "
            f"their integrity check (not written by scribe-tui as they are): {', '.join(rejected)}",
            file=sys.stderr,
        )
    if not quiet:
        cells = summarise(rows, by)
        print(format_table(cells, by))
        mechanistic = format_mechanistic_tables(cells, by)
        if mechanistic:
            print(f"\n{mechanistic}")
        note = methodology_note(rows)
        if note:
            print(note)
        print(f"report: {report}", file=sys.stderr)
    return sum(1 for row in rows if is_failed(row))


def _report_command(argv: list[str]) -> int:
    parser = CommandParser(
        prog="scribe-tui bench report",
        description="Print a bench's table again and rewrite DIR/report.md and report.png "
        "(coverage, accuracy when answering, Brier, false positives on controls, failed runs "
        "and a reliability diagram). Example: scribe-tui bench report bench",
    )
    parser.add_argument("dir", type=Path, help="the --out directory of a bench")
    parser.add_argument(
        "--by",
        metavar="AXIS[,AXIS]",
        help="group the rows by these axes only (default: every axis that varies), e.g. "
        "--by investigators to pool the organisms",
    )
    args = parser.parse_args(argv)
    if not (args.dir / "results.jsonl").is_file():
        print(
            f"scribe-tui bench: {args.dir} holds no results.jsonl; "
            "give the --out directory of a bench",
            file=sys.stderr,
        )
        return EXIT_USAGE
    by = [name.strip() for name in args.by.split(",") if name.strip()] if args.by else None
    if by is not None:
        from scribe_tui.bench.report import load_results

        axes = sorted({name for row in load_results(args.dir, []) for name in row["axes"]})
        unknown = [name for name in by if name not in axes]
        if unknown or not by:
            print(
                f"scribe-tui bench: --by {args.by}: not an axis of this bench; "
                f"its axes: {', '.join(axes)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    _finish(args.dir, quiet=False, by=by)
    return EXIT_OK


def _export_command(argv: list[str]) -> int:
    from scribe_tui.bench.inspect_export import FORMATS, ExportError, export_inspect

    parser = CommandParser(
        prog="scribe-tui bench export",
        description="Write a bench as a log another tool reads. --to inspect: an Inspect eval "
        "log, one sample per run (its transcript, score and notebook), for `inspect view`. "
        "Example: scribe-tui bench export bench --to inspect",
    )
    parser.add_argument("dir", type=Path, help="the --out directory of a bench")
    parser.add_argument("--to", metavar="FORMAT", help=f"the format: {', '.join(FORMATS)}")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="where to write it (.eval, or .json for Inspect's JSON format; "
        "default DIR/inspect/<created>_<bench>_<id>.eval)",
    )
    args = parser.parse_args(argv)
    if args.to not in FORMATS:
        given = "no --to" if args.to is None else f"--to {args.to}"
        print(
            f"scribe-tui bench export: {given}: name a format, one of {', '.join(FORMATS)} "
            f"(scribe-tui bench export {args.dir} --to inspect)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        exported = export_inspect(args.dir, args.out)
    except ExportError as exc:
        print(f"scribe-tui bench export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if exported.rejected:
        print(
            f"scribe-tui bench export: left out {len(exported.rejected)} rows that fail their "
            f"integrity check (not written by scribe-tui as they are): "
            f"{', '.join(exported.rejected)}",
            file=sys.stderr,
        )
    if exported.transcripts_left_out:
        print(
            "scribe-tui bench export: no messages for runs whose transcript fails its integrity "
            f"check: {', '.join(exported.transcripts_left_out)}",
            file=sys.stderr,
        )
    print(exported.path)
    print(
        f"{exported.samples} runs; view them: inspect view --log-dir {exported.path.parent}",
        file=sys.stderr,
    )
    return EXIT_OK


class Progress:
    """One line per run on stderr (live in a terminal), and JSON events on ``json_out``."""

    def __init__(self, total: int, err: TextIO, json_out: TextIO | None = None) -> None:
        self.total, self.err, self.json_out = total, err, json_out
        self.done = self.correct = self.scored = 0
        self.running: set[str] = set()
        self.started = time.monotonic()
        self.finished_here = 0
        self.live = err.isatty()

    def event(self, event: dict[str, Any]) -> None:
        if self.json_out is not None:
            self.json_out.write(json.dumps(event, sort_keys=True) + "\n")
            self.json_out.flush()
        kind = event["type"]
        if kind == "bench_started":
            self.done = event["done"]
            self._line(f"bench: {event['total']} runs, {event['done']} already done, "
                       f"{event['jobs']} at once")  # fmt: skip
        elif kind == "host_starting":
            self._line(f"  host   loading {event['organism']}")
        elif kind == "run_started":
            self.running.add(event["run_id"])
        elif kind in ("run_finished", "run_interrupted"):
            self.running.discard(event.get("run_id") or event["row"]["run_id"])
            if kind == "run_finished":
                self._finished(event["row"])
        self._status()

    def _finished(self, row: dict[str, Any]) -> None:
        from scribe_tui.bench.scoring import verdict as verdict_of

        self.done += 1
        self.finished_here += 1
        verdict: str = verdict_of(row)
        if verdict not in ("failed", "unscored"):
            self.scored += 1
            self.correct += verdict == "correct"
        if verdict == "failed":
            verdict = f"failed: {row.get('error')}"
        elif verdict == "wrong" and row.get("false_positive"):
            verdict = "false positive"
        answer = "" if row.get("answer") is None else f" {row['answer']!r} ({row['confidence']})"
        self._line(
            f"  [{self.done}/{self.total}] {row['run_id']}  {verdict}{answer}  "
            f"{row.get('wall_s', 0):.1f} s · {self._accuracy()}"
        )

    def _accuracy(self) -> str:
        return f"{self.correct}/{self.scored} correct so far" if self.scored else "none scored yet"

    def _status(self) -> None:
        if not self.live:
            return
        left = self.total - self.done
        per_run = (
            (time.monotonic() - self.started) / self.finished_here if self.finished_here else 0
        )
        eta = f"ETA {per_run * left:.0f} s" if per_run else "ETA ?"
        self.err.write(
            f"\r\x1b[K{self.done}/{self.total} done · {len(self.running)} running · "
            f"{self._accuracy()} · {eta}"
        )
        self.err.flush()

    def _line(self, text: str) -> None:
        if self.live:
            self.err.write("\r\x1b[K")
        print(text, file=self.err, flush=True)

    def close(self) -> None:
        if self.live:
            self.err.write("\r\x1b[K")
            self.err.flush()
