"""Run a bench: the grid's investigations, N at a time, each scored the moment it ends.

Every run is an ordinary investigation whose notebook and transcript live in
``DIR/runs/<run-id>/`` (so ``resume``, ``list`` and Jupyter work on it). Runs on
the same organism and mode share one model host: the model loads once per bench.
That is safe because the host serves one call at a time and restores hooks and
modes after each; only in-place weight edits a technique forgets to undo could
reach another run. A finished run appends one line to ``DIR/results.jsonl``
(fsynced), so a bench killed at any moment keeps what it finished, and running
it again skips those and resumes the rest from their transcripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scribe_tui.agent.transcript import started_notebook
from scribe_tui.bench.grid import RunSpec, model_spec, organism_label
from scribe_tui.bench.report import load_results
from scribe_tui.bench.scoring import is_failed, score
from scribe_tui.integrity import signed

BenchEvent = dict[str, Any]
_MEMORY_PER_RUN = 1.5 * 2**30  # a kernel plus its share of a small model host, measured roughly


def default_jobs() -> int:
    """As many runs as there are cores, while each has about 1.5 GiB of memory."""
    import psutil

    by_memory = int(psutil.virtual_memory().available // _MEMORY_PER_RUN)
    return max(1, min(os.cpu_count() or 1, by_memory))


class BenchRunner:
    """Runs ``runs`` under ``out`` with ``jobs`` at once; ``on_event`` sees progress dicts."""

    def __init__(
        self,
        out: Path,
        runs: list[RunSpec],
        *,
        jobs: int,
        scored: bool = True,
        sandbox: bool = True,
        allow_network: bool = False,
        on_event: Callable[[BenchEvent], None] | None = None,
    ) -> None:
        self.out, self.runs, self.jobs = out, runs, jobs
        self.scored, self.sandbox, self.allow_network = scored, sandbox, allow_network
        self._emit = on_event or (lambda event: None)
        self._hosts: dict[tuple[str, str], Any] = {}
        self._host_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._results = out / "results.jsonl"

    async def run(self) -> list[BenchEvent]:
        """Run what is not finished yet; returns the rows this call added."""
        self.out.mkdir(parents=True, exist_ok=True)
        done = {row["run_id"] for row in load_results(self.out)}
        pending = _interleaved([r for r in self.runs if r.run_id not in done])
        self._emit(
            {
                "type": "bench_started",
                "total": len(self.runs),
                "done": len(self.runs) - len(pending),
                "jobs": self.jobs,
            }
        )
        rows, loads = await self._execute(pending)
        self._emit({"type": "bench_finished", "added": len(rows), "model_loads": loads})
        return rows

    async def _execute(self, pending: list[RunSpec]) -> tuple[list[BenchEvent], int]:
        """Run ``pending`` on this machine; (the rows added, how many times models loaded)."""
        slots = asyncio.Semaphore(self.jobs)
        try:
            finished = await asyncio.gather(*(self._guarded(r, slots) for r in pending))
        finally:
            loads = await asyncio.to_thread(self._stop_hosts)
        return [row for row in finished if row is not None], loads

    async def _guarded(self, run: RunSpec, slots: asyncio.Semaphore) -> BenchEvent | None:
        async with slots:
            self._emit({"type": "run_started", "run_id": run.run_id, "axes": run.to_dict()})
            row = await self._one(run)
            if row is None:  # interrupted: left to resume, not scored
                self._emit({"type": "run_interrupted", "run_id": run.run_id})
                return None
            self._record(row)
            return row

    async def _one(self, run: RunSpec) -> BenchEvent | None:
        from scribe_tui.agent.launch import LaunchError, Workbench
        from scribe_tui.runtime.host_protocol import HostStartError

        started = time.monotonic()
        row: BenchEvent = {"run_id": run.run_id, "axes": run.to_dict(), "error": None}
        try:
            host = await self._host_for(run)
            if (run["investigators"] or 1) > 1:
                from scribe_tui.bench.parallel_runs import aggregate_fields

                folder = self.out / "runs" / run.run_id
                found = await aggregate_fields(
                    self._settings(run), run["investigators"], folder, self.out, host
                )
                if found is None:
                    return None
                row.update(found)
                row["wall_s"] = round(time.monotonic() - started, 2)
                return score_row(run, row, scored=self.scored)
            bench = await Workbench.open(self._settings(run), host=host)
            try:
                assert bench.investigation is not None and bench.sandbox is not None
                outcome = await bench.investigation.run()
                if outcome.reason == "interrupted":
                    return None
                row.update(_outcome_fields(outcome, bench, self.out))
            finally:
                await bench.close()
        except (LaunchError, HostStartError, TimeoutError) as exc:
            row.update(exit="failed", error=str(exc))
        except Exception as exc:  # a crashed run is recorded; the bench goes on
            row.update(exit="failed", error=f"{type(exc).__name__}: {exc}")
            log = self.out / "runs" / run.run_id / "error.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc(), encoding="utf-8")
        row["wall_s"] = round(time.monotonic() - started, 2)
        return score_row(run, row, scored=self.scored)

    def _settings(self, run: RunSpec) -> Any:
        from scribe_tui.agent.launch import RunSettings
        from scribe_tui.agent.loop import InvestigationConfig
        from scribe_tui.organisms.registry import organism_info

        agent, _, claude_model = run["agent"].partition(":")
        folder = self.out / "runs" / run.run_id
        spec = model_spec(run["organism"])
        config = InvestigationConfig(
            checkpoint_every=run["checkpoint_every"],
            max_turns=run["max_turns"],
            max_cost_usd=run["max_cost"],
            max_minutes=run["max_minutes"],
            methodology=run["methodology"] == "on",
        )
        return RunSettings(
            task=organism_info(spec).task,
            agent=agent,
            model=spec,
            mode="local" if run["mode"] == "whitebox" else "blackbox",
            claude_model=claude_model or None,
            notebooks_dir=folder,
            experiment_name="bench",
            seed=run["seed"],
            config=config,
            resume_from=started_notebook(folder),  # an interrupted attempt's, to resume
            sandbox=self.sandbox,
            allow_network=self.allow_network,
        )

    async def _host_for(self, run: RunSpec) -> Any:
        """The shared host for this run's organism and mode, started on first use."""
        from scribe_tui.agent.launch import LaunchError, new_host, sandbox_state
        from scribe_tui.runtime.host_protocol import HostStartError
        from scribe_tui.runtime.sealed import start_host

        key = (model_spec(run["organism"]), run["mode"])
        async with self._host_locks.setdefault(key, asyncio.Lock()):
            host = self._hosts.get(key)
            if host is None:
                host = new_host(
                    self._settings(run),
                    sandbox_state(self.sandbox, self.allow_network),
                    # The runs on this organism may call it side by side, up to a core each.
                    workers=min(self.jobs, os.cpu_count() or 1),
                )
                self._hosts[key] = host
                self._emit({"type": "host_starting", "organism": organism_label(run["organism"])})
            try:
                await start_host(host)  # waits for the model; a started host just answers
            except (HostStartError, TimeoutError) as exc:
                raise LaunchError(str(exc)) from exc
            return host

    def _stop_hosts(self) -> int:
        """Stop every shared host; how many times models were loaded (restarts included)."""
        loads = 0
        for host in self._hosts.values():
            with contextlib.suppress(Exception):
                loads += host.status().loads + host.restarts
            host.stop()
        return loads

    def _record(self, row: BenchEvent) -> None:
        """A finished, scored run: appended to results.jsonl, then reported."""
        self._append(row)
        self._emit({"type": "run_finished", "row": row})

    def _append(self, row: BenchEvent) -> None:
        line = json.dumps(signed(row), sort_keys=True) + "\n"
        with open(self._results, "a+", encoding="utf-8") as fh:
            if fh.tell() and not _ends_with_newline(self._results):
                line = "\n" + line  # a bench killed mid-write left half a line
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def score_row(run: RunSpec, row: BenchEvent, *, scored: bool) -> BenchEvent:
    """Add the verdict to a finished run's row; only a scorer here ever opens the answer keys.

    ``scored=False`` marks the row unscored without looking for a key (what a
    container running the investigation does: it has none).
    """
    from scribe_tui.organisms.keys import answer_key_record

    row.setdefault("answer", None)
    row.setdefault("confidence", None)
    key = answer_key_record(run["organism"]) if scored else None
    if key is None or is_failed(row):
        # A failed investigation claims nothing, whatever it wrote before it failed.
        verdict = {"claim": None, "correct": None, "abstained": False, "false_positive": False}
    else:
        result = score(
            row["answer"],
            key,
            components=row.get("components"),
            organism=run["organism"],
            layers=row.get("layers"),
            direction=row.get("direction"),
        )
        verdict = {
            "claim": result.claim,
            "correct": result.correct,
            "abstained": result.abstained,
            "false_positive": result.false_positive,
            **(result.circuit.fields() if result.circuit else {}),
        }
    row.update(verdict, control=bool(key and key.control), scored=key is not None)
    return row


