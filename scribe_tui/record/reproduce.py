"""``scribe-tui reproduce``: re-execute a notebook from scratch and report what drifted.

The notebook runs top to bottom in a fresh kernel and a fresh model host, wired and
sealed as the investigation's were (:mod:`scribe_tui.runtime.sealed`), with nbclient
driving the kernel. The re-executed copy is written beside the original; each code
cell gets a verdict (:mod:`scribe_tui.record.drift`), and the new receipt is compared
with the recorded one. The original records the outcome in
``metadata.scribe.reproduction``, which ``scribe-tui list`` shows as its status.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scribe_tui.record.drift import DEFAULT_TOLERANCE, CellDrift, compare_outputs
from scribe_tui.record.index import counted
from scribe_tui.record.source import RecordError, open_record
from scribe_tui.runtime.nblock import NotebookLock
from scribe_tui.runtime.notebook import Notebook, NotebookError, cap_outputs, files_folder
from scribe_tui.runtime.receipt import differences

if TYPE_CHECKING:
    from scribe_tui.record.replay import ReplayHosts

__all__ = ["Reproduction", "copy_path", "reproduce"]

CELL_TIMEOUT = 600.0
# A changed subject model is drift even if no output shows it.
_MODEL_FACTS = ("weights sha256", "base weights sha256", "model", "organism kind")


@dataclass
class Reproduction:
    """What a reproduction found."""

    original: Path
    copy: Path
    cells: list[CellDrift]
    receipt_changes: list[tuple[str, str, str]] = field(default_factory=list)
    had_receipt: bool = True
    wall: float = 0.0

    @property
    def reproduced(self) -> bool:
        """Every cell matched (within tolerance) and the subject model is the same."""
        model_changed = any(what in _MODEL_FACTS for what, _, _ in self.receipt_changes)
        return not model_changed and all(cell.reproduced for cell in self.cells)

    @property
    def status(self) -> str:
        return "reproduced" if self.reproduced else "drifted"

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for cell in self.cells:
            found[cell.verdict] = found.get(cell.verdict, 0) + 1
        return found

    def report(self) -> str:
        """The drift report: receipt differences first, the cells' totals, then a line for
        each cell that is not identical (each cell's verdict was shown live as it ran)."""
        lines = []
        if not self.had_receipt:
            lines.append("Receipt: the original has none (written before receipts existed)")
        elif self.receipt_changes:
            count = len(self.receipt_changes)
            lines.append(f"Receipt: {count} difference{'' if count == 1 else 's'}")
            width = max(len(what) for what, _, _ in self.receipt_changes)
            for what, was, now in self.receipt_changes:
                lines.append(f"  {what:<{width}}  {was} → {now}")
        else:
            lines.append("Receipt: same weights, versions and device")
        counts = ", ".join(f"{n} {verdict}" for verdict, n in self.counts().items())
        lines.append(f"Cells: {counts or 'no code cells'}")
        for cell in (cell for cell in self.cells if cell.verdict != "identical"):
            lines.append(f"  {f'[{cell.number}]':<6}{cell.verdict:<17}{cell.detail}".rstrip())
        lines.append(
            f"{self.status.capitalize()}: {self.original} → {self.copy} "
            f"({counted(len(self.cells), 'code cell')}, {self.wall:.1f} s)"
        )
        return "\n".join(lines)


def copy_path(original: Path) -> Path:
    """Where the re-executed copy goes by default: beside the original."""
    return original.with_name(f"{original.stem}.reproduced.ipynb")


async def reproduce(
    path: Path,
    *,
    out: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    model: str | None = None,
    sandbox: bool = True,
    cell_timeout: float = CELL_TIMEOUT,
    on_cell: Callable[[CellDrift, float], None] | None = None,
    on_host: Callable[[Any], None] | None = None,
    hosts: ReplayHosts | None = None,
) -> Reproduction:
    """Re-execute ``path`` in a fresh kernel and host; RecordError for unusable input.

    ``model`` overrides the recorded subject model (needed when it was a local path
    this machine has no record of). ``on_cell`` sees each verdict as it is known.
    ``hosts`` keeps the host for the next notebook of a series (its caller stops them);
    without it the host is this reproduction's own.
    """
    from scribe_tui.agent.launch import LaunchError, recall_model

    if tolerance < 0:
        raise RecordError(f"--tolerance must be 0 or more, got {tolerance}")
    original = open_record(path, "reproduce")
    target = out or copy_path(path)
    if target.suffix != ".ipynb":
        raise RecordError(f"--out {target}: the copy must be a .ipynb file")
    if target.resolve() == path.resolve():
        raise RecordError("--out names the original: pick another file for the copy")
    scribe = original.scribe
    try:
        spec = model or recall_model(path, str(scribe["model"]))
    except LaunchError as exc:
        raise RecordError(str(exc)) from None
    hold = NotebookLock(path)
    try:
        hold.acquire()  # a notebook still being written has nothing settled to reproduce
    except NotebookError as exc:
        raise RecordError(str(exc)) from None
    try:
        started = time.monotonic()
        nb, receipt, verdicts = await _execute(
            original,
            spec,
            _workdir(path, target),
            sandbox,
            cell_timeout,
            tolerance,
            on_cell,
            on_host,
            hosts,
        )
        result = Reproduction(path, target, [])
        result.cells = [
            verdicts.get(index) or _unexecuted(original, index, number)
            for number, index in enumerate(original.code_indices(), 1)
        ]
        old = scribe.get("receipt")
        result.had_receipt = isinstance(old, dict)
        result.receipt_changes = differences(old, receipt) if isinstance(old, dict) else []
        result.wall = time.monotonic() - started
        _write_copy(original, nb, target, receipt, result, tolerance)
        _record_on_original(path, result, tolerance)
    finally:
        hold.release()
    return result


def _workdir(original: Path, copy: Path) -> Path:
    """The copy's own files folder, seeded with the original's files: the cells find what
    they read where they left it, and neither the original's files nor the folder of
    records is theirs to write."""
    workdir = files_folder(copy)
    if workdir.exists():
        shutil.rmtree(workdir)  # a previous reproduction's
    source = files_folder(original)
    if source.is_dir():
        shutil.copytree(source, workdir, symlinks=True)
    else:
        workdir.mkdir(parents=True)
    return workdir


async def _execute(
    original: Notebook,
    spec: str,
    workdir: Path,
    sandbox_wanted: bool,
    cell_timeout: float,
    tolerance: float,
    on_cell: Callable[[CellDrift, float], None] | None,
    on_host: Callable[[Any], None] | None,
    hosts: ReplayHosts | None,
) -> tuple[Any, dict[str, Any], dict[int, CellDrift]]:
    """Run every code cell with nbclient: the executed document, the new receipt, and the
    verdicts of the cells that ran (by position)."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    from scribe_tui.record.replay import ReplayHosts, execute, receipt_for, sealed_client
    from scribe_tui.runtime.sealed import sandbox_state, sealed_kernel

    sandbox = sandbox_state(sandbox_wanted)
    series = ReplayHosts() if hosts is None else hosts
    kernel = None
    try:
        host, status, digests = await series.start(original, spec, sandbox, on_host)
        receipt = receipt_for(host, status, digests, sandbox)
        kernel = sealed_kernel(host, sandbox, workdir)
        await kernel.start()
        nb = nbformat.from_dict(copy.deepcopy(original.nb))
        code = original.code_indices()
        began: dict[int, float] = {}
        verdicts: dict[int, CellDrift] = {}

        def cell_started(cell: Any, cell_index: int) -> None:
            began[cell_index] = time.monotonic()

        def cell_done(cell: Any, cell_index: int, execute_reply: Any = None) -> None:
            verdict, detail = compare_outputs(
                original.cells[cell_index]["outputs"], _capped(original, cell), tolerance
            )
            drift = verdicts[cell_index] = CellDrift(code.index(cell_index) + 1, verdict, detail)
            if on_cell is not None:
                on_cell(drift, time.monotonic() - began.get(cell_index, time.monotonic()))

        client = sealed_client(
            nb,
            kernel,
            cell_timeout,
            allow_errors=True,
            on_cell_execute=cell_started,
            on_cell_executed=cell_done,
        )
        try:
            await execute(client)
        except DeadKernelError:
            # The cells after this one stay unexecuted and are reported as not run.
            dying = max(began, key=began.__getitem__)
            number = code.index(dying) + 1
            verdicts[dying] = CellDrift(number, "new error", "the kernel died running it")
        return nb, receipt, verdicts
    finally:
        if kernel is not None:
            await kernel.shutdown()
        if hosts is None:
            await asyncio.to_thread(series.stop)


def _unexecuted(original: Notebook, index: int, number: int) -> CellDrift:
    """The verdict on a code cell nbclient did not run: empty, or after the kernel died."""
    if not original.cells[index]["source"].strip():  # nbclient skips empty cells
        return CellDrift(number, "identical" if not original.cells[index]["outputs"] else "changed")
    return CellDrift(number, "not run", "the kernel died before it")


def _capped(original: Notebook, cell: Any) -> list[dict[str, Any]]:
    """A cell's new outputs as the notebook would store them (same caps, streams merged)."""
    return cap_outputs(
        cell.get("outputs", []), text_cap=original.text_cap, image_cap=original.image_cap
    )


def _summary(result: Reproduction, tolerance: float) -> dict[str, Any]:
    return {
        "status": result.status,
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "tolerance": tolerance,
        "cells": result.counts(),
        "receipt_changes": [list(change) for change in result.receipt_changes],
    }


def _write_copy(
    original: Notebook,
    nb: Any,
    target: Path,
    receipt: dict[str, Any],
    result: Reproduction,
    tolerance: float,
) -> None:
    document = copy.deepcopy(original.nb)
    for index in original.code_indices():
        cell, new = document["cells"][index], nb.cells[index]
        cell["outputs"] = _capped(original, new)
        count = new.get("execution_count")
        cell["execution_count"] = count if isinstance(count, int) else None
    scribe = document["metadata"]["scribe"]
    scribe.pop("reproduction", None)
    scribe.update(
        status=result.status,
        receipt=receipt,
        reproduction_of=str(result.original),
        reproduction=_summary(result, tolerance),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        Notebook(target, document).save()
    except NotebookError as exc:
        raise RecordError(str(exc)) from None


def _record_on_original(path: Path, result: Reproduction, tolerance: float) -> None:
    """Note the outcome in the original's metadata (its cells are left as they were)."""
    try:
        notebook = Notebook.load(path)
        summary = _summary(result, tolerance)
        summary["copy"] = str(result.copy)
        notebook.update_scribe(reproduction=summary)
    except NotebookError as exc:
        raise RecordError(f"the copy is written, but {exc}") from None
