"""``scribe-tui fork``: branch an investigation from one of its code cells.

The fork is a new notebook holding the original's cells up to code cell N, and a new
transcript holding the conversation up to the result that made that cell (calls the
agent made after it are dropped; calls of the same turn get a "not run" result). The
person's message, if any, waits in it for the agent's next turn. Running the fork is
resuming it: the kernel is rebuilt by re-running cells 1..N, and the agent carries on
from there with a budget of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from scribe_tui.agent.transcript import (
    VERSION,
    Transcript,
    TranscriptData,
    TranscriptError,
    transcript_path_for,
)
from scribe_tui.record.source import RecordError, code_cell_position, open_record

__all__ = ["discard_fork", "fork_conversation", "prepare_fork"]

NOT_RUN = "Not run: the investigation was forked before this call (scribe-tui fork)."


def prepare_fork(path: Path, at: int, message: str | None = None) -> Path:
    """Write the fork's notebook and transcript beside ``path``; returns the new notebook.

    ``at`` counts code cells from 1, as ``[N]`` shows them. RecordError (one line) for a
    missing or foreign notebook, one without a transcript, or a cell out of range.
    """
    from scribe_tui.agent.launch import LaunchError, recall_model, remember_model

    original = open_record(path, "fork")
    transcript = transcript_path_for(path)
    if not transcript.is_file():
        raise RecordError(
            f"{path}: no transcript beside it ({transcript.name}); only notebooks written by "
            "`scribe-tui investigate` can be forked"
        )
    position = code_cell_position(original, at)
    try:
        data = Transcript.load(transcript)
        data.check_integrity()
    except TranscriptError as exc:
        raise RecordError(str(exc)) from None
    messages, pending = fork_conversation(data, at - 1)
    if message is not None and not message.strip():
        raise RecordError("--message is empty: say where the agent should go from here")
    name = f"{original.scribe.get('experiment') or original.scribe.get('task') or path.stem} fork"
    fork = original.fork(path.parent, name, metadata={"forked_at": at}, cells=position + 1)
    try:
        _write_transcript(data, fork.path, path, at, messages, pending, message)
        shown = str(original.scribe.get("model", ""))
        try:
            spec = recall_model(path, shown)
        except LaunchError:
            spec = shown  # `fork --model PATH` supplies it, as `resume` asks
        if spec != shown:
            remember_model(fork.path, spec)
    except BaseException:
        discard_fork(fork.path)
        raise
    return fork.path


def _tool_names(messages: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {
        block["id"]: block["name"]
        for message in messages
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }


def fork_conversation(
    data: TranscriptData, last_cell: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The conversation up to the result that made code cell ``last_cell`` (0-based).

    Returns the committed messages and the pending records (``block``, ``cell``) for the
    next user message. The cut comes at the first result after that cell's, at a result
    for a later cell, or at a ``conclude``; a turn none of whose results survive is
    dropped whole, so the agent does not see what it was about to do.
    """
    names = _tool_names(r["message"] for r in data.records if r["kind"] == "message")
    messages: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    reached = False
    for record in data.records:
        if record["kind"] == "message":
            messages.append(record["message"])
            pending = []
            continue
        if record["kind"] != "pending":
            continue
        cell = record.get("cell")
        call = names.get(str(record["block"].get("tool_use_id")), "")
        if reached or call == "conclude" or (cell is not None and int(cell) > last_cell):
            if not pending:
                pending = _take_back(messages)  # the whole turn came after the fork point
            break
        pending.append({"block": record["block"], "cell": cell})
        reached = reached or cell == last_cell
    else:
        last = messages[-1] if messages else {}
        if not pending and last.get("role") == "assistant" and not _tool_uses(last):
            pending = _take_back(messages)  # a final answer given as text
    return messages, pending


def _take_back(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the last turn (assistant answer and the user message it answered); that user
    message's blocks become pending again."""
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        return []
    messages.pop()
    return [{"block": block} for block in _blocks(messages.pop())]


def _tool_uses(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for block in _blocks(message) if block.get("type") == "tool_use"]


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def _unanswered(messages: list[dict[str, Any]], pending: list[dict[str, Any]]) -> list[str]:
    """Calls of the last assistant turn that have no result among ``pending``."""
    if not messages or messages[-1]["role"] != "assistant":
        return []
    answered = {record["block"].get("tool_use_id") for record in pending}
    return [block["id"] for block in _tool_uses(messages[-1]) if block["id"] not in answered]


def _write_transcript(
    data: TranscriptData,
    notebook: Path,
    original: Path,
    at: int,
    messages: list[dict[str, Any]],
    pending: list[dict[str, Any]],
    message: str | None,
) -> None:
    header = {k: v for k, v in data.header.items() if k not in ("kind", "t")}
    header.update(
        version=VERSION,
        notebook=str(notebook),
        forked_from=str(original),
        forked_at=at,
        created=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    transcript = Transcript(transcript_path_for(notebook))
    try:
        transcript.write("header", **header)
        for said in messages:
            transcript.write("message", message=said)
        for record in pending:
            transcript.write("pending", block=record["block"], cell=record.get("cell"))
        for call_id in _unanswered(messages, pending):
            block = {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": [{"type": "text", "text": NOT_RUN}],
                "is_error": True,
            }
            transcript.write("pending", block=block, cell=None)
        if message:
            transcript.write("steer", action="send", text=message.strip())
    finally:
        transcript.close()


def discard_fork(notebook: Path) -> None:
    """Remove a fork that never started (its notebook and transcript)."""
    notebook.unlink(missing_ok=True)
    transcript_path_for(notebook).unlink(missing_ok=True)
