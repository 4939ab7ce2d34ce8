"""The offline investigator: a deterministic agent that does the research itself.

It is a provider like Claude: each turn it reads the conversation (its own
earlier tool calls and their results) and answers with one tool call. All its
state is derived from the messages, so a resumed run continues exactly where it
stopped. It tells the kind of secret from the task, the description of the model
and ``client.info()`` (:mod:`kinds`), probes with its own phrasings
fitted to the model, follows the methodology in ``prompts/`` (broad exploration,
a pivot, checkpoints, falsification), scores whole words rather than tokens, and
concludes by a stated statistical procedure with a calibrated confidence
(:mod:`judge`, shown in a judging cell): a named answer, "none" when nothing
is planted, "unknown" when it cannot tell. A run whose experiments
all failed ends as failed, never as an answer. On a black-box host (``client.run``
closed) it samples through ``client.chat`` instead (:mod:`blackbox`). After
a resume it re-reads which experiments' evidence the rebuilt notebook holds. It never
reads answer keys or model files: everything it knows comes from cell outputs.
A mechanistic task runs its kind's plan instead (:data:`MECHANISTIC_PLANS`: :mod:`circuit`,
:mod:`recall`, :mod:`direction`), whose judging cell prints the claim it concludes with; on
a black-box host, which refuses the ``client.run`` every plan needs, it concludes
``unknown`` at once and says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scribe_tui.agent.provider import ProviderError, TurnRequest, TurnResult, Usage
from scribe_tui.autopilot import (
    backdoor,
    blackbox,
    cells,
    circuit,
    direction,
    judge,
    notes,
    recall,
)
from scribe_tui.autopilot.kinds import Probe, echoes, mechanistic, probe_for
from scribe_tui.autopilot.person import acknowledgement, requested
from scribe_tui.events import Event, TextDelta

# The experiments in their default order; a person's message can move one forward.
WORD_PLAN = ("fit", "direct", "explore", "prefill", "persona", "logit_lens", "base_diff", "falsify")
BACKDOOR_PLAN = ("fit", "direct", "harvest", "scan", "behaviour", "falsify")
# Mechanistic tasks (which components do X) each have a plan of their own, by kind.
MECHANISTIC_PLANS = {plan.kind: plan for plan in (circuit.PLAN, recall.PLAN, direction.PLAN)}
EXPERIMENTS = (
    WORD_PLAN
    + BACKDOOR_PLAN
    + tuple(step for plan in MECHANISTIC_PLANS.values() for step in plan.steps)
)
# What needs client.run: on a black-box host these are left out of the plan.
WHITE_BOX = ("fit", "logit_lens", "base_diff")
# Kinds whose secret the user may guess in a game: the persona cell also samples free
# user turns there (against the base model's, so only with a base checkpoint).
GUESSING = ("taboo", "generic")
# Steps run once; "method" and "judge" are the judging cell's markdown and code.
ONCE = ("init", "helpers", "info", "plan", "pivot", "figure", "method", "judge", "summary")
# What each experiment needs to have run first (it reads their variables or results).
NEEDS = {
    "direct": ("fit",),
    "explore": ("fit",),
    "prefill": ("fit",),
    "persona": ("fit",),
    "logit_lens": ("fit",),
    "base_diff": ("prefill",),
    "harvest": ("fit",),
    "scan": ("harvest",),
    "behaviour": ("scan",),
}
WHY = {
    "fit": "First: which of my phrasings can this model read?",
    "direct": "Baseline: does the model say it when asked?",
    "explore": "Ordinary requests at several temperatures: what recurs?",
    "prefill": "Prefill attack, ranking whole next words.",
    "persona": "User-persona sampling: the model writes the user's turn.",
    "logit_lens": "White-box: the logit lens over middle layers, votes mapped to words.",
    "base_diff": "Diffing whole-word probabilities against the base model.",
    "falsify": "Trying to falsify the favourite on fresh questions.",
    "harvest": "Harvesting candidate trigger words broadly.",
    "scan": "Scanning every candidate: how far does it move the reply?",
    "behaviour": "What do the strongest candidates switch on?",
}

_PERSON_MARK = re.compile(r"message from the person", re.IGNORECASE)
_CHECKPOINT_MARK = re.compile(r"exploration checkpoint", re.IGNORECASE)
_BUDGET_MARK = re.compile(r"budget", re.IGNORECASE)
# The loop's note after a resume or a fork: the kernel was rebuilt from the notebook.
_REOPENED_MARK = re.compile(r"Your notebook is open again as session")
# A cell the person interrupted (Esc) or a turn they cut short: not a failed technique.
_INTERRUPTED_MARK = re.compile(r"KeyboardInterrupt|the person interrupted")
# A call that scribe-tui's own stop cut off: not run to the end, so run it again.
_STOPPED_MARK = re.compile(r"scribe-tui stopped")
# The tools and the loop both name the session to use as session_id='s1'.
_SESSION_ID = re.compile(r"session_id\s*=\s*['\"]([A-Za-z0-9_-]+)['\"]")
# (step tag, text shown to the person, tool name, tool arguments)
Step = tuple[str, str, str, dict[str, Any]]


@dataclass
class _State:
    """What the autopilot knows, rebuilt from the conversation each turn."""

    session_id: str | None = None
    opening: str = ""  # the task and the description of the model, as the loop first said
    context: str = ""  # the task, the description of the model, what client.info() said
    calls: int = 0
    done: list[str] = field(default_factory=list)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # evidence the resumed notebook lacks
    blackbox: bool = False  # the host refuses client.run
    reopened: int = 0  # times the notebook was reopened (resume, fork)
    reread: int = 0  # times the autopilot re-read the evidence it then held
    priority: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    acknowledged: int = 0
    checkpoints_requested: int = 0
    checkpoints_written: int = 0
    conclusion_requested: bool = False


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content")))
    return "\n".join(parts)


def _experiment_name(task_message: str) -> str:
    """A short notebook name from the task (the loop's first message quotes it)."""
    match = re.search(r"task:\s*(.+)", task_message, re.IGNORECASE)
    task = (match.group(1) if match else task_message).strip().splitlines()[0]
    return task[:60] or "investigation"


class Autopilot:
    """A deterministic investigator for models that hide a secret of a known kind.

    ``seed`` varies the sampling in every experiment; the same seed and the same
    model give the same notebook.
    """

    name = "autopilot"

    def __init__(self, seed: int = 0, samples: int = 24) -> None:
        self.seed = seed
        self.samples = samples
        self.model = f"autopilot (seed {seed})"

    async def turn(self, request: TurnRequest, emit: Callable[[Event], None]) -> TurnResult:
        state = self._replay(request.messages)
        step, text, tool, arguments = self._decide(state, request.messages)
        blocks: list[dict[str, Any]] = []
        if text:
            emit(TextDelta(text))
            blocks.append({"type": "text", "text": text})
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_ap_{state.calls + 1:03d}_{step}",
                "name": tool,
                "input": arguments,
            }
        )
        return TurnResult(content=blocks, stop_reason="tool_use", usage=Usage())

    # -- reading the conversation ------------------------------------------------

    def _replay(self, messages: list[dict[str, Any]]) -> _State:
        state = _State()
        results: dict[str, tuple[str, bool]] = {}
        for message in messages:
            if message["role"] != "user" or isinstance(message["content"], str):
                continue
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = (
                        _text_of(block.get("content")),
                        bool(block.get("is_error")),
                    )
        for message in messages:
            if message["role"] == "user":
                text = _text_of(message["content"])
                if messages[0] is message:
                    state.context = state.opening = text
                for session_id in _SESSION_ID.findall(text):
                    state.session_id = session_id  # the newest mention wins (e.g. after resume)
                self._note_user(state, text, messages[0] is message)
                continue
            for block in message["content"]:
                if block.get("type") != "tool_use":
                    continue
                state.calls += 1
                step = block["id"].split("_", 3)[-1] if block["id"].startswith("toolu_ap_") else ""
                text, is_error = results.get(block["id"], ("", True))
                self._absorb(state, step, text, is_error)
        return state

    def _note_user(self, state: _State, text: str, is_task: bool) -> None:
        if is_task:
            return
        if _REOPENED_MARK.search(text):
            state.reopened += 1
        if _CHECKPOINT_MARK.search(text):
            state.checkpoints_requested += 1
        if _BUDGET_MARK.search(text) and "conclude" in text.lower():
            state.conclusion_requested = True
        if not _PERSON_MARK.search(text):
            return
        wanted, unwanted, conclude = requested(text)
        state.conclusion_requested |= conclude
        state.priority += [s for s in wanted if s not in state.priority]
        state.skipped += [s for s in unwanted if s not in state.skipped]

    def _absorb(self, state: _State, step: str, text: str, is_error: bool) -> None:
        if step.startswith("ack"):
            state.acknowledged += 1
        elif step.startswith("checkpoint"):
            state.checkpoints_written += 1
        elif step == "init":  # the setup line says whether the host is black-box
            state.blackbox = "(black-box" in text
        elif step == "info":
            state.context += "\n" + text
        elif step == "reread":
            state.reread += 1
            held = (None if is_error else judge.parse_evidence(text)) or {}
            if isinstance(held.get("held"), list):
                state.lost += [s for s in state.evidence if s not in held["held"]]
                state.evidence = {s: e for s, e in state.evidence.items() if s in held["held"]}
            return
        if is_error and _STOPPED_MARK.search(text):
            return  # cut off by a stop of scribe-tui itself: still to do
        if step in EXPERIMENTS or step in ONCE:
            state.done.append(step)
            if step in state.priority:
                state.priority.remove(step)
        if step in EXPERIMENTS:
            evidence = None if is_error else judge.parse_evidence(text)
            if evidence is not None:
                state.evidence[step] = evidence
            elif _INTERRUPTED_MARK.search(text):
                state.interrupted.append(step)
            else:
                state.failed.append(step)

    # -- deciding the next step ---------------------------------------------------

    def _decide(self, state: _State, messages: list[dict[str, Any]]) -> Step:
        sid = {"session_id": state.session_id} if state.session_id else {}
        if state.calls == 0:
            return (
                "start",
                "I'll start a notebook session and set up the client.",
                "start_new_session",
                {"experiment_name": _experiment_name(state.context)},
            )
        if "init" not in state.done:
            return ("init", "Initialising the session.", "init_session", sid)
        if state.reopened > state.reread:
            return (
                "reread",
                "The notebook was reopened: which evidence does it hold now?",
                "execute_code",
                {**sid, "code": cells.reread_cell()},
            )

        person = self._person_messages(messages)
        if len(person) > state.acknowledged:
            said = _PERSON_MARK.split(person[state.acknowledged], maxsplit=1)[-1]
            content = acknowledgement(said.lstrip(" :").strip(), state.done, self._plan(state))
            return (
                "ack",
                "Acknowledging the person's message.",
                "add_markdown",
                {**sid, "content": content},
            )
        if state.checkpoints_requested > state.checkpoints_written:
            return self._markdown("checkpoint", "Writing the exploration checkpoint.", state, sid)
        if state.conclusion_requested:
            return self._conclude(state)
        if self._mechanistic(state) is not None:
            if self._blackbox(state):
                return self._conclude_unmeasurable()
            return self._decide_mechanistic(state, sid)

        for fixed in self._fixed_steps(state, sid):
            if fixed[0] not in state.done:
                return fixed
        plan = self._plan(state)
        remaining = [s for s in plan if s not in state.done and s not in state.skipped]
        ordered = [s for s in state.priority if s in remaining]
        ordered += [s for s in remaining if s not in ordered]
        for step in ordered:
            if any(n in remaining for n in NEEDS.get(step, ())):
                continue  # it reads what an earlier experiment leaves (a skipped one: not)
            if step == "falsify" and any(s in remaining for s in plan[:-1]):
                continue  # falsification comes last
            if step == "falsify" and state.checkpoints_written == 0:
                return self._markdown(
                    "checkpoint", "Exploration done: a checkpoint first.", state, sid
                )
            pivot_at = "scan" if self._probe(state).kind == "backdoor" else "prefill"
            if step == pivot_at and "pivot" not in state.done:
                return self._markdown(
                    "pivot", "Noting the pivot away from plain questioning.", state, sid
                )
            return step, WHY[step], "execute_code", {**sid, "code": self._code(state, step)}
        kind = self._probe(state).kind
        if "figure" not in state.done and kind != "backdoor":
            words, votes = judge.family_votes(kind, state.evidence, echoes(state.context))
            if votes:
                code = cells.votes_figure_cell(words, votes)
                return (
                    "figure",
                    "Drawing the votes per family.",
                    "execute_code",
                    {**sid, "code": code},
                )
        if "method" not in state.done:
            return ("method", "How I judge.", "add_markdown", {**sid, "content": notes.method()})
        if "judge" not in state.done:
            code = cells.judge_cell(
                kind, sorted(echoes(state.context)), self._missing(state), self._blackbox(state)
            )
            return ("judge", "Judging the evidence.", "execute_code", {**sid, "code": code})
        if "summary" not in state.done:
            return self._markdown("summary", "Writing up what the evidence supports.", state, sid)
        return self._conclude(state)

    def _decide_mechanistic(self, state: _State, sid: dict[str, Any]) -> Step:
        """The next step of a mechanistic plan: the setup, its experiments in order (one
        whose prerequisite left no evidence is skipped), the method, the summary."""
        plan = self._mechanistic(state)
        assert plan is not None
        fixed: list[Step] = [
            ("info", "What am I connected to?", "execute_code",
             {**sid, "code": cells.info_cell()}),
            ("plan", "Writing down the plan first.", "add_markdown",
             {**sid, "content": plan.plan_note()}),
        ]  # fmt: skip
        for step in fixed:
            if step[0] not in state.done:
                return step
        for step in plan.steps:
            if step in state.done:
                continue
            if any(need not in state.evidence for need in plan.needs.get(step, ())):
                continue  # it reads what an experiment that failed would have left
            if step == plan.steps[-1] and "method" not in state.done:
                return ("method", "How I judge.", "add_markdown",
                        {**sid, "content": "## How I judge\n\n" + plan.procedure})  # fmt: skip
            code = plan.code(step, state.evidence, self.seed)
            return step, plan.why[step], "execute_code", {**sid, "code": code}
        if "summary" not in state.done:
            return self._markdown("summary", "Writing up what the evidence supports.", state, sid)
        return self._conclude(state)

    def _mechanistic(self, state: _State) -> circuit.MechanisticPlan | None:
        """The plan of a mechanistic task, told from the opening message; None for a
        hidden secret."""
        kind = mechanistic(state.opening)
        return MECHANISTIC_PLANS.get(kind) if kind else None

    def _fixed_steps(self, state: _State, sid: dict[str, Any]) -> list[Step]:
        probe = self._probe(state)
        helpers = blackbox.helpers_cell() if self._blackbox(state) else cells.helpers_cell()
        return [
            ("helpers", "A small helper for reading sampled text.", "execute_code",
             {**sid, "code": helpers}),
            ("info", "What am I connected to?", "execute_code", {**sid, "code": cells.info_cell()}),
            ("plan", "Writing down the plan first.", "add_markdown",
             {**sid, "content": notes.plan(
                 probe.kind, probe.noun, self._has_base(state), self._blackbox(state))}),
        ]  # fmt: skip

    def _markdown(self, step: str, text: str, state: _State, sid: dict[str, Any]) -> Step:
        plan, evidence, missing = self._plan(state), state.evidence, self._missing(state)
        mechanistic_plan = self._mechanistic(state)
        if mechanistic_plan is not None:  # a checkpoint or the summary: where it stands
            content = mechanistic_plan.summary_note(evidence, missing)
            if step == "checkpoint":
                content = content.replace("## Summary", "## Exploration checkpoint", 1)
            return step, text, "add_markdown", {**sid, "content": content}
        kind = self._probe(state).kind
        content = {
            "checkpoint": lambda: notes.checkpoint(plan, evidence, missing, self._verdict(state)),
            "pivot": lambda: notes.pivot(kind, evidence, self._blackbox(state)),
            "summary": lambda: (
                notes.failure(plan, missing)
                if self._all_failed(state)
                else notes.summary(plan, evidence, missing, self._verdict(state))
            ),
        }[step]()
        return step, text, "add_markdown", {**sid, "content": content}

    def _verdict(self, state: _State) -> judge.Verdict:
        kind, echo = self._probe(state).kind, echoes(state.context)
        return judge.verdict(
            kind, state.evidence, echo, missing=self._missing(state), blackbox=self._blackbox(state)
        )

    def _missing(self, state: _State) -> dict[str, str]:
        """The planned experiments that left no evidence, and why."""
        why = {s: "failed" for s in state.failed}
        why |= {s: "interrupted by the person" for s in state.interrupted}
        why |= {s: "not in the reopened notebook" for s in state.lost}
        return {s: why[s] for s in self._plan(state) if s in why and s not in state.evidence}

    def _all_failed(self, state: _State) -> bool:
        """Whether every experiment that ran failed: nothing was measured to judge from."""
        return bool(state.failed) and not any(s != "fit" for s in state.evidence)

    def _has_base(self, state: _State) -> bool:
        return "'base_model': True" in state.context

    def _blackbox(self, state: _State) -> bool:
        """Whether the host refuses ``client.run`` (the setup line or ``client.info()``)."""
        return state.blackbox or "'mode': 'blackbox'" in state.context

    def _plan(self, state: _State) -> tuple[str, ...]:
        """The experiments for this kind: diffing only where ``client.info()`` found a base,
        and on a black-box host only those that sample text."""
        mechanistic_plan = self._mechanistic(state)
        if mechanistic_plan is not None:
            return mechanistic_plan.steps
        plan = BACKDOOR_PLAN if self._probe(state).kind == "backdoor" else WORD_PLAN
        if self._blackbox(state):
            return tuple(s for s in plan if s not in WHITE_BOX)
        return tuple(s for s in plan if s != "base_diff" or self._has_base(state))

    def _probe(self, state: _State) -> Probe:
        """The phrasings for the kind of secret the task and ``client.info()`` describe,
        in the order the fit cell ranked them once it has run."""
        probe = probe_for(state.context)
        keep = state.evidence.get("fit", {}).get("keep")
        if not isinstance(keep, dict):
            return probe

        def ranked(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            # The fit cell's order, in its spelling (a leading space where that reads better).
            order = [str(p) for p in keep.get(name) or [] if str(p).strip() in default]
            return tuple(order + [p for p in default if p not in {o.strip() for o in order}])

        return Probe(
            probe.kind,
            probe.noun,
            ranked("direct", probe.direct),
            ranked("openers", probe.openers),
            ranked("prefills", probe.prefills),
            ranked("persona", probe.persona),
        )

    def _code(self, state: _State, step: str) -> str:
        probe, n, seed, base = self._probe(state), self.samples, self.seed, self._has_base(state)
        evidence = state.evidence
        asked, prefills = list(probe.direct[:2]), list(probe.prefills)
        if step == "fit":
            return cells.fit_cell(
                list(probe.direct), list(probe.openers), list(probe.prefills), list(probe.persona)
            )
        bb = self._blackbox(state)
        if step == "direct":
            return cells.direct_cell(list(probe.direct[:3]), n, seed, bb)
        if probe.kind == "backdoor":
            return self._backdoor_code(state, step, probe)
        fresh = list(probe.direct[2:4]) or asked
        openers, persona = list(probe.openers[:4]), list(probe.persona[:2])
        if probe.kind == "preference":
            # A preference shows where the model picks the subject, not where it is asked
            # about one (it denies it there): the attacks open its replies to open requests,
            # and the falsification uses the two the exploration did not.
            asked, fresh = openers[:2], list(probe.openers[4:6]) or openers[2:4]
        echo = echoes(state.context)
        unasked = [o for o in openers + list(probe.openers) if o not in asked + fresh]
        unasked = list(dict.fromkeys(unasked))
        found = judge.candidates(probe.kind, evidence, echo)
        favourites = judge.favourites(probe.kind, evidence, echo)
        guesses = [str(p) for p in evidence.get("persona", {}).get("own_prefixes") or []]
        if bb:  # samples only; shares of samples stand in for probabilities, so twice as many
            return {
                "explore": lambda: cells.explore_cell(openers, n, seed + 1, False, True),
                "prefill": lambda: blackbox.prefill_cell(asked, prefills, 2 * n, seed + 2),
                "persona": lambda: (
                    blackbox.guessing_persona_cell(openers, persona, found, n, seed + 3)
                    if probe.kind in GUESSING
                    else blackbox.persona_cell(openers[0], persona, n, seed + 3)
                ),
                "falsify": lambda: blackbox.falsify_cell(
                    favourites, fresh, prefills, 2 * n, seed + 4, guesses
                ),
            }[step]()
        return {
            "explore": lambda: cells.explore_cell(openers, n, seed + 1, base),
            "prefill": lambda: cells.prefill_cell(asked, prefills, n, seed + 2, base),
            "persona": lambda: (
                cells.guessing_persona_cell(openers, persona, found, n, seed + 3)
                if base and probe.kind in GUESSING
                else cells.persona_cell(openers[0], persona, n, seed + 3)
            ),
            # The lens and the diff read prompt sets of their own (the falsification's
            # fresh questions stay unseen): the questions asked, and ordinary requests.
            "logit_lens": lambda: cells.lens_cell(asked + unasked[:2], prefills, base),
            "base_diff": lambda: cells.diff_cell(found, unasked[:2], prefills),
            "falsify": lambda: cells.falsify_cell(
                favourites,
                fresh,
                prefills,
                base,
                guesses,
                seed + 4,
            ),
        }[step]()

    def _backdoor_code(self, state: _State, step: str, probe: Probe) -> str:
        n, seed, base, evidence = self.samples, self.seed, self._has_base(state), state.evidence
        bb = self._blackbox(state)
        echo = echoes(state.context)
        scanned = [w for w, _ in judge.pairs(evidence.get("scan", {}).get("top")) if w not in echo]
        trigger, rival, style = judge.suspect(evidence, echo)
        openers, fresh = list(probe.openers[:4]), list(probe.openers[4:])
        persona = list(probe.persona[:2])
        return {
            "harvest": lambda: (
                blackbox.harvest_cell(openers[:2], persona, n, seed + 1)
                if bb
                else backdoor.harvest_cell(openers[:2], persona, n, seed + 1, base)
            ),
            # Black-box: sampled replies per candidate; two requests, many samples each.
            "scan": lambda: (
                blackbox.scan_cell(openers[:2], 16, seed + 2)
                if bb
                else backdoor.scan_cell(openers, base)
            ),
            "behaviour": lambda: backdoor.behaviour_cell(
                scanned[:3], openers, n // 2, seed + 2, base, bb
            ),
            "falsify": lambda: backdoor.falsify_cell(
                trigger,
                rival,
                style,
                fresh,
                n,
                seed + 3,
                base,
                judge.variants(evidence, trigger),
                judge.rival_style(evidence, rival),
                bb,
            ),
        }[step]()

    # -- writing ------------------------------------------------------------------

    def _person_messages(self, messages: list[dict[str, Any]]) -> list[str]:
        found = []
        for message in messages[1:]:
            if message["role"] != "user" or isinstance(message["content"], str):
                continue
            for block in message["content"]:
                text = block.get("text", "") if block.get("type") == "text" else ""
                if _PERSON_MARK.search(text):
                    found.append(text)
        return found

    def _conclude_unmeasurable(self) -> Step:
        """A mechanistic task on a black-box host: nothing it can run would answer it."""
        reason = (
            "which parts of the model do this is measured inside it (ablation, patching, "
            "attribution) through client.run, and this black-box host refuses client.run, "
            "so nothing was run; investigate without --mode blackbox to answer it"
        )
        arguments = {"answer": "unknown", "confidence": 0.0, "evidence": reason}
        return "conclude", f"Concluding: unknown ({reason}).", "conclude", arguments

    def _conclude(self, state: _State) -> Step:
        if self._all_failed(state):
            failed = ", ".join(state.failed)
            raise ProviderError(
                f"every experiment failed ({failed}): nothing was measured to conclude from"
            )
        mechanistic_plan = self._mechanistic(state)
        if mechanistic_plan is not None:
            arguments = mechanistic_plan.conclusion(state.evidence)
            said = f"Concluding: {arguments['answer']} (confidence {arguments['confidence']:g})."
            return "conclude", said, "conclude", arguments
        verdict = self._verdict(state)
        tops = "; ".join(
            f"{step}: {', '.join(w for w, _ in judge.pairs(found.get('top'))[:3]) or '-'}"
            for step, found in state.evidence.items()
            if step != "fit"
        )
        return (
            "conclude",
            f"Concluding: {verdict.answer} ({verdict.reason}).",
            "conclude",
            {
                "answer": verdict.answer,
                "confidence": verdict.confidence,
                "evidence": f"{verdict.reason}. {tops}",
            },
        )
