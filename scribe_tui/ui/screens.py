"""Modal screens: the cell editor, a one-line message prompt, and help."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

from scribe_tui.ui.commands import COMMANDS


class CellEditorScreen(ModalScreen[str | None]):
    """Edit (or write) a code cell; dismisses with the code to run, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s,ctrl+r", "run", "Run", priority=True),
        # The code editor would take Esc to release focus; here it means "cancel".
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, title: str, source: str = "", *, cursor_blink: bool = True) -> None:
        super().__init__()
        self._title = title
        self._source = source
        self._blink = cursor_blink

    def compose(self) -> ComposeResult:
        editor = TextArea.code_editor(self._source, language="python", id="editor")
        editor.cursor_blink = self._blink
        with Vertical(id="editor-dialog"):
            yield Static(Text(self._title, style="bold"), id="editor-title")
            yield editor
            with Horizontal(id="editor-buttons"):
                yield Static(
                    "The agent is told about your change on its next turn.", id="editor-hint"
                )
                yield Button("Run (ctrl+s)", id="run", variant="success", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        editor = self.query_one(TextArea)
        editor.focus()
        editor.move_cursor(editor.document.end)

    def action_run(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "run":
            self.action_run()
        else:
            self.action_cancel()


class MessageScreen(ModalScreen[str | None]):
    """Ask for one line of text (the message for a pivot)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str, *, cursor_blink: bool = True) -> None:
        super().__init__()
        self._prompt = prompt
        self._blink = cursor_blink

    def compose(self) -> ComposeResult:
        with Vertical(id="message-dialog"):
            yield Static(self._prompt, id="message-prompt")
            yield Input(placeholder="Enter sends · Esc cancels", id="message-input")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = self._blink
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Keys and commands, generated from the same table as the palette; how to attach Jupyter."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "close", "Close")]

    def __init__(self, connection_file: str | None = None) -> None:
        super().__init__()
        self._connection_file = connection_file

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, padding=(0, 1), header_style="bold")
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("command", style="green", no_wrap=True)
        table.add_column("what it does")
        for command in COMMANDS:
            table.add_row(command.key, command.slash, command.help)
        intro = Text.assemble(
            ("scribe-tui", "bold"),
            " — an agent investigates in a real notebook; you watch and steer.\n\n",
            "Type a message and press Enter: it is queued and reaches the agent at its next "
            "tool boundary. Lines starting with / are commands. Tab moves between panes; in the "
            "notebook ↑/↓ select a cell, Enter edits it, x expands its output. Ctrl+P opens the "
            "command palette.\n",
        )
        attach = (
            f"jupyter console --existing {self._connection_file}"
            if self._connection_file
            else "(its connection file shows here once the notebook session starts)"
        )
        with VerticalScroll(id="help-dialog"):
            yield Static(intro)
            yield Static(
                Text.assemble(
                    "Open the live kernel from Jupyter or VS Code:\n  ", (attach, "bold"), "\n"
                )
            )
            yield Static(table)
            yield Static(Text("Esc closes this help.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
