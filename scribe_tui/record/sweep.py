"""``scribe-tui sweep``: re-execute a notebook over a grid of parameters, one sealed run each.

Parameters follow papermill's convention (:mod:`scribe_tui.record.parameters`), but
the runs are driven by nbclient, as ``reproduce`` drives its: papermill would add
click, requests, tenacity, tqdm and more, and its engine starts kernels by name,
while every run here must use a kernel sealed and wired to one shared model host
(:mod:`scribe_tui.runtime.sealed`), which nbclient takes as it is.

The model host starts once and serves every run; each run gets a fresh kernel working
in its own files folder, a receipt, and an executed notebook ``NN_<params>.ipynb`` in
the sweep folder, which ``scribe-tui list`` shows (status ``completed`` or ``failed``).
After each run the table of the finished runs is rewritten (``sweep.md``, ``sweep.csv``),
so a sweep stopped half-way leaves the runs it finished and their table.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from scribe_tui.record.parameters import (
    combinations,
    file_label,
    inject,
    parameter_names,
    parse_axis,
    read_results,
    run_label,
)
from scribe_tui.record.reproduce import CELL_TIMEOUT
from scribe_tui.record.source import RecordError, open_notebook
from scribe_tui.runtime.nbfiles import atomic_write
from scribe_tui.runtime.notebook import Notebook, NotebookError, cap_outputs, files_folder

if TYPE_CHECKING:
    from scribe_tui.runtime.host_process import HostProcess
    from scribe_tui.runtime.kernel import KernelSession
    from scribe_tui.runtime.sandbox import SandboxState
    from scribe_tui.runtime.status import HostStatus

__all__ = ["Sweep", "SweepPlan", "SweepRun", "plan_sweep", "run_sweep"]

# What a run does not inherit from the swept notebook: it is its own run, with its own
# receipt and outcome (and it is no reproduction copy, which the index would hide).
_NOT_INHERITED = (
    "conclusion",
    "forked_from",
    "forked_at",
    "receipt",
    "reproduction",
    "reproduction_of",
    "sweep",
)


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep, before anything starts: the notebook, the model and every run."""

    notebook: Notebook
    model: str
    axes: dict[str, list[Any]]
    folder: Path
    runs: list[dict[str, Any]]
    jobs: int = 1

    @property
    def table_files(self) -> tuple[Path, Path]:
        """The table of finished runs: ``sweep.md`` and ``sweep.csv`` in the sweep folder."""
        return self.folder / "sweep.md", self.folder / "sweep.csv"

    def run_path(self, number: int) -> Path:
        """Where run ``number`` (from 1) writes its executed notebook."""
        label = file_label(self.runs[number - 1])
        return self.folder / f"{number:0{len(str(len(self.runs)))}d}_{label or 'run'}.ipynb"


@dataclass
class SweepRun:
    """One finished run."""

    number: int
    parameters: dict[str, Any]
    path: Path
    status: str = "completed"
    problem: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    wall: float = 0.0


