"""The person's controls over parallel investigators, as app actions.

A message goes to the selected investigator, to ``@all`` still running, or to ``@ID``;
Esc, F2, F4 and F6 act on the selected one; ``/pause``, ``/resume`` and ``/interrupt``
take ``all``. Every control goes through the investigator's own
:class:`~scribe_tui.agent.controls.InvestigationControls` (held here, with the messages
and the pause, until its investigation exists); its panes update from its events.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from textual.app import App

from scribe_tui import events as ev
from scribe_tui.agent.controls import InvestigationControls
from scribe_tui.ui.agent_pane import AgentPane
from scribe_tui.ui.exports import open_in_viewer, save_images
from scribe_tui.ui.investigators import InvestigatorList, InvestigatorRow
from scribe_tui.ui.notebook import NotebookPane
from scribe_tui.ui.panes import InvestigationPanes
from scribe_tui.ui.prompt import PromptInput
from scribe_tui.ui.screens import CellEditorScreen

__all__ = ["HELP", "PLACEHOLDER", "InvestigatorSteering", "Lane"]

PLACEHOLDER = "Message the selected investigator · @all TEXT: every one · @i2 TEXT: i2"
HELP = (
    "F7/F8 or Tab, ↑/↓: choose an investigator\n"
    "TEXT: to the chosen one · @all TEXT: to all · @i2 TEXT: to i2\n"
    "Esc interrupt · F2 pause/resume · F4 edit cell · F6 new cell (the chosen one)\n"
    "/pause, /resume, /interrupt [all] · /quit or Ctrl+Q: stop all, saved"
)


@dataclass(eq=False)
class Lane:
    """One investigator as the app shows and steers it."""

    row: InvestigatorRow
    panes: InvestigationPanes
    controls: InvestigationControls | None = None
    pending: list[str] = field(default_factory=list)
    status: ev.Status = field(default_factory=lambda: ev.Status(agent_state="starting"))
    listed: bool = False
    pause_on_start: bool = False

    @property
    def notebook(self) -> NotebookPane:
        return self.panes.notebook

    @property
    def agent(self) -> AgentPane:
        return self.panes.agent


class InvestigatorSteering(App[int]):
    """The actions that steer investigators; ``InvestigatorsApp`` builds on it."""

    lanes: dict[str, Lane]
    investigators: InvestigatorList
    prompt: PromptInput
    _cursor_blink: bool

    @property
    def selected(self) -> Lane:
        """The investigator whose notebook is shown (the first until one is chosen)."""
        ident = self.investigators.selected
        return self.lanes[ident] if ident in self.lanes else next(iter(self.lanes.values()))

    def route(self, text: str) -> None:
        """What the person typed: a /command, or a message for the selected investigator,
        for ``@all``, or for ``@ID``."""
        if text.startswith("/"):
            self._slash(text)
            return
        targets = [self.selected]
        if text.startswith("@"):
            name, _, text = text[1:].partition(" ")
            text = text.strip()
            targets = self._targets(name)
            if not targets or not text:
                if targets:
                    self.notify(f"Say what to tell them: @{name} TEXT.", severity="warning")
                return
        for lane in targets:
            self.send(lane, text)

    def _targets(self, name: str) -> list[Lane]:
        """``all``: every investigator still going; else the one with that id."""
        if name.lower() == "all":
            going = [lane for lane in self.lanes.values() if lane.listed and not lane.row.ended]
            if not going:
                self.notify(
                    "No investigator is still running. To go on from one, quit (Ctrl+Q) and "
                    "fork its notebook: scribe-tui fork NOTEBOOK --at N.",
                    severity="warning",
                )
            return going
        if name not in self.lanes:
            names = ", ".join(self.lanes)
            self.notify(
                f"No investigator {name!r}; say @all or one of {names}.", severity="warning"
            )
            return []
        return [self.lanes[name]]

    def send(self, lane: Lane, text: str) -> None:
        """Queue ``text`` for one investigator (held here until its investigation exists)."""
        if lane.row.ended:
            self.notify(
                f"{lane.row.id} has finished; it reads no more messages. To go on from it, quit "
                "(Ctrl+Q) and fork its notebook: scribe-tui fork NOTEBOOK --at N.",
                severity="warning",
            )
        elif lane.controls is None:
            lane.pending.append(text)
            self.notify(f"{lane.row.id} is starting; your message will be queued.")
        else:
            lane.controls.send(text)

    def _slash(self, text: str) -> None:
        """``/pause``, ``/resume``, ``/interrupt``: the selected investigator; ``… all``: all."""
        name, _, argument = text.partition(" ")
        actions = {"/pause": "pause", "/resume": "resume", "/interrupt": "interrupt"}
        if name == "/quit":
            self.run_worker(self.action_quit(), group="quit")
            return
        if name == "/help":
            self.action_help()
            return
        if name not in actions:
            self.notify(f"Unknown command {name}; /help lists them.", severity="warning")
            return
        lanes = self._targets("all") if argument.strip() == "all" else [self.selected]
        for lane in lanes:
            self._control(lane, actions[name])

    def _control(self, lane: Lane, action: str) -> None:
        if lane.row.ended:
            self.notify(f"{lane.row.id} has finished.", severity="warning")
        elif lane.controls is not None:
            getattr(lane.controls, action)()
            if action == "interrupt":
                self.notify(f"{lane.row.id} interrupted; it is paused. F2 resumes it.")
        elif action in ("pause", "resume"):  # still opening: the pause waits for it to exist
            lane.pause_on_start = action == "pause"
            then = "pause" if lane.pause_on_start else "run"
            self.notify(f"{lane.row.id} will {then} as soon as it starts.")
        else:
            self.notify(f"{lane.row.id} is still starting.", severity="warning")

    def action_interrupt(self) -> None:
        self._control(self.selected, "interrupt")

    def action_toggle_pause(self) -> None:
        lane = self.selected
        paused = lane.pause_on_start if lane.controls is None else lane.row.state == "paused"
        self._control(lane, "resume" if paused else "pause")

    def action_edit_cell(self) -> None:
        lane = self.selected
        cell = lane.notebook.selected_cell
        if cell is None or cell.cell_type != "code":
            self.notify("Select a code cell first (Tab to the notebook, ↑/↓).", severity="warning")
            return
        index = lane.notebook.code_index(cell.index)

        def done(code: str | None) -> None:
            if code is not None and lane.controls is not None:
                self._person_work(lane, lane.controls.edit_cell(index, code))

        title = f"Edit {lane.row.id}'s cell [{cell.execution_count or ' '}] and re-run it"
        self.push_screen(
            CellEditorScreen(title, cell.source, cursor_blink=self._cursor_blink), done
        )

    def action_new_cell(self) -> None:
        lane = self.selected

        def done(code: str | None) -> None:
            if code and code.strip() and lane.controls is not None:
                self._person_work(lane, lane.controls.run_code(code))

        title = f"New cell of your own in {lane.row.id}'s kernel"
        self.push_screen(CellEditorScreen(title, cursor_blink=self._cursor_blink), done)

    def action_edit_external(self) -> None:
        self.notify("Here, F4 edits the selected cell.", severity="warning")

    def action_open_images(self) -> None:
        cell = self.selected.notebook.selected_cell
        images = cell.images() if cell is not None else []
        if cell is None or not images:
            self.notify("The selected cell has no images.", severity="warning")
            return
        paths = save_images(cell.index, images)
        open_in_viewer(paths)
        self.copy_to_clipboard(str(paths[0]))
        self.notify("\n".join(str(p) for p in paths), title="Saved (path copied)", timeout=10)

    def action_help(self) -> None:
        self.notify(HELP, title="Investigators: keys and commands", timeout=30)

    def action_focus_prompt(self) -> None:
        self.prompt.focus()

    def _person_work(self, lane: Lane, work: Coroutine[Any, Any, None]) -> None:
        if lane.controls is None or lane.row.ended:
            work.close()
            self.notify(f"{lane.row.id} is not running.", severity="warning")
            return
        self.run_worker(work, name=f"{lane.row.id} cell", group="person", exit_on_error=False)
