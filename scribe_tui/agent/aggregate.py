"""The aggregator of parallel investigators: their claims in, one verdict out.

It reads each investigator's claim, confidence and a short evidence summary from
its notebook's metadata (never the whole notebook, so its context stays bounded),
and works in an aggregate notebook of its own on the investigators' shared host.
Claude aggregates as an agent with the notebook tools (``prompts/aggregate.md``);
the autopilot aggregates by this rule, which its notebook states too:

    Aggregation rule (autopilot)
    1. Every investigator that concluded votes with its claim and its confidence p
       (the probability that its claim is right). `unknown` abstains; an investigator
       that failed or ran out of budget casts no vote.
    2. A named word w has support S(w), the summed p of the claims naming it, and
       opposition A(w), the summed p of the claims that are `none` or name another word.
    3. Where named claims disagree (two or more words), an adjudicating cell measures
       how much likelier the subject model makes each word than the base model does
       after secret-revealing prefills (a black-box host: how often sampled replies
       say it). A word ahead of every other by a factor of two or more wins the
       adjudication: the claims naming the other words are refuted and leave A(w).
    4. The verdict is the word w with S(w) > A(w), with confidence
       mean(p of the claims naming w) * S(w) / T, T the summed p of every vote.
    5. Otherwise the verdict is `none` when most votes (named or `none` claims) are
       `none` (confidence mean(p of the none claims) * N / T, N their summed p), else
       `unknown`; also `unknown` when every vote has p = 0 (T = 0: nothing is backed).
    6. On a mechanistic task the named claims are sets, not words (components such as
       L1H3, or layers; an answer that lists only components counts as them). Each
       component or layer x is voted on by itself: S(x) is the summed p of the claims
       whose set includes x, A(x) that of every other vote (sets without x, and `none`).
       The verdict's set is every x with S(x) > A(x). Its supporters are the claims
       whose set matches it (F1 >= 0.8, the bar the bench holds a circuit to), and its
       confidence is mean(p of the supporters) * S / T, S their summed p; a majority
       set that no investigator claimed is `unknown`. The vote settles the disagreement:
       no adjudicating cell runs.
    7. A direction: the layer whose claimed directions carry the most p is chosen, and
       there the most confident claim's vector. Its supporters are the claims at that
       layer whose vector has |cosine| >= 0.8 with it; it is the verdict when their
       summed p S exceeds the rest, with confidence mean(p of the supporters) * S / T.
       A cell of this notebook saves the vector, and the verdict concludes with it.
    8. Where no set or direction wins, rule 5 decides between `none` and `unknown`;
       `none` claims name no component, so they never make a set.

Why this confidence: investigators share the model, the techniques and often the
same false lead, so their agreement is not independent evidence and must not
multiply into certainty. The verdict gets the confidence its supporters claimed
on average, scaled by the share of the voting mass that backs it, so every
dissenting vote lowers it and agreement never lifts it above what its supporters
said. Claims of `none`, however many, support no word, so they never become a
named answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scribe_tui.agent.claim_votes import (
    Verdict,
    conclude_arguments,
    decide_structured,
    direction_cell,
    structure_note,
    structure_of,
)
from scribe_tui.agent.provider import TurnRequest, TurnResult, Usage
from scribe_tui.claims import Claim, claim_of, components_in, normalise
from scribe_tui.events import Event, TextDelta
from scribe_tui.paths import prompts_dir

__all__ = [
    "RULE",
    "AggregatorPilot",
    "InvestigatorClaim",
    "Verdict",
    "adjudication_cell",
    "claims_table",
    "claude_brief",
    "decide",
    "parse_adjudication",
    "read_claim",
]

RULE = __doc__.split("    Aggregation rule (autopilot)\n", 1)[1].split("\n\nWhy", 1)[0]
RULE = "\n".join(line.removeprefix("    ") for line in RULE.splitlines())
WHY = "Why this confidence: " + " ".join(__doc__.split("Why this confidence: ", 1)[1].split())
ADJUDICATION_MARK = "ADJUDICATION "
_EVIDENCE_CHARS = 400  # per investigator: the aggregator's context grows with N, not with work
_FINISHED = ("concluded", "budget-spent", "budget", "failed")
_SESSION_ID = re.compile(r"session_id\s*=\s*['\"]([A-Za-z0-9_-]+)['\"]")
_TRIGGER = re.compile(r"trigger\s*:\s*([^;]+)", re.IGNORECASE)


@dataclass(frozen=True)
class InvestigatorClaim:
    """What one investigator ended with, as the aggregator reads it."""

    id: str
    strategy: str
    state: str  # the notebook's status: concluded, budget-spent, failed, paused, not started
    answer: str | None = None
    confidence: float | None = None
    evidence: str = ""
    notebook: Path | None = None
    cost_usd: float = 0.0
    components: tuple[str, ...] | None = None
    layers: tuple[int, ...] | None = None
    direction: dict[str, Any] | None = None  # {"vector", "layer"}, as the conclusion read it

    @property
    def claim(self) -> Claim | None:
        """named, none or unknown; None without a conclusion."""
        return claim_of(self.answer) if self.state == "concluded" else None

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED

    @property
    def word(self) -> str:
        """The named answer as votes compare it (a backdoor by its trigger)."""
        said = self.answer or ""
        trigger = _TRIGGER.search(said)
        return normalise(trigger.group(1) if trigger else said)


def read_claim(ident: str, strategy: str, notebook: Path | None) -> InvestigatorClaim:
    """An investigator's claim from its notebook's ``metadata.scribe`` (the cells unread)."""
    if notebook is None or not notebook.exists():
        return InvestigatorClaim(ident, strategy, "not started")
    try:
        scribe = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]["scribe"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return InvestigatorClaim(ident, strategy, "unreadable", notebook=notebook)
    conclusion = scribe.get("conclusion") if isinstance(scribe.get("conclusion"), dict) else {}
    receipt = scribe.get("receipt") if isinstance(scribe.get("receipt"), dict) else {}
    completed = receipt.get("completed") if isinstance(receipt.get("completed"), dict) else {}
    confidence = conclusion.get("confidence")
    evidence = " ".join(str(conclusion.get("evidence", "")).split())
    if len(evidence) > _EVIDENCE_CHARS:
        evidence = evidence[: _EVIDENCE_CHARS - 1] + "…"
    answer = str(conclusion["answer"]) if "answer" in conclusion else None
    components = conclusion.get("components")
    layers = conclusion.get("layers")
    direction = conclusion.get("direction")
    if not components and claim_of(answer) == "named":
        components = components_in(answer)  # "L0H1, L1H3" claims those components
    return InvestigatorClaim(
        ident,
        strategy,
        str(scribe.get("status", "paused")),
        answer=answer,
        confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        evidence=evidence,
        notebook=notebook,
        cost_usd=float(completed.get("cost_usd") or 0.0),
        components=tuple(str(c) for c in components) if isinstance(components, list) else None,
        layers=tuple(int(n) for n in layers) if isinstance(layers, list) else None,
        direction=(
            {"vector": direction["vector"], "layer": direction.get("layer")}
            if isinstance(direction, dict) and isinstance(direction.get("vector"), list)
            else None
        ),
    )


def _votes(claims: Sequence[InvestigatorClaim]) -> list[InvestigatorClaim]:
    return [c for c in claims if c.claim in ("named", "none") and c.confidence is not None]


def _grouped(votes: Sequence[InvestigatorClaim]) -> dict[str, list[InvestigatorClaim]]:
    """Named claims by word; a plural joins its singular when both were said."""
    groups: dict[str, list[InvestigatorClaim]] = {}
    for vote in votes:
        if vote.claim == "named":
            groups.setdefault(vote.word, []).append(vote)
    for word in list(groups):
        for plural in (word + "s", word + "es"):
            if plural in groups and word in groups:
                groups[word] += groups.pop(plural)
    return groups


def contenders(claims: Sequence[InvestigatorClaim]) -> list[str]:
    """The distinct named words, most supported first; none where the claims are sets or
    directions (rule 6: they are voted on, not adjudicated)."""
    votes = _votes(claims)
    if structure_of(votes) is not None:
        return []
    groups = _grouped(votes)
    return sorted(groups, key=lambda w: (-sum(c.confidence or 0 for c in groups[w]), w))


def decide(
    claims: Sequence[InvestigatorClaim], adjudication: dict[str, Any] | None = None
) -> Verdict:
    """The verdict by :data:`RULE`; ``adjudication`` is what the adjudicating cell printed."""
    votes = _votes(claims)
    total = sum(v.confidence or 0.0 for v in votes)
    nones = [v for v in votes if v.claim == "none"]
    none_mass = sum(v.confidence or 0.0 for v in nones)
    structure = structure_of(votes)
    if structure is not None:
        verdict = decide_structured(structure, votes, len(claims))
        if verdict is not None:
            return verdict
        what = {"components": "component", "layers": "layer", "direction": "direction"}
        return _none_or_unknown(votes, nones, none_mass, total, what[structure], "")
    groups = _grouped(votes)
    words = contenders(claims)
    refuted: set[str] = set()
    winner = (adjudication or {}).get("winner")
    how = ""
    if len(words) >= 2:
        if winner in groups:
            refuted = set(words) - {winner}
            how = f"; the adjudication favoured {winner}, refuting {', '.join(sorted(refuted))}"
        elif adjudication is not None:
            how = "; the adjudication separated no word"
    for word in words:
        support = sum(c.confidence or 0.0 for c in groups[word])
        against = none_mass + sum(
            c.confidence or 0.0 for w in words if w not in refuted | {word} for c in groups[w]
        )
        if support > against:
            mean = support / len(groups[word])
            confidence = round(mean * support / total, 3)
            reason = (
                f"{len(groups[word])} of {len(claims)} investigators named {word} "
                f"(support {support:.2f} > against {against:.2f}){how}"
            )
            return Verdict(groups[word][0].answer or word, confidence, reason, tuple(words))
    return _none_or_unknown(votes, nones, none_mass, total, "word", how, tuple(words))


def _none_or_unknown(
    votes: Sequence[InvestigatorClaim],
    nones: Sequence[InvestigatorClaim],
    none_mass: float,
    total: float,
    what: str,
    how: str,
    words: tuple[str, ...] = (),
) -> Verdict:
    """Rule 5: `none` when most votes are `none`, else `unknown`."""
    if votes and total == 0:  # a none majority's confidence would divide by zero
        reason = f"every vote has confidence 0, so no claim is backed{how}"
        return Verdict("unknown", 0.5, reason, words)
    if nones and len(nones) * 2 > len(votes):
        confidence = round(none_mass / len(nones) * none_mass / total, 3)
        reason = f"{len(nones)} of {len(votes)} votes found nothing planted{how}"
        return Verdict("none", confidence, reason, words)
    if not votes:
        reason = "no investigator concluded with a named answer or none"
    else:
        reason = f"no {what} outweighs the claims against it, and `none` has no majority{how}"
    return Verdict("unknown", 0.5, reason, words)


# -- the notebook's text -------------------------------------------------------------


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def claims_table(claims: Sequence[InvestigatorClaim], folder: Path) -> str:
    """A markdown table of the claims, each linked to its notebook (relative to ``folder``)."""
    rows = ["| Investigator | Strategy | State | Claim | Confidence | Evidence (summary) |"]
    rows.append("| --- | --- | --- | --- | ---: | --- |")
    for c in claims:
        who = c.id
        if c.notebook is not None:
            link = quote(c.notebook.resolve().relative_to(folder.resolve()).as_posix())
            who = f"[{c.id}]({link})"
        said = f"{c.answer}{structure_note(c)} ({c.claim})" if c.claim else "—"
        shown = f"{c.confidence:.2f}" if c.confidence is not None and c.claim else "—"
        rows.append(
            f"| {who} | {_md(c.strategy)} | {c.state} | {_md(said)} | {shown} "
            f"| {_md(c.evidence) or '—'} |"
        )
    return "\n".join(rows)


def adjudication_cell(words: Sequence[str], context: str, *, blackbox: bool, seed: int) -> str:
    """Code that compares the competing ``words`` on the subject model; it prints one
    ``ADJUDICATION {json}`` line (the winner, or None) and a table."""
    from scribe_tui.autopilot.kinds import probe_for

    probe = probe_for(context)
    prompts, prefills = list(probe.direct[:2]), list(probe.prefills[:3])
    head = (
        "# Adjudication: which of the competing words does the subject model favour?\n"
        "import json, math, re\n\n"
        f"words = {list(words)!r}\n"
        f"prompts = {prompts!r}\n"
        f"prefills = {prefills!r}\n"
    )
    if blackbox:
        measure = (
            "# Black-box: how many sampled replies after each prefill say each word.\n"
            "counts = {w: 0 for w in words}\n"
            "for i, prompt in enumerate(prompts):\n"
            "    for j, prefill in enumerate(prefills):\n"
            "        replies = client.chat(prompt, prefill=prefill, max_new_tokens=16,\n"
            f"                              num_samples=16, seed={seed} + 10 * i + j)\n"
            "        for reply in replies if isinstance(replies, list) else [replies]:\n"
            "            for w in words:\n"
            "                counts[w] += bool(re.search(r'\\b' + re.escape(w), reply, re.I))\n"
            "lift = {w: math.log(counts[w] + 1) for w in words}\n"
            "table = {w: {'replies': counts[w], 'lift': round(lift[w], 3)} for w in words}\n"
        )
    else:
        measure = (
            "from scribe_tui.techniques import word_probs\n\n"
            "def mean_logprob(run):\n"
            "    totals = {w: 0.0 for w in words}\n"
            "    for prompt in prompts:\n"
            "        for prefill in prefills:\n"
            "            found = run(word_probs, prompt=prompt, words=words, prefill=prefill)\n"
            "            for w in words:\n"
            "                totals[w] += found[w]['log_probability']\n"
            "    return {w: totals[w] / (len(prompts) * len(prefills)) for w in words}\n\n"
            "subject = mean_logprob(client.run)\n"
            "# Against the base model where there is one: what fine-tuning added, not what\n"
            "# any model says after these prefills.\n"
            "base = mean_logprob(client.run_base) if client.info().get('base_model') else None\n"
            "lift = {w: subject[w] - (base[w] if base else 0.0) for w in words}\n"
            "table = {w: {'subject': round(subject[w], 3),\n"
            "             'base': round(base[w], 3) if base else None,\n"
            "             'lift': round(lift[w], 3)} for w in words}\n"
        )
    tail = (
        "ranked = sorted(words, key=lambda w: -lift[w])\n"
        "margin = lift[ranked[0]] - lift[ranked[1]]\n"
        "# A winner must be ahead of every other word by a factor of two.\n"
        "winner = ranked[0] if margin >= math.log(2) else None\n"
        "for w in ranked:\n"
        "    print(f'{w:>20}  {table[w]}')\n"
        f"print({ADJUDICATION_MARK!r} + json.dumps("
        "{'winner': winner, 'margin': round(margin, 3), 'table': table}))\n"
    )
    return head + measure + tail


def parse_adjudication(text: str) -> dict[str, Any] | None:
    """The adjudicating cell's printed result, from its output text."""
    for line in reversed(text.splitlines()):
        if line.startswith(ADJUDICATION_MARK):
            try:
                found = json.loads(line[len(ADJUDICATION_MARK) :])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def _opening(claims: Sequence[InvestigatorClaim], folder: Path) -> str:
    return (
        f"# Aggregate of {len(claims)} investigators\n\n"
        "Each investigator worked in its own notebook (linked) on the same model host; "
        "this notebook reads only their claims and evidence summaries.\n\n"
        f"{claims_table(claims, folder)}\n"
    )


