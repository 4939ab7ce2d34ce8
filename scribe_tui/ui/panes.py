"""One investigation's notebook and agent panes, and how its events show in them.

Both TUIs render an investigation's events through this: :class:`~scribe_tui.app.ScribeApp`
for its one investigation, the investigators' app (:mod:`scribe_tui.ui.parallel`) for each
investigator's own pair of panes. What else an event changes (the status bar, the
checkpoint pane, toasts) stays with the app.
"""

from __future__ import annotations

from rich.text import Text

from scribe_tui import events as ev
from scribe_tui.ui.agent_pane import AgentPane
from scribe_tui.ui.notebook import NotebookPane


class InvestigationPanes:
    """A notebook pane and an agent pane fed the events of one investigation."""

    def __init__(self, notebook: NotebookPane, agent: AgentPane) -> None:
        self.notebook = notebook
        self.agent = agent
        self._cell_status: str | None = None
        """How the cell of the running tool call ended (``CellUpdated.status``)."""

    async def show(self, event: ev.Event) -> None:
        """Render ``event`` in the panes (events that only the app shows pass through)."""
        agent = self.agent
        match event:
            case ev.TextDelta(text=text):
                await agent.text_delta(text)
            case ev.ThinkingDelta(text=text):
                await agent.thinking_delta(text)
            case ev.TurnStarted(turn=turn):
                await agent.note(Text(f"── turn {turn} ──"), "turn")
            case ev.TurnFinished():
                await agent.end_streams()
            case ev.ToolCallStarted():
                self._cell_status = None
                await agent.tool_started(event)
            case ev.ToolCallFinished():
                await agent.tool_finished(event, self._cell_status)
            case ev.CellAdded():
                self.notebook.add_cell(event)
            case ev.CellExecuting():
                self.notebook.cell_executing(event)
            case ev.CellUpdated():
                self.notebook.update_cell(event)
                if event.status is not None:
                    self._cell_status = event.status
            case ev.MessageQueued(text=text):
                await agent.message_queued(text)
            case ev.MessageDelivered(texts=texts):
                await agent.messages_delivered(texts)
            case ev.Paused(reason=reason):
                why = f" ({reason})" if reason and reason != "paused" else ""
                await agent.note(f"paused{why} · F2 resumes")
            case ev.Resumed():
                await agent.note("resumed")
            case ev.ErrorEvent(message=text):
                await agent.note(Text(f"✗ {text}"), "error")
            case ev.Concluded(answer=answer, confidence=confidence, evidence=evidence):
                await agent.note(
                    Text.assemble(
                        ("Concluded: ", "bold"),
                        (answer, "bold"),
                        f"  (confidence {confidence:.0%})\n",
                        (evidence, "dim"),
                    ),
                    "concluded",
                )
            case ev.Stopped(reason=reason, detail=detail) if reason != "concluded":
                await agent.note(f"stopped: {reason}" + (f" ({detail})" if detail else ""), "info")
