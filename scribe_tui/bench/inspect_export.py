"""``scribe-tui bench export DIR --to inspect``: a bench as an Inspect eval log.

One sample per result row, in run-id order: its input is the task the agent was
given, its messages the run's transcript as Inspect chat messages (tool calls and
their results included), its score the row's verdict, and its notebook an
attachment. Only what ``bench report`` shows of the scoring leaves the bench: the
answer, its confidence, whether it was right (or a false positive) and the circuit
figures; never the answer key, its aliases or which organisms are controls.

Rows that fail their integrity check are left out and named, as the report does; a
transcript with a line that fails its check gives its sample no messages. Runs that
failed stay in the log as samples with an error. The log is built from
``inspect_ai.log``'s own types and written by its writer, so ``inspect view`` and
``read_eval_log`` read it as they read any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scribe_tui.agent.transcript import (
    Transcript,
    TranscriptData,
    TranscriptError,
    started_notebook,
    transcript_path_for,
)
from scribe_tui.bench.grid import organism_label
from scribe_tui.bench.report import RESULTS, default_by, load_results
from scribe_tui.bench.scoring import CellSummary, summarise, verdict

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog, EvalMetric, EvalSample
    from inspect_ai.model import ChatMessage, Content
    from inspect_ai.scorer import Score

FORMATS = ("inspect",)
INSTALL = 'pip install "scribe-tui[inspect]"'
SCORER = "scribe-tui bench"
MAX_TEXT = 20_000
"""Characters kept of one text block; the transcript beside the notebook has the rest."""
_SUFFIXES = (".eval", ".json")  # the two formats Inspect's writer picks by extension


class ExportError(ValueError):
    """A bench that cannot be exported; the message says what to do."""


@dataclass
class Exported:
    """What :func:`export_inspect` wrote."""

    path: Path
    samples: int
    rejected: list[str] = field(default_factory=list)
    """Run ids of rows left out: they fail their integrity check."""
    transcripts_left_out: list[str] = field(default_factory=list)
    """Run ids whose transcript failed its integrity check: their samples have no messages."""


def export_inspect(directory: Path, out: Path | None = None) -> Exported:
    """Write the bench in ``directory`` as an Inspect eval log at ``out``.

    ``out`` defaults to ``directory/inspect/<created>_<bench>_<id>.eval`` (Inspect's
    own naming, so ``inspect view`` lists it by date); a ``.json`` name writes
    Inspect's JSON format instead. The same results give the same file name.
    """
    directory = Path(directory)
    results = directory / RESULTS
    if not results.is_file():
        raise ExportError(f"{directory} holds no {RESULTS}; give the --out directory of a bench")
    if out is not None and out.suffix not in _SUFFIXES:
        raise ExportError(f"--out {out}: name a .eval or .json file (Inspect's two log formats)")
    rejected: list[str] = []
    try:
        rows = load_results(directory, rejected)
    except ValueError as exc:  # a damaged line before the last: not a cut-off write
        raise ExportError(f"{exc}; mend or remove that line, then export again") from None
    if rejected and not rows:
        raise ExportError(
            f"all {len(rejected)} rows of {results} fail their integrity check (not written by "
            "scribe-tui as they are, or by another user); nothing to export"
        )
    if not rows:
        raise ExportError(
            f"{results} has no finished runs yet; run the bench first (scribe-tui bench --out "
            f"{directory})"
        )
    try:
        from inspect_ai.log import write_eval_log
    except ImportError:
        raise ExportError(f"--to inspect needs the inspect-ai package: {INSTALL}") from None

    left_out: list[str] = []
    samples = [_sample(directory, row, left_out) for row in rows]
    created = datetime.fromtimestamp(results.stat().st_mtime, tz=timezone.utc)
    # Named by its contents: exporting the same results again replaces the file.
    eval_id = hashlib.sha256(results.read_bytes()).hexdigest()[:22]
    log = _log(directory, rows, samples, created, eval_id, rejected)
    if out is None:
        stamp = created.strftime("%Y-%m-%dT%H-%M-%S+00-00")
        out = directory / "inspect" / f"{stamp}_{_task_name(directory)}_{eval_id}.eval"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_eval_log(log, str(out))
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}; choose --out FILE") from None
    return Exported(out, len(rows), rejected, left_out)


def _task_name(directory: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in directory.resolve().name)
    return f"scribe-bench-{name}"


def _log(
    directory: Path,
    rows: list[dict],
    samples: list[EvalSample],
    created: datetime,
    eval_id: str,
    rejected: list[str],
) -> EvalLog:
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalPlan,
        EvalPlanStep,
        EvalResults,
        EvalScore,
        EvalSpec,
        EvalStats,
    )

    agents = sorted({str(row["axes"].get("agent")) for row in rows})
    grid: dict[str, list[Any]] = {}
    for row in rows:
        for name, value in row["axes"].items():
            if value not in grid.setdefault(name, []):
                grid[name].append(value)
    by = default_by(rows)
    (overall,) = summarise(rows, [])
    verdicts = [verdict(row) for row in rows]
    judged = sum(kind not in ("failed", "unscored") for kind in verdicts)
    starts = [s.started_at for s in samples if s.started_at]
    ends = [s.completed_at for s in samples if s.completed_at]
    spec = EvalSpec(
        eval_id=eval_id,
        run_id=eval_id,
        created=created.isoformat(),
        task=_task_name(directory),
        task_display_name=directory.resolve().name,
        task_description="scribe-tui bench: investigators find what was planted in model "
        "organisms; each sample is one run, scored against an answer key the agent never saw.",
        task_args={"grid": grid},
        dataset=EvalDataset(
            name=directory.resolve().name,
            location=str(directory.resolve()),
            samples=len(rows),
            sample_ids=[row["run_id"] for row in rows],
        ),
        model=f"scribe-tui/{agents[0]}" if len(agents) == 1 else "scribe-tui/several-agents",
        config=EvalConfig(),
        packages=_versions(),
        metadata={"bench": str(directory.resolve()), "agents": agents, "left_out": rejected},
    )
    return EvalLog(
        status="success",
        eval=spec,
        plan=EvalPlan(steps=[EvalPlanStep(solver=f"scribe-tui/{agent}") for agent in agents]),
        results=EvalResults(
            total_samples=len(rows),
            completed_samples=len(rows) - verdicts.count("failed"),
            scores=[
                EvalScore(
                    name="bench",
                    scorer=SCORER,
                    scored_samples=judged,
                    unscored_samples=len(rows) - judged,
                    metrics=_metrics(overall),
                )
            ],
            metadata={"by": by, "cells": [_cell(cell) for cell in summarise(rows, by)]},
        ),
        stats=EvalStats(started_at=min(starts, default=""), completed_at=max(ends, default="")),
        samples=samples,
    )


def _versions() -> dict[str, str]:
    versions = {}
    for name in ("scribe-tui", "inspect_ai"):
        with contextlib.suppress(package_metadata.PackageNotFoundError):
            versions[name] = package_metadata.version(name)
    return versions


def _figures(cell: CellSummary) -> dict[str, float]:
    """The report's figures of ``cell`` that have a value, by name."""
    figures = {
        "accuracy": cell.accuracy,
        "coverage": cell.coverage,
        "brier": cell.brier,
        "false_positive_rate": cell.false_positive_rate,
        "f1": cell.f1,
        "iou": cell.iou,
        "faithfulness": cell.faithfulness,
    }
    return {name: value for name, value in figures.items() if value is not None}


