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
:mod:`scribe_tui.agent.conversation`; asking the provider (retries, cancellation) is
:mod:`scribe_tui.agent.turn`; events and state records, :mod:`scribe_tui.agent.reporter`;
limits and the outcome, :mod:`scribe_tui.agent.run_config`; the recorded state and
rebuilding a run from it, :mod:`scribe_tui.agent.resume`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
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
from scribe_tui.agent.provider import Provider, TurnRequest, TurnResult, Usage
from scribe_tui.agent.reporter import Reporter
from scribe_tui.agent.resume import Resumable
from scribe_tui.agent.run_config import InvestigationConfig, Outcome, Stop, StopReason, over_budget
from scribe_tui.agent.steering import PERSON_PREFIX, Steering, person_message
from scribe_tui.agent.transcript import Transcript
from scribe_tui.agent.turn import TurnAsker
from scribe_tui.events import (
    CheckpointAnswered,
    CheckpointDecided,
    CheckpointRequested,
    Concluded,
    ErrorEvent,
    MessageDelivered,
    MessageQueued,
    Paused,
    Resumed,
    Stopped,
    TurnFinished,
    TurnStarted,
)
from scribe_tui.tools import NotebookTools, ToolResult

__all__ = [
    "CUT_OFF",
    "Investigation",
    "InvestigationConfig",
    "Outcome",
    "StopReason",
    "parse_final_answer",
    "system_prompt",
]

log = logging.getLogger(__name__)

CUT_OFF = (
    "Your turn was cut off at max_tokens; nothing ran. "
    "Split the work into smaller cells and call the tools again."
)
CUT_OFF_TEXT = "Your turn was cut off at max_tokens. Go on, in smaller steps."
REPEATED_FAILURES = 3
"""The same call failing the same way this many times in a row is a loop: the run fails."""


