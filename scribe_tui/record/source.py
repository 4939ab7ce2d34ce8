"""Opening a notebook of record: one-line errors for every way it can be the wrong file."""

from __future__ import annotations

from pathlib import Path

from scribe_tui.runtime.notebook import Notebook, NotebookError

__all__ = ["RecordError", "code_cell_position", "open_notebook", "open_record"]


class RecordError(ValueError):
    """A notebook (or argument) the command cannot use; the message says what to do."""


def open_notebook(path: Path) -> Notebook:
    """Load any valid Jupyter notebook; RecordError (one line) if it is missing or broken."""
    try:
        return Notebook.load(path)
    except NotebookError as exc:
        raise RecordError(str(exc)) from None


def open_record(path: Path, command: str) -> Notebook:
    """Load a notebook written by ``scribe-tui investigate``; RecordError if it is not one."""
    notebook = open_notebook(path)
    scribe = notebook.scribe
    if not scribe.get("model"):
        raise RecordError(
            f"{path}: not a scribe-tui notebook (no metadata.scribe); `scribe-tui {command}` "
            "works on notebooks that `scribe-tui investigate` wrote"
        )
    return notebook


def code_cell_position(notebook: Notebook, number: int) -> int:
    """Where code cell ``number`` (counted from 1, as ``[N]`` shows it) sits among all cells."""
    code = notebook.code_indices()
    if not 1 <= number <= len(code):
        raise RecordError(
            f"cell {number} is out of range: {notebook.path} has {len(code)} code cells "
            f"(use 1..{len(code)})"
            if code
            else f"{notebook.path} has no code cells to start from"
        )
    return code[number - 1]
