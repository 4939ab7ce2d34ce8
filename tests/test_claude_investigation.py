"""A whole investigation with Claude through the real SDK against the loopback server.

Each transport failure the SDK does not retry (an error event mid-stream, a stall
after the headers, a stream that ends without message_stop) hits a different turn;
the run must still conclude, run every tool call exactly once, and leave a valid
notebook and transcript.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from fake_anthropic import (
    FakeAnthropic,
    Stall,
    StreamError,
    Truncate,
    Turn,
    fake_anthropic_fixture,  # noqa: F401
    text,
    tool_use,
)

from scribe_tui.agent.claude import ClaudeProvider
from scribe_tui.agent.loop import Investigation, InvestigationConfig
from scribe_tui.agent.transcript import Transcript
from scribe_tui.events import ErrorEvent, Event
from scribe_tui.tools import NotebookTools

KEY = "sk-ant-test-key-never-logged"


def turn(*blocks: dict, stop: str = "tool_use") -> Turn:
    return Turn(list(blocks), stop_reason=stop)


@pytest.fixture
async def tools(tmp_path: Path):
    nb_tools = NotebookTools(tmp_path / "notebooks", setup_code="print('setup ok')")
    yield nb_tools
    await nb_tools.aclose()


async def test_claude_run_survives_every_stream_failure(
    fake_anthropic: FakeAnthropic, tools: NotebookTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    run_cell = turn(
        text("Computing."),
        tool_use("toolu_02", "execute_code", {"session_id": "s1", "code": "x = 41\nprint(x + 1)"}),
    )
    parallel = turn(
        tool_use("toolu_03", "execute_code", {"session_id": "s1", "code": "y = x * 2\ny"}),
        tool_use("toolu_04", "add_markdown", {"session_id": "s1", "content": "x is 41."}),
    )
    finish = turn(
        tool_use(
            "toolu_05",
            "conclude",
            {"session_id": "s1", "answer": "42", "confidence": 0.9, "evidence": "cell 1: 42"},
        )
    )
    fake_anthropic.script(
        turn(tool_use("toolu_01", "start_new_session", {"experiment_name": "claude run"})),
        StreamError(after=3, turn=run_cell),
        run_cell,
        Stall(seconds=2.0, after=2, turn=parallel),
        parallel,
        Truncate(after=3, turn=finish),
        finish,
    )
    provider = ClaudeProvider(
        api_key=KEY, base_url=fake_anthropic.base_url, retry_base_delay=0.01, read_timeout=1.0
    )
    events: list[Event] = []
    investigation = Investigation(
        "find the answer", provider, tools, config=InvestigationConfig(checkpoint_every=0)
    )
    investigation.subscribe(events.append)
    try:
        outcome = await investigation.run()
    finally:
        await provider.aclose()

    assert outcome.reason == "concluded" and outcome.answer == "42"
    retries = [e for e in events if isinstance(e, ErrorEvent) and not e.fatal]
    assert len(retries) == 3  # one per failure mode, each retried
    assert len(fake_anthropic.requests) == 7

    nb = nbformat.read(outcome.notebook_path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.source for cell in code] == ["x = 41\nprint(x + 1)", "y = x * 2\ny"]
    assert "42" in code[0].outputs[0]["text"]
    assert code[1].outputs[0]["data"]["text/plain"] == "82"

    data = Transcript.load(outcome.transcript_path)
    uses = [
        b["id"] for m in data.messages if m["role"] == "assistant" for b in m["content"]
        if b["type"] == "tool_use"
    ]  # fmt: skip
    results = [
        b["tool_use_id"] for m in data.messages if m["role"] == "user"
        and isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"
    ]  # fmt: skip
    assert uses == ["toolu_01", "toolu_02", "toolu_03", "toolu_04", "toolu_05"]
    assert results == uses  # every call answered exactly once, the conclusion included
    raw = Path(outcome.transcript_path).read_text(encoding="utf-8")
    assert KEY not in raw and KEY not in json.dumps(nb)
