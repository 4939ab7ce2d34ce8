"""The research record's commands: ``list``, ``index``, ``reproduce``, ``export`` (and
``fork``'s arguments; running a fork is resuming it, in :mod:`scribe_tui.cli.investigate`).

Imported when the parser is built, so it stays light: the work is imported inside
each command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scribe_tui.cli.common import UsageError
from scribe_tui.exit_codes import EXIT_DRIFT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from scribe_tui.record.index import STATUSES

if TYPE_CHECKING:
    from scribe_tui.record.replay import ReplayHosts

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS = ("list", "index", "reproduce", "export")


def add_commands(
    commands: argparse._SubParsersAction, add_run_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add the record's subcommands to the main parser."""

    def command(name: str, about: str, *examples: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=about,
            description=about[0].upper() + about[1:] + ".",
            epilog="examples:\n" + "".join(f"  scribe-tui {name} {e}\n" for e in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = "notebooks/2026-11-21-06-00_find-the-secret.ipynb"
    listing = command(
        "list",
        "the notebook index: status, answer, bench score",
        "",
        "--status failed --since 3d",
        "bench/runs --json",
    )
    listing.add_argument("folder", nargs="?", type=Path, help="where to look (default notebooks/)")
    listing.add_argument("--notebooks-dir", type=Path, metavar="DIR", help="same as FOLDER")
    listing.add_argument("--status", choices=STATUSES, help="only notebooks with this status")
    listing.add_argument("--organism", metavar="NAME", help="only runs on this organism")
    listing.add_argument("--since", metavar="WHEN", help="created since: 2026-11-21, 3d, 12h")
    listing.add_argument("--json", action="store_true", help="a JSON list instead of lines")

    index = command("index", "write DIR/INDEX.md, the index as a table", "", "bench/runs")
    index.add_argument("folder", nargs="?", type=Path, help="the notebooks folder (notebooks/)")

    reproduce = command(
        "reproduce",
        "re-execute a notebook in a fresh kernel and host; report drift",
        run,
        f"{run} --tolerance 0.01",
    )
    reproduce.add_argument(
        "notebook",
        type=Path,
        help="the notebook to re-execute (an aggregate's: its investigators' too)",
    )
    reproduce.add_argument("--out", type=Path, metavar="PATH", help="the re-executed copy")
    reproduce.add_argument(
        "--tolerance",
        type=float,
        metavar="X",
        help="relative change a printed number may show and still match (default 0.001)",
    )
    reproduce.add_argument(
        "--model", metavar="PATH", help="the subject model, if the notebook's was a local path"
    )
    reproduce.add_argument("--no-sandbox", action="store_true", help="run the kernel unsealed")

    export = command("export", "a notebook as one HTML or Markdown file", run, f"{run} --to md")
    export.add_argument("notebook", type=Path, help="the notebook to export")
    export.add_argument("--to", choices=["html", "md"], default="html", help="default html")
    export.add_argument("--out", type=Path, metavar="PATH", help="default: beside the notebook")

    fork = command(
        "fork",
        "start a new investigation from a cell of an old one",
        f'{run} --at 5 --message "try the logit lens"',
        f"{run} --at 3 --auto",
    )
    fork.add_argument("notebook", type=Path, help="the notebook to branch from")
    fork.add_argument(
        "--at", type=int, required=True, metavar="N", help="the code cell to branch after ([N])"
    )
    fork.add_argument("--message", metavar="TEXT", help="what the agent should try from there")
    fork.add_argument(
        "--model", metavar="ID", help="the subject model, if the notebook's was a local path"
    )
    add_run_options(fork)


def run(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; UsageError for bad input."""
    from scribe_tui.record.source import RecordError

    try:
        if args.command == "list":
            return _list(args)
        if args.command == "index":
            return _index(args)
        if args.command == "export":
            from scribe_tui.record.export import export

            print(export(args.notebook, args.to, args.out))
            return EXIT_OK
        return _reproduce(args)
    except RecordError as exc:
        raise UsageError(str(exc)) from None


def _folder(given: Path | None, *, must_exist: bool) -> Path:
    """The notebooks folder: as given (it must exist), else ./notebooks."""
    folder = given or Path("notebooks")
    if (given is not None or must_exist) and not folder.is_dir():
        raise UsageError(f"{folder}: no such folder; name the folder that holds the notebooks")
    return folder


def _list(args: argparse.Namespace) -> int:
    from scribe_tui.record.index import format_line, parse_since, read_entries

    folder = _folder(args.folder or args.notebooks_dir, must_exist=False)
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    entries, unreadable = (
        read_entries(folder, status=args.status, organism=args.organism, since=since)
        if folder.is_dir()
        else ([], [])
    )
    if args.json:
        print(json.dumps([entry.to_json() for entry in entries], indent=1))
        return EXIT_OK
    if not entries and not unreadable:
        filtered = args.status or args.organism or args.since
        print(
            f"No notebooks in {folder}/ match."
            if filtered
            else f"No notebooks in {folder}/ yet. Start one with: scribe-tui investigate TASK"
        )
    for entry in entries:
        print(format_line(entry))
    for path in unreadable:
        print(f"{path}  (unreadable)")
    return EXIT_OK


def _index(args: argparse.Namespace) -> int:
    from scribe_tui.record.index import write_index

    folder = _folder(args.folder, must_exist=True)
    try:
        print(write_index(folder))
    except OSError as exc:
        raise UsageError(f"cannot write {folder}/INDEX.md: {exc.strerror or exc}") from None
    return EXIT_OK


def _reproduce(args: argparse.Namespace) -> int:
    """Re-execute a notebook, or each notebook of an aggregate (investigators, then verdict)."""
    notebooks = _aggregate_notebooks(args.notebook)
    if notebooks is None:
        return _reproduce_one(args, args.notebook, args.out)
    if args.out is not None:
        raise UsageError(
            f"{args.notebook} is an aggregate of several notebooks and --out names one copy: "
            "drop --out (each copy is written beside its original)"
        )
    from scribe_tui.record.replay import ReplayHosts

    codes = []
    hosts = ReplayHosts()  # they ran on one shared host: they re-run on one
    try:
        for notebook in notebooks:
            codes.append(_reproduce_one(args, notebook, None, hosts))
            if codes[-1] == EXIT_INTERRUPTED:
                return EXIT_INTERRUPTED
    finally:
        hosts.stop()
    drifted = [str(nb) for nb, code in zip(notebooks, codes, strict=True) if code != EXIT_OK]
    print(
        f"Aggregate: {len(notebooks) - len(drifted)} of {len(notebooks)} notebooks reproduced"
        + (f"; not: {', '.join(drifted)}" if drifted else "")
    )
    if any(code == EXIT_FAILED for code in codes):
        return EXIT_FAILED
    return EXIT_DRIFT if drifted else EXIT_OK


def _aggregate_notebooks(path: Path) -> list[Path] | None:
    """An aggregate's notebooks, investigators first and the aggregator's last; None when
    ``path`` names no aggregate (an investigator's own notebook reproduces on its own)."""
    from scribe_tui.agent.parallel import find_manifest
    from scribe_tui.agent.transcript import started_notebook

    manifest = find_manifest(path)
    if manifest is None:
        return None
    folder = manifest.parent
    try:
        members = [m["id"] for m in json.loads(manifest.read_text(encoding="utf-8"))["members"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{manifest}: not an aggregate manifest ({exc})") from None
    found = [started_notebook(folder / member) for member in members]
    found.append(path if path.suffix == ".ipynb" else started_notebook(folder))
    notebooks = [nb for nb in found if nb is not None]
    if not notebooks:
        raise UsageError(f"{folder}: no investigator has started; nothing to reproduce")
    return notebooks


def _reproduce_one(
    args: argparse.Namespace, notebook: Path, out: Path | None, hosts: ReplayHosts | None = None
) -> int:
    from scribe_tui.record.drift import DEFAULT_TOLERANCE, CellDrift
    from scribe_tui.record.reproduce import reproduce
    from scribe_tui.runtime.host_protocol import HostStartError
    from scribe_tui.runtime.kernel import KernelError
    from scribe_tui.runtime.status import HostStatus

    last_phase = ""

    def on_host(status: HostStatus) -> None:
        nonlocal last_phase
        if not last_phase:  # the input is good: the work begins
            host = "the aggregate's model host" if hosts else "a fresh model host"
            print(f"scribe-tui: re-executing {notebook} in a fresh kernel on {host}",
                  file=sys.stderr)  # fmt: skip
        if f"{status.state}:{status.phase}" != last_phase:
            last_phase = f"{status.state}:{status.phase}"
            print(f"  host    {status.summary()}", file=sys.stderr, flush=True)

    def on_cell(cell: CellDrift, seconds: float) -> None:
        shown = f"[{cell.number}]"
        print(f"  cell {shown:<5} {cell.verdict:<16} {seconds:6.2f} s", file=sys.stderr, flush=True)

    try:
        result = asyncio.run(
            reproduce(
                notebook,
                out=out,
                tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
                model=args.model,
                sandbox=not args.no_sandbox,
                on_cell=on_cell,
                on_host=on_host,
                hosts=hosts,
            )
        )
    except (HostStartError, KernelError, TimeoutError) as exc:
        print(f"scribe-tui: cannot reproduce {notebook}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # the kernel and host were stopped on the way out
        print(f"scribe-tui: stopped; {notebook} is unchanged", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result.report())
    return EXIT_OK if result.reproduced else EXIT_DRIFT
