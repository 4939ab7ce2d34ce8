"""The prompt: always there, with slash-command completion and ↑/↓ history."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.suggester import SuggestFromList
from textual.widgets import Input

from scribe_tui.ui.commands import SLASH_COMMANDS

PLACEHOLDER = "Message the agent (Enter queues it) · /help for commands · Esc interrupts"


class PromptInput(Input):
    """An Input that remembers what was submitted."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "Previous", show=False),
        Binding("down", "history(1)", "Next", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            placeholder=PLACEHOLDER,
            suggester=SuggestFromList(sorted(SLASH_COMMANDS), case_sensitive=False),
            id=id,
        )
        self.history: list[str] = []
        self._position = 0

    def remember(self, text: str) -> None:
        if not self.history or self.history[-1] != text:
            self.history.append(text)
        self._position = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._position = max(0, min(len(self.history), self._position + step))
        self.value = self.history[self._position] if self._position < len(self.history) else ""
        self.cursor_position = len(self.value)
