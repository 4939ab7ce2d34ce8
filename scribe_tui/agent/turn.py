"""Asking the provider for one turn: retries, cancellation, and what was said before a cut.

:class:`TurnAsker` makes the provider call for a turn the loop has already composed.
A retryable :class:`~scribe_tui.agent.provider.ProviderError` is reported and asked
again after each of the configured delays (a person's stop or interrupt during the
wait ends the turn); any other failure, or one after the last delay, stops the run
with reason ``failed``. A person's interrupt or stop cancels the call in flight
(:meth:`TurnAsker.cancel`); the text streamed until then stays readable as
:attr:`TurnAsker.partial`, so the loop can keep it in the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from scribe_tui.agent.provider import Provider, ProviderError, TurnRequest, TurnResult
from scribe_tui.agent.run_config import Stop
from scribe_tui.agent.steering import Steering
from scribe_tui.events import ErrorEvent, Event, TextDelta

__all__ = ["TurnAsker"]


class TurnAsker:
    """Asks ``provider`` for turns, passing its deltas to ``emit``; one turn at a time."""

    def __init__(
        self, provider: Provider, steering: Steering, emit: Callable[[Event], None]
    ) -> None:
        self.provider = provider
        self.steering = steering
        self._emit = emit
        self._task: asyncio.Future[TurnResult] | None = None
        self._partial: list[str] = []

    @property
    def partial(self) -> str:
        """The text streamed by the latest attempt at a turn, stripped."""
        return "".join(self._partial).strip()

    def cancel(self) -> None:
        """Cancel the provider call in flight, if any (an interrupt or a stop)."""
        if self._task is not None:
            self._task.cancel()

    async def ask(self, request: TurnRequest, delays: tuple[float, ...]) -> TurnResult | None:
        """The provider's answer, retried after each of ``delays``; None if it was cut short.

        Raises :class:`~scribe_tui.agent.run_config.Stop` (``failed``) when the provider
        fails for good.
        """
        for attempt in range(len(delays) + 1):
            self._partial = []
            try:
                result = await self._once(request)
            except ProviderError as exc:
                if not exc.retryable or attempt >= len(delays):
                    self._emit(ErrorEvent(message=f"{self.provider.name}: {exc}", fatal=True))
                    raise Stop("failed", str(exc)) from exc
                self._emit(
                    ErrorEvent(
                        message=f"{self.provider.name}: {exc}; retrying in {delays[attempt]:g}s"
                    )
                )
                await self.steering.wait(delays[attempt])
                if self.steering.stopping or self.steering.pause_reason == "interrupted":
                    return None
                continue
            return result
        return None

    async def _once(self, request: TurnRequest) -> TurnResult | None:
        """One provider call that :meth:`cancel` can cancel; None if it was cancelled."""
        if self.steering.stopping:
            return None
        # An interrupt from now on is about this turn (and the calls it is about to make).
        self.steering.skip_rest = False
        task = asyncio.ensure_future(self.provider.turn(request, self._on_delta))
        self._task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        finally:
            self._task = None
        return None if task.cancelled() else task.result()

    def _on_delta(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._partial.append(event.text)
        self._emit(event)
