"""Claude as a provider: streamed Messages API turns through the ``anthropic`` SDK.

The SDK already retries failed HTTP requests (429, 5xx, connection errors,
honouring ``retry-after``). What it cannot retry is a stream that fails after
the response headers arrived: an ``error`` event mid-stream, a read timeout, or
a stream that ends without ``message_stop``. ``ClaudeProvider`` retries the
whole turn for those, with exponential backoff and jitter, and reports each
retry as a non-fatal ``ErrorEvent``; the deltas of the new attempt then start
over from the beginning of the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Mapping
from typing import Any

import anthropic

try:
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - anthropic < 2 is built on httpx
    import httpx as _httpx  # type: ignore[no-redef]

from scribe_tui.agent.pricing import ModelPrice, merge_prices, turn_cost
from scribe_tui.agent.provider import Emit, ProviderError, TurnRequest, TurnResult, Usage
from scribe_tui.events import ErrorEvent, TextDelta, ThinkingDelta

__all__ = ["DEFAULT_MODEL", "NO_API_KEY_MESSAGE", "ClaudeProvider"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-6"
NO_API_KEY_MESSAGE = (
    "No Anthropic API key: set ANTHROPIC_API_KEY, "
    "or run with --agent autopilot for the offline investigator."
)

_EPHEMERAL = {"type": "ephemeral"}
# Error types an `error` event can carry that are worth asking again for.
_RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
_MAX_MESSAGE = 300


class _StreamFailure(Exception):
    """The response started but did not finish; the whole turn may be retried."""


class ClaudeProvider:
    """A provider that asks Claude for each turn over the streaming Messages API.

    ``read_timeout`` bounds the silence between bytes of a stream (the API sends
    pings while it thinks, so a long silence means a dead stream). ``max_retries``
    is the SDK's own HTTP retry count; ``attempts`` bounds the whole-turn retries
    for streams that fail midway. ``prices`` overrides or extends the price table
    (model -> ``ModelPrice`` or a ``{"input": .., "output": ..}`` mapping).
    """

    name = "anthropic"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        thinking_budget: int | None = None,
        max_retries: int = 4,
        attempts: int = 4,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        read_timeout: float = 120.0,
        connect_timeout: float = 10.0,
        prices: Mapping[str, ModelPrice | Mapping[str, float]] | None = None,
    ) -> None:
        key = (api_key or os.environ.get("ANTHROPIC_API_KEY") or "").strip()
        if not key:
            raise ProviderError(NO_API_KEY_MESSAGE, retryable=False)
        if thinking_budget is not None and thinking_budget < 1024:
            raise ProviderError(
                f"thinking budget must be at least 1024 tokens (got {thinking_budget})"
            )
        if attempts < 1:
            raise ProviderError(f"attempts must be at least 1 (got {attempts})")
        try:
            self._prices = merge_prices(prices)
        except ValueError as exc:
            raise ProviderError(str(exc)) from None
        self.model = model
        self.thinking_budget = thinking_budget
        self.attempts = attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.cost_note: str | None = None
        """Set when the model has no known price (its turns then cost $0)."""
        self._secret = key
        # Passing the key explicitly stops the SDK from looking for other credentials.
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=anthropic.Timeout(
                connect=connect_timeout, read=read_timeout, write=60.0, pool=60.0
            ),
        )

    def __repr__(self) -> str:
        # Never show the key, even in a debugger or a log of provider objects.
        return f"ClaudeProvider(model={self.model!r}, thinking_budget={self.thinking_budget!r})"

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def turn(self, request: TurnRequest, emit: Emit) -> TurnResult:
        """Stream one turn from Claude; see ``TurnResult`` for what comes back.

        A turn that stopped at ``max_tokens`` is returned as-is (stop_reason
        ``"max_tokens"``); a tool_use block whose JSON was cut off gets whatever
        input could be salvaged, and the loop must not run its tool calls.
        Raises ``ProviderError`` (one line, with ``retryable``) when the turn
        cannot be had. Cancelling closes the stream and raises CancelledError.
        """
        params = self._params(request)
        for attempt in range(1, self.attempts + 1):
            try:
                content, stop_reason, usage = await self._attempt(params, emit)
            except _StreamFailure as failure:
                reason = self._redact(str(failure))
                if attempt >= self.attempts:
                    raise ProviderError(
                        f"Claude's response stream failed {self.attempts} times in a row "
                        f"(last: {reason}); try again later",
                        retryable=True,
                    ) from None
                delay = self._backoff(attempt)
                emit(
                    ErrorEvent(
                        message=_one_line(
                            f"Claude's response stream failed ({reason}); retrying in "
                            f"{delay:.1f}s (attempt {attempt + 1} of {self.attempts})"
                        ),
                        fatal=False,
                    )
                )
                log.info("retrying turn after stream failure: %s", reason)
                await asyncio.sleep(delay)
                continue
            except anthropic.APIStatusError as exc:
                raise self._status_error(exc) from None
            except anthropic.APIConnectionError as exc:
                # Raised before any response (the SDK has already retried it).
                kind = "timed out" if isinstance(exc, anthropic.APITimeoutError) else "failed"
                raise ProviderError(
                    f"Could not reach the Anthropic API: the connection {kind} "
                    f"({self._client.base_url.host}); check the network and try again",
                    retryable=True,
                ) from None
            except anthropic.AnthropicError as exc:
                raise ProviderError(
                    f"Anthropic SDK error: {self._redact(_one_line(str(exc)))}"
                ) from None
            usage.cost_usd, note = turn_cost(self.model, usage, self._prices)
            if note is not None and self.cost_note is None:
                self.cost_note = note
                log.warning("%s", note)
            return TurnResult(content=content, stop_reason=stop_reason, usage=usage)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- one HTTP request ---------------------------------------------------

    async def _attempt(
        self, params: dict[str, Any], emit: Emit
    ) -> tuple[list[dict[str, Any]], str | None, Usage]:
        stream = await self._client.messages.create(**params, stream=True)
        answer = _Answer(emit)
        try:
            async for event in stream:
                answer.feed(_as_dict(event))
        except anthropic.APIStatusError as exc:
            # An `error` event arrives with the 200 status of the stream it ended.
            if exc.status_code >= 400:
                raise
            error_type = exc.type or "error"
            if error_type not in _RETRYABLE_STREAM_ERRORS:
                raise ProviderError(
                    f"Claude stopped with {error_type}: "
                    f"{self._redact(_one_line(exc.api_message or str(exc)))}",
                    retryable=False,
                ) from None
            raise _StreamFailure(f"{error_type}: {exc.api_message or 'no details'}") from None
        except (_httpx.TimeoutException, anthropic.APITimeoutError):
            # Older SDKs let httpx's timeout through; 2.17+ wraps it in APITimeoutError.
            raise _StreamFailure("no data for longer than the read timeout") from None
        except (_httpx.TransportError, anthropic.APIConnectionError) as exc:
            raise _StreamFailure(f"connection lost: {type(exc).__name__}") from None
        finally:
            # Also runs on cancellation: the connection must not outlive the turn.
            try:
                await stream.close()
            except Exception:  # closing a broken connection can fail; nothing to recover
                log.debug("closing the stream failed", exc_info=True)
        if not answer.stopped:
            raise _StreamFailure("the stream ended before message_stop")
        return answer.content(), answer.stop_reason, answer.usage()

    def _params(self, request: TurnRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": _with_breakpoints(request.messages),
        }
        if request.system:
            params["system"] = [
                {"type": "text", "text": request.system, "cache_control": dict(_EPHEMERAL)}
            ]
        if request.tools:
            tools = list(request.tools)
            tools[-1] = {**tools[-1], "cache_control": dict(_EPHEMERAL)}
            params["tools"] = tools
        if self.thinking_budget is not None:
            params["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
            # The budget counts against max_tokens: add it so the visible answer
            # keeps the allowance the loop asked for.
            params["max_tokens"] = request.max_tokens + self.thinking_budget
        return params

    # -- errors ---------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        delay = min(self.retry_max_delay, self.retry_base_delay * 2 ** (attempt - 1))
        # Full jitter in the upper half keeps clients that failed together apart.
        return delay * random.uniform(0.5, 1.0)

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        status = exc.status_code
        detail = self._redact(_one_line(exc.api_message or "")) or "no details"
        kind = f"{status} {exc.type}" if exc.type else str(status)
        if isinstance(exc, anthropic.AuthenticationError):
            return ProviderError(
                f"The Anthropic API rejected the API key ({kind}: {detail}); "
                "check ANTHROPIC_API_KEY",
                retryable=False,
            )
        if isinstance(exc, anthropic.PermissionDeniedError):
            return ProviderError(
                f"The API key may not use {self.model} ({kind}: {detail})", retryable=False
            )
        if isinstance(exc, anthropic.NotFoundError):
            return ProviderError(
                f"The Anthropic API does not know {self.model} ({kind}: {detail})",
                retryable=False,
            )
        retryable = status in (408, 409, 429) or status >= 500
        # Spend limits come as 429s but will not lift by waiting; the server may also say so.
        code = exc.error_code or ""
        if "spend_limit" in code or exc.response.headers.get("x-should-retry") == "false":
            retryable = False
        tail = " after retrying; try again later" if retryable else ""
        return ProviderError(f"Anthropic API error ({kind}: {detail}){tail}", retryable=retryable)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


class _Answer:
    """Builds the assistant message from raw stream events, emitting deltas."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._usage.update(_present(message.get("usage") or {}))
            for index, block in enumerate(message.get("content") or []):
                self._start(index, block)
        elif kind == "content_block_start":
            self._start(event["index"], event.get("content_block") or {})
        elif kind == "content_block_delta":
            self._delta(event["index"], event.get("delta") or {})
        elif kind == "content_block_stop":
            self._finish(event["index"])
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason")
            # message_delta counts are cumulative totals: they replace, not add.
            self._usage.update(_present(event.get("usage") or {}))
        elif kind == "message_stop":
            self.stopped = True

    def _start(self, index: int, block: dict[str, Any]) -> None:
        self._blocks[index] = _present(block)
        if block.get("type") in ("tool_use", "server_tool_use"):
            self._json[index] = []

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.get(index)
        if block is None:
            return
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text", "")
            block["text"] = block.get("text", "") + text
            if text:
                self._emit(TextDelta(text=text))
        elif kind == "thinking_delta":
            text = delta.get("thinking", "")
            block["thinking"] = block.get("thinking", "") + text
            if text:
                self._emit(ThinkingDelta(text=text))
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature", "")
        elif kind == "input_json_delta":
            self._json.setdefault(index, []).append(delta.get("partial_json", ""))
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))

    def _finish(self, index: int) -> None:
        parts = self._json.pop(index, None)
        if parts is not None and index in self._blocks:
            self._blocks[index]["input"] = _parse_input("".join(parts))

    def content(self) -> list[dict[str, Any]]:
        for index in list(self._json):
            self._finish(index)
        blocks = [self._blocks[i] for i in sorted(self._blocks)]
        # The API rejects empty text blocks when they are sent back next turn.
        return [b for b in blocks if not (b.get("type") == "text" and not b.get("text"))]

    def usage(self) -> Usage:
        return Usage(
            input_tokens=int(self._usage.get("input_tokens") or 0),
            output_tokens=int(self._usage.get("output_tokens") or 0),
            cache_read_input_tokens=int(self._usage.get("cache_read_input_tokens") or 0),
            cache_creation_input_tokens=int(self._usage.get("cache_creation_input_tokens") or 0),
        )


