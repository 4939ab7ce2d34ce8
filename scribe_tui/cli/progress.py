"""The `--auto` renderer: one progress line per cell on stderr, or JSON events on stdout."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, TextIO

from scribe_tui.agent.status_board import host_fields
from scribe_tui.events import (
    CellAdded,
    CellExecuting,
    CellUpdated,
    CheckpointAnswered,
    Concluded,
    ErrorEvent,
    Event,
    KernelStarted,
    MessageDelivered,
    Paused,
    Resumed,
    Status,
    Stopped,
)
from scribe_tui.record.index import counted
from scribe_tui.runtime.status import HostStatus


def _headline(source: str, width: int = 72) -> str:
    """The first line of a cell that says something (skips blanks; comments are fine)."""
    for line in source.splitlines():
        text = line.strip().lstrip("#").strip()
        if text:
            return text if len(text) <= width else text[: width - 1] + "…"
    return ""


class ProgressPrinter:
    """Turns events into terse progress lines; with ``json_out`` also writes every event.

    ``investigator`` (parallel investigators): its id prefixes every line and is an
    ``investigator`` field of every JSON event; ``host_from`` is the printer that sees
    the shared model host's snapshots.
    """

    def __init__(
        self,
        err: TextIO,
        json_out: TextIO | None = None,
        investigator: str | None = None,
        host_from: ProgressPrinter | None = None,
    ) -> None:
        self.err = err
        self.json_out = json_out
        self.investigator = investigator
        self.host_from = host_from
        self._started: dict[str, float] = {}
        self._sources: dict[str, str] = {}
        self._code_cells = 0
        self._last_phase = ""
        self._host: dict[str, object] = {}  # the host's fields, for the JSON status events

    def _say(self, text: str) -> None:
        if self.investigator is not None:
            text = f"[{self.investigator}] {text.lstrip()}"
        print(text, file=self.err, flush=True)

    def host(self, status: HostStatus) -> None:
        """Model host loading snapshots (before the investigation starts)."""
        self._host = host_fields(status)
        line = status.summary()
        key = f"{status.state}:{status.phase}"
        if key != self._last_phase:
            self._last_phase = key
            self._say(f"  host    {line}")

    def event(self, event: Event) -> None:
        if self.json_out is not None:
            # The loop knows the run, not the model host: its status events get the host's
            # state and device from the latest snapshot, as the TUI's status bar does.
            host = self.host_from._host if self.host_from is not None else self._host
            shown = dataclasses.replace(event, **host) if isinstance(event, Status) else event
            if self.investigator is None:
                line = shown.to_json()
            else:
                fields = {"investigator": self.investigator, **shown.to_dict()}
                line = json.dumps(fields, ensure_ascii=False, default=str)
            print(line, file=self.json_out, flush=True)
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_cell_added(self, event: CellAdded) -> None:
        self._sources[event.cell_id] = event.source
        if event.cell_type == "markdown":
            who = "" if event.author == "agent" else f" ({event.author})"
            self._say(f"  note{who:<4} {_headline(event.source)}")

    def _on_cell_executing(self, event: CellExecuting) -> None:
        self._started[event.cell_id] = time.monotonic()

    def _on_cell_updated(self, event: CellUpdated) -> None:
        if event.status is None:
            return
        took = time.monotonic() - self._started.pop(event.cell_id, time.monotonic())
        self._code_cells += 1
        count = f"[{event.execution_count}]" if event.execution_count is not None else "[ ]"
        who = "" if event.author == "agent" else f" ({event.author})"
        source = event.source or self._sources.get(event.cell_id, "")
        self._say(
            f"  cell {count:<5} {event.status:<7} {took:6.2f} s{who}  {_headline(source, 60)}"
        )

    def _on_kernel_started(self, event: KernelStarted) -> None:
        self._say(f"  kernel  attach: jupyter console --existing {event.connection_file}")

    def _on_checkpoint_answered(self, event: CheckpointAnswered) -> None:
        waiting = " — waiting for approval" if event.awaiting_approval else ""
        self._say(f"  checkpoint {event.number} written{waiting}")

    def _on_error(self, event: ErrorEvent) -> None:
        self._say(f"  {'error' if event.fatal else 'warning'}: {event.message}")

    def _on_message_delivered(self, event: MessageDelivered) -> None:
        self._say(f"  delivered {len(event.texts)} message(s) from you to the agent")

    def _on_paused(self, event: Paused) -> None:
        self._say(f"  paused{f' ({event.reason})' if event.reason else ''}")

    def _on_resumed(self, event: Resumed) -> None:
        self._say("  resumed")

    def _on_concluded(self, event: Concluded) -> None:
        self._say(f"  concluded: {event.answer} (confidence {event.confidence:.2f})")

    def _on_stopped(self, event: Stopped) -> None:
        detail = f": {event.detail}" if event.detail else ""
        self._say(f"  stopped ({event.reason}){detail}")

    def finish(self, outcome: Any, wall: float) -> None:
        """The closing summary line."""
        usage = outcome.usage
        cost = f", ${usage.cost_usd:.2f}" if usage.cost_usd else ""
        self._say(
            f"scribe-tui: {outcome.reason} after {wall:.1f} s, {outcome.turns} turns, "
            f"{counted(self._code_cells, 'cell')}{cost}; notebook {outcome.notebook_path}; "
            f"transcript {outcome.transcript_path}"
        )
