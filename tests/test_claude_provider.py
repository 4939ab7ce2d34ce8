"""ClaudeProvider through the real anthropic SDK, against the loopback Messages API."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fake_anthropic import (
    FakeAnthropic,
    HTTPError,
    Stall,
    StreamError,
    Truncate,
    Turn,
    fake_anthropic_fixture,  # noqa: F401  (registers the fake_anthropic fixture)
    redacted_thinking,
    text,
    thinking,
    tool_use,
)

from scribe_tui.agent.claude import NO_API_KEY_MESSAGE, ClaudeProvider
from scribe_tui.agent.pricing import DEFAULT_PRICES, ModelPrice, price_for
from scribe_tui.agent.provider import Provider, ProviderError, TurnRequest, TurnResult, Usage
from scribe_tui.events import ErrorEvent, Event, TextDelta, ThinkingDelta

KEY = "sk-ant-test-SECRET-0123456789"
TOOLS = [
    {
        "name": "execute_code",
        "description": "Run a code cell.",
        "input_schema": {"type": "object", "properties": {"code": {"type": "string"}}},
    },
    {
        "name": "add_markdown",
        "description": "Add a markdown cell.",
        "input_schema": {"type": "object", "properties": {"content": {"type": "string"}}},
    },
]


class Recorder:
    """An ``emit`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def text(self) -> str:
        return "".join(e.text for e in self.of(TextDelta))


@pytest.fixture
async def make_provider(
    fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., ClaudeProvider]]:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    made: list[ClaudeProvider] = []

    def make(**kwargs: Any) -> ClaudeProvider:
        options: dict[str, Any] = {
            "api_key": KEY,
            "base_url": fake_anthropic.base_url,
            "retry_base_delay": 0.01,
            "read_timeout": 1.0,
        }
        options.update(kwargs)
        provider = ClaudeProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def request(*messages: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> TurnRequest:
    return TurnRequest(
        system="You are an interpretability researcher.",
        messages=list(messages) or [{"role": "user", "content": "Find the secret word."}],
        tools=TOOLS if tools is None else tools,
        max_tokens=4096,
    )


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def count_cache_control(value: Any) -> int:
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(count_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_cache_control(v) for v in value)
    return 0


# -- normal turns -------------------------------------------------------------------------


async def test_text_streams_as_deltas(fake_anthropic: FakeAnthropic, make_provider) -> None:
    answer = "The model seems to avoid one word; let me probe it with prefills."
    fake_anthropic.script(Turn([text(answer)], chunk=5))
    provider = make_provider()
    assert isinstance(provider, Provider)
    rec = Recorder()

    result = await provider.turn(request(), rec)

    assert isinstance(result, TurnResult)
    assert result.content == [{"type": "text", "text": answer}]
    assert result.stop_reason == "end_turn"
    deltas = rec.of(TextDelta)
    assert len(deltas) == len(range(0, len(answer), 5)) and rec.text() == answer
    assert rec.of(ErrorEvent) == []
    body = fake_anthropic.requests[0]
    assert body["stream"] is True and body["model"] == provider.model
    assert body["max_tokens"] == 4096 and "thinking" not in body


async def test_tool_use_and_parallel_calls_round_trip(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    code = "out = client.run(lambda model, tokenizer: model.config.to_dict())\nprint(out)"
    fake_anthropic.script(
        Turn(
            [
                text("Two things at once."),
                tool_use("toolu_1", "execute_code", {"code": code}),
                tool_use("toolu_2", "add_markdown", {"content": '## Plan\n- probe "quotes"'}),
            ],
            stop_reason="tool_use",
            chunk=3,
        ),
        Turn([text("Both done.")]),
    )
    provider = make_provider()
    messages = [user("Find the secret word.")]

    first = await provider.turn(request(*messages), Recorder())

    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b["type"] == "tool_use"]
    assert calls == [
        {"type": "tool_use", "id": "toolu_1", "name": "execute_code", "input": {"code": code}},
        {
            "type": "tool_use",
            "id": "toolu_2",
            "name": "add_markdown",
            "input": {"content": '## Plan\n- probe "quotes"'},
        },
    ]
    messages.append({"role": "assistant", "content": first.content})
    messages.append(
        user(
            [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{'vocab_size': 32}"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "added cell 3"},
            ]
        )
    )
    second = await provider.turn(request(*messages), Recorder())

    assert second.content == [{"type": "text", "text": "Both done."}]
    sent = fake_anthropic.requests[1]["messages"]
    assert sent[1] == {"role": "assistant", "content": first.content}
    results = sent[2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_1", "toolu_2"]
    assert results[1]["content"] == "added cell 3"


async def test_thinking_blocks_stream_and_go_back_verbatim(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    thought = "The prefill attack should reveal it; start with the assistant prefix."
    signature = "EqQBCkYIBRgCKkB+sig/with+odd==chars"
    fake_anthropic.script(
        Turn(
            [
                thinking(thought, signature),
                redacted_thinking("c2VjcmV0IHRob3VnaHRz"),
                text("Running a prefill."),
                tool_use("toolu_9", "execute_code", {"code": "print(1)"}),
            ],
            stop_reason="tool_use",
            chunk=7,
        ),
        Turn([text("ok")]),
    )
    provider = make_provider(thinking_budget=2048)
    rec = Recorder()

    first = await provider.turn(request(), rec)

    assert first.content[0] == {"type": "thinking", "thinking": thought, "signature": signature}
    assert first.content[1] == {"type": "redacted_thinking", "data": "c2VjcmV0IHRob3VnaHRz"}
    assert "".join(e.text for e in rec.of(ThinkingDelta)) == thought
    assert len(rec.of(ThinkingDelta)) > 1
    body = fake_anthropic.requests[0]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096 + 2048  # the budget comes on top of the answer's

    messages = [
        user("Find the secret word."),
        {"role": "assistant", "content": first.content},
        user([{"type": "tool_result", "tool_use_id": "toolu_9", "content": "1"}]),
    ]
    await provider.turn(request(*messages), Recorder())
    sent = fake_anthropic.requests[1]["messages"][1]["content"]
    assert sent[:2] == first.content[:2]  # signature and redacted data untouched


async def test_max_tokens_with_cut_tool_json(fake_anthropic: FakeAnthropic, make_provider) -> None:
    fake_anthropic.script(
        Turn(
            [
                text("Let me write a long cell."),
                tool_use(
                    "toolu_3", "execute_code", raw_json='{"code": "for i in range(10):\\n   pri'
                ),
            ],
            stop_reason="max_tokens",
        ),
        Turn(
            [tool_use("toolu_4", "execute_code", raw_json='{"co')],
            stop_reason="max_tokens",
        ),
    )
    provider = make_provider()

    result = await provider.turn(request(), Recorder())
    assert result.stop_reason == "max_tokens"
    assert result.content[1]["input"] == {"code": "for i in range(10):\n   pri"}

    result = await provider.turn(request(), Recorder())
    assert result.stop_reason == "max_tokens"
    assert result.content == [
        {"type": "tool_use", "id": "toolu_4", "name": "execute_code", "input": {}}
    ]


# -- prompt caching and cost --------------------------------------------------------------


async def test_cache_breakpoints_without_touching_the_loops_messages(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(Turn([text("a")]), Turn([text("b")]))
    messages = [
        user("Find the secret word."),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "execute_code", "input": {}}],
        },
        user(
            [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                # A stale marker (say, from an edited transcript) must not push the count past 4.
                {"type": "text", "text": "note", "cache_control": {"type": "ephemeral"}},
            ]
        ),
        {"role": "assistant", "content": [{"type": "text", "text": "Next."}]},
        user([{"type": "text", "text": "first"}, {"type": "text", "text": "Go on."}]),
    ]
    tools = copy.deepcopy(TOOLS)
    req = request(*messages, tools=tools)
    before = copy.deepcopy((req.messages, req.tools, req.system))
    provider = make_provider()

    await provider.turn(req, Recorder())

    assert (req.messages, req.tools, req.system) == before  # nothing mutated
    body = fake_anthropic.requests[0]
    assert body["system"] == [
        {"type": "text", "text": req.system, "cache_control": {"type": "ephemeral"}}
    ]
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == {"type": "ephemeral"}
    sent = body["messages"]
    assert sent[4]["content"][-1] == {
        "type": "text",
        "text": "Go on.",
        "cache_control": {"type": "ephemeral"},
    }
    assert "cache_control" not in sent[4]["content"][0]
    # The previous user turn keeps a breakpoint where the last request wrote the cache.
    assert sent[2]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in sent[2]["content"][0]
    assert count_cache_control(body) == 4

    # A single string user turn becomes one text block with the breakpoint.
    await provider.turn(request(user("hello"), tools=[]), Recorder())
    body = fake_anthropic.requests[1]
    assert body["messages"] == [
        user([{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}])
    ]
    assert "tools" not in body and count_cache_control(body) == 2


async def test_usage_and_cost_from_the_price_table(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 3000,
    }
    fake_anthropic.script(Turn([text("x")], usage=usage), Turn([text("y")], usage=usage))
    provider = make_provider(model="claude-haiku-4-5-20251001")

    result = await provider.turn(request(), Recorder())

    assert result.usage.input_tokens == 1000 and result.usage.output_tokens == 500
    assert result.usage.cache_read_input_tokens == 2000
    assert result.usage.cache_creation_input_tokens == 3000
    # $1 in, $5 out, $1.25 cache write, $0.10 cache read per million tokens.
    expected = (1000 * 1 + 500 * 5 + 3000 * 1.25 + 2000 * 0.1) / 1e6
    assert result.usage.cost_usd == pytest.approx(expected)
    assert provider.cost_note is None

    custom = make_provider(model="my-fine-tune", prices={"my-fine-tune": {"input": 1, "output": 2}})
    result = await custom.turn(request(), Recorder())
    assert result.usage.cost_usd == pytest.approx((1000 + 1000 + 3000 * 1.25 + 2000 * 0.1) / 1e6)


async def test_unknown_model_costs_zero_with_a_note(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(Turn([text("x")], usage={"input_tokens": 10, "output_tokens": 5}))
    provider = make_provider(model="claude-unreleased-9")

    result = await provider.turn(request(), Recorder())

    assert result.usage.cost_usd == 0.0 and result.usage.input_tokens == 10
    assert provider.cost_note is not None and "claude-unreleased-9" in provider.cost_note


def test_usage_adds_up_and_prices_resolve_aliases() -> None:
    total = Usage(1, 2, 3, 4, 0.5) + Usage(10, 20, 30, 40, 1.0)
    assert total == Usage(11, 22, 33, 44, 1.5)
    assert total.total_input_tokens == 11 + 33 + 44
    assert price_for("claude-haiku-4-5-20251001") == DEFAULT_PRICES["claude-haiku-4-5"]
    assert price_for("claude-3-5-haiku-latest") == DEFAULT_PRICES["claude-3-5-haiku"]
    assert price_for("gpt-4") is None
    assert ModelPrice.from_mapping({"input": 2, "output": 4, "cache_read": 0.5}).cache_read == 0.5


def test_bad_price_override_is_a_one_line_error() -> None:
    with pytest.raises(ProviderError, match="prices for m: price input should be a number"):
        ClaudeProvider(api_key=KEY, prices={"m": {"input": "cheap", "output": 1}})


# -- HTTP errors the SDK retries itself ---------------------------------------------------


@pytest.mark.parametrize("status", [429, 529])
async def test_sdk_retries_rate_limit_and_overload(
    fake_anthropic: FakeAnthropic, make_provider, status: int
) -> None:
    fake_anthropic.script(HTTPError(status, retry_after=0.01), Turn([text("after the wait")]))
    rec = Recorder()

    result = await make_provider().turn(request(), rec)

    assert result.content == [{"type": "text", "text": "after the wait"}]
    assert len(fake_anthropic.requests) == 2
    assert rec.of(ErrorEvent) == []  # invisible: the SDK handled it


async def test_http_errors_after_sdk_retries_are_retryable(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(HTTPError(529, retry_after=0.01), HTTPError(529, retry_after=0.01))

    with pytest.raises(ProviderError) as info:
        await make_provider(max_retries=1).turn(request(), Recorder())

    assert info.value.retryable
    assert "529 overloaded_error" in str(info.value) and "\n" not in str(info.value)
    assert len(fake_anthropic.requests) == 2


async def test_authentication_error_is_quick_and_final(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(HTTPError(401, message="invalid x-api-key", echo_key=True))
    rec = Recorder()

    with pytest.raises(ProviderError) as info:  # quick: no retries, so no backoff to wait out
        await asyncio.wait_for(make_provider().turn(request(), rec), 60)

    message = str(info.value)
    assert not info.value.retryable
    assert "401" in message and "ANTHROPIC_API_KEY" in message and "\n" not in message
    assert KEY not in message and "[redacted]" in message  # the server echoed it; we don't
    assert len(fake_anthropic.requests) == 1  # the SDK does not retry a 401 either


async def test_bad_request_is_not_retryable(fake_anthropic: FakeAnthropic, make_provider) -> None:
    fake_anthropic.script(HTTPError(400, message="prompt is too long: 210000 tokens > 200000"))

    with pytest.raises(ProviderError, match="prompt is too long") as info:
        await make_provider().turn(request(), Recorder())

    assert not info.value.retryable


async def test_no_response_at_all_is_a_retryable_connection_error(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(Stall(seconds=5, before_headers=True))

    with pytest.raises(ProviderError, match="Could not reach the Anthropic API") as info:
        await make_provider(max_retries=0, read_timeout=0.3).turn(request(), Recorder())

    assert info.value.retryable


# -- stream failures the provider retries -------------------------------------------------

GOOD = Turn(
    [text("The good attempt."), tool_use("toolu_ok", "execute_code", {"code": "1"})], "tool_use"
)
PARTIAL = Turn([text("A doomed attempt that streams for a while.")], chunk=4)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (StreamError("overloaded_error", "Overloaded", after=5, turn=PARTIAL), "overloaded_error"),
        (Stall(seconds=3.0, after=5, turn=PARTIAL), "read timeout"),
        (Truncate(after=6, turn=PARTIAL), "message_stop"),
    ],
    ids=["error-event", "read-timeout", "no-message-stop"],
)
async def test_stream_failure_is_retried(
    fake_anthropic: FakeAnthropic, make_provider, fault: Any, reason: str
) -> None:
    fake_anthropic.script(fault, GOOD)
    rec = Recorder()

    result = await make_provider().turn(request(), rec)

    assert result.content == [
        {"type": "text", "text": "The good attempt."},
        {"type": "tool_use", "id": "toolu_ok", "name": "execute_code", "input": {"code": "1"}},
    ]
    assert result.stop_reason == "tool_use"
    errors = rec.of(ErrorEvent)
    assert len(errors) == 1 and not errors[0].fatal
    assert reason in errors[0].message and "attempt 2 of 4" in errors[0].message
    # The doomed attempt's deltas came first, then the good attempt's from the start.
    index = rec.events.index(errors[0])
    assert "".join(e.text for e in rec.events[index:] if isinstance(e, TextDelta)) == (
        "The good attempt."
    )
    assert len(fake_anthropic.requests) == 2
    assert fake_anthropic.requests[0] == fake_anthropic.requests[1]


async def test_stream_failures_exhaust_the_attempts(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(*[StreamError(after=3) for _ in range(3)], GOOD)
    rec = Recorder()

    with pytest.raises(ProviderError) as info:
        await make_provider(attempts=3).turn(request(), rec)

    assert info.value.retryable
    assert "failed 3 times" in str(info.value) and "\n" not in str(info.value)
    assert len(rec.of(ErrorEvent)) == 2
    assert len(fake_anthropic.requests) == 3 and fake_anthropic.pending == 1


async def test_invalid_request_error_mid_stream_is_not_retried(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(StreamError("invalid_request_error", "bad block", after=3), GOOD)

    with pytest.raises(ProviderError, match="invalid_request_error: bad block") as info:
        await make_provider().turn(request(), Recorder())

    assert not info.value.retryable
    assert len(fake_anthropic.requests) == 1


# -- cancellation -------------------------------------------------------------------------


async def test_cancel_closes_the_stream_promptly(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(Turn([text("word " * 400)], delay=0.05, chunk=5))
    provider = make_provider()
    first_delta = asyncio.Event()

    def emit(event: Event) -> None:
        if isinstance(event, TextDelta):
            first_delta.set()

    task = asyncio.create_task(provider.turn(request(), emit))
    await asyncio.wait_for(first_delta.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    # A disconnect is recorded only mid-stream: the client hung up before the stream ended.
    assert await asyncio.to_thread(fake_anthropic.wait_for_disconnect, 60)


async def test_cancel_during_retry_backoff(fake_anthropic: FakeAnthropic, make_provider) -> None:
    fake_anthropic.script(StreamError(after=3), GOOD)
    provider = make_provider(retry_base_delay=600.0)  # far past the outer timeout below
    retrying = asyncio.Event()

    def emit(event: Event) -> None:
        if isinstance(event, ErrorEvent):
            retrying.set()

    task = asyncio.create_task(provider.turn(request(), emit))
    await asyncio.wait_for(retrying.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)


async def test_cancel_before_the_headers(fake_anthropic: FakeAnthropic, make_provider) -> None:
    # The server stays silent far longer than the outer timeout: the cancel cannot wait it out.
    fake_anthropic.script(Stall(seconds=600, before_headers=True))
    task = asyncio.create_task(make_provider(read_timeout=600.0).turn(request(), Recorder()))
    while not fake_anthropic.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)


# -- keys ---------------------------------------------------------------------------------


def test_no_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderError) as info:
        ClaudeProvider()
    assert str(info.value) == NO_API_KEY_MESSAGE
    assert str(info.value) == (
        "No Anthropic API key: set ANTHROPIC_API_KEY, "
        "or run with --agent autopilot for the offline investigator."
    )
    assert not info.value.retryable

    monkeypatch.setenv("ANTHROPIC_API_KEY", "  ")
    with pytest.raises(ProviderError, match="No Anthropic API key"):
        ClaudeProvider()


async def test_key_from_environment_is_sent(
    fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake_anthropic.script(Turn([text("hi")]))
    provider = ClaudeProvider(base_url=fake_anthropic.base_url)
    try:
        await provider.turn(request(), Recorder())
    finally:
        await provider.aclose()
    headers = fake_anthropic.headers[0]
    assert KEY in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert KEY not in repr(provider)


async def test_key_never_reaches_events_or_errors(
    fake_anthropic: FakeAnthropic, make_provider
) -> None:
    fake_anthropic.script(
        StreamError("overloaded_error", f"overloaded for key {KEY}", after=4),
        Turn([thinking("hmm"), text("fine")]),
        HTTPError(401, echo_key=True),
    )
    provider = make_provider(thinking_budget=1024)
    rec = Recorder()

    await provider.turn(request(), rec)
    with pytest.raises(ProviderError) as info:
        await provider.turn(request(), rec)

    assert rec.of(ErrorEvent) and rec.of(TextDelta) and rec.of(ThinkingDelta)
    dumped = "\n".join(e.to_json() for e in rec.events)
    assert KEY not in dumped and KEY not in str(info.value)
    assert "[redacted]" in dumped


def test_fake_server_rejects_too_many_breakpoints(fake_anthropic: FakeAnthropic) -> None:
    """The fake enforces the API's limit, so placement tests would catch a fifth marker."""
    import urllib.error
    import urllib.request

    marker = {"cache_control": {"type": "ephemeral"}}
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [user([{"type": "text", "text": str(i), **marker} for i in range(5)])],
    }
    req = urllib.request.Request(
        fake_anthropic.base_url + "/v1/messages",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400
    assert "maximum of 4" in json.loads(info.value.read())["error"]["message"]


async def test_fake_server_answers_without_streaming(fake_anthropic: FakeAnthropic) -> None:
    """Other tests may call the SDK without ``stream``: the fake answers with one JSON message."""
    import anthropic

    fake_anthropic.script(Turn([text("whole"), tool_use("t", "execute_code", {"code": "1"})]))
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=fake_anthropic.base_url)
    try:
        message = await client.messages.create(
            model="claude-sonnet-4-6", max_tokens=100, messages=[user("hi")]
        )
    finally:
        await client.close()
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert fake_anthropic.requests[0].get("stream") is None
