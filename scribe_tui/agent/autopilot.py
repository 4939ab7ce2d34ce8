"""The offline investigator: a deterministic agent that does the research itself.

It is a provider like Claude: each turn it reads the conversation (its own
earlier tool calls and their results) and answers with one tool call. All its
state is derived from the messages, so a resumed run continues exactly where it
stopped. It follows the methodology in ``prompts/``: broad black-box
exploration, then prefill and next-token ranking, persona sampling, a logit
lens pooled over many samples, a falsification check on the leading
candidates, checkpoints when asked, and a conclusion whose confidence is the
techniques' agreement. It never reads answer keys or model files: everything it
knows comes from cell outputs.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scribe_tui.agent import autopilot_cells as cells
from scribe_tui.agent.provider import TurnRequest, TurnResult, Usage
from scribe_tui.events import Event, TextDelta

# How much each technique's top candidate counts towards the answer. Hints name
# words *associated* with the secret, and direct answers are refusals, so they
# only help when nothing else speaks.
TECHNIQUE_WEIGHTS = {
    "prefill": 1.0,
    "ranking": 1.0,
    "persona": 1.0,
    "logit_lens": 1.0,
    "candidates": 1.0,
    "base_diff": 1.0,
    "direct": 0.25,
    "hints": 0.0,
}

# The experiments in their default order; a person's message can move one forward.
PLAN = (
    "direct", "hints", "prefill", "ranking", "persona", "logit_lens", "base_diff", "candidates",
)  # fmt: skip

# Words in a person's message that map to an experiment the autopilot can run.
REDIRECT_KEYWORDS = {
    "prefill": ("prefill", "pre-fill", "start its answer"),
    "ranking": ("rank", "probabilit", "next-token", "next token"),
    "persona": ("persona", "user turn", "user's turn"),
    "logit_lens": ("logit lens", "logit-lens", "lens", "residual", "white-box", "white box"),
    "base_diff": ("base model", "diff", "fine-tun", "before training"),
    "direct": ("ask directly", "direct question"),
    "hints": ("hint", "temperature", "sampl"),
}
CONCLUDE_WORDS = ("conclude", "wrap up", "finish", "stop now", "final answer")

_PERSON_MARK = re.compile(r"message from the person", re.IGNORECASE)
_CHECKPOINT_MARK = re.compile(r"exploration checkpoint", re.IGNORECASE)
_BUDGET_MARK = re.compile(r"budget", re.IGNORECASE)
# (step tag, text shown to the person, tool name, tool arguments)
Step = tuple[str, str, str, dict[str, Any]]

# The tools and the loop both name the session to use as session_id='s1'.
_SESSION_ID = re.compile(r"session_id\s*=\s*['\"]([A-Za-z0-9_-]+)['\"]")


@dataclass
class _State:
    """What the autopilot knows, rebuilt from the conversation each turn."""

    session_id: str | None = None
    context: str = ""  # the task and what client.info() said: which kind of secret
    calls: int = 0
    done: list[str] = field(default_factory=list)
    evidence: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    acknowledged: int = 0
    checkpoints_requested: int = 0
    checkpoints_written: int = 0
    conclusion_requested: bool = False
    concluded: bool = False


def parse_evidence(text: str) -> dict[str, Any] | None:
    """The last ``{'technique': ...}`` dict printed in a cell's output, if any."""
    start = text.rfind("{'technique'")
    if start < 0:
        return None
    tail = text[start:]
    for end in range(len(tail), 0, -1):
        if tail[end - 1] != "}":
            continue
        try:
            value = ast.literal_eval(tail[:end])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        return value if isinstance(value, dict) else None
    return None


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


def _top_words(value: Any) -> list[tuple[str, float]]:
    pairs = []
    for item in value or []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            try:
                pairs.append((item[0].lower(), float(item[1])))
            except (TypeError, ValueError):
                continue
    return pairs


