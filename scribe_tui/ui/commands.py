"""Every action the person can take, in one table: palette, slash commands and help share it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    """An app action with its palette title, key, slash form and one-line help."""

    title: str
    action: str
    help: str
    key: str = ""
    slash: str = ""


COMMANDS: tuple[Command, ...] = (
    Command(
        "Interrupt",
        "interrupt",
        "Stop the current model turn or running cell now",
        "esc",
        "/interrupt",
    ),
    Command("Pause / resume", "toggle_pause", "Pause at the next boundary, or resume", "f2"),
    Command("Pause", "pause", "Stop at the next boundary (after this tool call)", "", "/pause"),
    Command("Resume", "resume", "Continue after a pause or an interrupt", "", "/resume"),
    Command(
        "Checkpoint now",
        "checkpoint",
        "Ask the agent for an exploration checkpoint",
        "f3",
        "/checkpoint",
    ),
    Command(
        "Approve checkpoint", "approve", "Accept the waiting checkpoint's decision", "a", "/approve"
    ),
    Command(
        "Pivot at checkpoint",
        "pivot",
        "Redirect the agent with a message (/pivot TEXT)",
        "p",
        "/pivot",
    ),
    Command(
        "Continue at checkpoint",
        "continue_checkpoint",
        "Keep going on the current line of inquiry",
        "c",
        "/continue",
    ),
    Command("Edit cell", "edit_cell", "Edit the selected cell here and re-run it", "f4", "/edit"),
    Command("Edit cell in $EDITOR", "edit_external", "Edit the selected cell in $EDITOR", "f5"),
    Command(
        "New cell",
        "new_cell",
        "Write and run a cell of your own (/run CODE for one line)",
        "f6",
        "/run",
    ),
    Command("Open images", "open_images", "Save the selected cell's images and open them", "o"),
    Command("Cost", "cost", "Tokens, cost and time so far", "", "/cost"),
    Command(
        "Export notebook",
        "export",
        "Write the notebook beside it as Markdown with its images (/export html: HTML)",
        "",
        "/export",
    ),
    Command(
        "Fork from cell",
        "fork",
        "Branch a new investigation after the selected cell (/fork MESSAGE)",
        "",
        "/fork",
    ),
    Command("Focus notebook", "focus_notebook", "Select cells with ↑/↓, Enter edits", "tab"),
    Command("Focus prompt", "focus_prompt", "Type a message or a /command", "i"),
    Command("Help", "help", "Keys and commands", "f1", "/help"),
    Command("Quit", "quit", "Save, stop, and print the resume command", "ctrl+q", "/quit"),
)

SLASH_COMMANDS: dict[str, Command] = {c.slash: c for c in COMMANDS if c.slash}


class ScribeCommands(Provider):
    """The command palette's view of :data:`COMMANDS`."""

    async def discover(self) -> Hits:
        for command in COMMANDS:
            yield DiscoveryHit(
                command.title, partial(self.app.run_action, command.action), help=command.help
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in COMMANDS:
            score = matcher.match(f"{command.title} {command.slash}")
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    partial(self.app.run_action, command.action),
                    text=command.title,
                    help=command.help,
                )
