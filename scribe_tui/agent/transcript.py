"""An investigation's durable record beside the notebook: one JSONL file per run.

:class:`Transcript` writes the conversation (see :mod:`scribe_tui.agent.conversation`)
and everything else that happens; :meth:`Transcript.load` reads it back and
:meth:`TranscriptData.resume_point` replays it for a resumed run.

A transcript holds everything needed to audit a run or resume it: a header (task,
provider, model, config, notebook), every conversation message exactly as sent
(thinking signatures and tool results included), user blocks still waiting for the
next turn, every event except the streamed ones (text and thinking deltas: the
final assistant message stands in for them; live cell output: the cell's final
update stands in for it), usage per turn, steering actions and a counters snapshot
after each step. Each line is flushed as written, so a killed process loses nothing the OS
saw; ``sync`` also fsyncs, and the loop calls it after every step.

Record kinds (each record has ``kind`` and ``t``, seconds since the epoch):

- ``header``: ``task``, ``provider``, ``model``, ``config``, ``notebook``, ``created``.
- ``message``: ``message`` (``{"role", "content"}``), and for user messages
  ``delivered`` (how many queued person messages it carried).
- ``pending``: ``block``, a user content block for the next turn (a tool result or
  a note), with ``cell`` (the code-cell number a tool result came from) if known.
- ``event``: ``event``, as ``Event.to_dict`` writes it.
- ``notebook``: ``path``, when the run moves to another notebook (or opens its first
  one after the header was written).
- ``usage``: ``turn`` and ``usage`` (the ``Usage`` fields).
- ``steer``: ``action`` (pause, resume, interrupt, stop, send, edit_cell, run_code,
  request_checkpoint, decide_checkpoint, restart) and its arguments.
- ``state``: ``state``, the loop's counters (turns, usage, experiments, ...).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from scribe_tui.agent.checkpoints import decision_message
from scribe_tui.agent.conversation import Conversation  # re-exported: it used to live here
from scribe_tui.agent.steering import person_message
from scribe_tui.events import (
    CellUpdated,
    Event,
    TextDelta,
    ThinkingDelta,
    event_from_dict,
)
from scribe_tui.integrity import MAC, signed, verified

__all__ = [
    "Conversation",
    "ResumePoint",
    "Transcript",
    "TranscriptData",
    "TranscriptError",
    "transcript_path_for",
]

VERSION = 1


class TranscriptError(ValueError):
    """A transcript that cannot be read; the message says which file and why."""


def transcript_path_for(notebook: Path | str) -> Path:
    """Where a notebook's transcript lives: same folder, same stem, ``.jsonl``."""
    return Path(notebook).with_suffix(".jsonl")


def started_notebook(folder: Path) -> Path | None:
    """The investigation notebook (one with a transcript) in ``folder``, if one was started."""
    if not folder.is_dir():
        return None
    for notebook in sorted(folder.glob("*.ipynb")):
        if transcript_path_for(notebook).exists():
            return notebook
    return None


@dataclass
class ResumePoint:
    """Where a recorded run stopped, as the loop needs it to go on."""

    messages: list[dict[str, Any]]
    pending: list[dict[str, Any]]
    """User blocks recorded after the last message (results of the last turn's calls, notes)."""
    cells: dict[str, int]
    """tool_use id -> the code-cell number whose output its result holds."""
    queued: list[str]
    """Person messages (already prefixed) that never reached the agent."""
    started: set[str]
    """Calls of the last assistant message that started but recorded no result."""
    state: dict[str, Any]
    notebook: str | None