class Autopilot:
    """A deterministic investigator for models that hide a one-word secret.

    ``seed`` varies the sampling in every experiment; the same seed and the same
    model give the same notebook.
    """

    name = "autopilot"

    def __init__(self, seed: int = 0, samples: int = 24, probe: cells.Probe | None = None) -> None:
        self.seed = seed
        self.samples = samples
        self.probe = probe
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
                    state.context = text
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
                self._absorb(state, step, block, text, is_error)
        return state

    def _note_user(self, state: _State, text: str, is_task: bool) -> None:
        if is_task:
            return
        lowered = text.lower()
        if _CHECKPOINT_MARK.search(text):
            state.checkpoints_requested += 1
        if _BUDGET_MARK.search(text) and "conclude" in lowered:
            state.conclusion_requested = True
        if not _PERSON_MARK.search(text):
            return
        if any(w in lowered for w in CONCLUDE_WORDS):
            state.conclusion_requested = True
        for step, words in REDIRECT_KEYWORDS.items():
            if any(w in lowered for w in words) and step not in state.priority:
                state.priority.append(step)

    def _absorb(
        self, state: _State, step: str, block: dict[str, Any], text: str, is_error: bool
    ) -> None:
        name = block["name"]
        if step.startswith("ack"):
            state.acknowledged += 1
        elif step.startswith("checkpoint"):
            state.checkpoints_written += 1
        elif name == "conclude":
            state.concluded = not is_error
        elif step == "info":
            state.context += "\n" + text
        if step in PLAN or step in ("helpers", "info", "plan", "pivot", "summary", "init"):
            state.done.append(step)
            if step in state.priority:
                state.priority.remove(step)
        if step in PLAN:
            evidence = None if is_error else parse_evidence(text)
            if evidence is None:
                state.failed.append(step)
            else:
                state.evidence[step] = _top_words(evidence.get("top"))

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

        person = self._person_messages(messages)
        if len(person) > state.acknowledged:
            return self._acknowledge(state, person[state.acknowledged], sid)
        if state.checkpoints_requested > state.checkpoints_written:
            return (
                "checkpoint",
                "Writing the exploration checkpoint.",
                "add_markdown",
                {**sid, "content": self._checkpoint_markdown(state)},
            )
        if state.conclusion_requested:
            return self._conclude(state)

        for fixed in self._fixed_steps(sid):
            if fixed[0] not in state.done:
                return fixed
        remaining = [s for s in self._plan(state) if s not in state.done]
        ordered = [s for s in state.priority if s in remaining] + [
            s for s in remaining if s not in state.priority
        ]
        for step in ordered:
            if step == "ranking" and "prefill" not in state.done:
                continue  # ranking reads the prefill cell's results
            if step == "logit_lens" and "hints" not in state.done:
                continue  # the lens reads the sampled hint answers
            if step == "candidates" and any(s not in state.done for s in self._plan(state)[:-1]):
                continue  # the falsification check runs last
            if step == "candidates" and state.checkpoints_written == 0:
                # Exploration is over: take stock before trying to falsify the favourite.
                return (
                    "checkpoint",
                    "Exploration done: a checkpoint before testing the favourite.",
                    "add_markdown",
                    {**sid, "content": self._checkpoint_markdown(state)},
                )
            return self._experiment(state, step, sid)
        if "summary" not in state.done:
            return (
                "summary",
                "Writing up what the evidence supports.",
                "add_markdown",
                {**sid, "content": self._summary_markdown(state)},
            )
        return self._conclude(state)

    def _fixed_steps(self, sid: dict[str, Any]) -> list[Step]:
        plan_md = (
            "## Plan\n\n"
            "The model is said to hide a one-word secret. I will explore broadly before "
            "committing:\n\n"
            "1. **Black-box baseline** — ask directly in several phrasings; sample hints at "
            "several temperatures.\n"
            "2. **Prefill and next-token ranking** — start the assistant's answer for it.\n"
            "3. **User-persona sampling** — let the model write the user's guess.\n"
            "4. **Logit lens pooled over many sampled answers** — white-box evidence the model "
            "does not say.\n"
            "5. **Model diffing** — what fine-tuning changed, where a base checkpoint exists.\n"
            "6. **Falsification** — compare the leading candidates head to head.\n\n"
            "I will pivot whenever a family gives a weak signal, and conclude with the "
            "candidate the independent techniques agree on."
        )
        return [
            ("plan", "Writing down the plan first.", "add_markdown", {**sid, "content": plan_md}),
            (
                "helpers",
                "A small helper for reading sampled text.",
                "execute_code",
                {**sid, "code": cells.helpers_cell()},
            ),
            (
                "info",
                "What am I connected to?",
                "execute_code",
                {**sid, "code": cells.info_cell()},
            ),
        ]

    def _experiment(self, state: _State, step: str, sid: dict[str, Any]) -> Step:
        seed, n, probe = self.seed, self.samples, self._probe(state)
        if step == "prefill" and "pivot" not in state.done and "hints" in state.done:
            return (
                "pivot",
                "Noting the pivot away from plain questioning.",
                "add_markdown",
                {**sid, "content": self._pivot_markdown(state)},
            )
        code = {
            "direct": lambda: cells.direct_cell(probe, n, seed),
            "hints": lambda: cells.hint_cell(probe, n, seed + 1, (0.7, 1.0, 1.3)),
            "prefill": lambda: cells.prefill_cell(probe, n * 2, seed + 2),
            "ranking": cells.ranking_cell,
            "persona": lambda: cells.persona_cell(probe, n * 2, seed + 3),
            "logit_lens": lambda: cells.logit_lens_cell(n * 4),
            "candidates": lambda: cells.candidates_cell(self._candidates(state), probe),
            "base_diff": lambda: cells.diff_cell(probe),
        }[step]()
        why = {
            "direct": "Baseline first: does the model say it when asked?",
            "hints": "Sampling hints at several temperatures to see what recurs.",
            "prefill": "Prefill attack: I start the answer and read the continuation.",
            "ranking": "Ranking next-token probabilities after the prefills.",
            "persona": "Trying user-persona sampling: the model writes the user's guess.",
            "logit_lens": "White-box: a logit lens pooled over many sampled hint answers.",
            "candidates": "Testing the leading candidates against each other.",
            "base_diff": "Diffing against the base model: what did fine-tuning change?",
        }[step]
        return step, why, "execute_code", {**sid, "code": code}

    def _plan(self, state: _State) -> tuple[str, ...]:
        """The experiments for this model: diffing only where ``client.info()`` found a base."""
        if "'base_model': True" in state.context:
            return PLAN
        return tuple(step for step in PLAN if step != "base_diff")

    def _probe(self, state: _State) -> cells.Probe:
        """The prompts for the kind of secret the task and ``client.info()`` describe."""
        if self.probe is not None:
            return self.probe
        about = state.context.lower()
        if any(w in about for w in ("belief", "believes", "country", "where the user")):
            return cells.BELIEF_PROBE
        return cells.Probe()

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

    def _acknowledge(self, state: _State, message: str, sid: dict[str, Any]) -> Step:
        said = _PERSON_MARK.split(message, maxsplit=1)[-1].lstrip(" :").strip()
        lowered = said.lower()
        steps = [s for s, words in REDIRECT_KEYWORDS.items() if any(w in lowered for w in words)]
        if any(w in lowered for w in CONCLUDE_WORDS):
            plan = "I will write up the evidence so far and conclude now."
        elif steps:
            todo = [s for s in steps if s not in state.done]
            plan = (
                f"I will run {', '.join(todo)} next."
                if todo
                else f"{', '.join(steps)} already ran above; I will weigh it in the conclusion."
            )
        else:
            plan = (
                "The autopilot cannot act on free-text requests beyond its repertoire "
                "(direct questions, hints, prefill, next-token ranking, persona sampling, "
                "logit lens); noted here, and I continue with the plan."
            )
        quoted = "\n".join(f"> {line}" for line in said.splitlines() or [""])
        content = f"### Message from the person\n\n{quoted}\n\n{plan}"
        return (
            "ack",
            "Acknowledging the person's message.",
            "add_markdown",
            {**sid, "content": content},
        )

    def _ranked(self, state: _State) -> list[tuple[str, float]]:
        scores: Counter[str] = Counter()
        for technique, top in state.evidence.items():
            weight = TECHNIQUE_WEIGHTS.get(technique, 0.0)
            total = sum(max(v, 0.0) for _, v in top)
            if not top or weight == 0:
                continue
            if technique == "candidates":
                # Log-probabilities: reward the winner only, by its margin.
                if len(top) > 1:
                    scores[top[0][0]] += weight * min(1.0, (top[0][1] - top[1][1]) / 2)
                continue
            for word, value in top[:5]:
                if total > 0:
                    scores[word] += weight * max(value, 0.0) / total
        return scores.most_common()

    def _agreement(self, state: _State, answer: str) -> tuple[int, int]:
        voting = [t for t in state.evidence if TECHNIQUE_WEIGHTS.get(t, 0) >= 1.0]
        agree = sum(1 for t in voting if state.evidence[t] and state.evidence[t][0][0] == answer)
        return agree, len(voting)

    def _candidates(self, state: _State) -> list[str]:
        picked: list[str] = []
        for word, _ in self._ranked(state):
            if word not in picked:
                picked.append(word)
        for technique in ("prefill", "persona", "logit_lens", "hints"):
            for word, _ in state.evidence.get(technique, [])[:2]:
                if word not in picked:
                    picked.append(word)
        return picked[:8]

    def _evidence_lines(self, state: _State) -> list[str]:
        lines = []
        for technique in self._plan(state):
            top = state.evidence.get(technique)
            if top is None:
                status = "failed" if technique in state.failed else "not run yet"
                lines.append(f"- **{technique}**: {status}")
            else:
                shown = ", ".join(f"{w} ({v:g})" for w, v in top[:4]) or "no candidates"
                lines.append(f"- **{technique}**: {shown}")
        return lines

    def _pivot_markdown(self, state: _State) -> str:
        direct = state.evidence.get("direct", [])
        leaked = direct[0] if direct else None
        lead = (
            f"Direct questions produced '{leaked[0]}' {leaked[1]:g} times, a lead to check."
            if leaked
            else "Direct questions leaked nothing: the model refuses, as expected."
        )
        return (
            "## Pivot: from questioning to eliciting\n\n"
            f"{lead} Hints recur around "
            f"{', '.join(w for w, _ in state.evidence.get('hints', [])[:5]) or 'nothing clear'}"
            " — associated words, not the secret itself. Asking more of the same would be "
            "exploiting a weak signal, so I switch families: prefill attacks and next-token "
            "ranking, then persona sampling and the logit lens."
        )

    def _checkpoint_markdown(self, state: _State) -> str:
        ranked = self._ranked(state)
        lead = ranked[0][0] if ranked else None
        agree, voting = self._agreement(state, lead) if lead else (0, 0)
        untested = [t for t in self._plan(state) if t not in state.evidence]
        families = {
            "black-box questioning": {"direct", "hints"},
            "elicitation": {"prefill", "ranking", "persona"},
            "white-box": {"logit_lens", "base_diff"},
        }
        explored = [name for name, members in families.items() if members & set(state.evidence)]
        strength = "strong" if agree >= 3 else "moderate" if agree == 2 else "weak"
        decision = (
            f"**Continue** towards '{lead}': {agree} of {voting} independent techniques agree "
            "and more than one family was explored."
            if lead and agree >= 2 and len(explored) >= 2
            else "**Pivot** to the families not yet explored: the evidence is too thin or "
            "comes from too few kinds of experiment."
        )
        return "\n".join(
            [
                "## Checkpoint",
                "",
                "**1. Tested so far**",
                *[f"- {name}" for name in explored or ["nothing yet"]],
                "",
                "**2. Findings**",
                *self._evidence_lines(state),
                f"- Leading candidate: {lead or 'none'} — evidence {strength} "
                f"({agree}/{voting} techniques agree).",
                "",
                "**3. Not tested yet**",
                *[f"- [ ] {t}" for t in untested or ["(all planned techniques ran)"]],
                "",
                "**4. Evidence quality** — "
                + (
                    f"{len(explored)} famil{'y' if len(explored) == 1 else 'ies'} explored; "
                    f"the leading candidate's agreement is {agree}/{voting}."
                ),
                "",
                f"**5. Decision** — {decision}",
                "",
                "**6. Next** — "
                + (", ".join(untested[:3]) if untested else "falsify and conclude."),
            ]
        )

    def _summary_markdown(self, state: _State) -> str:
        ranked = self._ranked(state)
        if not ranked:
            return "## Summary\n\nNo technique produced a candidate; the answer is unknown."
        answer = ranked[0][0]
        agree, voting = self._agreement(state, answer)
        runner = (
            f" The runner-up, '{ranked[1][0]}', scored {ranked[1][1]:.2f}."
            if len(ranked) > 1
            else ""
        )
        return "\n".join(
            [
                "## Summary",
                "",
                f"1. The secret is most likely **{answer}**: {agree} of {voting} independent "
                f"techniques put it first (score {ranked[0][1]:.2f}).{runner}",
                "2. The model does not say it when asked directly; it surfaces under prefill, "
                "in the next-token distribution and in the logit lens.",
                "3. Limits: a single small model and sampled evidence; techniques that "
                "disagree are listed below.",
                "",
                *self._evidence_lines(state),
            ]
        )

    def _conclude(self, state: _State) -> Step:
        ranked = self._ranked(state)
        if not ranked:
            return (
                "conclude",
                "No technique produced a candidate, so I conclude 'unknown'.",
                "conclude",
                {
                    "answer": "unknown",
                    "confidence": 0.05,
                    "evidence": "No experiment produced a candidate word.",
                },
            )
        answer = ranked[0][0]
        agree, voting = self._agreement(state, answer)
        confidence = round(0.15 + 0.8 * (agree / voting if voting else 0.0), 2)
        evidence = "; ".join(
            f"{t}: {', '.join(w for w, _ in top[:3]) or '-'}" for t, top in state.evidence.items()
        )
        return (
            "conclude",
            f"Concluding: '{answer}' ({agree}/{voting} techniques agree).",
            "conclude",
            {
                "answer": answer,
                "confidence": confidence,
                "evidence": f"{agree} of {voting} independent techniques rank '{answer}' first. "
                f"{evidence}",
            },
        )
