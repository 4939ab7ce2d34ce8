"""Reporting a run: its events to the transcript and the front ends, its state at boundaries.

:class:`Reporter` writes every event to the transcript and hands it to each
subscribed sink (a failing sink is logged, never fatal). At a boundary the loop
calls :meth:`Reporter.flush` (the notebooks' saves are done: the step is durable in
both files) and :meth:`Reporter.sync`, which records the loop's counters as a
``state`` record, makes the transcript durable and emits a ``Status`` event -- skipped
when no event was emitted and no counter changed since the last time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from scribe_tui.agent.controls import EventSink
from scribe_tui.agent.transcript import Transcript
from scribe_tui.events import ErrorEvent, Event, Status
from scribe_tui.runtime.notebook import NotebookError
from scribe_tui.tools import NotebookTools

__all__ = ["Reporter"]

log = logging.getLogger(__name__)


class Reporter:
    """Where an investigation's events go, and its state snapshots."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.sinks: list[EventSink] = []
        self.dirty = True
        """An event was emitted (or the agent's state changed) since the last :meth:`sync`."""
        self._synced: dict[str, Any] = {}
        self._save_error: str | None = None  # reported once, not at every boundary

    def subscribe(self, sink: EventSink) -> None:
        """Deliver every future event to ``sink``."""
        self.sinks.append(sink)

    def emit(self, event: Event) -> None:
        """Record ``event`` in the transcript and hand it to every sink."""
        if not isinstance(event, Status):
            self.dirty = True
        self.transcript.event(event)
        for sink in list(self.sinks):
            try:
                sink(event)
            except Exception:
                log.exception("event sink failed on %s", event.type)

    def steer(self, action: str, **fields: Any) -> None:
        """Record a person's control (or the loop's own restart) in the transcript."""
        self.transcript.write("steer", action=action, **fields)

    async def flush(self, tools: NotebookTools) -> None:
        """Wait for the notebooks' background saves: a step is durable in both files.

        A failed save, and news about the files (one saved aside), become error events.
        """
        try:
            await tools.flush()
        except Exception as exc:  # the tools tell the agent too; the transcript has every step
            said = isinstance(exc, NotebookError)  # its message names the file and the fix
            message = str(exc) if said else f"The notebook could not be saved: {exc}"
            if message != self._save_error:
                self.emit(ErrorEvent(message=message))
            self._save_error = message
        else:
            self._save_error = None
        for notice in tools.take_notices():
            self.emit(ErrorEvent(message=notice))

    def sync(self, snapshot: dict[str, Any], status: Callable[[], Status]) -> None:
        """Record ``snapshot``, make the transcript durable, emit ``status()``.

        Skipped when nothing happened since the last time (back-to-back boundaries):
        no event, and no change in the snapshot but for its ``elapsed``.
        """
        counters = {k: v for k, v in snapshot.items() if k != "elapsed"}
        if not self.dirty and counters == self._synced:
            return
        self.dirty, self._synced = False, counters
        self.transcript.write("state", state=snapshot)
        self.transcript.sync()
        self.emit(status())