def _parse_input(raw: str) -> dict[str, Any]:
    """Tool input from its streamed JSON; a prefix cut off at max_tokens is salvaged."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = _parse_partial(raw)
    return value if isinstance(value, dict) else {}


def _parse_partial(raw: str) -> Any:
    try:
        from jiter import from_json  # an anthropic dependency, made for partial JSON
    except ImportError:  # pragma: no cover
        return {}
    try:
        return from_json(raw.encode(), partial_mode="trailing-strings")
    except ValueError:
        return {}


def _with_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``messages`` with cache breakpoints on the last two user turns.

    The latest user turn's breakpoint writes the conversation so far to the cache;
    the previous one sits exactly where the last request wrote, so it is read back
    however many blocks the turn added. With the system prompt and the tools that
    makes four, the API's limit, so markers already in the messages are dropped.
    Only the messages and blocks that change are copied.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and "cache_control" in b for b in content
        ):
            content = [
                {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
                for b in content
            ]
            message = {**message, "content": content}
        out.append(message)
    users = [i for i, m in enumerate(out) if m.get("role") == "user"][-2:]
    for i in users:
        message = out[i]
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                continue
            blocks: list[Any] = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content and isinstance(content[-1], dict):
            blocks = list(content)
        else:
            continue
        blocks[-1] = {**blocks[-1], "cache_control": dict(_EPHEMERAL)}
        out[i] = {**message, "content": blocks}
    return out


def _as_dict(event: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        return event
    # exclude_unset: exactly the fields the API sent, nothing the SDK defaulted.
    return event.to_dict(mode="json")


def _present(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without None values, which the API would reject when sent back."""
    return {k: v for k, v in data.items() if v is not None}


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