def _metrics(cell: CellSummary) -> dict[str, EvalMetric]:
    from inspect_ai.log import EvalMetric

    metrics = {name: EvalMetric(name=name, value=value) for name, value in _figures(cell).items()}
    if "accuracy" in metrics:
        # As in the report: correct / answered, abstentions and runs without an answer apart.
        metrics["accuracy"].metadata = {"answered": cell.answered, "ci95": list(cell.ci)}
    return metrics


def _cell(cell: CellSummary) -> dict[str, Any]:
    counts = {
        "n": cell.n,
        "failed": cell.failed,
        "no_answer": cell.no_answer,
        "unknown": cell.unknown,
        "answered": cell.answered,
        "correct": cell.correct,
    }
    return {"axes": cell.axes, **counts, **_figures(cell)}


def _sample(directory: Path, row: dict, left_out: list[str]) -> EvalSample:
    """One row as a sample; its run id goes to ``left_out`` if its transcript is not trusted."""
    from inspect_ai.log import EvalError, EvalSample
    from inspect_ai.model import ModelOutput, ModelUsage

    axes = row["axes"]
    agent = str(axes.get("agent"))
    notebook = _notebook(directory, row)
    data, problem = _transcript(notebook)
    if problem is not None:
        left_out.append(row["run_id"])
    trusted = data if problem is None else None  # none of an altered transcript is used
    messages = _messages(trusted.messages, agent) if trusted is not None else []
    meta: dict[str, Any] = {
        "run_id": row["run_id"],
        "organism": organism_label(str(axes.get("organism"))),
        "mode": axes.get("mode"),
        "agent": agent,
        "seed": axes.get("seed"),
        "axes": axes,
        "exit": row.get("exit"),
        "cost_usd": row.get("cost_usd"),
        "wall_s": row.get("wall_s"),
        "turns": row.get("turns"),
        "cells": row.get("cells"),
        "sandbox": row.get("sandbox"),
        "sealed": row.get("sealed"),
        "notebook": row.get("notebook") or _relative(notebook, directory),
    }
    if data is not None:
        meta["transcript"] = _relative(data.path, directory)
    if problem is not None:
        meta["transcript_left_out"] = problem
    attachments: dict[str, str] = {}
    if notebook is not None and notebook.is_file():
        meta["notebook_ipynb"] = _attach(attachments, notebook)
    if row.get("investigators") and notebook is not None:
        # The row is their aggregate: each investigator's claim, and its own notebook beside.
        meta["investigators"] = []
        for claim in row["investigators"]:
            own = started_notebook(notebook.parent / str(claim.get("id")))
            if own is not None:
                claim = {
                    **claim,
                    "notebook": _relative(own, directory),
                    "notebook_ipynb": _attach(attachments, own),
                }
            meta["investigators"].append(claim)
    failed = verdict(row) == "failed"
    error = None
    if failed:
        log = directory / "runs" / row["run_id"] / "error.log"
        message = str(row.get("error") or "failed")
        traceback = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else message
        error = EvalError(message=message, traceback=traceback, traceback_ansi=traceback)
    tokens_in, tokens_out = int(row.get("input_tokens") or 0), int(row.get("output_tokens") or 0)
    usage = ModelUsage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        total_tokens=tokens_in + tokens_out,
        total_cost=row.get("cost_usd"),
    )
    started, completed = _times(trusted)
    return EvalSample(
        id=row["run_id"],
        epoch=1,
        input=str(trusted.header.get("task")) if trusted is not None else _task(axes),
        # The key stays with scribe-tui; the score says whether the answer matched it.
        target="",
        messages=messages,
        output=ModelOutput.from_content(model=agent, content=row.get("answer") or ""),
        scores=None if failed or row.get("scored") is False else {"bench": _score(row)},
        metadata=meta,
        model_usage={agent: usage},
        started_at=started,
        completed_at=completed,
        total_time=row.get("wall_s"),
        error=error,
        attachments=attachments,
        turn_count=row.get("turns"),
    )