def _interleaved(runs: list[RunSpec]) -> list[RunSpec]:
    """Round-robin over hosts: runs started together then use different hosts.

    A host serves one call at a time, so two runs on one organism mostly wait for
    each other; the grid's own order would start them side by side.
    """
    by_host: dict[tuple[str, str], list[RunSpec]] = {}
    for run in runs:
        by_host.setdefault((run["organism"], run["mode"]), []).append(run)
    queues = list(by_host.values())
    order: list[RunSpec] = []
    while queues:
        order += [queue.pop(0) for queue in queues]
        queues = [queue for queue in queues if queue]
    return order


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _outcome_fields(outcome: Any, bench: Any, out: Path) -> BenchEvent:
    import nbformat

    investigation = bench.investigation
    notebook = outcome.notebook_path
    cells = 0
    # A mechanistic conclusion's structured claim: conclude's components, layers, direction.
    components = layers = direction = None
    if notebook is not None:
        with contextlib.suppress(OSError, ValueError):
            nb = nbformat.read(notebook, as_version=4)
            cells = sum(1 for c in nb.cells if c.cell_type == "code")
            conclusion = nb.metadata.get("scribe", {}).get("conclusion") or {}
            components = conclusion.get("components")
            layers = conclusion.get("layers")
            direction = conclusion.get("direction")
    usage = investigation.usage
    return {
        "answer": outcome.answer,
        "components": components,
        "layers": layers,
        "direction": direction,
        "confidence": outcome.confidence,
        "exit": outcome.reason,
        "cells": cells,
        "turns": investigation.turns,
        "input_tokens": usage.total_input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": round(usage.cost_usd, 6),
        "notebook": str(Path(notebook).resolve().relative_to(out.resolve())) if notebook else None,
        "sandbox": bench.sandbox.label,
        "sealed": bench.sandbox.sealed,
        "error": (outcome.detail or "failed") if outcome.reason == "failed" else None,
    }
