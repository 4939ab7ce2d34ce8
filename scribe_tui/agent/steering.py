"""What the person asked of a running investigation, held until the loop's next boundary.

The controls are synchronous and only record intent here; the loop reads it at its
boundaries (after each tool call and after each turn) and sleeps on :meth:`wait`
while paused. Everything runs on the loop's event loop, so no locking is needed.
"""

from __future__ import annotations

import asyncio

__all__ = ["PERSON_PREFIX", "Steering", "person_message"]

PERSON_PREFIX = "Message from the person watching: "
"""Marks a person's words in the conversation (the autopilot looks for it too)."""


def person_message(text: str) -> str:
    """A queued message as the agent reads it."""
    return PERSON_PREFIX + text


class Steering:
    """Pause state, queued messages and stop/interrupt flags, plus a wake-up signal."""

    def __init__(self) -> None:
        self.queued: list[str] = []
        """Person messages not yet delivered, already prefixed with :data:`PERSON_PREFIX`."""
        self.pause_reason: str | None = None
        """Set while a pause is requested or in force: ``paused`` or ``interrupted``."""
        self.stopping = False
        self.skip_rest = False
        """The rest of the current turn's tool calls must not run (set by an interrupt)."""
        self._wake = asyncio.Event()

    def pause(self, reason: str) -> None:
        """Ask for a pause at the next boundary (a stronger reason wins)."""
        if self.pause_reason != "interrupted":
            self.pause_reason = reason

    def resume(self) -> None:
        """Lift a pause."""
        self.pause_reason = None
        self.poke()

    def stop(self) -> None:
        """Ask the loop to end at the next boundary."""
        self.stopping = True
        self.skip_rest = True
        self.poke()

    def poke(self) -> None:
        """Wake the loop if it is waiting (a pause lifted, a decision made, a stop)."""
        self._wake.set()

    async def wait(self, seconds: float | None = None) -> None:
        """Sleep until poked (or ``seconds`` pass); callers re-check their condition."""
        self._wake.clear()
        if seconds is None:
            await self._wake.wait()
            return
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            return