def _attach(attachments: dict[str, str], notebook: Path) -> str:
    """Add the notebook's JSON to the sample's attachments; the reference to it."""
    text = notebook.read_text(encoding="utf-8", errors="replace")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    attachments[digest] = text
    return f"attachment://{digest}"


def _notebook(directory: Path, row: dict) -> Path | None:
    """The run's notebook: the row's, else the one a run that failed had started."""
    if row.get("notebook"):
        return directory / row["notebook"]
    return started_notebook(directory / "runs" / row["run_id"])


def _relative(path: Path | None, directory: Path) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(directory.resolve()))
    return str(path)


def _transcript(notebook: Path | None) -> tuple[TranscriptData | None, str | None]:
    """The notebook's transcript and, when its messages cannot be trusted, why."""
    if notebook is None or not transcript_path_for(notebook).is_file():
        return None, None
    try:
        data = Transcript.load(transcript_path_for(notebook))
    except TranscriptError as exc:
        return None, str(exc)
    try:
        data.check_integrity()
    except TranscriptError as exc:
        return data, str(exc)
    return data, None


def _task(axes: dict[str, Any]) -> str:
    """The task a run without a transcript was given, as the runner built it."""
    from scribe_tui.bench.grid import model_spec
    from scribe_tui.organisms.registry import UnknownOrganism, organism_info

    try:
        return organism_info(model_spec(str(axes.get("organism")))).task
    except UnknownOrganism:
        return f"(no transcript; organism {axes.get('organism')} is no longer on this machine)"


