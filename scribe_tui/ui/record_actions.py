"""The research record in the app: export the notebook, fork from a cell, attach a console.

Export and fork work on the notebook file (saved after every cell), through the same
code as ``scribe-tui export`` and ``scribe-tui fork``, in worker threads so the UI
never waits on nbconvert or the disk. A fork ends this run (everything is saved) and
leaves :attr:`RecordActions.fork_into` for :func:`scribe_tui.app.run_app` to open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from scribe_tui.ui.screens import HelpScreen, MessageScreen
from scribe_tui.ui.steering import SteeringActions

FORMAT_NAMES = {"md": "Markdown", "html": "HTML"}


class RecordActions(SteeringActions):
    """``/export``, ``/fork`` and the help screen's attach line; ``ScribeApp`` builds on it."""

    fork_into: Path | None = None
    """The fork this app made, to be opened once it has exited."""
    connection_file: str | None = None
    """The live kernel's connection file (from the ``kernel_started`` event)."""
    notebook_path: Path | None

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.connection_file))

    def action_export(self, to: str = "md") -> None:
        """Write the notebook as Markdown (or ``html``) beside it, images included."""
        path = self.notebook_path
        if to not in FORMAT_NAMES:
            self.notify(f"/export {to}: use /export md or /export html.", severity="warning")
        elif path is None or not Path(path).is_file():
            self.notify("Nothing to export yet: the notebook is not saved.", severity="warning")
        else:
            self.run_worker(self._export(Path(path), to), group="export", exit_on_error=False)

    async def _export(self, path: Path, to: str) -> None:
        from scribe_tui.record.export import export
        from scribe_tui.record.source import RecordError

        try:
            target = await asyncio.to_thread(export, path, to)
        except RecordError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.copy_to_clipboard(str(target))
        self.notify(str(target), title=f"Exported as {FORMAT_NAMES[to]} (path copied)")

    def action_fork(self, message: str = "") -> None:
        """Branch a new investigation from the selected code cell, with a message for the agent."""
        cell = self.notebook.selected_cell
        path = self.notebook_path
        if cell is None or cell.cell_type != "code":
            self.notify("Select a code cell to fork from (Tab, then ↑/↓).", severity="warning")
            return
        if path is None or not Path(path).is_file():
            self.notify("Nothing to fork yet: the notebook is not saved.", severity="warning")
            return
        number = self.notebook.code_index(cell.index) + 1
        if message:
            self._start_fork(Path(path), number, message)
            return

        def got(text: str | None) -> None:
            if text:
                self._start_fork(Path(path), number, text)

        self.push_screen(
            MessageScreen(
                f"Fork a new investigation after code cell {number}: what should the agent "
                "try from there?",
                cursor_blink=self._cursor_blink,
            ),
            got,
        )

    def _start_fork(self, path: Path, number: int, message: str) -> None:
        self.run_worker(self._fork(path, number, message), group="fork", exit_on_error=False)

    async def _fork(self, path: Path, number: int, message: str) -> None:
        from scribe_tui.record.fork import prepare_fork
        from scribe_tui.record.source import RecordError

        try:
            self.fork_into = await asyncio.to_thread(prepare_fork, path, number, message)
        except RecordError as exc:
            self.notify(f"Fork failed: {exc}", severity="error")
            return
        self.notify(f"Forked into {self.fork_into}; this run is saved and stops now.")
        await self.run_action("quit")
