"""The notebook index: ``scribe-tui list`` in a terminal, ``scribe-tui index`` as INDEX.md.

Each investigation notebook (found recursively; reproduction copies are folded into
their original's row) has a status:

- ``running``: a scribe-tui process has it open now;
- ``paused``: stopped before the end (Ctrl-C, quit, a crash): ``scribe-tui resume`` goes on;
- ``concluded``, ``failed``, ``budget-spent``: how the run ended;
- ``reproduced``, ``drifted``: what the latest ``scribe-tui reproduce`` found;
- ``completed``: a ``scribe-tui sweep`` run that executed every cell (``failed``: one raised).

A bench's score is shown where a ``results.jsonl`` beside or above the notebook has
its row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scribe_tui.integrity import verified

__all__ = [
    "STATUSES",
    "NotebookEntry",
    "counted",
    "parse_since",
    "read_entries",
    "read_entry",
    "write_index",
]

STATUSES = (
    "running",
    "paused",
    "concluded",
    "failed",
    "budget-spent",
    "reproduced",
    "drifted",
    "completed",
)
# What older or lower-level writers recorded, in this index's words.
_ALIASES = {"stopped": "paused", "interrupted": "paused", "budget": "budget-spent"}
_RELATIVE = re.compile(r"^(\d+)([hdw])$")


@dataclass(frozen=True)
class NotebookEntry:
    """One investigation, as the index shows it."""

    path: Path
    title: str
    task: str
    model: str
    organism: str
    agent: str
    status: str
    answer: str
    confidence: float | None
    score: str
    created: str
    cells: int
    forked_from: str = ""
    forked_at: int | None = None
    mode: str = "local"
    investigator: str = ""
    """Its id when it is one of an aggregate's parallel investigators (listed under it)."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}

    @property
    def finding(self) -> str:
        """The status in one line, with what was found."""
        if self.answer:
            confidence = f" ({self.confidence:.2f})" if self.confidence is not None else ""
            score = f", {self.score}" if self.score else ""
            return f"{self.status}: {self.answer}{confidence}{score}"
        if self.status == "completed":  # a sweep's run: it concludes nothing
            return f"completed, {counted(self.cells, 'code cell')}"
        return f"{self.status}: no conclusion yet, {counted(self.cells, 'code cell')}"


def _holder_alive(path: Path) -> bool:
    """Whether the process named in the notebook's lock file is still running."""
    from scribe_tui.runtime.host_process import pid_alive
    from scribe_tui.runtime.nblock import lock_path

    try:
        holder = lock_path(path.resolve()).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return holder.isdigit() and pid_alive(int(holder))


def _status(path: Path, scribe: dict[str, Any]) -> str:
    reproduction = scribe.get("reproduction")
    if isinstance(reproduction, dict) and reproduction.get("status") in STATUSES:
        return str(reproduction["status"])
    raw = str(scribe.get("status", "?"))
    if raw == "running":
        return "running" if _holder_alive(path) else "paused"
    return _ALIASES.get(raw, raw)


def _organism(scribe: dict[str, Any]) -> str:
    receipt = scribe.get("receipt") if isinstance(scribe.get("receipt"), dict) else {}
    model = str(scribe.get("model", ""))
    return str(receipt.get("organism") or model.removeprefix("organism:").removeprefix("local:"))


def read_entry(path: Path, scores: dict[Path, str] | None = None) -> NotebookEntry | None:
    """Summarise one notebook; None if it is not an investigation (another tool's, a copy).

    Raises ValueError if the file cannot be read as a notebook at all.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scribe = data.get("metadata", {}).get("scribe")
        cells = list(data.get("cells", []))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(scribe, dict) or not (scribe.get("model") or scribe.get("task")):
        return None
    if scribe.get("reproduction_of"):
        return None  # shown through its original's status
    conclusion = scribe.get("conclusion") if isinstance(scribe.get("conclusion"), dict) else {}
    confidence = conclusion.get("confidence")
    task = str(scribe.get("task", ""))
    member = scribe.get("investigator")
    return NotebookEntry(
        path=path,
        title=str(scribe.get("experiment") or task or path.stem),
        task=task,
        model=str(scribe.get("model", "")),
        organism=_organism(scribe),
        agent=str(scribe.get("agent", "")),
        status=_status(path, scribe),
        answer=str(conclusion.get("answer", "")),
        confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        score=(scores or {}).get(path.resolve(), ""),
        created=str(scribe.get("created", "")),
        cells=sum(
            1 for cell in cells if isinstance(cell, dict) and cell.get("cell_type") == "code"
        ),
        forked_from=str(scribe.get("forked_from", "")),
        forked_at=scribe.get("forked_at") if isinstance(scribe.get("forked_at"), int) else None,
        mode=str(scribe.get("mode") or "local"),
        investigator=str(member.get("id", "")) if isinstance(member, dict) else "",
    )


def _notebooks(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*.ipynb"):
        parts = path.relative_to(folder).parts
        if not any(part.startswith(".") for part in parts):  # checkpoints, hidden folders
            yield path


def _verdict(row: dict[str, Any]) -> str:
    """The bench's verdict on one run ("" when it was not scored)."""
    if row.get("scored") is False:
        return ""
    if row.get("abstained"):
        return "abstained"
    if row.get("false_positive"):
        return "false positive"
    if row.get("correct") is None:
        return ""
    return "correct" if row["correct"] else "wrong"