def _times(data: TranscriptData | None) -> tuple[str | None, str | None]:
    if data is None:
        return None, None
    stamps = [r["t"] for r in [data.header, *data.records] if isinstance(r.get("t"), (int, float))]
    if not stamps:
        return None, None
    first, last = (datetime.fromtimestamp(t, tz=timezone.utc) for t in (min(stamps), max(stamps)))
    return first.isoformat(), last.isoformat()


def _score(row: dict) -> Score:
    from inspect_ai.scorer import CORRECT, INCORRECT, NOANSWER, Score

    kind = verdict(row)
    value = {"correct": CORRECT, "wrong": INCORRECT}.get(kind, NOANSWER)
    explanation = "false positive" if kind == "wrong" and row.get("false_positive") else kind
    if row.get("exit") not in ("concluded", None):
        explanation += f" (exit: {row['exit']})"
    meta: dict[str, Any] = {
        "verdict": kind,
        "claim": row.get("claim"),
        "confidence": row.get("confidence"),
        "false_positive": bool(row.get("false_positive")),
    }
    if kind in ("correct", "wrong") and row.get("confidence") is not None:
        meta["brier"] = (float(row["confidence"]) - (kind == "correct")) ** 2
    meta.update({name: row[name] for name in ("f1", "iou", "faithfulness") if name in row})
    return Score(value=value, answer=row.get("answer"), explanation=explanation, metadata=meta)


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n[… {len(text) - MAX_TEXT} more characters in the transcript]"


def _content(block: dict[str, Any]) -> Content:
    """One Anthropic content block (text, image, thinking) as Inspect content."""
    from inspect_ai.model import ContentImage, ContentReasoning, ContentText

    kind = block.get("type")
    if kind == "text":
        return ContentText(text=_clip(str(block.get("text", ""))))
    if kind == "image" and block.get("source", {}).get("type") == "base64":
        source = block["source"]
        return ContentImage(image=f"data:{source['media_type']};base64,{source['data']}")
    if kind == "thinking":
        return ContentReasoning(reasoning=block["thinking"], signature=block.get("signature"))
    if kind == "redacted_thinking":
        return ContentReasoning(reasoning=block["data"], redacted=True)
    # Anything else is kept as its JSON, so the log leaves nothing out without saying so.
    return ContentText(text=_clip(json.dumps(block, ensure_ascii=False, sort_keys=True)))


def _messages(conversation: list[dict[str, Any]], agent: str) -> list[ChatMessage]:
    """The transcript's Anthropic Messages conversation as Inspect chat messages.

    An assistant turn's ``tool_use`` blocks become its tool calls; each ``tool_result``
    block of the next user turn becomes a tool message (an error when ``is_error``),
    and what else that turn holds (a note, a person's message) a user message after them.
    """
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageTool,
        ChatMessageUser,
        ContentText,
    )
    from inspect_ai.tool import ToolCall, ToolCallError

    messages: list[ChatMessage] = []
    functions: dict[str, str] = {}  # tool_use id -> tool name, for the results
    for message in conversation:
        blocks = message["content"]
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        if message["role"] == "assistant":
            calls = [
                ToolCall(id=b["id"], function=b["name"], arguments=dict(b.get("input") or {}))
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            functions.update({call.id: call.function for call in calls})
            content = [_content(b) for b in blocks if b.get("type") != "tool_use"]
            messages.append(
                ChatMessageAssistant(content=content, tool_calls=calls or None, model=agent)
            )
            continue
        rest = []
        for block in blocks:
            if block.get("type") != "tool_result":
                rest.append(_content(block))
                continue
            result = block.get("content") or []
            parts = [_content(b) for b in result] if isinstance(result, list) else []
            if isinstance(result, str):
                parts = [ContentText(text=_clip(result))]
            text = " ".join(p.text for p in parts if isinstance(p, ContentText))
            messages.append(
                ChatMessageTool(
                    content=parts,
                    tool_call_id=block.get("tool_use_id"),
                    function=functions.get(block.get("tool_use_id", "")),
                    error=ToolCallError("unknown", text[:500]) if block.get("is_error") else None,
                )
            )
        if rest:
            messages.append(ChatMessageUser(content=rest))
    return messages
