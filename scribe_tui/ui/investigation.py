"""The investigation worker's plumbing: what the app can be given to run, and what it posts.

The app runs the investigation in an async worker (:func:`drive`); the worker never
touches widgets. Every event the loop emits becomes an :class:`AgentEvent` message,
and :class:`InvestigationStarted` hands the app the controls once they exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from textual.message import Message

from scribe_tui import events as ev
from scribe_tui.agent.controls import InvestigationControls


class RunnableInvestigation(InvestigationControls, Protocol):
    """The controls plus ``run()``, which drives the investigation to its end."""

    async def run(self) -> Any:
        """Run until concluded, failed or out of budget; returns the loop's outcome."""


InvestigationSource = (
    RunnableInvestigation
    | Callable[[], Awaitable[RunnableInvestigation]]
    | Callable[[], AbstractAsyncContextManager[RunnableInvestigation]]
)
StatusSource = Callable[[], "ev.Status | None"]


class AgentEvent(Message):
    """An investigation event, carried from the worker to the app's handlers."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event


class InvestigationStarted(Message):
    """The investigation exists; its controls can be used from now on."""

    def __init__(self, controls: RunnableInvestigation) -> None:
        super().__init__()
        self.controls = controls


async def drive(source: InvestigationSource, post: Callable[[Message], Any]) -> Any:
    """Open the investigation however it was given, post its events, run it to its end.

    A factory's async context manager (one that owns kernels and a model host) is
    closed however the run ends, cancellation on quit included.
    """
    if hasattr(source, "run") and hasattr(source, "subscribe"):
        return await _run(source, post)  # type: ignore[arg-type]
    opened = source()  # type: ignore[operator]
    if hasattr(opened, "__aenter__"):  # owns processes: closed however the run ends
        async with opened as investigation:
            return await _run(investigation, post)
    return await _run(await opened, post)


async def _run(investigation: RunnableInvestigation, post: Callable[[Message], Any]) -> Any:
    investigation.subscribe(lambda event: post(AgentEvent(event)))
    post(InvestigationStarted(investigation))
    return await investigation.run()
