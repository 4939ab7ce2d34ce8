"""What a front end may do to a running investigation (DESIGN.md, "Events and controls")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from scribe_tui.events import Event

EventSink = Callable[[Event], None]


class InvestigationControls(Protocol):
    """The controls every front end calls; the loop implements them.

    Synchronous controls only record intent and return at once; the loop applies
    them at the next boundary. The async ones run a person's code through the
    notebook tools and return when the cell has finished.
    """

    def subscribe(self, sink: EventSink) -> None:
        """Deliver every future event to ``sink`` (called on the loop's event loop)."""

    def pause(self) -> None:
        """Stop at the next boundary (after the current tool call or turn)."""

    def resume(self) -> None:
        """Continue after ``pause`` or an interrupt."""

    def interrupt(self) -> None:
        """Stop the streaming model turn and interrupt the running cell now; then pause."""

    def send(self, text: str) -> None:
        """Queue a message for the agent; delivered in order at the next tool boundary."""

    def request_checkpoint(self) -> None:
        """Ask the agent for an exploration checkpoint at the next boundary."""

    def decide_checkpoint(
        self, number: int, decision: Literal["approve", "pivot", "continue"], message: str = ""
    ) -> None:
        """Answer a checkpoint that awaits approval."""

    async def edit_cell(self, index: int, code: str) -> None:
        """Replace code cell ``index`` (counting code cells) with a person's code and re-run it."""

    async def run_code(self, code: str) -> None:
        """Append and run a person's own code cell."""
