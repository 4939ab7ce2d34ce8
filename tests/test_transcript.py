"""The transcript file and the in-memory conversation it records (no kernels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scribe_tui.agent.transcript import (
    Conversation,
    Transcript,
    TranscriptError,
    transcript_path_for,
)
from scribe_tui.events import Paused, TextDelta, ThinkingDelta


def header(transcript: Transcript) -> None:
    transcript.write_header(
        task="find the secret", provider="scripted", model="m", config={}, notebook=None
    )


def result(call_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": [{"type": "text", "text": text}],
    }


def test_path_sits_beside_the_notebook() -> None:
    assert transcript_path_for("runs/2025_x.ipynb") == Path("runs/2025_x.jsonl")


def test_round_trip_skips_deltas(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    transcript = Transcript(path)
    header(transcript)
    transcript.write("message", message={"role": "user", "content": "hi"})
    transcript.event(TextDelta("ab"))
    transcript.event(ThinkingDelta("cd"))
    transcript.event(Paused(reason="paused"))
    transcript.close()
    data = Transcript.load(path)
    assert data.header["task"] == "find the secret"
    assert data.messages == [{"role": "user", "content": "hi"}]
    assert data.events == [Paused(reason="paused")]
    assert not data.truncated


def test_truncated_last_line_is_tolerated_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    transcript = Transcript(path)
    header(transcript)
    transcript.write("state", state={"turns": 3})
    transcript.close()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "message", "message": {"role": "assist')  # killed mid-write
    data = Transcript.load(path)
    assert data.truncated
    assert data.last_state == {"turns": 3}

    again = Transcript(path)  # resuming appends after the last complete line
    assert again.has_header
    again.write("state", state={"turns": 4})
    again.close()
    data = Transcript.load(path)
    assert not data.truncated
    assert [r["state"]["turns"] for r in data.of_kind("state")] == [3, 4]


def test_damage_before_the_last_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        json.dumps({"kind": "header", "task": "x"}),
        "{not json",
        json.dumps({"kind": "state"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match=":2:"):
        Transcript.load(path)
    path.write_text(json.dumps({"kind": "state"}) + "\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match="no header"):
        Transcript.load(path)


def test_buffered_records_follow_the_header_once_attached(tmp_path: Path) -> None:
    transcript = Transcript()
    transcript.write("message", message={"role": "user", "content": "task"})
    header(transcript)  # written late, still lands first
    transcript.attach(tmp_path / "late.jsonl")
    transcript.write("steer", action="pause")
    transcript.close()
    data = Transcript.load(tmp_path / "late.jsonl")
    assert [r["kind"] for r in data.records] == ["message", "steer"]


def test_draft_puts_results_first_in_call_order(tmp_path: Path) -> None:
    conversation = Conversation(Transcript())
    uses = [{"type": "tool_use", "id": i, "name": "execute_code", "input": {}} for i in "ab"]
    conversation.answer(uses)
    conversation.pend({"type": "text", "text": "note"})
    conversation.pend(result("b", "B"))
    conversation.pend(result("a", "A"))
    blocks = conversation.draft([{"type": "text", "text": "extra"}])
    assert [b.get("tool_use_id") or b["text"] for b in blocks] == ["a", "b", "note", "extra"]
    conversation.pend({"type": "text", "text": "later"})
    conversation.commit(blocks, 3)
    assert conversation.pending == [{"type": "text", "text": "later"}]
    assert conversation.messages[-1] == {"role": "user", "content": blocks}


def test_view_shrinks_old_cell_outputs_but_keeps_the_newest() -> None:
    conversation = Conversation(Transcript())
    conversation.messages.append({"role": "user", "content": "task"})
    for n in range(4):
        call = f"c{n}"
        conversation.answer([{"type": "tool_use", "id": call, "name": "execute_code", "input": {}}])
        conversation.pend(result(call, "x" * 3300), cell=n + 1)  # about 1000 tokens each
        conversation.commit(conversation.draft([]), 1)
    conversation.answer([{"type": "text", "text": "thinking..."}])
    tail = {"role": "user", "content": [{"type": "text", "text": "go on"}]}

    assert conversation.view(tail, budget=None, keep=1)[-1] is tail
    view = conversation.view(tail, budget=3000, keep=1)
    texts = [
        b["content"][0]["text"]
        for m in view
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert texts[0] == "[output of code cell 1 elided to save context; it is in the notebook]"
    assert texts[1].startswith("[output of code cell 2 elided")
    assert texts[-1] == "x" * 3300  # the newest result is kept
    # The conversation itself is untouched: only the view sent to the provider shrinks.
    assert conversation.messages[2]["content"][0]["content"][0]["text"] == "x" * 3300
    # Shrinking is sticky, so the cached prefix stays the same from turn to turn.
    assert conversation.view(tail, budget=3000, keep=1) == view


def test_resume_point_restores_pending_queue_and_unfinished_calls(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    transcript = Transcript(path)
    header(transcript)
    transcript.write("message", message={"role": "user", "content": "task"}, delivered=0)
    transcript.write("steer", action="send", text="first")
    transcript.write("steer", action="send", text="second")
    uses = [{"type": "tool_use", "id": i, "name": "execute_code", "input": {}} for i in "abc"]
    transcript.write("message", message={"role": "user", "content": "with first"}, delivered=1)
    transcript.write("message", message={"role": "assistant", "content": uses})
    transcript.write("pending", block=result("a", "A"), cell=4)
    transcript.write("event", event={"type": "tool_call_started", "call_id": "b"})
    transcript.write("steer", action="decide_checkpoint", number=1, decision="approve", message="")
    transcript.write("steer", action="decide_checkpoint", number=2, decision="pivot", message="")
    transcript.close()

    point = Transcript.load(path).resume_point()
    assert point.started == {"b"}
    assert point.cells == {"a": 4}
    assert point.queued == [
        "Message from the person watching: second",
        "Message from the person watching: (on checkpoint 2: pivot) "
        "change direction and test a different family of hypotheses.",
    ]
    conversation = Conversation(Transcript())
    conversation.restore(point)
    texts = {b["tool_use_id"]: b["content"][0]["text"] for b in conversation.pending}
    assert texts["a"] == "A"
    assert "was running when scribe-tui stopped; it was not re-run" in texts["b"]
    assert "did not run" in texts["c"]


def test_a_line_changed_outside_scribe_tui_fails_its_integrity_check(tmp_path: Path) -> None:
    """A raised budget or a flipped mode written into the file is reported, never trusted."""
    path = tmp_path / "run.jsonl"
    transcript = Transcript(path)
    header(transcript)
    transcript.write("state", state={"turns": 3, "mode": "blackbox"})
    transcript.close()
    data = Transcript.load(path)
    assert data.unverified == [] and "mac" not in data.records[0]
    data.check_integrity()

    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"blackbox"', '"local"')
    lines.append(json.dumps({"kind": "state", "state": {"turns": 1, "max_turns": 999}}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    forged = Transcript.load(path)
    assert forged.unverified == [2, 3]
    with pytest.raises(TranscriptError, match="line 2, 3 fails its integrity check"):
        forged.check_integrity()
