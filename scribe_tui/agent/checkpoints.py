"""Exploration checkpoints: when to ask for one, and what counts as the agent's answer.

Every ``every`` ``execute_code`` calls (or when a person asks) the loop adds
``prompts/checkpoint.md`` to the next user message. The agent answers with
``add_markdown`` (its first successful one after the request), or with the text of a
turn that calls no tools, which the loop then writes to the notebook itself.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from typing import Any

from scribe_tui.paths import prompts_dir

__all__ = ["CheckpointState", "checkpoint_prompt", "decision_message"]


@functools.cache
def checkpoint_prompt() -> str:
    """The checkpoint request the agent is sent (``prompts/checkpoint.md``)."""
    return (prompts_dir() / "checkpoint.md").read_text(encoding="utf-8").strip()


def decision_message(number: int, decision: str, message: str) -> str | None:
    """What the agent is told of a person's checkpoint decision (nothing for a bare approve)."""
    if not message and decision != "pivot":
        return None
    said = message or "change direction and test a different family of hypotheses."
    return f"(on checkpoint {number}: {decision}) {said}"


_CHECKPOINT_HEADING = re.compile(r"#{1,6}\s.*\bcheckpoint\b", re.IGNORECASE)


def looks_like_checkpoint(markdown: str) -> bool:
    """Whether a markdown cell is a checkpoint: its first line is a heading naming one, or
    it fills the template's first and last fields (a checkpoint written without the heading).

    Any other note (a plan, a reply to the person) is not one, even while a request waits.
    """
    first = next((line.strip() for line in markdown.splitlines() if line.strip()), "")
    lowered = markdown.lower()
    return bool(_CHECKPOINT_HEADING.match(first)) or (
        "tested so far" in lowered and "decision" in lowered
    )


@dataclass
class CheckpointState:
    """Where the checkpoint cycle stands; saved in the transcript's state records.

    ``due``: a request will go out with the next user message. ``pending``: the number
    of a request the agent has not answered yet. ``awaiting``: the number of an answer
    a person must approve (``content`` holds it) before the run goes on.
    """

    every: int = 10
    number: int = 0
    last_at: int = 0
    due: bool = False
    pending: int | None = None
    awaiting: int | None = None
    content: str = ""

    def check(self, experiments: int) -> None:
        """Mark a checkpoint due once ``every`` experiments ran since the last request."""
        if self.every > 0 and experiments - self.last_at >= self.every:
            self.ask()

    def ask(self) -> None:
        """Mark a checkpoint due (no-op while one is already outstanding)."""
        if self.pending is None and self.awaiting is None:
            self.due = True

    def sent(self, experiments: int) -> int:
        """The request went out: returns its number."""
        self.number += 1
        self.pending = self.number
        self.last_at = experiments
        self.due = False
        return self.number

    def answered(self, content: str, *, confirm: bool) -> int:
        """The agent answered the pending request: returns its number."""
        number = self.pending if self.pending is not None else self.number
        self.pending = None
        if confirm:
            self.awaiting, self.content = number, content
        return number

    def volunteered(self, experiments: int, content: str, *, confirm: bool) -> int:
        """The agent wrote a checkpoint unasked: count it and restart the cycle from here."""
        self.number += 1
        self.last_at = experiments
        self.due = False
        if confirm:
            self.awaiting, self.content = self.number, content
        return self.number

    def decided(self, number: int) -> bool:
        """A person decided checkpoint ``number``; True if the run was waiting for it."""
        if self.awaiting != number:
            return False
        self.awaiting, self.content = None, ""
        return True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], every: int) -> CheckpointState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "every": every})
