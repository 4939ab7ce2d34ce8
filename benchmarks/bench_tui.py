"""TUI responsiveness with a long investigation: key-press-to-render latency and memory.

Drives the real app headless (``App.run_test``) with a synthetic event stream of
``--cells`` experiments (code, streamed output, text deltas, tool calls, images now
and then) and, every ``--every`` cells, times key presses until the next frame is
written: ↑/↓ in the notebook pane and typing in the prompt. Prints p50/p95 and
the process RSS as the notebook grows.

    python benchmarks/bench_tui.py --cells 1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

import psutil
from textual import events
from textual._compositor import CompositorUpdate

from scribe_tui import events as ev
from scribe_tui.app import ScribeApp
from scribe_tui.ui.replay import ReplayInvestigation, _plot_png

CODE = (
    "# Experiment {n}: prefill variant {n}\n"
    "prompts = [f'My secret word is {{i}}' for i in range(8)]\n"
    "probs = client.run(next_token_probs, prompts=prompts, top_k=5)\n"
    "for p in probs:\n"
    "    print(p)\n"
    "summary(probs)"
)


def experiment(n: int, image: str) -> list[ev.Event]:
    """The events of one experiment: a turn of text, a tool call, a cell with output."""
    code = CODE.format(n=n)
    index, cell_id, call = n, f"cell-{n}", f"call-{n}"
    output: dict[str, Any] = {
        "output_type": "stream",
        "name": "stdout",
        "text": "".join(f"token {i}: p=0.{n % 97:02d}\n" for i in range(10)),
    }
    outputs = [output]
    if n % 10 == 0:
        outputs.append(
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": image, "text/plain": "<Figure>"},
            }
        )
    status = "error" if n % 25 == 0 else "ok"
    if status == "error":
        outputs.append(
            {
                "output_type": "error",
                "ename": "ValueError",
                "evalue": "bad shape",
                "traceback": ["ValueError: bad shape"],
            }
        )
    return [
        ev.TurnStarted(n),
        *(ev.TextDelta(f"Step {n}: checking variant {n} ({k}). ") for k in range(12)),
        ev.TurnFinished(n, "tool_use"),
        ev.ToolCallStarted(call, "execute_code", {"code": code}),
        ev.CellAdded(index, cell_id, "code", code),
        ev.CellExecuting(index, cell_id),
        ev.CellUpdated(index, cell_id, code, [{**output, "text": output["text"][:40]}]),
        ev.CellUpdated(index, cell_id, code, outputs, n + 1, status),
        ev.ToolCallFinished(call, "execute_code", status == "error", f"{status}", 0.5),
        ev.Status(
            "running",
            host_state="ready",
            device="cuda:0",
            memory_used=4 * 2**30,
            memory_total=80 * 2**30,
            utilization=40.0,
            turn=n,
            input_tokens=1000 * n,
            output_tokens=80 * n,
            cost_usd=0.01 * n,
            elapsed=float(n),
        ),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def frame_after(app: ScribeApp, key: str, frames: list[float]) -> float:
    """Milliseconds from a key arriving from the driver to the next frame rendered for it.

    The key goes in as a terminal's would (``driver.send_message``); Pilot's own
    press would also wait on every widget, which measures the harness, not the app.
    """
    seen = len(frames)
    start = time.perf_counter()
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    app._driver.send_message(event)  # type: ignore[union-attr]
    while len(frames) == seen and time.perf_counter() - start < 5:
        await asyncio.sleep(0.0005)
    latency = ((frames[-1] if len(frames) > seen else time.perf_counter()) - start) * 1000
    await asyncio.sleep(0.02)  # a person does not type at 1,000 keys a second
    return latency


async def bench(cells: int, every: int, presses: int) -> None:
    image = _plot_png()
    investigation = ReplayInvestigation(hold=True)
    app = ScribeApp(investigation, title="bench", subject="organism:taboo", cursor_blink=False)
    process = psutil.Process()
    async with app.run_test(size=(120, 40)) as pilot:
        frames: list[float] = []
        display = app._display

        def timed_display(screen: Any, renderable: Any) -> None:
            # Headless apps skip encoding frames for a terminal; do it here so it is timed.
            display(screen, renderable)
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
                frames.append(time.perf_counter())

        app._display = timed_display  # type: ignore[method-assign]
        await pilot.pause(0.2)
        gc.collect()
        rss0 = process.memory_info().rss
        print(
            f"{'cells':>6} {'ingest s':>9} {'nav p50':>8} {'nav p95':>8} "
            f"{'type p50':>9} {'type p95':>9} {'RSS MB':>8} {'widgets':>8}"
        )
        nav_all: list[float] = []
        type_all: list[float] = []
        done = 0
        while done < cells:
            batch = range(done, min(cells, done + every))
            started = time.perf_counter()
            for n in batch:
                for event in experiment(n, image):
                    investigation.emit(event)
                if n % 25 == 24:  # a burst, not a flood: Pilot waits at most 30 s for idle
                    await pilot.pause()
            await pilot.pause()
            ingest = time.perf_counter() - started
            await pilot.pause(0.5)  # let streams finish: measure the steady state
            done = batch.stop
            app.notebook.focus()
            nav = [
                await frame_after(app, "up" if i % 2 else "down", frames) for i in range(presses)
            ]
            await pilot.press("end")
            app.prompt.focus()
            typed = [await frame_after(app, "x", frames) for _ in range(presses)]
            app.prompt.clear()
            nav_all += nav
            type_all += typed
            gc.collect()
            rss = (process.memory_info().rss - rss0) / 2**20
            print(
                f"{done:>6} {ingest:>9.2f} {statistics.median(nav):>8.1f} "
                f"{percentile(nav, 0.95):>8.1f} {statistics.median(typed):>9.1f} "
                f"{percentile(typed, 0.95):>9.1f} {rss:>+8.1f} "
                f"{len(list(app.screen.walk_children())):>8}"
            )
        print(
            f"\nall: notebook ↑/↓ p50 {statistics.median(nav_all):.1f} ms, "
            f"p95 {percentile(nav_all, 0.95):.1f} ms; prompt typing p50 "
            f"{statistics.median(type_all):.1f} ms, p95 {percentile(type_all, 0.95):.1f} ms "
            f"(goal p95 ≤ 50 ms)"
        )
        print(
            f"RSS growth over {cells} cells: {(process.memory_info().rss - rss0) / 2**20:+.1f} MB"
            f" ({(process.memory_info().rss - rss0) / 1024 / max(1, cells):.1f} KB/cell); "
            f"agent pane entries mounted: {len(app.agent.children)}"
        )
        investigation.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100, help="measure after this many cells")
    parser.add_argument("--presses", type=int, default=20, help="key presses per measurement")
    args = parser.parse_args()
    asyncio.run(bench(args.cells, args.every, args.presses))


if __name__ == "__main__":
    main()
