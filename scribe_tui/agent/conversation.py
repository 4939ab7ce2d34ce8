"""The conversation with the agent, in Anthropic Messages format.

:class:`Conversation` is the message list the loop owns, the user blocks waiting for
the next turn and the view of it sent to the provider (old cell outputs shrunk to
stubs), kept in step with the transcript. Around it: how a conversation opens
(:func:`system_prompt`, :func:`first_message`), the content blocks the loop writes
(:func:`text_block`, :func:`result_block`, :func:`error_result`) and how a free-text
final answer is read (:func:`parse_final_answer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scribe_tui.agent.checkpoints import checkpoint_prompt
from scribe_tui.paths import prompts_dir
from scribe_tui.tools import ToolResult

if TYPE_CHECKING:
    from scribe_tui.agent.transcript import ResumePoint, Transcript

__all__ = [
    "Conversation",
    "Draft",
    "error_result",
    "estimate_tokens",
    "first_message",
    "parse_final_answer",
    "result_block",
    "system_prompt",
    "text_block",
]

# Context size is estimated, not counted: characters per token, a flat cost per image.
_CHARS_PER_TOKEN = 3.3
_IMAGE_TOKENS = 1600
_STUB_TOKENS = 30
# Shrink well below the budget, so the prompt cache is not invalidated every turn.
_SHRINK_TO = 0.6

_CONFIDENCE = re.compile(
    r"confidence\W{0,4}(?:is\s+|of\s+|about\s+|~\s*)?(\d+(?:\.\d+)?)\s*(%)?", re.IGNORECASE
)
_ANSWER = re.compile(r"^\W*(?:final\s+)?answer\W*[:\-]\W*(.+?)\W*$", re.IGNORECASE | re.MULTILINE)


def system_prompt(task: str, *, methodology: bool = True) -> str:
    """``prompts/system.md`` then (unless left out) ``prompts/methodology.md``, ``{task}`` filled.

    Benches compare agents with and without the methodology text.
    """
    folder = prompts_dir()
    names = ("system.md", "methodology.md") if methodology else ("system.md",)
    parts = [(folder / n).read_text(encoding="utf-8").strip() for n in names]
    # A plain replace, not str.format: the prompts may show code with braces.
    return "\n\n".join(parts).replace("{task}", task)


def first_message(task: str) -> str:
    """The opening user message: the task and how to begin."""
    return (
        f"Your task: {task}\n\n"
        "Start a notebook session with `start_new_session`, then run `init_session` to set "
        "it up, and investigate. When you are done, call `conclude` with your answer, "
        "your confidence and the evidence."
    )


def parse_final_answer(text: str) -> tuple[str, float, str]:
    """(answer, confidence, evidence) from a free-text final answer.

    The answer is an ``Answer: ...`` line if there is one, else the first line; the
    confidence is the first "confidence 0.8" / "confidence: 80%" found, else 0.5; the
    evidence is the whole text.
    """
    match = _ANSWER.search(text)
    lines = [line.strip(" #*>-") for line in text.splitlines() if line.strip(" #*>-")]
    answer = match.group(1) if match else (lines[0] if lines else "unknown")
    confidence = 0.5
    found = _CONFIDENCE.search(text)
    if found:
        value = float(found.group(1))
        if found.group(2) or value > 1:
            value /= 100
        confidence = min(max(value, 0.0), 1.0)
    return answer[:300], confidence, text.strip()


def text_block(value: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": value}


def result_block(call_id: str, result: ToolResult) -> dict[str, Any]:
    """The tool_result block answering call ``call_id``."""
    content = result.content or [text_block("(no output)")]
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": content,
        "is_error": result.is_error,
    }


def error_result(call_id: str, message: str) -> dict[str, Any]:
    """An error tool_result block for call ``call_id``, saying ``message``."""
    return result_block(call_id, ToolResult([text_block(message)], is_error=True))


def estimate_tokens(value: Any) -> float:
    """Estimated tokens of messages or blocks (recursively); images at a flat rate."""
    if isinstance(value, list):
        return sum(estimate_tokens(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") == "image":
            return _IMAGE_TOKENS
        return sum(estimate_tokens(v) for v in value.values())
    return len(value) / _CHARS_PER_TOKEN if isinstance(value, str) else 1


@dataclass
class Draft:
    """The next user message, composed but not sent: nothing is consumed until it is."""

    blocks: list[dict[str, Any]]
    pending: int  # how many pending blocks it carries
    delivered: int = 0  # how many queued person messages
    checkpoint: bool = False
    budget_notice: str | None = None


class Conversation:
    """The conversation in Anthropic Messages format, kept in step with the transcript.

    User blocks for the next turn are *pending* (and recorded as such) until
    :meth:`commit` turns them into one user message: tool results first, in the order
    of the calls they answer, then the other pending blocks, then ``extra`` blocks.
    ``cells`` maps tool_use ids to the code cell whose output the result holds, so that
    :meth:`view` can shrink old outputs to a stub naming the cell.
    """

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.messages: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.cells: dict[str, int] = {}
        self.elided: set[str] = set()

    def pend(self, block: dict[str, Any], cell: int | None = None) -> None:
        """Hold a user block for the next turn, durably."""
        self.pending.append(block)
        if cell is not None:
            self.cells[block["tool_use_id"]] = cell
        self.transcript.write(
            "pending", block=block, **({"cell": cell} if cell is not None else {})
        )

    def last_tool_uses(self) -> list[dict[str, Any]]:
        """The tool_use blocks of the last message, if it is the assistant's."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            return [b for b in self.messages[-1]["content"] if b.get("type") == "tool_use"]
        return []

    def draft(self, extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The next user message's blocks (nothing is consumed)."""
        order = {b["id"]: i for i, b in enumerate(self.last_tool_uses())}
        results = [b for b in self.pending if b.get("type") == "tool_result"]
        results.sort(key=lambda b: order.get(b["tool_use_id"], len(order)))
        others = [b for b in self.pending if b.get("type") != "tool_result"]
        return [*results, *others, *extra] or [{"type": "text", "text": "Continue."}]

    def compose(
        self,
        queued: list[str],
        checkpoint_due: bool,
        budget_notice: str | None,
        *,
        final: bool = False,
    ) -> Draft:
        """The next user message: what is pending, then the ``queued`` person messages, a
        checkpoint request and a budget notice (the last three not in a ``final`` message)."""
        draft = Draft([], pending=len(self.pending))
        # The first message is the task alone; person messages wait for a tool boundary.
        started = bool(self.messages) and not final
        extra = [text_block(text) for text in queued] if started else []
        draft.delivered = len(extra)
        draft.checkpoint = checkpoint_due and started
        if draft.checkpoint:
            extra.append(text_block(checkpoint_prompt()))
        if budget_notice and not final:
            draft.budget_notice = budget_notice
            extra.append(
                text_block(
                    f"Budget reached ({budget_notice}). Call `conclude` now with your answer, "
                    "your confidence and the evidence so far; do not start new experiments."
                )
            )
        draft.blocks = self.draft(extra)
        return draft

    def commit(self, blocks: list[dict[str, Any]], pending: int, **meta: Any) -> None:
        """Append a drafted user message that carried the first ``pending`` pending blocks."""
        message = {"role": "user", "content": blocks}
        self.messages.append(message)
        self.transcript.write("message", message=message, **meta)
        del self.pending[:pending]

    def answer(self, content: list[dict[str, Any]]) -> None:
        """Append the assistant's message, exactly as the provider returned it."""
        message = {"role": "assistant", "content": content}
        self.messages.append(message)
        self.transcript.write("message", message=message)

    def view(self, tail: dict[str, Any], budget: int | None, keep: int) -> list[dict[str, Any]]:
        """The messages plus ``tail`` as sent: over ``budget`` (estimated tokens), the oldest
        cell outputs beyond the newest ``keep`` become stubs, until well under it."""
        messages = [*self.messages, tail]
        view = self._elide(messages)
        total = estimate_tokens(view)
        if budget is None or total <= budget:
            return view
        sizes = {
            b["tool_use_id"]: estimate_tokens(b)
            for m in view
            if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"]
            if b.get("tool_use_id") in self.cells and b["tool_use_id"] not in self.elided
        }
        for tool_use_id in list(sizes)[: -keep or None]:
            if total <= budget * _SHRINK_TO:
                break
            if sizes[tool_use_id] > _STUB_TOKENS:
                self.elided.add(tool_use_id)
                total -= sizes[tool_use_id] - _STUB_TOKENS
        return self._elide(messages)

    def _elide(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.elided:
            return messages
        out = []
        for message in messages:
            content = message["content"]
            if message["role"] == "user" and isinstance(content, list):
                content = [
                    self._stub(b) if b.get("tool_use_id") in self.elided else b for b in content
                ]
            out.append({**message, "content": content})
        return out

    def _stub(self, block: dict[str, Any]) -> dict[str, Any]:
        number = self.cells[block["tool_use_id"]]
        stub = f"[output of code cell {number} elided to save context; it is in the notebook]"
        return {**block, "content": [{"type": "text", "text": stub}]}

    def restore(self, point: ResumePoint) -> None:
        """Take up a recorded conversation; calls left without a result get an error one.

        A call that started may have half-run (its cell is in the notebook), one that did
        not start never ran: neither is run again, and the result says which it was.
        """
        self.messages, self.pending, self.cells = point.messages, point.pending, point.cells
        answered = {b.get("tool_use_id") for b in self.pending}
        for block in self.last_tool_uses():
            if block["id"] in answered:
                continue
            why = (
                "was running when scribe-tui stopped; it was not re-run (if it made a cell, "
                "the cell is in the notebook: check it)"
                if block["id"] in point.started
                else "did not run: scribe-tui stopped before it"
            )
            text = {"type": "text", "text": f"This call {why}."}
            self.pend(
                {
                    "type": "tool_result",
                    "tool_use_id": block["id"],
                    "content": [text],
                    "is_error": True,
                }
            )