def bench_scores(folder: Path) -> dict[Path, str]:
    """Bench verdicts by notebook, from every ``results.jsonl`` under or above ``folder``."""
    folder = folder.resolve()
    found = [p for p in (folder, *folder.parents[:3]) if (p / "results.jsonl").is_file()]
    files = [p / "results.jsonl" for p in found] + sorted(folder.rglob("results.jsonl"))
    scores: dict[Path, str] = {}
    for results in dict.fromkeys(files):
        try:
            lines = results.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a bench killed mid-write leaves half a line
            if not isinstance(row, dict) or not verified(row):
                continue  # not written by scribe-tui as it is: never shown as a score
            if row.get("notebook") and _verdict(row):
                scores[(results.parent / str(row["notebook"])).resolve()] = _verdict(row)
    return scores


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2026-11-21``, an ISO date-time, or ``3d`` / ``12h`` / ``2w`` ago; ValueError if none."""
    now = now or datetime.now().astimezone()
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
        return now - timedelta(hours=hours)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use a date (2026-11-21), a date-time, or an age like 3d or 12h"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def _created(entry: NotebookEntry) -> datetime | None:
    try:
        moment = datetime.fromisoformat(entry.created)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.astimezone()


def read_entries(
    folder: Path,
    *,
    status: str | None = None,
    organism: str | None = None,
    since: datetime | None = None,
) -> tuple[list[NotebookEntry], list[Path]]:
    """The index of ``folder``, newest first, filtered as asked; and the unreadable files."""
    scores = bench_scores(folder)
    wanted = (organism or "").removeprefix("organism:")
    entries, unreadable = [], []
    for path in _notebooks(folder):
        try:
            entry = read_entry(path, scores)
        except ValueError:
            unreadable.append(path)
            continue
        if entry is None or (status and entry.status != status):
            continue
        if wanted and wanted not in (entry.organism, entry.model.split(":", 1)[-1]):
            continue
        created = _created(entry)
        if since is not None and (created is None or created < since):
            continue
        entries.append(entry)
    entries.sort(key=lambda e: (e.created, str(e.path)), reverse=True)
    return _nested(entries), sorted(unreadable)


def _nested(entries: list[NotebookEntry]) -> list[NotebookEntry]:
    """Each aggregate's investigators right under it (``folder/iN/*.ipynb`` under
    ``folder/*.ipynb``), in investigator order; the rest as they were."""
    members: dict[Path, list[NotebookEntry]] = {}
    for entry in entries:
        if entry.investigator:
            members.setdefault(entry.path.parent.parent.resolve(), []).append(entry)
    ordered: list[NotebookEntry] = []
    for entry in entries:
        if entry.investigator and entry.path.parent.parent.resolve() in _aggregates(entries):
            continue  # listed under its aggregate
        ordered.append(entry)
        if not entry.investigator:
            found = members.get(entry.path.parent.resolve(), [])
            ordered += sorted(found, key=lambda e: (len(e.investigator), e.investigator))
    return ordered


def _aggregates(entries: list[NotebookEntry]) -> set[Path]:
    """The folders of the listed aggregate notebooks (those with investigators below)."""
    return {e.path.parent.resolve() for e in entries if not e.investigator}


def format_line(entry: NotebookEntry) -> str:
    """One terminal line per notebook."""
    answer = f" → {entry.answer}" if entry.answer else ""
    score = f" ({entry.score})" if entry.score else ""
    mode = "" if entry.mode == "local" else f" · {entry.mode}"
    nested = f"  └ {entry.investigator}: " if entry.investigator else ""
    return nested + (
        f"{entry.path}  [{entry.status}] {entry.task!r} · {entry.model}{mode} · {entry.agent} · "
        f"{counted(entry.cells, 'cell')}{answer}{score}"
    )


def counted(n: int, noun: str) -> str:
    """``1 cell``, ``3 cells``: a count and its noun, in the singular where it is one."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def index_markdown(folder: Path, entries: Iterable[NotebookEntry]) -> str:
    """INDEX.md: one row per notebook (title link, investigation, status with finding)."""
    rows = []
    for entry in entries:
        link = quote(entry.path.relative_to(folder).as_posix())
        when = entry.created[:16].replace("T", " ")
        investigation = f"{entry.task} · {entry.model} · {entry.agent} · {when}"
        if entry.forked_from:
            at = f" at [{entry.forked_at}]" if entry.forked_at else ""
            investigation += f" · fork of {Path(entry.forked_from).name}{at}"
        title = f"[{_cell(entry.title)}]({link})"
        if entry.investigator:
            title = f"↳ {entry.investigator}: {title}"
        rows.append(f"| {title} | {_cell(investigation)} | {_cell(entry.finding)} |")
    body = "\n".join(rows) if rows else "| (none yet) | | |"
    return (
        "# Notebook index\n\n"
        "Written by `scribe-tui index`; every notebook re-executes top to bottom "
        "(`scribe-tui reproduce NOTEBOOK`).\n\n"
        "| Notebook | Investigation | Status |\n| --- | --- | --- |\n"
        f"{body}\n"
    )


def write_index(folder: Path) -> Path:
    """Write ``folder/INDEX.md`` atomically; returns its path."""
    from scribe_tui.runtime.nbfiles import atomic_write

    target = folder / "INDEX.md"
    entries, _ = read_entries(folder)
    atomic_write(target, index_markdown(folder, entries).encode("utf-8"))
    return target
