"""A loopback HTTP server that speaks enough of the Anthropic Messages API for the real SDK.

Tests queue what the next requests get with ``server.script(...)``: a normal
``Turn`` (blocks + stop_reason, streamed as SSE when the request asks for a
stream), or a fault — ``HTTPError`` (429/529 with retry-after, 401, ...),
``StreamError`` (an ``error`` event mid-stream), ``Stall`` (silence after the
headers, longer than the client's read timeout), ``Truncate`` (the stream ends
without ``message_stop``); or a ``Reply``, which builds its turn from the request.
A ``Turn`` with ``delay`` streams slowly, for cancellation tests. Every request body
is kept in ``server.requests``.

Use the ``fake_anthropic`` fixture: list this module in ``pytest_plugins``, or
import ``fake_anthropic_fixture`` into the test module (it registers under the
name ``fake_anthropic``)::

    def test_hello(fake_anthropic):
        fake_anthropic.script(Turn([text("hi")]))
        provider = ClaudeProvider(api_key="k", base_url=fake_anthropic.base_url)
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [
    "FakeAnthropic",
    "HTTPError",
    "Reply",
    "Scripted",
    "Stall",
    "StreamError",
    "Truncate",
    "Turn",
    "fake_anthropic_fixture",
    "redacted_thinking",
    "text",
    "thinking",
    "tool_use",
]

# -- what a test can script -----------------------------------------------------


def text(value: str) -> dict[str, Any]:
    """A text block."""
    return {"type": "text", "text": value}


def thinking(value: str, signature: str = "sig-0") -> dict[str, Any]:
    """A thinking block (streamed as thinking_delta chunks, then a signature_delta)."""
    return {"type": "thinking", "thinking": value, "signature": signature}


def redacted_thinking(data: str = "ZW5jcnlwdGVk") -> dict[str, Any]:
    """A redacted_thinking block (sent whole in content_block_start)."""
    return {"type": "redacted_thinking", "data": data}


def tool_use(
    id: str, name: str, input: dict[str, Any] | None = None, *, raw_json: str | None = None
) -> dict[str, Any]:
    """A tool_use block; ``raw_json`` streams that text instead (e.g. JSON cut short)."""
    block: dict[str, Any] = {"type": "tool_use", "id": id, "name": name, "input": input or {}}
    if raw_json is not None:
        block["raw_json"] = raw_json
    return block


@dataclass
class Turn:
    """A successful answer. ``delay`` seconds pass between SSE events (slow stream)."""

    blocks: list[dict[str, Any]]
    stop_reason: str | None = "end_turn"
    usage: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    chunk: int = 8  # characters per text/thinking/json delta


@dataclass
class HTTPError:
    """An error status instead of an answer; ``echo_key`` puts the caller's key in the message."""

    status: int
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    echo_key: bool = False