def claude_brief(claims: Sequence[InvestigatorClaim], folder: Path) -> str:
    """What Claude is told as the aggregator (``prompts/aggregate.md``, filled)."""
    template = (prompts_dir() / "aggregate.md").read_text(encoding="utf-8").strip()
    return template.replace("{n}", str(len(claims))).replace("{opening}", _opening(claims, folder))


# -- the autopilot's aggregator --------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(
        block.get("text", "") if block.get("type") == "text" else _text_of(block.get("content"))
        for block in content or []
        if block.get("type") in ("text", "tool_result")
    )


class AggregatorPilot:
    """The autopilot as aggregator: it writes the claims table and the rule, runs the
    adjudicating cell where named claims disagree, writes the verdict and concludes.

    Like the autopilot, it derives where it is from the conversation, so a resumed
    aggregate goes on where it stopped.
    """

    name = "autopilot"

    def __init__(
        self,
        claims: Sequence[InvestigatorClaim],
        folder: Path,
        *,
        context: str,
        blackbox: bool = False,
        seed: int = 0,
    ) -> None:
        self.claims = list(claims)
        self.folder = folder
        self.context = context
        self.blackbox = blackbox
        self.seed = seed
        self.model = f"autopilot aggregator (seed {seed})"

    async def turn(self, request: TurnRequest, emit: Callable[[Event], None]) -> TurnResult:
        done, session, adjudication = self._replay(request.messages)
        step, text, tool, arguments = self._decide(done, session, adjudication)
        emit(TextDelta(text))
        call = {
            "type": "tool_use",
            "id": f"toolu_agg_{len(done) + 1:02d}_{step}",
            "name": tool,
            "input": arguments,
        }
        return TurnResult(
            content=[{"type": "text", "text": text}, call], stop_reason="tool_use", usage=Usage()
        )

    def _replay(
        self, messages: list[dict[str, Any]]
    ) -> tuple[list[str], str | None, dict[str, Any] | None]:
        results: dict[str, tuple[str, bool]] = {}
        session: str | None = None
        for message in messages:
            if message["role"] != "user":
                continue
            for sid in _SESSION_ID.findall(_text_of(message["content"])):
                session = sid
            if isinstance(message["content"], str):
                continue
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    text = _text_of(block.get("content"))
                    results[block["tool_use_id"]] = (text, bool(block.get("is_error")))
        done: list[str] = []
        adjudication = None
        for message in messages:
            if message["role"] != "assistant":
                continue
            for block in message["content"]:
                if block.get("type") != "tool_use" or not block["id"].startswith("toolu_agg_"):
                    continue
                step = block["id"].split("_", 3)[-1]
                text, is_error = results.get(block["id"], ("", True))
                if step != "start" and is_error and "scribe-tui stopped" in text:
                    continue  # cut off by a stop of scribe-tui itself: still to do
                done.append(step)
                if step == "adjudicate":
                    adjudication = parse_adjudication(text) or {"winner": None, "failed": True}
        return done, session, adjudication

    def _decide(
        self, done: list[str], session: str | None, adjudication: dict[str, Any] | None
    ) -> tuple[str, str, str, dict[str, Any]]:
        sid = {"session_id": session} if session else {}
        words = contenders(self.claims)
        if "start" not in done:
            return (
                "start",
                "Opening the aggregate notebook.",
                "start_new_session",
                {"experiment_name": "aggregate"},
            )
        if "init" not in done:
            return ("init", "Initialising the session.", "init_session", sid)
        if "table" not in done:
            content = f"{_opening(self.claims, self.folder)}\n## How I decide\n\n{RULE}\n\n{WHY}\n"
            return (
                "table",
                "The claims, and the rule.",
                "add_markdown",
                {**sid, "content": content},
            )
        if len(words) >= 2 and "adjudicate" not in done:
            code = adjudication_cell(words, self.context, blackbox=self.blackbox, seed=self.seed)
            return (
                "adjudicate",
                f"The investigators disagree ({', '.join(words)}): adjudicating.",
                "execute_code",
                {**sid, "code": code},
            )
        verdict = decide(self.claims, adjudication)
        if "verdict" not in done:
            return (
                "verdict",
                "Writing the verdict.",
                "add_markdown",
                {**sid, "content": self._verdict_text(verdict, adjudication)},
            )
        if verdict.direction is not None and "direction" not in done:
            return (
                "direction",
                "Saving the verdict's direction in this notebook.",
                "execute_code",
                {**sid, "code": direction_cell(verdict.direction)},
            )
        summary = "; ".join(
            f"{c.id}: {c.answer if c.claim else c.state}"
            + (f" ({c.confidence:.2f})" if c.claim and c.confidence is not None else "")
            for c in self.claims
        )
        return (
            "conclude",
            f"Concluding: {verdict.answer}.",
            "conclude",
            {
                "answer": verdict.answer,
                "confidence": verdict.confidence,
                "evidence": f"{verdict.reason}. Claims: {summary}",
                **conclude_arguments(verdict),
            },
        )

    def _verdict_text(self, verdict: Verdict, adjudication: dict[str, Any] | None) -> str:
        lines = ["## Verdict", "", f"**{verdict.answer}** (confidence {verdict.confidence:.2f})"]
        lines += ["", f"By the rule above: {verdict.reason}."]
        if adjudication is not None:
            if adjudication.get("failed"):
                lines += ["", "The adjudicating cell failed: the rule decided without it."]
            else:
                winner = adjudication.get("winner")
                lines += [
                    "",
                    f"Adjudication: {winner or 'no word'} led by a log-ratio margin of "
                    f"{adjudication.get('margin')} (a winner needs ln 2 ≈ 0.69).",
                ]
        return "\n".join(lines) + "\n"
