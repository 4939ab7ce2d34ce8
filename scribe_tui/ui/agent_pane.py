"""The agent pane: streamed text and thinking, compact tool calls, the person's messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static

from scribe_tui.events import ToolCallFinished, ToolCallStarted
from scribe_tui.ui.follow import FollowScroll
from scribe_tui.ui.memory import release_styles_caches

#: Older entries are unmounted beyond this; the notebook and transcript keep everything.
MAX_ENTRIES = 60


def summarize_arguments(name: str, arguments: dict[str, Any], limit: int = 60) -> str:
    """One line for a tool call's arguments: a code cell's first line, else ``k=v`` pairs."""
    code = arguments.get("code") or arguments.get("content") or arguments.get("source")
    if isinstance(code, str) and code.strip():
        first = next(line for line in code.splitlines() if line.strip())
        more = len(code.strip().splitlines()) - 1
        text = first.strip() + (f"  (+{more} lines)" if more > 0 else "")
    else:
        text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in arguments.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ToolEntry(Collapsible):
    """``⟳ name  args…`` while running; ``✓ name · 1.2s · summary`` when done (``⚠`` when
    the call worked but its cell ended in an error, an interrupt or a timeout); details inside."""

    def __init__(self, event: ToolCallStarted) -> None:
        self.call = event
        self.cell_status: str | None = None
        self._details = Static(self._detail_text(None), classes="tool-details")
        super().__init__(self._details, title="", collapsed=True, classes="tool")
        self.title = self._heading(None)  # type: ignore[assignment]

    def _heading(self, done: ToolCallFinished | None) -> Text:
        args = summarize_arguments(self.call.name, self.call.arguments)
        who = ("you · ", "bold #ffaf00") if self.call.author == "person" else ""
        if done is None:
            return Text.assemble(
                ("⟳ ", "yellow"), who, (self.call.name, "bold"), ("  " + args, "dim")
            )
        if done.is_error:
            mark = ("✗ ", "bold red")
        elif self.cell_status not in (None, "ok"):
            mark = ("⚠ ", "bold yellow")
        else:
            mark = ("✓ ", "green")
        short = summarize_arguments(self.call.name, self.call.arguments, limit=28)
        return Text.assemble(
            mark,
            who,
            (self.call.name, "bold"),
            (f" {short}" if short else "", "dim"),
            (f" · {done.duration:.1f}s · ", "dim"),
            done.summary,
        )

    def _detail_text(self, done: ToolCallFinished | None) -> Text:
        text = Text()
        for key, value in self.call.arguments.items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            text.append(f"{key}: ", style="bold")
            text.append(f"{shown}\n")
        if done is not None:
            text.append("result: ", style="bold red" if done.is_error else "bold")
            text.append(done.summary)
        return text

    def finish(self, event: ToolCallFinished, cell_status: str | None = None) -> None:
        self.cell_status = cell_status
        self.title = self._heading(event)  # type: ignore[assignment]
        self._details.update(self._detail_text(event))
        self.set_class(event.is_error, "-error")


class AgentPane(FollowScroll):
    """The transcript as it happens, following the newest entry."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._markdown: Markdown | None = None
        self._text = ""
        self._unsent = ""
        self._appending: asyncio.Task[None] | None = None
        self._thinking: Collapsible | None = None
        self._thinking_body: Static | None = None
        self._thinking_text = ""
        self._tools: dict[str, ToolEntry] = {}
        self._queued: list[tuple[str, Static]] = []

    async def _add(self, widget: Widget) -> None:
        await self.mount(widget)
        excess = len(self.children) - MAX_ENTRIES
        if excess > 0:
            stale = [w for w in self.children[:excess] if w is not self._markdown]
            for widget_ in stale:
                if isinstance(widget_, ToolEntry):
                    self._tools.pop(widget_.call.call_id, None)
            await self.remove_children(stale)
            release_styles_caches()

    # -- streaming -------------------------------------------------------------

    async def text_delta(self, text: str) -> None:
        """Append to the current text block, coalescing deltas that arrive faster than it renders.

        Like ``MarkdownStream`` (one ``Markdown.append`` in flight, the rest batched),
        but finished by awaiting rather than cancelling: a cancelled stream leaves its
        shielded append running, which then raced the pruning of old entries.
        """
        await self.end_thinking()
        if self._markdown is None:
            self._markdown = Markdown(classes="agent-text")
            self._text = ""
            await self._add(self._markdown)
        self._text += text
        self._unsent += text
        if self._appending is None or self._appending.done():
            self._appending = asyncio.create_task(self._append(self._markdown))

    async def _append(self, markdown: Markdown) -> None:
        while self._unsent:
            chunk, self._unsent = self._unsent, ""
            if markdown.is_attached:  # not while the app is closing
                await markdown.append(chunk)

    async def thinking_delta(self, text: str) -> None:
        await self.end_text()
        if self._thinking is None:
            self._thinking_text = ""
            self._thinking_body = Static(classes="thinking-body")
            self._thinking = Collapsible(
                self._thinking_body, title="thinking…", collapsed=False, classes="thinking"
            )
            await self._add(self._thinking)
        self._thinking_text += text
        assert self._thinking_body is not None
        self._thinking_body.update(Text(self._thinking_text, style="italic"))

    async def end_text(self) -> None:
        """Finish the text block: let appends drain, then render the whole text once, cleanly."""
        if self._markdown is None:
            return
        markdown, self._markdown = self._markdown, None
        if self._appending is not None:
            await self._appending
            self._appending = None
        if markdown.is_attached:
            await markdown.update(self._text)

    async def end_thinking(self) -> None:
        """Fold finished thinking away; it stays one click (or Enter) from view."""
        if self._thinking is None:
            return
        words = len(self._thinking_text.split())
        self._thinking.title = f"thought for {words} words"
        self._thinking.collapsed = True
        self._thinking = self._thinking_body = None

    async def end_streams(self) -> None:
        await self.end_thinking()
        await self.end_text()

    # -- tool calls and notes --------------------------------------------------

    async def tool_started(self, event: ToolCallStarted) -> None:
        await self.end_streams()
        entry = ToolEntry(event)
        self._tools[event.call_id] = entry
        await self._add(entry)

    async def tool_finished(self, event: ToolCallFinished, cell_status: str | None = None) -> None:
        """Mark the call done; ``cell_status`` is how the cell it ran ended, if it ran one."""
        entry = self._tools.pop(event.call_id, None)
        if entry is None:  # started before we joined, or pruned: show the result anyway
            entry = ToolEntry(ToolCallStarted(event.call_id, event.name, {}))
            await self._add(entry)
        entry.finish(event, cell_status)

    async def note(self, text: Text | str, kind: str = "info") -> Static:
        """A one-line entry: a turn marker, an error, a pause, a decision."""
        await self.end_streams()
        entry = Static(text, classes=f"note -{kind}")
        await self._add(entry)
        return entry

    async def message_queued(self, text: str) -> None:
        """Show the person's message as queued (once, however many times it is reported)."""
        if any(queued == text for queued, _ in self._queued):
            return
        entry = await self.note(self._message_text(text, delivered=False), "person")
        self._queued.append((text, entry))

    async def messages_delivered(self, texts: list[str]) -> None:
        for text in texts:
            for i, (queued, entry) in enumerate(self._queued):
                if queued == text:
                    entry.update(self._message_text(text, delivered=True))
                    del self._queued[i]
                    break

    @staticmethod
    def _message_text(text: str, *, delivered: bool) -> Text:
        badge = ("delivered", "green") if delivered else ("queued", "bold #ffaf00")
        return Text.assemble(("you ", "bold #ffaf00"), ("(", "dim"), badge, (") ", "dim"), text)

    @property
    def queued_count(self) -> int:
        return len(self._queued)
