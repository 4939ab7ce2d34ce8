"""A bench run on the ``investigators`` axis: N parallel investigators, one scored verdict.

The investigators and their aggregator run in the run's folder on the bench's
shared host (:class:`~scribe_tui.agent.parallel.ParallelRun`); the row carries the
aggregate's verdict (with its structured claim on a mechanistic task), the cost of all
of it and each investigator's claim. A manifest an interrupted attempt left is resumed:
finished investigators are not redone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from scribe_tui.agent.launch import RunSettings, sandbox_state
from scribe_tui.agent.parallel import MANIFEST, ParallelRun

__all__ = ["aggregate_fields"]


def _code_cells(notebook: Path | None) -> int:
    import nbformat

    if notebook is None:
        return 0
    with contextlib.suppress(OSError, ValueError):
        nb = nbformat.read(notebook, as_version=4)
        return sum(1 for c in nb.cells if c.cell_type == "code")
    return 0


def _structured_claim(notebook: Path | None) -> dict[str, Any]:
    """The verdict's components, layers and direction (a mechanistic task's claim, which
    the bench scores), from the aggregate notebook's conclusion."""
    import nbformat

    conclusion: dict[str, Any] = {}
    if notebook is not None:
        with contextlib.suppress(OSError, ValueError):
            scribe = nbformat.read(notebook, as_version=4).metadata.get("scribe", {})
            conclusion = scribe.get("conclusion") or {}
    return {k: conclusion.get(k) for k in ("components", "layers", "direction")}


async def aggregate_fields(
    settings: RunSettings, investigators: int, folder: Path, out: Path, host: Any
) -> dict[str, Any] | None:
    """The row fields of one aggregated run in ``folder`` (None when it was interrupted)."""
    manifests = sorted(folder.glob(f"*/{MANIFEST}")) if folder.is_dir() else []
    settings.resume_from = None
    parallel = (
        ParallelRun.reopen(manifests[0], settings, model=settings.model, host=host)
        if manifests
        else ParallelRun.create(settings, investigators, host=host)
    )
    outcome = await parallel.run()
    verdict = outcome.verdict
    if outcome.reason == "interrupted" or verdict is None:
        return None
    sandbox = sandbox_state(settings.sandbox, settings.allow_network)
    notebook = verdict.notebook_path
    return {
        "answer": verdict.answer,
        "confidence": verdict.confidence,
        **_structured_claim(notebook),
        "exit": verdict.reason,
        "cells": sum(_code_cells(c.notebook) for c in outcome.claims) + _code_cells(notebook),
        "turns": verdict.turns,
        "cost_usd": outcome.cost_usd,
        "investigators": [
            {"id": c.id, "state": c.state, "answer": c.answer, "confidence": c.confidence}
            for c in outcome.claims
        ],
        "notebook": str(Path(notebook).resolve().relative_to(out.resolve())) if notebook else None,
        "sandbox": sandbox.label,
        "sealed": sandbox.sealed,
        "error": (verdict.detail or "failed") if verdict.reason == "failed" else None,
    }
