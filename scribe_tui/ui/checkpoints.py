"""The checkpoint pane: every exploration checkpoint, and the one waiting for a decision."""

from __future__ import annotations

from typing import ClassVar, Literal

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

Decision = Literal["approve", "pivot", "continue"]
DECISION_WORDS = {"approve": "approved", "pivot": "pivot", "continue": "continue"}


def _without_title(content: str) -> str:
    """Drop the template's own "## Checkpoint" heading; the card already says which one."""
    first, _, rest = content.lstrip().partition("\n")
    return rest.lstrip("\n") if first.lstrip("# ").lower().startswith("checkpoint") else content


class CheckpointCard(Vertical):
    """One checkpoint: what the agent wrote and what was decided."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "decide('approve')", "Approve"),
        Binding("p", "decide('pivot')", "Pivot…"),
        Binding("c", "decide('continue')", "Continue"),
    ]

    class Decide(Message):
        """The person chose ``decision`` for checkpoint ``number``."""

        def __init__(self, number: int, decision: Decision) -> None:
            super().__init__()
            self.number = number
            self.decision = decision

    def __init__(self, number: int, experiments: int) -> None:
        super().__init__(classes="checkpoint")
        self.number = number
        self.experiments = experiments
        self.content = ""
        self.awaiting = False
        self.decision: str | None = None
        self.folded = False
        self._header = Static(classes="checkpoint-header")
        self._body = Static(classes="checkpoint-body")
        self._footer = Static(classes="checkpoint-decision")
        self._approve = Button("Approve", id="approve", variant="success", compact=True)
        self._buttons = Horizontal(
            self._approve,
            Button("Pivot…", id="pivot", variant="warning", compact=True),
            Button("Continue", id="continue", variant="primary", compact=True),
            classes="checkpoint-buttons",
        )

    def compose(self):  # type: ignore[override]
        yield self._header
        yield self._body
        yield self._footer
        yield self._buttons

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        self.set_class(self.awaiting, "-awaiting")
        self._buttons.display = self.awaiting
        if self.awaiting:
            header = Text.assemble(
                (f"⚠ CHECKPOINT {self.number} · WAITING FOR YOU\n", "bold"),
                (f"after {self.experiments} experiments · approve, pivot or continue", ""),
            )
        else:
            header = Text.assemble(
                ("▸ " if self.folded else "▾ ", "dim"),
                (f"Checkpoint {self.number}", "bold"),
                (f" · after {self.experiments} experiments", "dim"),
            )
        self._header.update(header)
        self._body.update(
            RichMarkdown(_without_title(self.content))
            if self.content
            else Text("the agent is writing it…", style="dim italic")
        )
        self._body.display = not self.folded and (bool(self.content) or self.decision is None)
        self._footer.display = self.decision is not None
        if self.decision is not None:
            self._footer.update(Text.assemble(("decision: ", "bold"), self.decision))

    def answered(self, content: str, awaiting: bool) -> None:
        self.content, self.awaiting = content, awaiting
        self.redraw()

    def decided(self, decision: str, message: str = "") -> None:
        self.awaiting = False
        self.decision = DECISION_WORDS.get(decision, decision) + (f": {message}" if message else "")
        self.redraw()

    def focus_approve(self) -> None:
        """Focus the Approve button, once it is on screen (a card can be answered as it mounts)."""
        if self._approve.is_mounted:
            # Not scrolled into view: on a card taller than the pane that would hide its
            # heading, which says what is waiting; the keys a, p and c work from anywhere.
            self._approve.focus(scroll_visible=False)
        else:
            self.call_after_refresh(self.focus_approve)

    def on_click(self) -> None:
        if not self.awaiting:
            self.folded = not self.folded
            self.redraw()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        assert event.button.id is not None
        self.action_decide(event.button.id)

    def action_decide(self, decision: str) -> None:
        if self.awaiting:
            self.post_message(self.Decide(self.number, decision))  # type: ignore[arg-type]


class CheckpointPane(VerticalScroll):
    """Checkpoints in order, newest last; only the newest stays expanded."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cards: dict[int, CheckpointCard] = {}

    def compose(self):  # type: ignore[override]
        yield Static(
            "No checkpoints yet. The agent writes one every few experiments; F3 asks for one now.",
            id="checkpoints-empty",
        )

    def card(self, number: int, experiments: int = 0) -> CheckpointCard:
        """The card for checkpoint ``number``, created (and older ones folded) on first sight."""
        if number not in self.cards:
            self.query_one("#checkpoints-empty").display = False
            for older in self.cards.values():
                older.folded = True
                older.redraw()
            self.cards[number] = CheckpointCard(number, experiments)
            self.mount(self.cards[number])
        return self.cards[number]

    @property
    def awaiting(self) -> CheckpointCard | None:
        return next((c for c in reversed(self.cards.values()) if c.awaiting), None)