@dataclass
class Sweep:
    """The runs a sweep finished so far, in run order, and how to tabulate them."""

    plan: SweepPlan
    runs: list[SweepRun] = field(default_factory=list)

    @property
    def failed(self) -> list[SweepRun]:
        return [run for run in self.runs if run.status != "completed"]

    def _columns(self) -> tuple[list[str], list[str]]:
        """The result names (in order of appearance), and the axes'."""
        values: dict[str, None] = {}
        for run in self.runs:
            values.update(dict.fromkeys(run.values))
        return list(values), list(self.plan.axes)

    def _headers(self, values: list[str]) -> list[str]:
        # A result named like a parameter gets its own column, told apart by name.
        return [f"{v} (result)" if v in self.plan.axes else v for v in values]

    def markdown(self) -> str:
        """The table of finished runs as Markdown, links relative to the sweep folder."""
        values, axes = self._columns()
        notes = any(run.problem for run in self.runs)
        head = ["run", *axes, "status", *self._headers(values)] + (["note"] if notes else [])
        rows = [
            [
                f"[{run.number}]({quote(run.path.name)})",
                *(_shown(run.parameters[a]) for a in axes),
                run.status,
                *(_shown(run.values[v]) if v in run.values else "" for v in values),
            ]
            + ([run.problem] if notes else [])
            for run in self.runs
        ]
        planned = len(self.plan.runs)
        done = f"{len(self.runs)} of {planned}" if len(self.runs) < planned else f"{planned}"
        grid = "; ".join(f"{a} = {', '.join(map(_shown, vs))}" for a, vs in self.plan.axes.items())
        lines = [
            f"# Sweep of {self.plan.notebook.path.name}",
            "",
            f"{done} run{'' if planned == 1 else 's'} finished · {grid} · model {self.plan.model}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + " --- |" * len(head),
            *("| " + " | ".join(_cell(text) for text in row) + " |" for row in rows),
        ]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """The same table as CSV: one row per run, full-precision values."""
        values, axes = self._columns()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["notebook", *axes, "status", *self._headers(values), "note"])
        for run in self.runs:
            writer.writerow(
                [
                    run.path.name,
                    *(_plain(run.parameters[a]) for a in axes),
                    run.status,
                    *(_plain(run.values[v]) if v in run.values else "" for v in values),
                    run.problem,
                ]
            )
        return out.getvalue()

    def write_tables(self) -> tuple[Path, Path]:
        """Rewrite ``sweep.md`` and ``sweep.csv`` (each atomically); returns their paths."""
        markdown, table = self.plan.table_files
        atomic_write(markdown, self.markdown().encode("utf-8"))
        atomic_write(table, self.csv().encode("utf-8"))
        return markdown, table


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _default_folder(path: Path) -> Path:
    """``<stem>.sweep`` beside the notebook, or the first ``<stem>.sweep-N`` not taken."""
    for n in range(1, 10_000):
        folder = path.with_name(f"{path.stem}.sweep" + ("" if n == 1 else f"-{n}"))
        if not folder.exists():
            return folder
    raise RecordError(f"{path.parent}: no free sweep folder name; pass --out DIR")


def plan_sweep(
    path: Path,
    axes: list[str],
    *,
    out: Path | None = None,
    model: str | None = None,
    jobs: int = 1,
) -> SweepPlan:
    """Check everything a sweep needs before a model loads; RecordError (one line) if not.

    ``axes`` are ``NAME=V1,V2`` texts, each NAME assigned in the parameters cell;
    ``model`` overrides the notebook's recorded subject model (or supplies one).
    """
    from scribe_tui.agent.launch import LaunchError, recall_model

    if jobs < 1:
        raise RecordError(f"--jobs must be 1 or more, got {jobs}")
    if not axes:
        raise RecordError("name at least one --axis NAME=V1,V2 (e.g. --axis seed=1,2,3)")
    notebook = open_notebook(path)
    known = parameter_names(notebook.nb, str(path))
    grid: dict[str, list[Any]] = {}
    for text in axes:
        name, values = parse_axis(text)
        if name in grid:
            raise RecordError(f"--axis {name} is given twice; list its values once: {name}=A,B")
        if name not in known:
            sets = f"sets {', '.join(known)}" if known else "sets nothing"
            raise RecordError(
                f"--axis {name}: not a parameter of {path} (its parameters cell {sets})"
            )
        grid[name] = values
    recorded = str(notebook.scribe.get("model") or "")
    if not (model or recorded):
        raise RecordError(f"{path} records no subject model: pass --model (e.g. organism:taboo)")
    try:
        spec = model or recall_model(path, recorded)
    except LaunchError as exc:
        raise RecordError(str(exc)) from None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RecordError(f"--out {out}: not an empty folder; name a new one for this sweep")
    folder = out or _default_folder(path)
    return SweepPlan(notebook, spec, grid, folder, combinations(grid), jobs)


