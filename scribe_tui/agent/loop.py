"""The investigation loop: ask the provider for a turn, run its tool calls, repeat.

It owns the conversation (Anthropic Messages format), applies a person's steering at
boundaries (after every tool call and every turn), asks for exploration checkpoints,
enforces budgets, bounds the context and records every step in the transcript.

Decisions worth knowing:

- One user message per turn: tool results first (in call order), then notes on a
  person's own cells, queued person messages, a checkpoint request, a budget notice.
  It is committed together with the assistant's answer, so an interrupted turn leaves
  no half-finished exchange; until then its blocks are ``pending`` transcript records.
- A turn cut off at ``max_tokens`` runs none of its tools: each gets an error result.
- A turn that calls no tools ends the run: its text is the final answer, recorded with
  ``conclude`` (confidence parsed from the text if stated, else 0.5) -- unless a
  checkpoint is pending, in which case the text is the checkpoint.
- Resuming never re-runs a tool call: calls the transcript shows unfinished get an
  error result saying so (their cells, if any, are in the notebook).

Running the tool calls (and a person's own cells) and following the agent's session
is :mod:`scribe_tui.agent.dispatch`; the message list and what is sent of it is
:mod:`scribe_tui.agent.conversation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scribe_tui.agent.checkpoints import CheckpointState, decision_message, looks_like_checkpoint
from scribe_tui.agent.controls import EventSink
from scribe_tui.agent.conversation import (
    Conversation,
    Draft,
    error_result,
    first_message,
    parse_final_answer,
    result_block,
    system_prompt,
    text_block,
)
from scribe_tui.agent.dispatch import Dispatcher
from scribe_tui.agent.events import (
    CheckpointAnswered,
    CheckpointDecided,
    CheckpointRequested,
    Concluded,
    ErrorEvent,
    Event,
    MessageDelivered,
    MessageQueued,
    Paused,
    Resumed,
    Status,
    Stopped,
    TextDelta,
    TurnFinished,
    TurnStarted,
)
from scribe_tui.agent.provider import Provider, ProviderError, TurnRequest, TurnResult, Usage
from scribe_tui.agent.steering import PERSON_PREFIX, Steering, person_message
from scribe_tui.agent.transcript import Transcript
from scribe_tui.tools import NotebookTools, ToolResult

__all__ = [
    "Investigation",
    "InvestigationConfig",
    "Outcome",
    "StopReason",
    "parse_final_answer",
    "system_prompt",
]

log = logging.getLogger(__name__)

StopReason = Literal["concluded", "budget", "interrupted", "failed"]

CUT_OFF = (
    "Your turn was cut off at max_tokens; nothing ran. "
    "Split the work into smaller cells and call the tools again."
)
CUT_OFF_TEXT = "Your turn was cut off at max_tokens. Go on, in smaller steps."


@dataclass
class InvestigationConfig:
    """Limits and habits of one investigation; None means no limit."""

    max_turns: int | None = None
    max_cost_usd: float | None = None
    max_minutes: float | None = None
    """Minutes of running time (time spent paused does not count)."""
    checkpoint_every: int = 10
    """Ask for an exploration checkpoint every this many ``execute_code`` calls; 0: never."""
    confirm_checkpoints: bool = False
    """Wait for a person's ``decide_checkpoint`` after each checkpoint."""
    max_tokens: int = 8192
    context_budget: int | None = 120_000
    """Estimated tokens of conversation above which old cell outputs shrink to stubs."""
    keep_results: int = 6
    """The newest cell outputs that never shrink."""
    experiment: str | None = None
    """Notebook name used when the agent's ``start_new_session`` names none."""
    retry_delays: tuple[float, ...] = (5.0, 20.0, 60.0)
    """Waits before asking again after a retryable provider error; then the run fails."""


@dataclass
class Outcome:
    """How an investigation ended."""

    reason: StopReason
    answer: str | None = None
    confidence: float | None = None
    evidence: str | None = None
    notebook_path: Path | None = None
    transcript_path: Path | None = None
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    elapsed: float = 0.0
    detail: str = ""