class Investigation(Resumable):
    """One investigation run; implements :class:`~scribe_tui.agent.controls.InvestigationControls`.

    The investigation (through its :class:`~scribe_tui.agent.dispatch.Dispatcher`) takes
    over ``tools.on_event`` (a handler already there is still called): front ends should
    :meth:`subscribe` instead. Calling :meth:`pause` before
    :meth:`run` starts the run paused. The caller owns ``tools`` and closes them.
    """

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
        self._system = system_prompt(task, methodology=self.config.methodology)
        # The task goes out with the first turn; it is not pending in the transcript.
        self.conversation.pending.append(text_block(first_message(task)))
        self.reporter = Reporter(self.transcript)
        self._emit = self.reporter.emit
        self._steer = self.reporter.steer
        self.asker = TurnAsker(provider, self.steering, self._emit)
        self._budget_turn: int | None = None  # the turn that answered the budget notice
        self._empty_turns = 0
        self._failing: tuple[str, str, str] | None = None
        self._failures = 0
        self._elapsed_before = 0.0
        self._paused_total = 0.0
        self._started: float | None = None
        self._reopen: Path | None = None
        self._fork_origin: tuple[str, int] | None = None  # set when a fork first starts
        self._state = "starting"
        self.sandbox = ""  # the front ends' "sandbox: ..." label, set by whoever seals the kernel
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
        self.reporter.subscribe(sink)

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
        except Stop as stop:
            await self.reporter.flush(self.tools)
            return self._finish(stop.reason, stop.detail)
        except asyncio.CancelledError:
            self._finish("interrupted", "cancelled")
            raise
        except Exception as exc:  # a failure anywhere must still end with an outcome
            log.exception("investigation failed")
            message = f"{type(exc).__name__}: {exc}"
            self._emit(ErrorEvent(message=message, fatal=True))
            await self.reporter.flush(self.tools)
            return self._finish("failed", message)

    async def _step(self) -> None:
        """One turn: ask, then act on the answer."""
        over = self._over_budget()
        if over and self._budget_turn is not None and self.turns >= self._budget_turn:
            raise Stop("budget", over)
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
        result = await self.asker.ask(request, self.config.retry_delays)
        if result is not None:
            self._commit(draft)
            self._commit_assistant(result.content or [text_block("(empty answer)")])
            self.usage += result.usage
            self.transcript.write("usage", turn=number, usage=dataclasses.asdict(result.usage))
            self._emit(TurnFinished(turn=number, stop_reason=result.stop_reason))
            await self._boundary()
            return result
        # Cut short by the person: keep what was said, as text only, and tell the agent.
        self._emit(TurnFinished(turn=number, stop_reason="interrupted"))
        said = self.asker.partial
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
                arguments, result, cell = await self.dispatcher.agent_call(
                    block,
                    self.config.experiment,
                    person_named=self.config.experiment_by_person,
                )
                self._after_call(block["name"], arguments, result)
                self.conversation.pend(result_block(block["id"], result), cell=cell)
                self._stop_repeated_failure(block["name"], arguments, result)
                await self._boundary()
        if self.conclusion is not None:
            self._commit(self._compose(None, final=True))
            raise Stop("concluded")

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
            raise Stop("failed", "refusal")
        if not said:
            self._empty_turns += 1
            if self._empty_turns >= 2:
                self._emit(ErrorEvent(message="The agent stopped without an answer.", fatal=True))
                raise Stop("failed", "no answer")
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
        raise Stop("concluded")

    # -- tool calls ----------------------------------------------------------------------

    def _after_call(self, name: str, arguments: Mapping[str, Any], result: ToolResult) -> None:
        """Count an experiment; take in a checkpoint written as markdown, or a conclusion."""
        if name == "execute_code":
            self.experiments += 1
        if result.is_error:
            return
        if name == "add_markdown":
            content = str(arguments.get("content", ""))
            if not looks_like_checkpoint(content):
                return  # a note, not the checkpoint (e.g. the agent answering the person)
            if self.checkpoints.pending is not None:
                self._checkpoint_answered(content)
            else:
                # Written unasked (as the autopilot does when exploration ends): still a
                # checkpoint for the checkpoint pane and for a person's approval.
                self._checkpoint_answered(content, volunteered=True)
        elif name == "conclude":
            answer, evidence = str(arguments["answer"]), str(arguments["evidence"])
            self._concluded(answer, float(arguments["confidence"]), evidence)

    def _stop_repeated_failure(
        self, name: str, arguments: Mapping[str, Any], result: ToolResult
    ) -> None:
        """Fail the run when one call keeps failing identically: retrying cannot help."""
        if not result.is_error:
            self._failing, self._failures = None, 0
            return
        key = (name, json.dumps(arguments, sort_keys=True, default=str), result.text)
        self._failures = self._failures + 1 if key == self._failing else 1
        self._failing = key
        if self._failures >= REPEATED_FAILURES:
            first_line = (result.text.strip().splitlines() or ["no message"])[0]
            message = f"{name} failed {self._failures} times in a row the same way: {first_line}"
            self._emit(ErrorEvent(message=message, fatal=True))
            raise Stop("failed", message)

    def _note(self, blocks: list[dict[str, Any]]) -> None:
        """Tell the agent, with the next user message, what a person's cell did."""
        for block in blocks:
            self.conversation.pend(block)
        self._sync()

    def _cut_short(self) -> None:
        """Cancel the streaming turn and interrupt every running cell."""
        self.asker.cancel()
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
        await self.reporter.flush(self.tools)
        self._sync()
        while True:
            if self.steering.stopping:
                raise Stop("interrupted", "stopped by the person")
            if self.steering.pause_reason is not None:
                await self._hold("paused", self.steering.pause_reason)
            elif self.checkpoints.awaiting is not None:
                await self._hold("waiting for checkpoint approval", "")
            else:
                return

    async def _hold(self, state: str, reason: str) -> None:
        """Wait, announced, until a control pokes the loop."""
        self._state = state
        self.reporter.dirty = True  # the new state is news even when no event says so
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
        minutes = (self.elapsed - self._paused_total) / 60
        return over_budget(self.config, self.turns, self.usage, minutes)

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

    # -- time, ending ----------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds spent on this investigation, across resumes."""
        now = time.monotonic() - self._started if self._started is not None else 0.0
        return self._elapsed_before + now

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
