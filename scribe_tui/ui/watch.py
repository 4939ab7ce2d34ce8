"""``scribe-tui watch``: the TUI on a session that an MCP client drives.

:class:`WatchApp` is the investigation app with a remote investigation as its source
(:class:`~scribe_tui.mcp_server.watch_client.RemoteInvestigation`): the same panes,
keys and controls, each control travelling to the server. Two things differ: the
server may switch to a newer notebook (the notebook pane starts afresh), and quitting
only detaches -- the session goes on.
"""

from __future__ import annotations

from textual.containers import Horizontal

from scribe_tui import events as ev
from scribe_tui.app import EXIT_OK, ScribeApp
from scribe_tui.mcp_server.watch_client import RemoteInvestigation
from scribe_tui.ui.investigation import AgentEvent
from scribe_tui.ui.notebook import NotebookPane


class WatchApp(ScribeApp):
    """Watch and steer a ``scribe-tui mcp`` session; Ctrl+Q detaches."""

    CSS_PATH = "scribe.tcss"  # Textual resolves it beside this module, not app.py

    def __init__(self, remote: RemoteInvestigation, *, cursor_blink: bool = True) -> None:
        super().__init__(
            remote,
            title=f"MCP session · pid {remote.pid}",
            subject=remote.model,
            notebook=None,
            cursor_blink=cursor_blink,
        )
        self.remote = remote

    async def on_agent_event(self, message: AgentEvent) -> None:
        # Runs before ScribeApp's handler of the same message (Textual walks the MRO).
        if isinstance(message.event, ev.NotebookOpened) and self.notebook.cells:
            await self._fresh_notebook_pane()

    async def _fresh_notebook_pane(self) -> None:
        """Start the notebook pane afresh: the server follows another notebook now."""
        old = self.notebook
        await old.remove()
        self.notebook = self.panes.notebook = NotebookPane(id="notebook")
        await self.query_one("#main", Horizontal).mount(self.notebook, before=0)
        self.notebook.border_title = f"Notebook · {self.title}"

    async def action_quit(self) -> None:
        """Detach and exit; the MCP client keeps working."""
        self.remote.detach()
        self.exit(EXIT_OK, return_code=EXIT_OK)


def run_watch(remote: RemoteInvestigation) -> int:
    """Run the watching TUI until the person quits; returns the exit code."""
    app = WatchApp(remote)
    app.run()
    where = f" (notebook {remote.notebook_path})" if remote.notebook_path else ""
    print(f"Detached from the MCP session{where}; it goes on without you.")
    return EXIT_OK
