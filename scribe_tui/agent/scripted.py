"""A provider that plays back scripted turns: for tests of the loop, the TUI and the CLI.

Each scripted turn is a list of content blocks, a :class:`ScriptedTurn` (blocks plus a
delay, a stop reason, usage or an error to raise), or a callable that receives the
:class:`TurnRequest` and returns either of those (sync or async). Text is streamed as
``TextDelta`` pieces spread over the turn's delay, so a test can pause or interrupt
mid-stream. The string ``$SESSION`` anywhere in a tool call's input is replaced by
the newest session id the conversation mentions, so scripts need not guess it.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from scribe_tui.agent.provider import Emit, ProviderError, TurnRequest, TurnResult, Usage
from scribe_tui.events import TextDelta, ThinkingDelta

__all__ = [
    "SESSION",
    "ScriptedProvider",
    "ScriptedTurn",
    "latest_session_id",
    "text",
    "tool",
]

SESSION = "$SESSION"
_SESSION_ID = re.compile(r"session '([A-Za-z0-9_-]+)'", re.IGNORECASE)


@dataclass
class ScriptedTurn:
    """One scripted answer.

    ``stop_reason`` defaults to ``tool_use`` when a tool_use block is present, else
    ``end_turn``. ``delay`` seconds are spread over the streamed pieces (or slept
    whole when there is no text). ``error`` is raised instead of answering.
    """

    content: Sequence[dict[str, Any]] = ()
    stop_reason: str | None = None
    delay: float = 0.0
    usage: Usage | None = None
    error: BaseException | None = None


TurnScript = Union[  # noqa: UP007 - a runtime alias, evaluated on Python 3.10 too
    Sequence[dict[str, Any]],
    ScriptedTurn,
    Callable[[TurnRequest], "Sequence[dict[str, Any]] | ScriptedTurn | TurnResult"],
    Callable[[TurnRequest], Awaitable["Sequence[dict[str, Any]] | ScriptedTurn | TurnResult"]],
]


def text(value: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": value}


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    """A tool_use block (the provider gives it an id if it has none)."""
    return {"type": "tool_use", "name": name, "input": arguments}


def latest_session_id(messages: Sequence[dict[str, Any]]) -> str | None:
    """The last session id named in the user messages (tool results and notes)."""
    found: str | None = None
    for message in messages:
        if message.get("role") == "user":
            for match in _SESSION_ID.finditer(json.dumps(message.get("content"))):
                found = match.group(1)
    return found


class ScriptedProvider:
    """Answers turn ``n`` with ``turns[n]``; records every request it saw in ``requests``.

    ``usage`` is charged for every turn that does not bring its own. When the script
    runs out, the turn fails with a non-retryable ``ProviderError``.
    """

    def __init__(
        self,
        turns: Sequence[TurnScript],
        *,
        name: str = "scripted",
        model: str = "scripted-model",
        usage: Usage | None = None,
        chunk: int = 16,
    ) -> None:
        self.name = name
        self.model = model
        self.turns = list(turns)
        self.usage = usage or Usage()
        self.chunk = chunk
        self.requests: list[TurnRequest] = []

    @property
    def remaining(self) -> int:
        """How many scripted turns have not been played yet."""
        return len(self.turns) - len(self.requests)

    async def turn(self, request: TurnRequest, emit: Emit) -> TurnResult:
        """Play the next scripted turn."""
        # A deep copy: the loop keeps mutating its own conversation afterwards.
        request = copy.deepcopy(request)
        number = len(self.requests)
        self.requests.append(request)
        if number >= len(self.turns):
            raise ProviderError(f"scripted provider: no turn {number + 1} in the script")
        script: Any = self.turns[number]
        if callable(script):
            script = script(request)
            if inspect.isawaitable(script):
                script = await script
        if isinstance(script, TurnResult):
            return script
        if not isinstance(script, ScriptedTurn):
            script = ScriptedTurn(content=script)
        if script.error is not None:
            if script.delay:
                await asyncio.sleep(script.delay)
            raise script.error
        content = self._fill(script.content, number, request.messages)
        await self._stream(content, script.delay, emit)
        stop = script.stop_reason
        if stop is None:
            stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return TurnResult(content=content, stop_reason=stop, usage=script.usage or self.usage)

    def _fill(
        self, blocks: Sequence[dict[str, Any]], number: int, messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        session = latest_session_id(messages)
        filled = []
        for i, block in enumerate(copy.deepcopy(list(blocks))):
            if block.get("type") == "tool_use":
                block.setdefault("id", f"toolu_s{number + 1:02d}_{i}")
                if session is not None:
                    block["input"] = _replace(block.get("input", {}), session)
            filled.append(block)
        return filled

    async def _stream(self, content: list[dict[str, Any]], delay: float, emit: Emit) -> None:
        pieces: list[TextDelta | ThinkingDelta] = []
        for block in content:
            if block["type"] == "text":
                value, kind = block["text"], TextDelta
            elif block["type"] == "thinking":
                value, kind = block["thinking"], ThinkingDelta
            else:
                continue
            pieces += [kind(value[i : i + self.chunk]) for i in range(0, len(value), self.chunk)]
        if not pieces:
            if delay:
                await asyncio.sleep(delay)
            return
        pause = delay / len(pieces)
        for piece in pieces:
            if pause:
                await asyncio.sleep(pause)
            emit(piece)


def _replace(value: Any, session: str) -> Any:
    if isinstance(value, str):
        return value.replace(SESSION, session)
    if isinstance(value, dict):
        return {k: _replace(v, session) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, session) for v in value]
    return value