class _Stop(Exception):
    """Unwinds the loop with an outcome reason."""

    def __init__(self, reason: StopReason, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Resume:
    """``Investigation.resume(path, ...)`` rebuilds from a transcript (as ``from_transcript``);
    ``investigation.resume()`` lifts a pause (the controls' meaning)."""

    def __get__(
        self, instance: Investigation | None, owner: type[Investigation]
    ) -> Callable[..., Any]:
        return owner.from_transcript if instance is None else instance._resume


class Investigation:
    """One investigation run; implements :class:`~scribe_tui.agent.controls.InvestigationControls`.

    The investigation (through its :class:`~scribe_tui.agent.dispatch.Dispatcher`) takes
    over ``tools.on_event`` (a handler already there is still called): front ends should
    :meth:`subscribe` instead. Calling :meth:`pause` before
    :meth:`run` starts the run paused. The caller owns ``tools`` and closes them.
    """

    resume = _Resume()

    def __init__(
        self,
        task: str,
        provider: Provider,
        tools: NotebookTools,
        *,
        config: InvestigationConfig | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.task = task
        self.provider = provider
        self.tools = tools
        self.config = config or InvestigationConfig()
        self.transcript = transcript or Transcript()
        self.conversation = Conversation(self.transcript)
        self.usage = Usage()
        self.turns = 0
        self.experiments = 0
        self.checkpoints = CheckpointState(every=self.config.checkpoint_every)
        self.steering = Steering()
        self.conclusion: Concluded | None = None
        self._system = system_prompt(task)
        # The task goes out with the first turn; it is not pending in the transcript.
        self.conversation.pending.append(text_block(first_message(task)))
        self._sinks: list[EventSink] = []
        self._turn_task: asyncio.Future[TurnResult] | None = None
        self._partial: list[str] = []
        self._budget_turn: int | None = None  # the turn that answered the budget notice
        self._empty_turns = 0
        self._elapsed_before = 0.0
        self._paused_total = 0.0
        self._started: float | None = None
        self._reopen: Path | None = None
        self._state = "starting"
        self._dirty = True  # an event was emitted since the last _sync
        self._synced: dict[str, Any] = {}
        self._save_error: str | None = None  # reported once, not at every boundary
        self.dispatcher = Dispatcher(tools, self.transcript, self._emit, self._write_header)
        if self.transcript.is_attached and not self.transcript.has_header:
            self._write_header()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far, in Anthropic Messages format."""
        return self.conversation.messages

    @property
    def session_id(self) -> str | None:
        """The agent's notebook session (the newest one started), if any."""
        return self.dispatcher.session_id

    @property
    def notebook_path(self) -> Path | None:
        """The agent's notebook, beside which the transcript sits."""
        return self.dispatcher.notebook_path

    # -- controls (InvestigationControls) ------------------------------------------------

    def subscribe(self, sink: EventSink) -> None:
        """Deliver every future event to ``sink``."""
        self._sinks.append(sink)

    def pause(self) -> None:
        """Stop at the next boundary (after the current tool call or turn)."""
        self.steering.pause("paused")
        self._steer("pause")

    def _resume(self) -> None:
        """Continue after ``pause`` or an interrupt (``investigation.resume()``)."""
        self.steering.resume()
        self._steer("resume")

    def interrupt(self) -> None:
        """Stop the streaming turn and interrupt running cells now; then pause."""
        self.steering.pause("interrupted")
        self.steering.skip_rest = True
        self._steer("interrupt")
        self._cut_short()

    def stop(self) -> None:
        """End the run as soon as possible, with reason ``interrupted`` (Ctrl+C, quit)."""
        self.steering.stop()
        self._steer("stop")
        self._cut_short()

    def send(self, text: str) -> None:
        """Queue a message for the agent; delivered in order with the next user message."""
        self.steering.queued.append(person_message(text))
        self._steer("send", text=text)
        self._emit(MessageQueued(text=text, queued=len(self.steering.queued)))

    def request_checkpoint(self) -> None:
        """Ask the agent for an exploration checkpoint at the next boundary."""
        self.checkpoints.ask()
        self._steer("request_checkpoint")

    def decide_checkpoint(
        self, number: int, decision: Literal["approve", "pivot", "continue"], message: str = ""
    ) -> None:
        """Answer a checkpoint; a pivot or a message reaches the agent as a person message."""
        self._steer("decide_checkpoint", number=number, decision=decision, message=message)
        self._emit(CheckpointDecided(number=number, decision=decision, message=message))
        said = decision_message(number, decision, message)
        if said is not None:
            self.steering.queued.append(person_message(said))
            self._emit(MessageQueued(text=said, queued=len(self.steering.queued)))
        if self.checkpoints.decided(number):
            self.steering.poke()

    async def edit_cell(self, index: int, code: str) -> None:
        """Replace code cell ``index`` with a person's code, re-run it, tell the agent."""
        self._note(await self.dispatcher.person_edit_cell(index, code))

    async def run_code(self, code: str) -> None:
        """Append and run a person's own code cell, and tell the agent."""
        self._note(await self.dispatcher.person_run_code(code))

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Run until concluded, out of budget, stopped or failed."""
        if self._started is not None:
            raise RuntimeError("this investigation already ran; resume it from its transcript")
        self._started = time.monotonic()
        self._state = "running"
        try:
            if self._reopen is not None:
                await self._reattach(self._reopen)
            while True:
                await self._boundary()
                await self._step()
        except _Stop as stop:
            await self._flush()
            return self._finish(stop.reason, stop.detail)
        except asyncio.CancelledError:
            self._finish("interrupted", "cancelled")
            raise
        except Exception as exc:  # a failure anywhere must still end with an outcome
            log.exception("investigation failed")
            message = f"{type(exc).__name__}: {exc}"
            self._emit(ErrorEvent(message=message, fatal=True))
            await self._flush()
            return self._finish("failed", message)

    async def _step(self) -> None:
        """One turn: ask, then act on the answer."""
        over = self._over_budget()
        if over and self._budget_turn is not None and self.turns >= self._budget_turn:
            raise _Stop("budget", over)
        result = await self._ask(over if self._budget_turn is None else None)
        if result is None:
            return
        uses = [b for b in result.content if b.get("type") == "tool_use"]
        if result.stop_reason == "max_tokens":
            self._emit(ErrorEvent(message="The agent's turn was cut off at max_tokens."))
            for block in uses:
                self.conversation.pend(error_result(block["id"], CUT_OFF))
            if not uses:
                self.conversation.pend(text_block(CUT_OFF_TEXT))
        elif uses:
            self._empty_turns = 0
            await self._run_calls(uses)
        else:
            await self._no_tools(result)
        self.checkpoints.check(self.experiments)

    async def _ask(self, budget_notice: str | None) -> TurnResult | None:
        """Ask the provider for the next turn (with retries); None if it was cut short."""
        draft = self._compose(budget_notice)
        request = TurnRequest(
            system=self._system,
            messages=self.conversation.view(
                {"role": "user", "content": draft.blocks},
                self.config.context_budget,
                self.config.keep_results,
            ),
            tools=self.tools.definitions(),
            max_tokens=self.config.max_tokens,
        )
        number = self.turns + 1
        self._emit(TurnStarted(turn=number))
        delays = self.config.retry_delays
        for attempt in range(len(delays) + 1):
            self._partial = []
            try:
                result = await self._provider_turn(request)
            except ProviderError as exc:
                if not exc.retryable or attempt >= len(delays):
                    self._emit(ErrorEvent(message=f"{self.provider.name}: {exc}", fatal=True))
                    raise _Stop("failed", str(exc)) from exc
                self._emit(
                    ErrorEvent(
                        message=f"{self.provider.name}: {exc}; retrying in {delays[attempt]:g}s"
                    )
                )
                await self.steering.wait(delays[attempt])
                if self.steering.stopping or self.steering.pause_reason == "interrupted":
                    break
                continue
            if result is None:
                break
            self._commit(draft)
            self._commit_assistant(result.content or [text_block("(empty answer)")])
            self.usage += result.usage
            self.transcript.write("usage", turn=number, usage=dataclasses.asdict(result.usage))
            self._emit(TurnFinished(turn=number, stop_reason=result.stop_reason))
            await self._boundary()
            return result
        # Cut short by the person: keep what was said, as text only, and tell the agent.
        self._emit(TurnFinished(turn=number, stop_reason="interrupted"))
        said = "".join(self._partial).strip()
        if said:
            self._commit(draft)
            self._commit_assistant([text_block(said + "\n\n[interrupted by the person]")])
        self.conversation.pend(
            text_block(
                "[From the person watching] They interrupted your last turn before it "
                "finished; nothing from it ran."
            )
        )
        return None

    async def _provider_turn(self, request: TurnRequest) -> TurnResult | None:
        """One provider call that ``interrupt`` can cancel; None if it was cancelled."""
        if self.steering.stopping:
            return None
        # An interrupt from now on is about this turn (and the calls it is about to make).
        self.steering.skip_rest = False
        task = asyncio.ensure_future(self.provider.turn(request, self._on_delta))
        self._turn_task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        finally:
            self._turn_task = None
        return None if task.cancelled() else task.result()

    async def _run_calls(self, uses: list[dict[str, Any]]) -> None:
        """Run a turn's tool calls in order, with a boundary after each."""
        for block in uses:
            if self.conclusion is not None:
                self.conversation.pend(error_result(block["id"], "Not run: you already concluded."))
            elif self.steering.skip_rest:
                self.conversation.pend(
                    error_result(block["id"], "Not run: the person interrupted the turn.")
                )
            else:
                experiment = self.config.experiment
                arguments, result, cell = await self.dispatcher.agent_call(block, experiment)
                self._after_call(block["name"], arguments, result)
                self.conversation.pend(result_block(block["id"], result), cell=cell)
                await self._boundary()
        if self.conclusion is not None:
            self._commit(self._compose(None, final=True))
            raise _Stop("concluded")

    async def _no_tools(self, result: TurnResult) -> None:
        """A turn without tool calls: a checkpoint written as text, or the final answer."""
        texts = [b["text"] for b in result.content if b.get("type") == "text"]
        said = "\n\n".join(t for t in texts if t.strip()).strip()
        if self.checkpoints.pending is not None and said:
            await self.dispatcher.loop_call("add_markdown", {"content": said})
            self._checkpoint_answered(said)
            self.conversation.pend(
                text_block(
                    "Your checkpoint was added to the notebook as a markdown cell. "
                    "Carry on with the investigation."
                )
            )
            return
        if result.stop_reason == "refusal":
            self._emit(ErrorEvent(message="The model refused to continue.", fatal=True))
            raise _Stop("failed", "refusal")
        if not said:
            self._empty_turns += 1
            if self._empty_turns >= 2:
                self._emit(ErrorEvent(message="The agent stopped without an answer.", fatal=True))
                raise _Stop("failed", "no answer")
            self.conversation.pend(
                text_block(
                    "You ended your turn without calling a tool or answering. "
                    "Continue the investigation, or call `conclude`."
                )
            )
            return
        answer, confidence, evidence = parse_final_answer(said)
        args = {"answer": answer, "confidence": confidence, "evidence": evidence}
        await self.dispatcher.loop_call("conclude", args)
        self._concluded(answer, confidence, evidence)
        raise _Stop("concluded")

    # -- tool calls ----------------------------------------------------------------------

    def _after_call(self, name: str, arguments: Mapping[str, Any], result: ToolResult) -> None:
        """Count an experiment; take in a checkpoint written as markdown, or a conclusion."""
        if name == "execute_code":
            self.experiments += 1
        if result.is_error:
            return
        if name == "add_markdown":
            content = str(arguments.get("content", ""))
            if self.checkpoints.pending is not None:
                self._checkpoint_answered(content)
            elif looks_like_checkpoint(content):
                # Written unasked (as the autopilot does when exploration ends): still a
                # checkpoint for the checkpoint pane and for a person's approval.
                self._checkpoint_answered(content, volunteered=True)
        elif name == "conclude":
            answer, evidence = str(arguments["answer"]), str(arguments["evidence"])
            self._concluded(answer, float(arguments["confidence"]), evidence)

    def _note(self, blocks: list[dict[str, Any]]) -> None:
        """Tell the agent, with the next user message, what a person's cell did."""
        for block in blocks:
            self.conversation.pend(block)
        self._sync()

    def _cut_short(self) -> None:
        """Cancel the streaming turn and interrupt every running cell."""
        if self._turn_task is not None:
            self._turn_task.cancel()
        self.dispatcher.interrupt_cells()
        self.steering.poke()

    # -- conversation ----------------------------------------------------------------------

    def _compose(self, budget_notice: str | None, *, final: bool = False) -> Draft:
        """The next user message, with the queued person messages and a due checkpoint."""
        queued, due = self.steering.queued, self.checkpoints.due
        return self.conversation.compose(queued, due, budget_notice, final=final)

    def _commit(self, draft: Draft) -> None:
        """Append the drafted user message and consume what it carried."""
        self.conversation.commit(draft.blocks, draft.pending, delivered=draft.delivered)
        if draft.delivered:
            texts = self.steering.queued[: draft.delivered]
            del self.steering.queued[: draft.delivered]
            self._emit(MessageDelivered(texts=[t.removeprefix(PERSON_PREFIX) for t in texts]))
        if draft.checkpoint:
            number = self.checkpoints.sent(self.experiments)
            self._emit(CheckpointRequested(number=number, experiments=self.experiments))
        if draft.budget_notice:
            self._budget_turn = self.turns + 1

    def _commit_assistant(self, content: list[dict[str, Any]]) -> None:
        self.conversation.answer(content)
        self.turns += 1

    # -- boundaries, budgets, checkpoints ------------------------------------------------

    async def _boundary(self) -> None:
        """Save the step, then honour a stop, a pause or a checkpoint awaiting a person."""
        await self._flush()
        self._sync()
        while True:
            if self.steering.stopping:
                raise _Stop("interrupted", "stopped by the person")
            if self.steering.pause_reason is not None:
                await self._hold("paused", self.steering.pause_reason)
            elif self.checkpoints.awaiting is not None:
                await self._hold("waiting for checkpoint approval", "")
            else:
                return

    async def _hold(self, state: str, reason: str) -> None:
        """Wait, announced, until a control pokes the loop."""
        self._state = state
        self._dirty = True  # the new state is news even when no event says so
        if state == "paused":
            self._emit(Paused(reason=reason))
        self._sync()
        started = time.monotonic()
        await self.steering.wait()
        self._paused_total += time.monotonic() - started
        if state == "paused" and self.steering.pause_reason is None:
            self._emit(Resumed())
        self._state = "running"

    def _over_budget(self) -> str | None:
        config, usage = self.config, self.usage
        minutes = (self.elapsed - self._paused_total) / 60
        if config.max_turns is not None and self.turns >= config.max_turns:
            return f"{self.turns} of {config.max_turns} turns used"
        if config.max_cost_usd is not None and usage.cost_usd >= config.max_cost_usd:
            return f"${usage.cost_usd:.2f} of ${config.max_cost_usd:.2f} spent"
        if config.max_minutes is not None and minutes >= config.max_minutes:
            return f"{minutes:.1f} of {config.max_minutes:g} minutes used"
        return None

    def _checkpoint_answered(self, content: str, *, volunteered: bool = False) -> None:
        confirm = self.config.confirm_checkpoints
        if volunteered:
            number = self.checkpoints.volunteered(self.experiments, content, confirm=confirm)
        else:
            number = self.checkpoints.answered(content, confirm=confirm)
        self._emit(CheckpointAnswered(number=number, content=content, awaiting_approval=confirm))

    def _concluded(self, answer: str, confidence: float, evidence: str) -> None:
        self.conclusion = Concluded(answer=answer, confidence=confidence, evidence=evidence)
        self._emit(self.conclusion)

    # -- events, transcript, ending ------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds spent on this investigation, across resumes."""
        now = time.monotonic() - self._started if self._started is not None else 0.0
        return self._elapsed_before + now

    def _emit(self, event: Event) -> None:
        if not isinstance(event, Status):
            self._dirty = True
        self.transcript.event(event)
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:
                log.exception("event sink failed on %s", event.type)

    def _on_delta(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._partial.append(event.text)
        self._emit(event)

    def _steer(self, action: str, **fields: Any) -> None:
        self.transcript.write("steer", action=action, **fields)

    def _write_header(self) -> None:
        self.transcript.write_header(
            task=self.task,
            provider=self.provider.name,
            model=self.provider.model,
            config=dataclasses.asdict(self.config),
            notebook=self.notebook_path,
        )

    async def _flush(self) -> None:
        """Wait for the notebooks' background saves: a step is durable in both files."""
        try:
            await self.tools.flush()
        except Exception as exc:  # the tools tell the agent too; the transcript has every step
            message = f"The notebook could not be saved: {exc}"
            if message != self._save_error:
                self._emit(ErrorEvent(message=message))
            self._save_error = message
        else:
            self._save_error = None

    def _sync(self) -> None:
        """Record the counters, make the transcript durable, tell front ends.

        Skipped when nothing happened since the last time (back-to-back boundaries).
        """
        snapshot = self._snapshot()
        counters = {k: v for k, v in snapshot.items() if k != "elapsed"}
        if not self._dirty and counters == self._synced:
            return
        self._dirty, self._synced = False, counters
        self.transcript.write("state", state=snapshot)
        self.transcript.sync()
        usage = self.usage
        self._emit(
            Status(
                agent_state=self._state,
                turn=self.turns,
                input_tokens=usage.total_input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
                elapsed=self.elapsed,
                queued=len(self.steering.queued),
            )
        )

    def _snapshot(self) -> dict[str, Any]:
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

    def _finish(self, reason: StopReason, detail: str = "") -> Outcome:
        self._state = {"concluded": "concluded", "failed": "failed"}.get(reason, "stopped")
        self._emit(Stopped(reason=reason, detail=detail))
        self._sync()
        self.transcript.close()
        self.dispatcher.release()  # the tools may outlive this run
        done = self.conclusion if reason == "concluded" else None
        return Outcome(
            reason=reason,
            answer=done.answer if done else None,
            confidence=done.confidence if done else None,
            evidence=done.evidence if done else None,
            notebook_path=self.notebook_path,
            transcript_path=self.transcript.path,
            usage=self.usage,
            turns=self.turns,
            elapsed=self.elapsed,
            detail=detail,
        )

    # -- resuming --------------------------------------------------------------------------

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
        point = data.resume_point()
        if not point.notebook:
            raise ValueError(f"{data.path}: the run never opened a notebook; start it again")
        if config is None:
            saved = data.header.get("config", {})
            known = {f.name for f in dataclasses.fields(InvestigationConfig)}
            config = InvestigationConfig(**{k: v for k, v in saved.items() if k in known})
            config.retry_delays = tuple(config.retry_delays)
        investigation = cls(
            data.header["task"],
            provider,
            tools,
            config=config,
            transcript=Transcript(transcript_path),
        )
        state = point.state
        investigation._reopen = investigation.dispatcher.notebook_path = Path(point.notebook)
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
            raise _Stop("failed", f"cannot reopen {notebook}")
        self.conversation.pend(
            text_block(
                f"[scribe-tui] The investigation was resumed after scribe-tui stopped. "
                f"{result.text} Your notebook is open again as session '{self.session_id}': use "
                f"session_id='{self.session_id}' from now on (earlier session ids no longer "
                "work). Variables from the notebook's cells exist again; nothing else does."
            )
        )
