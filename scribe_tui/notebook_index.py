"""`scribe-tui list`: one line per investigation notebook, newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NotebookEntry:
    path: Path
    task: str
    model: str
    agent: str
    status: str
    answer: str
    cells: int


def read_entry(path: Path) -> NotebookEntry | None:
    """Summarise one notebook from its ``metadata.scribe``; None if it isn't readable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    meta = data.get("metadata", {}).get("scribe", {})
    conclusion = meta.get("conclusion") or {}
    return NotebookEntry(
        path=path,
        task=str(meta.get("task", "")),
        model=str(meta.get("model", "")),
        agent=str(meta.get("agent", "")),
        status=str(meta.get("status", "?")),
        answer=str(conclusion.get("answer", "")),
        cells=len(data.get("cells", [])),
    )


def print_index(notebooks_dir: Path | None) -> int:
    """Print the index of ``notebooks_dir`` (default ./notebooks); returns an exit code."""
    folder = notebooks_dir or Path("notebooks")
    paths = sorted(folder.glob("*.ipynb"), reverse=True) if folder.is_dir() else []
    if not paths:
        print(f"No notebooks in {folder}/ yet. Start one with: scribe-tui investigate TASK")
        return 0
    for path in paths:
        entry = read_entry(path)
        if entry is None:
            print(f"{path}  (unreadable)")
            continue
        answer = f" → {entry.answer}" if entry.answer else ""
        print(
            f"{path}  [{entry.status}] {entry.task!r} · {entry.model} · {entry.agent} · "
            f"{entry.cells} cells{answer}"
        )
    return 0
