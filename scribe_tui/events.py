"""The event stream an investigation emits; every front end is a renderer of it.

Each event is a small frozen dataclass with a ``type`` tag and serialises to one
JSON line: that line is the ``--auto --json`` output and the transcript's event log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

Author = Literal["agent", "person", "system"]


@dataclass(frozen=True)
class Event:
    """Base class: subclasses set ``type`` and add their fields."""

    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class TextDelta(Event):
    """A piece of the agent's visible text, streamed."""

    type: ClassVar[str] = "text_delta"
    text: str


@dataclass(frozen=True)
class ThinkingDelta(Event):
    """A piece of the agent's extended thinking, streamed."""

    type: ClassVar[str] = "thinking_delta"
    text: str


@dataclass(frozen=True)
class TurnStarted(Event):
    """The provider is being asked for turn ``turn``."""

    type: ClassVar[str] = "turn_started"
    turn: int


@dataclass(frozen=True)
class TurnFinished(Event):
    """A provider turn ended; ``stop_reason`` as the provider reported it."""

    type: ClassVar[str] = "turn_finished"
    turn: int
    stop_reason: str | None


@dataclass(frozen=True)
class ToolCallStarted(Event):
    """The loop began running a tool call."""

    type: ClassVar[str] = "tool_call_started"
    call_id: str
    name: str
    arguments: dict[str, Any]
    author: Author = "agent"


@dataclass(frozen=True)
class ToolCallFinished(Event):
    """A tool call returned; ``summary`` is a one-line digest of its result."""

    type: ClassVar[str] = "tool_call_finished"
    call_id: str
    name: str
    is_error: bool
    summary: str
    duration: float


@dataclass(frozen=True)
class CellAdded(Event):
    """A cell was appended to the notebook at ``index`` (counting all cells)."""

    type: ClassVar[str] = "cell_added"
    index: int
    cell_id: str
    cell_type: Literal["code", "markdown"]
    source: str
    author: Author = "agent"


@dataclass(frozen=True)
class CellExecuting(Event):
    """A code cell started running."""

    type: ClassVar[str] = "cell_executing"
    index: int
    cell_id: str


@dataclass(frozen=True)
class CellUpdated(Event):
    """A cell's source or outputs changed (also streamed while it runs).

    ``outputs`` are nbformat output dicts; ``status`` is None while running, then
    one of ``ok``, ``error``, ``timeout``, ``died``.
    """

    type: ClassVar[str] = "cell_updated"
    index: int
    cell_id: str
    source: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    status: str | None = None
    author: Author = "agent"


@dataclass(frozen=True)
class KernelStarted(Event):
    """A session's kernel runs; ``jupyter console --existing CONNECTION_FILE`` attaches to it.

    Emitted again with a new file when a kernel that died is replaced.
    """

    type: ClassVar[str] = "kernel_started"
    session_id: str
    connection_file: str
    notebook: str


@dataclass(frozen=True)
class NotebookOpened(Event):
    """Front ends now follow the notebook at ``path``; its cells follow as cell events.

    The cells shown so far belonged to another notebook (an outside agent, driving
    through ``scribe-tui mcp``, started a new session).
    """

    type: ClassVar[str] = "notebook_opened"
    path: str


@dataclass(frozen=True)
class CheckpointRequested(Event):
    """The loop asked the agent for exploration checkpoint ``number``."""

    type: ClassVar[str] = "checkpoint_requested"
    number: int
    experiments: int


@dataclass(frozen=True)
class CheckpointAnswered(Event):
    """The agent wrote checkpoint ``number``; ``awaiting_approval`` if a person must decide."""

    type: ClassVar[str] = "checkpoint_answered"
    number: int
    content: str
    awaiting_approval: bool = False


@dataclass(frozen=True)
class CheckpointDecided(Event):
    """A person approved a checkpoint, or overrode it with ``message``."""

    type: ClassVar[str] = "checkpoint_decided"
    number: int
    decision: Literal["approve", "pivot", "continue"]
    message: str = ""


@dataclass(frozen=True)
class MessageQueued(Event):
    """A person's message is waiting for the next tool boundary."""

    type: ClassVar[str] = "message_queued"
    text: str
    queued: int


@dataclass(frozen=True)
class MessageDelivered(Event):
    """Queued messages reached the agent."""

    type: ClassVar[str] = "message_delivered"
    texts: list[str]


@dataclass(frozen=True)
class Status(Event):
    """A snapshot for status bars: host, device, memory, tokens, cost, time."""

    type: ClassVar[str] = "status"
    agent_state: str
    host_state: str = "unknown"
    device: str = ""
    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    turn: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    elapsed: float = 0.0
    queued: int = 0
    detail: str = ""
    sandbox: str = ""  # e.g. "sandbox: landlock (ABI 7)" or "sandbox: off (macOS has no Landlock)"


@dataclass(frozen=True)
class Paused(Event):
    type: ClassVar[str] = "paused"
    reason: str = ""


@dataclass(frozen=True)
class Resumed(Event):
    type: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class ErrorEvent(Event):
    """Something went wrong; ``fatal`` if the investigation cannot continue."""

    type: ClassVar[str] = "error"
    message: str
    fatal: bool = False


@dataclass(frozen=True)
class Concluded(Event):
    """The investigation ended with an answer."""

    type: ClassVar[str] = "concluded"
    answer: str
    confidence: float
    evidence: str


@dataclass(frozen=True)
class Stopped(Event):
    """The loop stopped; ``reason`` is concluded, budget, interrupted, failed."""

    type: ClassVar[str] = "stopped"
    reason: str
    detail: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        TextDelta,
        ThinkingDelta,
        TurnStarted,
        TurnFinished,
        ToolCallStarted,
        ToolCallFinished,
        CellAdded,
        CellExecuting,
        CellUpdated,
        KernelStarted,
        NotebookOpened,
        CheckpointRequested,
        CheckpointAnswered,
        CheckpointDecided,
        MessageQueued,
        MessageDelivered,
        Status,
        Paused,
        Resumed,
        ErrorEvent,
        Concluded,
        Stopped,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from ``Event.to_dict`` output (unknown keys ignored)."""
    cls = EVENT_TYPES.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
