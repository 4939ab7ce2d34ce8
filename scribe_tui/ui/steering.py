"""The person's controls over a running investigation, as app actions.

Pause, resume and interrupt; checkpoint requests and decisions; messages and slash
commands; cells of the person's own (edited here or in ``$EDITOR``, or new). Every
control goes through :class:`~scribe_tui.agent.controls.InvestigationControls`, and
the notebook updates from the loop's events, never from here.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from textual.app import App, SuspendNotSupported
from textual.worker import Worker

from scribe_tui.ui.checkpoints import CheckpointCard, CheckpointPane, Decision
from scribe_tui.ui.commands import SLASH_COMMANDS
from scribe_tui.ui.investigation import RunnableInvestigation
from scribe_tui.ui.notebook import NotebookPane
from scribe_tui.ui.prompt import PromptInput
from scribe_tui.ui.screens import CellEditorScreen, MessageScreen
from scribe_tui.ui.status import StatusBar


class SteeringActions(App[int]):
    """The actions (and slash commands) that steer the investigation; ``ScribeApp`` builds on it.

    It needs the app's panes and the investigation's controls, declared here.
    """

    controls: RunnableInvestigation | None
    notebook: NotebookPane
    checkpoints: CheckpointPane
    prompt: PromptInput
    status_bar: StatusBar
    _agent_worker: Worker[Any] | None
    _pending: list[str]
    _pause_on_start: bool
    _cursor_blink: bool

    # -- state shown to the person -------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.status_bar.set_agent_state(state)

    def _checkpoint_waiting(self, card: CheckpointCard) -> None:
        """Make a waiting checkpoint impossible to miss: colour, bell, toast, focus."""
        self._set_state("waiting")
        self.checkpoints.add_class("-awaiting")
        # Once laid out (a card answered as it mounts has no height yet), its top in view.
        self.call_after_refresh(self.checkpoints.scroll_to_widget, card, animate=False, top=True)
        self.bell()
        self.notify(
            "Approve (a), pivot with a message (p), or continue (c).",
            title=f"Checkpoint {card.number} is waiting for you",
            severity="warning",
            timeout=10,
        )
        if not self.prompt.value:  # never steal focus from a half-typed message
            card.focus_approve()

    def _after_checkpoint(self) -> None:
        if self.checkpoints.awaiting is None:
            self.checkpoints.remove_class("-awaiting")
            if self.status_bar.agent_state == "waiting":
                self._set_state("running")
            if self.focused is None or self.checkpoints in self.focused.ancestors:
                self.prompt.focus()

    # -- messages and slash commands -----------------------------------------------

    def send(self, text: str) -> None:
        """Queue a message for the agent (held here until the investigation exists)."""
        if self.controls is None:
            self._pending.append(text)
            self.notify("The investigation is starting; your message will be queued.")
        else:
            self.controls.send(text)

    async def _slash(self, text: str) -> None:
        name, _, argument = text.partition(" ")
        command = SLASH_COMMANDS.get(name.lower())
        argument = argument.strip()
        if command is None:
            self.notify(f"Unknown command {name}; /help lists them.", severity="warning")
        elif name == "/pivot":
            self._decide("pivot", argument or None)
        elif name == "/run" and argument:
            self._person_work(self._controls().run_code(argument), "run")
        elif name == "/edit" and argument:
            if self._select_by_count(argument):
                await self.run_action("edit_cell")
        elif name in ("/export", "/fork") and argument:
            await self.run_action(f"{command.action}({argument!r})")
        else:
            await self.run_action(command.action)

    def _select_by_count(self, argument: str) -> bool:
        """``/edit 3`` selects the cell shown as ``[3]``."""
        for cell in self.notebook.cells:
            if argument.isdigit() and cell.execution_count == int(argument):
                self.notebook.select(cell.index)
                return True
        self.notify(f"No cell [{argument}] in the notebook.", severity="warning")
        return False

    # -- controls ------------------------------------------------------------------

    def _controls(self) -> RunnableInvestigation:
        if self.controls is None:
            raise RuntimeError("the investigation has not started yet")
        return self.controls

    def _live(self) -> bool:
        """True when there is a running investigation to steer (else says why not)."""
        if self.controls is None:
            self.notify("The investigation is still starting.", severity="warning")
            return False
        if self._agent_worker is not None and self._agent_worker.is_finished:
            self.notify("The investigation has ended.", severity="warning")
            return False
        return True

    def action_interrupt(self) -> None:
        if self._live():
            self._controls().interrupt()
            self.notify("Interrupted; the agent is paused. F2 or /resume continues.")

    def action_pause(self) -> None:
        if self.controls is None:
            self._pause_on_start = True
            self.notify("It will pause as soon as it starts.")
        elif self._live():
            self._controls().pause()
            self.notify("Pausing after the current step.")

    def action_resume(self) -> None:
        if self._live():
            self._controls().resume()

    def action_toggle_pause(self) -> None:
        if self.controls is None:  # still loading: the pause waits for the run to exist
            self._pause_on_start = not self._pause_on_start
            self.notify(
                "It will pause as soon as it starts."
                if self._pause_on_start
                else "Pause cancelled."
            )
        elif self.status_bar.agent_state == "paused":
            self.action_resume()
        else:
            self.action_pause()

    def action_checkpoint(self) -> None:
        if self._live():
            self._controls().request_checkpoint()
            self.notify("Checkpoint requested; the agent writes it at the next boundary.")

    def action_approve(self) -> None:
        self._decide("approve")

    def action_pivot(self) -> None:
        self._decide("pivot", self.prompt.value.strip() or None)

    def action_continue_checkpoint(self) -> None:
        self._decide("continue")

    def _decide(self, decision: Decision, message: str | None = None) -> None:
        card = self.checkpoints.awaiting
        if card is None:
            self.notify("No checkpoint is waiting for a decision.", severity="warning")
            return
        if decision == "pivot" and not message:
            if self.prompt.value.strip():
                message = self.prompt.value.strip()
            else:

                def got(text: str | None) -> None:
                    if text:
                        self._decide("pivot", text)

                self.push_screen(
                    MessageScreen(
                        f"Pivot from checkpoint {card.number}: where should the agent go instead?",
                        cursor_blink=self._cursor_blink,
                    ),
                    got,
                )
                return
        if decision == "pivot":
            self.prompt.clear()
        self._controls().decide_checkpoint(card.number, decision, message or "")
        card.decided(decision, message or "")
        self._after_checkpoint()

    # -- the person's own cells ---------------------------------------------------

    def action_edit_cell(self) -> None:
        cell = self.notebook.selected_cell
        if cell is None or cell.cell_type != "code":
            self.notify("Select a code cell first (Tab to the notebook, ↑/↓).", severity="warning")
            return
        code_index = self.notebook.code_index(cell.index)

        def done(code: str | None) -> None:
            if code is not None:
                self._person_work(self._controls().edit_cell(code_index, code), "edit")

        title = f"Edit cell [{cell.execution_count or ' '}] and re-run it"
        self.push_screen(
            CellEditorScreen(title, cell.source, cursor_blink=self._cursor_blink), done
        )

    def action_edit_external(self) -> None:
        cell = self.notebook.selected_cell
        if cell is None or cell.cell_type != "code":
            self.notify("Select a code cell first.", severity="warning")
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.TemporaryDirectory(prefix="scribe-") as folder:
            path = Path(folder) / f"cell_{cell.index}.py"
            path.write_text(cell.source, encoding="utf-8")
            try:
                with self.suspend():
                    subprocess.run([*shlex.split(editor), str(path)], check=False)
            except SuspendNotSupported:
                self.notify(
                    "This terminal cannot hand over to $EDITOR; use F4.", severity="warning"
                )
                return
            except OSError as exc:
                self.notify(f"Could not start {editor}: {exc}", severity="error")
                return
            code = path.read_text(encoding="utf-8")
        if code == cell.source:
            self.notify("Cell unchanged; nothing re-run.")
            return
        index = self.notebook.code_index(cell.index)
        self._person_work(self._controls().edit_cell(index, code), "edit")

    def action_new_cell(self) -> None:
        def done(code: str | None) -> None:
            if code and code.strip():
                self._person_work(self._controls().run_code(code), "run")

        self.push_screen(
            CellEditorScreen(
                "New cell of your own: it runs in the same kernel", cursor_blink=self._cursor_blink
            ),
            done,
        )

    def _person_work(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run a person's cell in a worker; the notebook updates from the loop's events."""
        if not self._live():
            work.close()
            return
        self.run_worker(work, name=name, group="person", exit_on_error=False)
