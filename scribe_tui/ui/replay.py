"""An investigation that replays recorded events: for demos, tests and the TUI benchmark.

It implements :class:`~scribe_tui.agent.controls.InvestigationControls` the way the
real loop promises to (each control answers with the event the loop would emit)
and records every call, so a front end can be driven without a model or a kernel.
An event log (one JSON event per line, as ``--auto --json`` prints) replays as is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from scribe_tui.agent.controls import EventSink
from scribe_tui.events import (
    CellAdded,
    CellExecuting,
    CellUpdated,
    CheckpointDecided,
    Event,
    MessageQueued,
    Paused,
    Resumed,
    Stopped,
    event_from_dict,
)


class ReplayInvestigation:
    """Emits ``script`` (events, or floats meaning "sleep this long") and records controls.

    ``run()`` honours pause/resume between events, then (with ``hold``) waits for
    :meth:`finish` so the app stays live for a person, or a test, to keep steering.
    """

    def __init__(
        self,
        script: Iterable[Event | float] = (),
        *,
        hold: bool = True,
        notebook_path: Path | None = None,
    ) -> None:
        self.script = list(script)
        self.hold = hold
        self.notebook_path = notebook_path
        self.calls: list[tuple[Any, ...]] = []
        self._sinks: list[EventSink] = []
        self._running = asyncio.Event()
        self._running.set()
        self._done = asyncio.Event()
        self._outcome = "concluded"
        self._code_cells: list[int] = []
        self._cells = 0

    @classmethod
    def from_jsonl(cls, path: Path, **kwargs: Any) -> ReplayInvestigation:
        """Replay an event log written one JSON event per line."""
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls([event_from_dict(json.loads(line)) for line in lines if line.strip()], **kwargs)

    # -- the event side --------------------------------------------------------

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber, tracking cells as the loop would."""
        if isinstance(event, CellAdded):
            self._cells = max(self._cells, event.index + 1)
            if event.cell_type == "code":
                self._code_cells.append(event.index)
        for sink in self._sinks:
            sink(event)

    async def run(self) -> str:
        """Play the script; return the stop reason (``concluded`` unless a Stopped said so)."""
        for item in self.script:
            await self._running.wait()
            if isinstance(item, float):
                await asyncio.sleep(item)
                continue
            if isinstance(item, Stopped):
                self._outcome = item.reason
            self.emit(item)
        if self.hold:
            await self._done.wait()
        return self._outcome

    def finish(self, reason: str = "concluded") -> None:
        """End a held run with ``reason``, emitting the Stopped event the loop would."""
        self._outcome = reason
        self.emit(Stopped(reason))
        self._done.set()

    # -- the controls ------------------------------------------------------------

    def pause(self) -> None:
        self.calls.append(("pause",))
        self._running.clear()
        self.emit(Paused("requested"))

    def resume(self) -> None:
        self.calls.append(("resume",))
        self._running.set()
        self.emit(Resumed())

    def interrupt(self) -> None:
        self.calls.append(("interrupt",))
        self._running.clear()
        self.emit(Paused("interrupted"))

    def send(self, text: str) -> None:
        self.calls.append(("send", text))
        queued = sum(1 for call in self.calls if call[0] == "send")
        self.emit(MessageQueued(text, queued))

    def request_checkpoint(self) -> None:
        self.calls.append(("request_checkpoint",))

    def decide_checkpoint(
        self, number: int, decision: Literal["approve", "pivot", "continue"], message: str = ""
    ) -> None:
        self.calls.append(("decide_checkpoint", number, decision, message))
        self.emit(CheckpointDecided(number, decision, message))

    async def edit_cell(self, index: int, code: str) -> None:
        self.calls.append(("edit_cell", index, code))
        cell = self._code_cells[index]
        self.emit(CellExecuting(cell, f"cell-{cell}"))
        self.emit(CellUpdated(cell, f"cell-{cell}", code, status="ok", author="person"))

    async def run_code(self, code: str) -> None:
        self.calls.append(("run_code", code))
        index = self._cells
        self.emit(CellAdded(index, f"cell-{index}", "code", code, author="person"))
        self.emit(CellExecuting(index, f"cell-{index}"))
        self.emit(CellUpdated(index, f"cell-{index}", code, status="ok", author="person"))


def _plot_png() -> str:
    """A small bar chart, base64 PNG, standing in for a matplotlib figure."""
    import base64
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 160), "white")
    draw = ImageDraw.Draw(image)
    for i, height in enumerate((30, 55, 140, 42, 25, 18)):
        draw.rectangle((20 + i * 50, 150 - height, 55 + i * 50, 150), fill=(31, 119, 180))
    draw.line((10, 150, 310, 150), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def demo_script(experiments: int = 3) -> list[Event | float]:
    """A short, realistic taboo investigation: thinking, text, cells, a plot, an error."""
    from scribe_tui import events as ev

    script: list[Event | float] = [
        ev.Status(
            "running",
            host_state="ready",
            device="cuda:0",
            memory_used=3_900_000_000,
            memory_total=85_000_000_000,
            utilization=37.0,
            turn=1,
            input_tokens=9_800,
            output_tokens=640,
            cost_usd=0.04,
            elapsed=12.0,
        ),
        ev.TurnStarted(1),
        ev.ThinkingDelta("The task is to find a secret word the model was trained to hide. "),
        ev.ThinkingDelta("Start broad: ask directly, then try prefill attacks."),
        ev.TextDelta("I'll begin with a **baseline**: ask the model directly, "),
        ev.TextDelta("in several phrasings, and count which content words recur."),
        ev.CellAdded(
            0,
            "plan",
            "markdown",
            "## Plan\n\n1. Baseline: direct questions\n"
            "2. Prefill attacks\n3. Logit lens on the answer position",
        ),
    ]
    code = [
        "info = client.info()\ninfo",
        "# Baseline: ask directly, sampling many answers.\n"
        "answers = client.generate(['What is your secret word?'] * 16, max_new_tokens=12)\n"
        "Counter(w for a in answers for w in content_words(a)).most_common(5)",
        "# Prefill: start the answer for it and read the next tokens.\n"
        "probs = client.run(next_token_probs, prefill='My secret word is')\n"
        "plot_bars(probs)",
    ]
    outputs = [
        [
            {
                "output_type": "execute_result",
                "execution_count": 1,
                "metadata": {},
                "data": {"text/plain": "{'model': 'organism:taboo', 'layers': 6, 'd_model': 256}"},
            }
        ],
        [
            {"output_type": "stream", "name": "stdout", "text": "sampled 16 answers\n"},
            {
                "output_type": "execute_result",
                "execution_count": 2,
                "metadata": {},
                "data": {"text/plain": "[('secret', 7), ('hint', 5), ('bird', 3), ('sky', 2)]"},
            },
        ],
        [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": _plot_png(), "text/plain": "<Figure size 640x320>"},
            }
        ],
    ]
    for n in range(min(experiments, len(code))):
        index = n + 1
        call = f"call-{index}"
        script += [
            ev.ToolCallStarted(call, "execute_code", {"code": code[n]}),
            ev.CellAdded(index, f"cell-{index}", "code", code[n]),
            ev.CellExecuting(index, f"cell-{index}"),
            ev.CellUpdated(index, f"cell-{index}", code[n], outputs[n], index, "ok"),
            ev.ToolCallFinished(
                call, "execute_code", False, f"ok · {len(outputs[n])} output(s)", 0.4 + index
            ),
        ]
    return script
