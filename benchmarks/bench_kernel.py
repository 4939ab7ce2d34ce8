"""Overhead of the notebook tool layer over raw jupyter_client, at 10 and 500 cells.

    python benchmarks/bench_kernel.py [--rounds 300]

Times ``execute_code("1+1")`` through ``NotebookTools.call`` (append a cell, run it,
cap and render its output, save the notebook atomically, emit events) against a bare
``AsyncKernelManager`` client that sends ``1+1`` and waits for the kernel to go idle.
The raw kernel and one session per notebook size run side by side and every round times
each of them once, in rotating order, so drift (other processes on the machine) hits
all alike. Notebooks are pre-filled to their size and trimmed back after each call
(untimed), so every measured call sees exactly that many cells.

Goals: median overhead ratio ≤ 1.3, median ≤ 15 ms, no growth from 10 to 500 cells.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client import AsyncKernelClient, AsyncKernelManager

from scribe_tui.runtime.notebook import Notebook
from scribe_tui.tools import NotebookTools

SIZES = (10, 500)
RATIO_GOAL = 1.3
MEDIAN_GOAL_MS = 15.0
GROWTH_GOAL = 1.1  # 500-cell median within 10% of the 10-cell median


async def raw_execute(client: AsyncKernelClient, code: str) -> float:
    """Seconds from sending ``code`` to the kernel's idle status for it."""
    started = time.perf_counter()
    msg_id = client.execute(code)
    while True:
        msg = await client.get_iopub_msg(timeout=30)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    elapsed = time.perf_counter() - started
    await client.get_shell_msg(timeout=30)  # drain the reply, untimed
    return elapsed


def prefill(notebook: Notebook, cells: int) -> None:
    """Grow the notebook to ``cells`` cells of typical size (code with output, some markdown)."""
    while len(notebook.cells) < cells:
        if len(notebook.cells) % 5 == 4:
            notebook.add_markdown_cell(
                "Observation: the probe agrees with the baseline.", save=False
            )
            continue
        index = notebook.add_code_cell(
            f"x_{len(notebook.cells)} = model_probe(layer={len(notebook.cells) % 12})\nprint(x)",
            save=False,
        )
        output = {"output_type": "stream", "name": "stdout", "text": "tensor([0.12, 0.57])\n"}
        notebook.set_outputs(index, [output], len(notebook.cells), save=False)
    notebook.save()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def save_costs(directory: Path, cells: int, rounds: int = 30) -> tuple[float, float, float]:
    """Median ms at ``cells`` cells, one of them changed: our serialisation, a full atomic
    save (fsync included; the tools run it off the call path), and ``nbformat.writes``."""
    notebook = Notebook.create(directory, f"save-{cells}")
    prefill(notebook, cells)
    last = len(notebook.cells) - 1
    dumps, saves, reference = [], [], []
    for i in range(rounds):
        notebook.set_source(last, f"y = {i}", save=False)
        started = time.perf_counter()
        notebook.dumps()
        dumps.append(time.perf_counter() - started)
        notebook.set_source(last, f"y = {i} + 1", save=False)
        started = time.perf_counter()
        notebook.save()
        saves.append(time.perf_counter() - started)
        started = time.perf_counter()
        nbformat.writes(nbformat.from_dict(notebook.nb))
        reference.append(time.perf_counter() - started)
    return median_ms(dumps), median_ms(saves), median_ms(reference)


async def main(rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        manager = AsyncKernelManager(kernel_name="python3")
        await manager.start_kernel(cwd=tmp)
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        tools = NotebookTools(directory / "notebooks")
        try:
            notebooks = {}
            for size in SIZES:
                started = await tools.call("start_new_session", {"experiment_name": f"{size}"})
                assert not started.is_error, started.text
                session = list(tools.sessions.values())[-1]
                prefill(session.notebook, size - 1)  # the measured call adds the size-th cell
                notebooks[size] = session

            async def layered_call(size: int) -> float:
                session = notebooks[size]
                began = time.perf_counter()
                result = await tools.call("execute_code", {"session_id": session.id, "code": "1+1"})
                elapsed = time.perf_counter() - began
                assert result.text == "2", result.text
                assert len(session.notebook.cells) == size
                session.notebook.cells.pop()  # keep the size fixed (untimed)
                return elapsed

            raw: list[float] = []
            layered: dict[int, list[float]] = {size: [] for size in SIZES}
            for _ in range(20):  # warm every path up
                await raw_execute(client, "1+1")
                for size in SIZES:
                    await layered_call(size)
            paths: list[int | None] = [None, *SIZES]  # None: the raw client
            for round_ in range(rounds):
                # Rotate the order: whatever runs right after a call shares the machine with
                # that call's background save, and that must not always be the same path.
                shift = round_ % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    if path is None:
                        raw.append(await raw_execute(client, "1+1"))
                    else:
                        layered[path].append(await layered_call(path))
        finally:
            await tools.aclose()
            client.stop_channels()
            await manager.shutdown_kernel(now=True)

        raw_ms = median_ms(raw)
        print(f"raw jupyter_client execute('1+1') → idle: median {raw_ms:6.2f} ms")
        ok = True
        medians = {}
        for size in SIZES:
            medians[size] = median_ms(layered[size])
            ratio = medians[size] / raw_ms
            met = ratio <= RATIO_GOAL and medians[size] <= MEDIAN_GOAL_MS
            ok &= met
            print(
                f"tools execute_code('1+1') at {size:3d} cells: median {medians[size]:6.2f} ms, "
                f"overhead ratio {ratio:4.2f} ({'met' if met else 'MISSED'}: "
                f"≤ {RATIO_GOAL} and ≤ {MEDIAN_GOAL_MS:g} ms)"
            )
        growth = medians[SIZES[-1]] / medians[SIZES[0]]
        grew = growth > GROWTH_GOAL
        ok &= not grew
        print(
            f"growth {SIZES[0]} → {SIZES[-1]} cells: ×{growth:4.2f} "
            f"({'MISSED' if grew else 'met'}: ≤ ×{GROWTH_GOAL})"
        )
        for size in SIZES:
            dumps, save, reference = save_costs(directory, size)
            print(
                f"at {size:3d} cells: serialise {dumps:5.2f} ms "
                f"(nbformat.writes {reference:5.2f} ms); "
                f"atomic save with fsync {save:5.2f} ms (in the background)"
            )
        print(f"goals met: {'yes' if ok else 'no'}")
        return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per path")
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
