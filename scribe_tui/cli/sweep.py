"""``scribe-tui sweep NB --axis NAME=V1,V2 ... [--jobs N] [--out DIR]``: re-execute a
notebook over a grid of parameters (:mod:`scribe_tui.record.sweep`) and print the table.

Exit codes: 0 every run completed, 1 a run failed (or the host could not start),
2 bad input (one line), 130 stopped by Ctrl-C (finished runs and their table stay).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scribe_tui.cli.common import UsageError, check_model
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from scribe_tui.record.sweep import SweepPlan

__all__ = ["add_command", "run"]


def add_command(commands: argparse._SubParsersAction) -> None:
    """Add ``sweep`` to the main parser."""
    about = "re-execute a notebook over a grid of parameters"
    parser = commands.add_parser(
        "sweep",
        help=about,
        description="Re-execute a notebook once per combination of parameter values, each run "
        "in a fresh sealed kernel on one shared model host. The notebook's code cell tagged "
        "'parameters' sets the defaults; a cell tagged 'results' that ends with a dict "
        "gives each run's row in DIR/sweep.md and DIR/sweep.csv.",
        epilog="examples:\n"
        "  scribe-tui sweep notebooks/sae.ipynb --axis seed=1,2,3,4,5\n"
        "  scribe-tui sweep notebooks/sae.ipynb --axis seed=1,2 --axis l1=0.01,0.1 --jobs 2\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("notebook", type=Path, help="the notebook to re-execute")
    parser.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="values for one parameter (repeat for a grid); Python literals, else strings",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="runs at once (default 1)")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="a new folder for the runs (default NB.sweep)"
    )
    parser.add_argument(
        "--model", metavar="SPEC", help="the subject model, if the notebook records none"
    )
    parser.add_argument("--no-sandbox", action="store_true", help="run the kernels unsealed")


def run(args: argparse.Namespace) -> int:
    """Run ``scribe-tui sweep``; returns the exit code."""
    from scribe_tui.paths import writable_folder
    from scribe_tui.record.source import RecordError
    from scribe_tui.record.sweep import plan_sweep

    try:
        if args.model is not None:
            check_model(args.model)
        plan = plan_sweep(args.notebook, args.axis, out=args.out, model=args.model, jobs=args.jobs)
    except (UsageError, RecordError) as exc:
        print(f"scribe-tui sweep: {exc}", file=sys.stderr)
        return EXIT_USAGE
    unwritable = writable_folder(
        plan.folder, "the sweep's runs", "choose another folder with --out"
    )
    if unwritable:
        print(f"scribe-tui sweep: {unwritable}", file=sys.stderr)
        return EXIT_USAGE
    return _sweep(plan, sandbox=not args.no_sandbox)


def _sweep(plan: SweepPlan, *, sandbox: bool) -> int:
    from scribe_tui.record.parameters import run_label
    from scribe_tui.record.source import RecordError
    from scribe_tui.record.sweep import Sweep, SweepRun, run_sweep
    from scribe_tui.runtime.host_protocol import HostStartError
    from scribe_tui.runtime.kernel import KernelError
    from scribe_tui.runtime.status import HostStatus

    width = len(str(len(plan.runs)))
    print(
        f"scribe-tui: sweeping {plan.notebook.path}: {len(plan.runs)} runs into {plan.folder}",
        file=sys.stderr,
    )
    last_phase = ""

    def on_host(status: HostStatus) -> None:
        nonlocal last_phase
        if f"{status.state}:{status.phase}" != last_phase:
            last_phase = f"{status.state}:{status.phase}"
            print(f"  host    {status.summary()}", file=sys.stderr, flush=True)

    def on_run(run: SweepRun) -> None:
        shown = f"{run.number:>{width}}/{len(plan.runs)}"
        note = f"  {run.problem}" if run.problem else ""
        print(f"  run {shown}  {run_label(run.parameters):<24} {run.status:<9} "
              f"{run.wall:6.1f} s{note}", file=sys.stderr, flush=True)  # fmt: skip

    # The tables are rewritten after every run, so whatever stops the sweep leaves them.
    markdown, table = plan.table_files

    async def until_ctrl_c() -> Sweep | None:
        """The sweep, or None if Ctrl-C stopped it (its runs in flight are dropped)."""
        sweep = asyncio.ensure_future(
            run_sweep(plan, sandbox=sandbox, on_host=on_host, on_run=on_run)
        )
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, sweep.cancel)
        try:
            return await sweep
        except asyncio.CancelledError:
            if not sweep.cancelled():
                raise
            return None
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)

    try:
        result = asyncio.run(until_ctrl_c())
    except (HostStartError, KernelError, TimeoutError, RecordError) as exc:
        print(f"scribe-tui sweep: stopped: {exc}; finished runs are in {markdown}", file=sys.stderr)
        return EXIT_FAILED
    if result is None:
        print(f"scribe-tui sweep: interrupted; finished runs are in {markdown}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result.markdown(), end="")
    print(f"\nTable: {markdown} and {table}")
    return EXIT_FAILED if result.failed else EXIT_OK
