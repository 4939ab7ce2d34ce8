"""The interface every agent implements: Claude, the offline autopilot, test doubles.

A provider answers one *turn*: given the system prompt, the conversation (owned
by the loop, in Anthropic Messages format) and the tool definitions, it streams
``TextDelta``/``ThinkingDelta`` events while it works and returns the assistant
message's content blocks. It never runs tools and never edits the conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from scribe_tui.events import Event

__all__ = [
    "Emit",
    "Provider",
    "ProviderError",
    "TurnRequest",
    "TurnResult",
    "Usage",
]

Emit = Callable[[Event], None]


@dataclass
class Usage:
    """Tokens and dollars spent on one turn (or, summed with ``+``, on many)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def total_input_tokens(self) -> int:
        """Every prompt token, whether read fresh, read from cache or written to it."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


@dataclass
class TurnRequest:
    """What the loop asks for: the provider must treat every field as read-only."""

    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int = 8192


@dataclass
class TurnResult:
    """The assistant message of one turn.

    ``content`` holds Anthropic-format blocks ready to append to the conversation
    as ``{"role": "assistant", "content": content}``: thinking and redacted_thinking
    blocks exactly as received (signature included), tool_use blocks with their
    ``input`` parsed to a dict. ``stop_reason`` is ``"max_tokens"`` when the answer
    was cut off; its tool calls may then be incomplete and must not be run.
    """

    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)


class ProviderError(RuntimeError):
    """A turn that cannot be completed; ``str(error)`` is one line fit to show a person.

    ``retryable`` says whether asking again later may succeed (overload, network)
    as opposed to needing a change first (bad key, bad request).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        # Front ends print this in a status line: keep it to one line.
        one_line = " ".join(str(message).split())
        super().__init__(one_line)
        self.message = one_line
        self.retryable = retryable


@runtime_checkable
class Provider(Protocol):
    """An agent the investigation loop can ask for turns."""

    name: str
    model: str

    async def turn(self, request: TurnRequest, emit: Emit) -> TurnResult:
        """Answer one turn, emitting deltas as they arrive.

        Cancelling the task that awaits this stops the turn promptly (any network
        stream is closed) and lets ``CancelledError`` propagate.
        """
        ...