async def run_sweep(
    plan: SweepPlan,
    *,
    sandbox: bool = True,
    cell_timeout: float = CELL_TIMEOUT,
    on_host: Callable[[HostStatus], None] | None = None,
    on_run: Callable[[SweepRun], None] | None = None,
) -> Sweep:
    """Run every planned run on one model host, ``plan.jobs`` at a time.

    Each finished run's notebook and the table are written before the next result is
    awaited; on cancellation (Ctrl-C) the runs in flight are dropped and the kernels
    and host stopped.
    """
    from scribe_tui.record.replay import host_for
    from scribe_tui.runtime.sealed import sandbox_state, start_host_hashed

    state = sandbox_state(sandbox)
    # Runs in flight call the model side by side, a worker each up to the cores.
    host = host_for(plan.notebook, plan.model, state, workers=min(plan.jobs, os.cpu_count() or 1))
    sweep = Sweep(plan)
    plan.folder.mkdir(parents=True, exist_ok=True)
    sweep.write_tables()
    try:
        status, digests = await start_host_hashed(host, on_host)
        slots = asyncio.Semaphore(plan.jobs)

        async def one(number: int) -> None:
            async with slots:
                run = await _execute(plan, number, host, state, status, digests, cell_timeout)
            sweep.runs = sorted([*sweep.runs, run], key=lambda r: r.number)
            sweep.write_tables()
            if on_run is not None:
                on_run(run)

        tasks = [asyncio.create_task(one(n)) for n in range(1, len(plan.runs) + 1)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # one run's error (or Ctrl-C) stops the others
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await asyncio.to_thread(host.stop)
    return sweep


async def _execute(
    plan: SweepPlan,
    number: int,
    host: HostProcess,
    sandbox: SandboxState,
    host_status: HostStatus,
    digests: dict[str, Any],
    cell_timeout: float,
) -> SweepRun:
    """Run ``number`` in a fresh sealed kernel; write its executed notebook."""
    import nbformat

    from scribe_tui.record.replay import receipt_for
    from scribe_tui.runtime.sealed import sealed_kernel

    parameters = plan.runs[number - 1]
    run = SweepRun(number, parameters, plan.run_path(number))
    document = inject(plan.notebook.nb, parameters)
    created = datetime.now().astimezone().isoformat(timespec="seconds")
    receipt = receipt_for(host, host_status, digests, sandbox)
    receipt["parameters"] = parameters
    files = files_folder(run.path)
    files.mkdir(parents=True, exist_ok=True)  # the run's kernel works (and writes) here alone
    kernel = sealed_kernel(host, sandbox, files)
    started = time.monotonic()
    try:
        await kernel.start()
        executed = nbformat.from_dict(copy.deepcopy(document))
        run.problem = await _drive(executed, kernel, cell_timeout)
    finally:
        await kernel.shutdown()
    run.wall = time.monotonic() - started
    run.status = "failed" if run.problem else "completed"
    for index, cell in enumerate(document["cells"]):
        if cell["cell_type"] == "code":
            new = executed.cells[index]
            cell["outputs"] = cap_outputs(
                new.get("outputs", []),
                text_cap=plan.notebook.text_cap,
                image_cap=plan.notebook.image_cap,
            )
            count = new.get("execution_count")
            cell["execution_count"] = count if isinstance(count, int) else None
    run.values, unread = read_results(document["cells"])
    if not run.problem:
        run.problem = unread
    _write_run(plan, run, document, receipt, created)
    return run


async def _drive(nb: Any, kernel: KernelSession, cell_timeout: float) -> str:
    """Execute ``nb`` top to bottom, stopping at the first error; the error in one line
    ("" if every cell ran)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from scribe_tui.record.replay import execute, sealed_client

    running = 0

    def cell_started(cell: Any, cell_index: int) -> None:
        nonlocal running
        running = cell_index

    client = sealed_client(nb, kernel, cell_timeout, on_cell_execute=cell_started)

    def where() -> str:
        return f"cell [{sum(1 for c in nb.cells[: running + 1] if c.cell_type == 'code')}]"

    try:
        await execute(client)
    except CellTimeoutError:
        return f"{where()} ran past {cell_timeout:g} s"
    except CellExecutionError as exc:
        return f"{where()} raised {exc.ename}: {exc.evalue}"[:300]
    except DeadKernelError:
        return f"the kernel died running {where()}"
    return ""


def _write_run(
    plan: SweepPlan, run: SweepRun, document: dict[str, Any], receipt: dict[str, Any], created: str
) -> None:
    """Save the run's notebook with its own record: receipt, status and the sweep it is of."""
    original = plan.notebook
    inherited = {k: v for k, v in original.scribe.items() if k not in _NOT_INHERITED}
    title = str(inherited.get("experiment") or inherited.get("task") or original.path.stem)
    document["metadata"] = {
        **document["metadata"],
        "scribe": {
            **inherited,
            "task": inherited.get("task") or f"sweep of {original.path.name}",
            "model": inherited.get("model") or receipt["model"],
            "agent": "sweep",
            "experiment": f"{title} · {run_label(run.parameters)}",
            "status": run.status,
            "created": created,
            "receipt": receipt,
            "sweep": {
                "of": str(original.path),
                "run": run.number,
                "runs": len(plan.runs),
                "parameters": run.parameters,
                "values": run.values,
                "problem": run.problem,
            },
        },
    }
    try:
        Notebook(run.path, document).save()
    except NotebookError as exc:
        raise RecordError(str(exc)) from None