@dataclass
class TranscriptData:
    """A transcript read back: its header and every later record, in order."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    """Whether the last line was cut off (and ignored), e.g. by a killed process."""
    unverified: list[int] = field(default_factory=list)
    """Line numbers whose integrity check fails: not written by scribe-tui as they are."""

    def check_integrity(self) -> None:
        """TranscriptError unless scribe-tui wrote every line as it is (resume trusts it)."""
        if self.unverified:
            lines = ", ".join(map(str, self.unverified[:5]))
            raise TranscriptError(
                f"{self.path}: line {lines} fails its integrity check (changed outside "
                "scribe-tui, or written by an older version); it cannot be resumed as it is"
            )

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The records of one kind, in order."""
        return [r for r in self.records if r.get("kind") == kind]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The committed conversation, in Anthropic Messages format."""
        return [r["message"] for r in self.of_kind("message")]

    @property
    def events(self) -> list[Event]:
        """The recorded events (deltas were never stored)."""
        return [event_from_dict(r["event"]) for r in self.of_kind("event")]

    @property
    def last_state(self) -> dict[str, Any]:
        """The latest counters snapshot (empty if none was written)."""
        states = self.of_kind("state")
        return states[-1]["state"] if states else {}

    def resume_point(self) -> ResumePoint:
        """Replay the records: the conversation, what was pending, what was still queued."""
        messages: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        cells: dict[str, int] = {}
        started: set[str] = set()
        sent: list[str] = []
        delivered = 0
        notebook = self.header.get("notebook")
        for record in self.records:
            kind, action = record["kind"], record.get("action")
            if kind == "message":
                messages.append(record["message"])
                delivered += int(record.get("delivered", 0))
                pending, started = [], set()
            elif kind == "pending":
                pending.append(record["block"])
                if record.get("cell") is not None:
                    cells[record["block"]["tool_use_id"]] = int(record["cell"])
            elif kind == "event" and record["event"].get("type") == "tool_call_started":
                started.add(record["event"]["call_id"])
            elif kind == "notebook":
                notebook = record["path"]
            elif kind == "steer" and action == "send":
                sent.append(person_message(record["text"]))
            elif kind == "steer" and action == "decide_checkpoint":
                said = decision_message(record["number"], record["decision"], record["message"])
                if said is not None:
                    sent.append(person_message(said))
        answered = {block.get("tool_use_id") for block in pending}
        return ResumePoint(
            messages=messages,
            pending=pending,
            cells=cells,
            queued=sent[delivered:],
            started=started - answered,
            state=self.last_state,
            notebook=notebook,
        )


class Transcript:
    """An append-only JSONL log.

    With no ``path`` the records are held in memory until :meth:`attach` names the
    file (the loop learns the notebook's name only once the agent starts a session).
    Attaching to an existing file appends to it, first cutting off a partial last line.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self._buffer: list[str] = []
        self.has_header = False
        if path is not None:
            self.attach(path)

    @property
    def is_attached(self) -> bool:
        """Whether records now go to a file."""
        return self._file is not None

    def attach(self, path: Path | str) -> None:
        """Start writing to ``path`` (appending), flushing everything buffered so far."""
        if self._file is not None:
            raise RuntimeError(f"transcript already attached to {self.path}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_line(path)
        if path.exists() and path.stat().st_size > 0:
            self.has_header = True  # resuming: the file has its header already
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self.path = path
        for line in self._buffer:
            self._file.write(line)
        self._buffer.clear()
        self.sync()

    def write_header(
        self,
        *,
        task: str,
        provider: str,
        model: str,
        config: dict[str, Any],
        notebook: Path | str | None,
    ) -> None:
        """Write the header record; while buffering it goes before everything buffered."""
        self.has_header = True
        self.write(
            "header",
            version=VERSION,
            task=task,
            provider=provider,
            model=model,
            config=config,
            notebook=str(notebook) if notebook is not None else None,
            created=datetime.now().astimezone().isoformat(timespec="seconds"),
        )

    def write(self, kind: str, **fields: Any) -> None:
        """Append one record; it reaches the OS at once (``sync`` makes it durable)."""
        record = signed({"kind": kind, "t": round(time.time(), 3), **fields})
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        if self._file is None:
            if kind == "header":
                self._buffer.insert(0, line)
            else:
                self._buffer.append(line)
            return
        self._file.write(line)
        self._file.flush()

    def event(self, event: Event) -> None:
        """Record an event, unless it is streamed (deltas, a running cell's live output)."""
        live = isinstance(event, CellUpdated) and event.status is None
        if not live and not isinstance(event, (TextDelta, ThinkingDelta)):
            self.write("event", event=event.to_dict())

    def sync(self) -> None:
        """Make everything written so far durable (flush and fsync)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Sync and close the file; later writes are buffered again until re-attached."""
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    @staticmethod
    def load(path: Path | str) -> TranscriptData:
        """Read a transcript; a cut-off last line is ignored (``truncated`` says so)."""
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise TranscriptError(f"{path}: cannot be read ({exc})") from exc
        lines = raw.split("\n")
        records: list[dict[str, Any]] = []
        unverified: list[int] = []
        truncated = False
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                # Only the last line can be partial (a write cut short); earlier damage is real.
                if number == len(lines):
                    truncated = True
                    break
                raise TranscriptError(f"{path}:{number}: not a JSON line ({exc})") from exc
            if not isinstance(record, dict) or "kind" not in record:
                raise TranscriptError(f"{path}:{number}: not a transcript record")
            if not verified(record):
                unverified.append(number)
            records.append({k: v for k, v in record.items() if k != MAC})
        if not records or records[0]["kind"] != "header":
            raise TranscriptError(f"{path}: no header line; is this a scribe-tui transcript?")
        return TranscriptData(path, records[0], records[1:], truncated, unverified)


def _drop_partial_line(path: Path) -> None:
    """Cut a file back to its last complete line, so appended records start on a fresh one."""
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            # Walk back to the previous newline; transcripts are small enough to read whole.
            handle.seek(0)
            data = handle.read()
            handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        return
