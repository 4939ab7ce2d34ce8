"""What a run records of itself, and rebuilding a run from that record after a stop.

:class:`Resumable` is the part of :class:`~scribe_tui.agent.loop.Investigation` that
lets a run survive a restart of scribe-tui: the transcript's header (task, provider,
config, notebook), the counters recorded as a ``state`` record at every boundary (with
a ``Status`` event for the front ends), reading a transcript back into an
investigation (:meth:`Resumable.from_transcript`, also ``Investigation.resume(...)``),
and re-opening the notebook when the resumed run starts. Budgets continue from the
recorded totals, undelivered person messages are queued again, and tool calls the
transcript shows unfinished are answered with an error, never re-run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scribe_tui.agent.checkpoints import CheckpointState
from scribe_tui.agent.conversation import text_block
from scribe_tui.agent.provider import Provider, Usage
from scribe_tui.agent.run_config import InvestigationConfig, Stop
from scribe_tui.agent.transcript import Transcript
from scribe_tui.events import CheckpointAnswered, ErrorEvent, Status
from scribe_tui.tools import NotebookTools

if TYPE_CHECKING:
    from scribe_tui.agent.conversation import Conversation
    from scribe_tui.agent.dispatch import Dispatcher
    from scribe_tui.agent.loop import Investigation
    from scribe_tui.agent.reporter import Reporter
    from scribe_tui.agent.steering import Steering
    from scribe_tui.events import Concluded, Event

__all__ = ["Resumable", "ResumeDescriptor"]


class ResumeDescriptor:
    """``Investigation.resume(path, ...)`` rebuilds from a transcript (as ``from_transcript``);
    ``investigation.resume()`` lifts a pause (the controls' meaning)."""

    def __get__(self, instance: Any, owner: type[Resumable]) -> Callable[..., Any]:
        return owner.from_transcript if instance is None else instance._resume


class Resumable:
    """What an investigation records of itself, and how it is rebuilt from that record.

    A base of :class:`~scribe_tui.agent.loop.Investigation`, which provides the
    attributes declared here.
    """

    resume = ResumeDescriptor()

    task: str
    provider: Provider
    config: InvestigationConfig
    transcript: Transcript
    reporter: Reporter
    dispatcher: Dispatcher
    conversation: Conversation
    steering: Steering
    checkpoints: CheckpointState
    conclusion: Concluded | None
    usage: Usage
    turns: int
    experiments: int
    elapsed: float
    session_id: str | None
    notebook_path: Path | None
    _budget_turn: int | None
    _elapsed_before: float
    _paused_total: float
    _reopen: Path | None
    _fork_origin: tuple[str, int] | None
    _state: str
    sandbox: str
    _emit: Callable[[Event], None]
    _steer: Callable[..., None]

    def _write_header(self) -> None:
        self.transcript.write_header(
            task=self.task,
            provider=self.provider.name,
            model=self.provider.model,
            config=dataclasses.asdict(self.config),
            notebook=self.notebook_path,
        )

    def _sync(self) -> None:
        """Record the counters, make the transcript durable, tell front ends (if news)."""
        self.reporter.sync(self._snapshot(), self._status)

    def _status(self) -> Status:
        usage = self.usage
        return Status(
            agent_state=self._state,
            turn=self.turns,
            input_tokens=usage.total_input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
            elapsed=self.elapsed,
            queued=len(self.steering.queued),
            sandbox=self.sandbox,
        )

    def _snapshot(self) -> dict[str, Any]:
        """The counters as a ``state`` record holds them (what :meth:`from_transcript` reads)."""
        return {
            "turns": self.turns,
            "usage": dataclasses.asdict(self.usage),
            "experiments": self.experiments,
            "checkpoints": self.checkpoints.to_dict(),
            "budget_turn": self._budget_turn,
            "elapsed": round(self.elapsed, 3),
            "paused": round(self._paused_total, 3),
            "session_id": self.session_id,
            "notebook": str(self.notebook_path) if self.notebook_path else None,
            "concluded": self.conclusion is not None,
        }

    @classmethod
    def from_transcript(
        cls,
        transcript_path: Path | str,
        provider: Provider,
        tools: NotebookTools,
        config: InvestigationConfig | None = None,
    ) -> Investigation:
        """Rebuild an investigation from its transcript; :meth:`run` re-opens the notebook.

        Also reachable as ``Investigation.resume(...)``. Budgets continue from the
        recorded totals, undelivered person messages are queued again, and tool calls
        the transcript shows unfinished are answered with an error, never re-run.
        """
        data = Transcript.load(transcript_path)
        data.check_integrity()
        point = data.resume_point()
        if not point.notebook:
            raise ValueError(f"{data.path}: the run never opened a notebook; start it again")
        if config is None:
            config = InvestigationConfig.from_header(data.header.get("config", {}))
        investigation = cls(
            data.header["task"],
            provider,
            tools,
            config=config,
            transcript=Transcript(transcript_path),
        )
        state = point.state
        notebook = Path(point.notebook)
        beside = Path(transcript_path).parent / notebook.name
        if not notebook.exists() and beside.exists():
            notebook = beside  # the folder was moved (or came back from a Modal container)
        investigation._reopen = investigation.dispatcher.notebook_path = notebook
        if data.header.get("forked_from") and not point.state:
            # A fork's first start (`scribe-tui fork`): it has run no step of its own yet.
            origin = (str(data.header["forked_from"]), int(data.header.get("forked_at", 0)))
            investigation._fork_origin = origin
        investigation.conversation.restore(point)
        investigation.steering.queued = point.queued
        investigation.turns = int(state.get("turns", 0))
        investigation.usage = Usage(**state.get("usage", {}))
        investigation.experiments = int(state.get("experiments", 0))
        investigation.checkpoints = CheckpointState.from_dict(
            state.get("checkpoints", {}), config.checkpoint_every
        )
        investigation._budget_turn = state.get("budget_turn")
        investigation._elapsed_before = float(state.get("elapsed", 0.0))
        investigation._paused_total = float(state.get("paused", 0.0))
        return investigation

    async def _reattach(self, notebook: Path) -> None:
        """Open the notebook again (its kernel rebuilt from its cells) and tell the agent."""
        self._steer("restart", notebook=str(notebook))
        if self.checkpoints.awaiting is not None:
            number, content = self.checkpoints.awaiting, self.checkpoints.content
            self._emit(CheckpointAnswered(number, content, awaiting_approval=True))
        self.dispatcher.session_id = None
        arguments = {"notebook_path": str(notebook)}
        result = await self.dispatcher.loop_call("start_session_resume_notebook", arguments)
        if self.session_id is None:
            self._emit(ErrorEvent(message=f"Cannot reopen {notebook}: {result.text}", fatal=True))
            raise Stop("failed", f"cannot reopen {notebook}")
        opening = "[scribe-tui] The investigation was resumed after scribe-tui stopped."
        if self._fork_origin is not None:
            source, cell = self._fork_origin
            opening = (
                f"[scribe-tui] This is a new investigation, forked from {source} after its code "
                f"cell {cell}: the notebook holds its cells up to there, and what the original "
                "did after them is not part of this run."
            )
        self.conversation.pend(
            text_block(
                f"{opening} "
                f"{result.text} Your notebook is open again as session '{self.session_id}': use "
                f"session_id='{self.session_id}' from now on (earlier session ids no longer "
                "work). Variables from the notebook's cells exist again; nothing else does."
            )
        )