@dataclass
class StreamError:
    """Stream ``after`` events of ``turn``, then an ``error`` event, then end the stream."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    after: int = 4
    turn: Turn | None = None


@dataclass
class Stall:
    """Send the headers and ``after`` events, then go silent for ``seconds`` and hang up.

    ``before_headers`` goes silent before sending anything (the SDK's own timeout).
    """

    seconds: float = 3.0
    after: int = 3
    turn: Turn | None = None
    before_headers: bool = False


@dataclass
class Truncate:
    """Stream ``after`` events of ``turn``, then end the stream cleanly, without message_stop."""

    after: int = 5
    turn: Turn | None = None


@dataclass
class Reply:
    """A turn made from the request itself (``build(body)``): an agent that acts on what it saw."""

    build: Callable[[dict[str, Any]], Turn]


Scripted = Turn | HTTPError | StreamError | Stall | Truncate | Reply

_DEFAULT_TURN = Turn([text("This answer was cut short by a fault.")])
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


# -- the server -------------------------------------------------------------------


class FakeAnthropic:
    """The server object the fixture yields: ``base_url``, ``script()``, ``requests``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects: list[float] = []  # monotonic times a client hung up mid-stream
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._disconnected = threading.Condition(self._lock)
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._messages = 0

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def script(self, *responses: Scripted) -> None:
        """Queue responses for the next requests, in order."""
        with self._lock:
            self._script.extend(responses)

    @property
    def pending(self) -> int:
        """Scripted responses not yet used."""
        with self._lock:
            return len(self._script)

    def wait_for_disconnect(self, timeout: float) -> bool:
        """Block until a client has hung up on a stream (True) or ``timeout`` passes."""
        with self._disconnected:
            return self._disconnected.wait_for(lambda: bool(self.disconnects), timeout)

    def close(self) -> None:
        """Stop serving, wake stalled handlers, hang up on clients, join the threads."""
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
            handlers = list(self._handlers)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in handlers:
            thread.join(timeout=2.0)
        self._thread.join(timeout=2.0)

    # -- used by the handler --------------------------------------------------------

    def _next(self) -> Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)

    def _hung_up(self) -> None:
        with self._disconnected:
            self.disconnects.append(time.monotonic())
            self._disconnected.notify_all()

    def _message_id(self) -> str:
        with self._lock:
            self._messages += 1
            return f"msg_fake_{self._messages:04d}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() joins the handlers itself, after waking them
    fake: FakeAnthropic

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (cancelled streams, timeouts) are expected here, not failures.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _HungUp(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked streams: what the SDK meets in practice
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def setup(self) -> None:
        super().setup()
        fake = self.server.fake
        with fake._lock:
            fake._connections.add(self.connection)
            fake._handlers.add(threading.current_thread())

    def finish(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake._connections.discard(self.connection)
            fake._handlers.discard(threading.current_thread())
        with contextlib.suppress(OSError):  # flushing to a client that hung up
            super().finish()

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.split("?", 1)[0] != "/v1/messages":
            self._json(404, _error_body("not_found_error", f"no route {self.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, _error_body("invalid_request_error", "body is not JSON"))
            return
        fake._record(body, {k.lower(): v for k, v in self.headers.items()})
        problem = _validate(body)
        if problem:
            self._json(400, _error_body("invalid_request_error", problem), retry=False)
            return
        scripted = fake._next()
        if scripted is None:
            self._json(
                400,
                _error_body("invalid_request_error", "fake_anthropic: nothing scripted"),
                retry=False,
            )
            return
        try:
            self._respond(scripted, body)
        except (_HungUp, OSError):
            fake._hung_up()
            self.close_connection = True

    def _respond(self, scripted: Scripted, body: dict[str, Any]) -> None:
        fake = self.server.fake
        stream = bool(body.get("stream"))
        if isinstance(scripted, Reply):
            scripted = scripted.build(body)
        if isinstance(scripted, HTTPError):
            message = scripted.message or f"fake {scripted.status}"
            if scripted.echo_key:
                message += f" (key: {self._key()})"
            error_type = scripted.error_type or _ERROR_TYPES.get(scripted.status, "api_error")
            headers = {}
            if scripted.retry_after is not None:
                headers["retry-after"] = str(int(scripted.retry_after))
                headers["retry-after-ms"] = str(int(scripted.retry_after * 1000))
            self._json(scripted.status, _error_body(error_type, message), headers=headers)
            return
        if isinstance(scripted, Stall) and scripted.before_headers:
            fake._stop.wait(scripted.seconds)
            self.close_connection = True
            return
        turn = scripted if isinstance(scripted, Turn) else (scripted.turn or _DEFAULT_TURN)
        message_id = fake._message_id()
        if not stream:
            self._json(200, _message(message_id, body, turn, complete=True))
            return
        events = list(_events(message_id, body, turn))
        if isinstance(scripted, Turn):
            self._stream(events, turn.delay)
        elif isinstance(scripted, StreamError):
            error = ("error", _error_body(scripted.error_type, scripted.message))
            self._stream([*events[: scripted.after], error], turn.delay)
        elif isinstance(scripted, Truncate):
            self._stream(events[: scripted.after], turn.delay)
        else:  # Stall after headers
            self._stream(events[: scripted.after], turn.delay, end=False)
            fake._stop.wait(scripted.seconds)
            self.close_connection = True  # hang up without the final chunk

    def _key(self) -> str:
        auth = self.headers.get("x-api-key") or self.headers.get("authorization") or ""
        return auth.removeprefix("Bearer ")

    def _json(
        self,
        status: int,
        payload: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        retry: bool | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_fake")
        if retry is not None:
            self.send_header("x-should-retry", "true" if retry else "false")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _stream(
        self, events: list[tuple[str, dict[str, Any]]], delay: float, end: bool = True
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.flush()
        stop = self.server.fake._stop
        for i, (name, data) in enumerate(events):
            if i and delay and stop.wait(delay):
                raise _HungUp  # the server is closing
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        if end:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# -- Messages API shapes ------------------------------------------------------------------


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_fake",
    }


def _usage(body: dict[str, Any], turn: Turn) -> dict[str, int]:
    # A rough token count of the request unless the test fixed one.
    guess = max(1, len(json.dumps(body.get("messages", []))) // 4)
    out = max(1, sum(len(json.dumps(b)) for b in turn.blocks) // 4)
    usage = {
        "input_tokens": guess,
        "output_tokens": out,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    usage.update(turn.usage)
    return usage


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "raw_json"}


def _message(
    message_id: str, body: dict[str, Any], turn: Turn, *, complete: bool
) -> dict[str, Any]:
    usage = _usage(body, turn)
    if not complete:
        usage = {**usage, "output_tokens": 1}
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": [_clean(b) for b in turn.blocks] if complete else [],
        "stop_reason": turn.stop_reason if complete else None,
        "stop_sequence": None,
        "usage": usage,
    }


def _pieces(value: str, size: int) -> Iterator[str]:
    size = max(1, size)
    for start in range(0, len(value), size):
        yield value[start : start + size]


def _events(
    message_id: str, body: dict[str, Any], turn: Turn
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of a streamed ``turn``, as (event name, data) pairs."""
    yield (
        "message_start",
        {"type": "message_start", "message": _message(message_id, body, turn, complete=False)},
    )
    yield "ping", {"type": "ping"}
    for index, block in enumerate(turn.blocks):
        kind = block["type"]
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], turn.chunk)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p}
                for p in _pieces(block["thinking"], turn.chunk)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = block.get("raw_json")
            raw = json.dumps(block["input"]) if raw is None else raw
            # Like the API: an empty first delta, then the JSON in pieces.
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(raw, turn.chunk)
            ]
        else:  # redacted_thinking and anything else arrive whole
            start, deltas = _clean(block), []
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    usage = _usage(body, turn)
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
            "usage": usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _validate(body: dict[str, Any]) -> str | None:
    """The request errors the real API would answer with 400, for what tests exercise."""
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    if _count_cache_control(body) > 4:
        return "A maximum of 4 blocks with cache_control may be provided."
    thinking_config = body.get("thinking") or {}
    if thinking_config.get("type") == "enabled":
        budget = thinking_config.get("budget_tokens", 0)
        if budget < 1024 or budget >= body["max_tokens"]:
            return "thinking.budget_tokens: must be >= 1024 and less than max_tokens"
    for message in body["messages"]:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "thinking" and not block.get("signature"):
                return "thinking blocks must carry their signature"
            if block.get("type") == "text" and not block.get("text"):
                return "text content blocks must be non-empty"
    return None


def _count_cache_control(value: Any) -> int:
    if isinstance(value, dict):
        own = 1 if "cache_control" in value else 0
        return own + sum(_count_cache_control(v) for k, v in value.items() if k != "cache_control")
    if isinstance(value, list):
        return sum(_count_cache_control(v) for v in value)
    return 0


@pytest.fixture(name="fake_anthropic")
def fake_anthropic_fixture() -> Iterator[FakeAnthropic]:
    """A running fake Messages API on 127.0.0.1; closed after the test."""
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.close()
