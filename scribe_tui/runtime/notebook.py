"""The investigation notebook: an nbformat v4.5 document saved atomically after every change.

The file on disk is valid by construction: cells are built from the v4.5 schema's
shapes, outputs pass through :func:`cap_outputs` (which also bounds their size), and
every save is a complete document written to a temporary file and renamed over the
old one, so a crash mid-save leaves the previous version intact. Serialised cells are
cached until they change, so a save costs one join and one write however long the
notebook grows.

A failed save (a full disk) raises :class:`NotebookSaveError`, and the next one retries.
A file someone else changed since our last save (a person in Jupyter) is never
overwritten: the notebook moves to a new file beside it (:meth:`Notebook.take_notices`).

The pure helpers this builds on (output capping, text cleaning, slugs, atomic writes)
are in :mod:`scribe_tui.runtime.nbfiles`; the ones other code imports from here are
re-exported.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import secrets
import threading
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from nbformat.warnings import DuplicateCellId, MissingIDFieldWarning

from scribe_tui.runtime.nbfiles import (
    DEFAULT_IMAGE_CAP,
    DEFAULT_TEXT_CAP,
    atomic_write,
    cap_outputs,
    cap_text,
    cell_for_disk,
    clean_text,
    create_exclusive,
    disk_trouble,
    file_stamp,
    format_size,
    join_text,
    json_safe,
    slugify,
)

__all__ = [
    "DEFAULT_IMAGE_CAP",
    "DEFAULT_TEXT_CAP",
    "Notebook",
    "NotebookError",
    "NotebookSaveError",
    "cap_outputs",
    "cap_text",
    "format_size",
    "join_text",
    "slugify",
]

# What a copy does not inherit: it is its own run, with its own receipt and outcome.
_NOT_INHERITED = ("conclusion", "forked_from", "forked_at", "receipt", "reproduction")
# One long-lived thread writes every notebook: starting a thread per save costs more than
# the write, and the executor finishes queued writes when the interpreter exits.
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebook-save")


class NotebookError(ValueError):
    """A notebook that cannot be used; the message is one line saying what to do."""


class NotebookSaveError(NotebookError):
    """A save failed; the file holds the last good save and the next save tries again."""


def _new_cell_id() -> str:
    return secrets.token_hex(4)


class Notebook:
    """An nbformat v4.5 notebook bound to a file; mutating methods save it (unless save=False).

    Mutate cells only through these methods: they keep the serialisation cache right.
    Cell indices count all cells; ``code_index`` converts the code-cell numbering
    that the agent's tools use.
    """

    def __init__(
        self,
        path: Path,
        nb: dict[str, Any],
        *,
        text_cap: int = DEFAULT_TEXT_CAP,
        image_cap: int = DEFAULT_IMAGE_CAP,
    ) -> None:
        self.path = Path(path)
        self.nb = nb
        self.text_cap = text_cap
        self.image_cap = image_cap
        self._fragments: dict[str, str] = {}
        self._lock = threading.Lock()  # one writer at a time
        self._version = 0
        self._written = 0
        self._idle = threading.Condition()  # guards the background writer's state
        self._pending: tuple[int, bytes] | None = None
        self._writing = False
        self._save_error: Exception | None = None
        self._stamp: tuple[int, int, int] | None = None  # of the file as this object last wrote it
        self._notices: list[str] = []

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str = "notebooks",
        name: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        text_cap: int = DEFAULT_TEXT_CAP,
        image_cap: int = DEFAULT_IMAGE_CAP,
    ) -> Notebook:
        """A new, saved notebook at ``directory/<YYYY-MM-DD-HH-MM>_<slug>.ipynb``.

        ``metadata`` (task, model, agent, ...) goes into ``metadata.scribe``; the slug
        comes from ``name``, else the task. A clash gets a ``-2``, ``-3``, ... suffix.
        """
        now = now or datetime.now().astimezone()
        meta = dict(json_safe(dict(metadata or {})))
        if name:
            meta.setdefault("experiment", name)
        scribe = {"task": "", "model": "", "agent": "", **meta}
        scribe.update(status="running", created=now.isoformat(timespec="seconds"))
        nb = {
            "cells": [],
            "metadata": {
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": {"name": "python", "version": platform.python_version()},
                "scribe": scribe,
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        notebook = cls(Path(directory), nb, text_cap=text_cap, image_cap=image_cap)
        notebook._claim(Path(directory), slugify(name or str(scribe["task"])), now)
        return notebook

    def _claim(self, directory: Path, slug: str, now: datetime) -> None:
        """Pick the first free file name and write the notebook there atomically."""
        stem = f"{now.strftime('%Y-%m-%d-%H-%M')}_{slug}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            names = (f"{stem}.ipynb" if n == 1 else f"{stem}-{n}.ipynb" for n in range(1, 10_000))
            self._create_first_free(directory, names, self.dumps())
        except OSError as exc:
            raise NotebookError(
                f"could not create a notebook in {directory}: {disk_trouble(exc)}"
            ) from exc

    def _create_first_free(self, directory: Path, names: Iterable[str], data: bytes) -> None:
        """Write ``data`` to the first name not taken and make that file this notebook's."""
        for name in names:
            path = directory / name
            if not path.exists() and create_exclusive(path, data):
                self.path, self._stamp = path, file_stamp(path)
                return
        raise NotebookError(f"{directory}: no free notebook name for {name}; clean up the folder")

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        text_cap: int = DEFAULT_TEXT_CAP,
        image_cap: int = DEFAULT_IMAGE_CAP,
    ) -> Notebook:
        """Open an existing notebook (upgraded to v4.5 in memory); NotebookError if unusable."""
        path = Path(path)
        if path.suffix != ".ipynb":
            raise NotebookError(f"{path}: not a notebook (expected a .ipynb file)")
        if not path.is_file():
            raise NotebookError(f"{path}: no such notebook; check the path (scribe-tui list)")
        try:
            stamp = file_stamp(path)  # before reading: a change after it is seen
            with warnings.catch_warnings():
                # Missing or duplicate cell ids are repaired below; no need to warn.
                warnings.simplefilter("ignore", DuplicateCellId)
                warnings.simplefilter("ignore", MissingIDFieldWarning)
                raw = nbformat.read(path, as_version=4)
                nbformat.validate(raw)
        except OSError as exc:
            raise NotebookError(f"{path}: cannot be read ({exc}); check the file") from exc
        except Exception as exc:  # nbformat raises JSON, reader and schema errors of many types
            summary = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NotebookError(
                f"{path}: not a valid Jupyter notebook ({summary[:200]}); "
                "open it in Jupyter to repair it, or pick another file"
            ) from exc
        nb = _plain(raw)
        nb["nbformat_minor"] = max(int(nb.get("nbformat_minor", 5)), 5)
        seen: set[str] = set()
        for cell in nb["cells"]:
            cell_id = cell.get("id")
            if not isinstance(cell_id, str) or cell_id in seen:
                cell["id"] = cell_id = _new_cell_id()
            seen.add(cell_id)
            cell["source"] = join_text(cell.get("source"))
            if cell["cell_type"] == "code":
                cell["outputs"] = cap_outputs(
                    cell.get("outputs", []), text_cap=text_cap, image_cap=image_cap
                )
        nb["metadata"].setdefault("scribe", {})
        notebook = cls(path, nb, text_cap=text_cap, image_cap=image_cap)
        notebook._stamp = stamp
        return notebook

    def fork(
        self,
        directory: Path | str | None = None,
        name: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        cells: int | None = None,
    ) -> Notebook:
        """A saved copy under a new name whose ``metadata.scribe.forked_from`` names this one.

        ``cells``: keep only the first that many cells (a fork from the middle).
        """
        now = now or datetime.now().astimezone()
        directory = Path(directory) if directory is not None else self.path.parent
        scribe = {k: v for k, v in self.scribe.items() if k not in _NOT_INHERITED}
        scribe.update(json_safe(dict(metadata or {})))
        if name:
            scribe["experiment"] = name
        scribe.update(
            status="running",
            created=now.isoformat(timespec="seconds"),
            forked_from=str(self.path),
        )
        nb = json.loads(json.dumps(self.nb))
        del nb["cells"][len(nb["cells"]) if cells is None else cells :]
        nb["metadata"]["scribe"] = scribe
        for cell in nb["cells"]:
            cell["id"] = _new_cell_id()  # ids are unique per document, not across copies
        copy = Notebook(directory, nb, text_cap=self.text_cap, image_cap=self.image_cap)
        slug = slugify(name or str(scribe.get("experiment") or scribe.get("task") or ""))
        copy._claim(directory, slug, now)
        return copy

    # -- reading ------------------------------------------------------------------------

    @property
    def cells(self) -> list[dict[str, Any]]:
        """The cells (read them; change them through this class's methods)."""
        return self.nb["cells"]

    @property
    def scribe(self) -> dict[str, Any]:
        """``metadata.scribe``: task, model, agent, status, created, conclusion, forked_from."""
        return self.nb["metadata"]["scribe"]

    def code_indices(self) -> list[int]:
        """Positions (among all cells) of the code cells, in order."""
        return [i for i, cell in enumerate(self.cells) if cell["cell_type"] == "code"]

    def code_index(self, cell_index: int) -> int:
        """Position of code cell ``cell_index`` (negative: from the end); IndexError if absent."""
        code = self.code_indices()
        if not code:
            raise IndexError("the notebook has no code cells yet")
        if not -len(code) <= cell_index < len(code):
            raise IndexError(
                f"cell_index {cell_index} is out of range: there are {len(code)} code cells "
                f"(use 0..{len(code) - 1}, or -1 for the last)"
            )
        return code[cell_index]

    def code_number(self, index: int) -> int:
        """The code-cell number (as ``cell_index`` counts) of the cell at position ``index``."""
        return sum(1 for cell in self.cells[:index] if cell["cell_type"] == "code")

    # -- changing -----------------------------------------------------------------------

    def add_code_cell(self, source: str, author: str = "agent", *, save: bool = True) -> int:
        """Append a code cell; returns its position."""
        cell = {
            "id": _new_cell_id(),
            "cell_type": "code",
            "metadata": {"scribe": {"author": author}},
            "source": clean_text(source),
            "outputs": [],
            "execution_count": None,
        }
        return self._append(cell, save)

    def add_markdown_cell(self, source: str, author: str = "agent", *, save: bool = True) -> int:
        """Append a markdown cell; returns its position."""
        cell = {
            "id": _new_cell_id(),
            "cell_type": "markdown",
            "metadata": {"scribe": {"author": author}},
            "source": clean_text(source),
        }
        return self._append(cell, save)

    def _append(self, cell: dict[str, Any], save: bool) -> int:
        self.cells.append(cell)
        if save:
            self.save()
        return len(self.cells) - 1

    def set_source(
        self, index: int, source: str, author: str | None = None, *, save: bool = True
    ) -> None:
        """Replace the source of the cell at ``index`` (and record who changed it)."""
        cell = self.cells[index]
        cell["source"] = clean_text(source)
        if author is not None:
            cell["metadata"].setdefault("scribe", {})["author"] = author
        self._changed(cell, save)

    def set_outputs(
        self,
        index: int,
        outputs: Iterable[Mapping[str, Any]],
        execution_count: int | None = None,
        *,
        save: bool = True,
    ) -> list[dict[str, Any]]:
        """Store capped copies of ``outputs`` in code cell ``index``; returns what was stored."""
        cell = self.cells[index]
        if cell["cell_type"] != "code":
            raise ValueError(f"cell {index} is a {cell['cell_type']} cell, not a code cell")
        cell["outputs"] = cap_outputs(outputs, text_cap=self.text_cap, image_cap=self.image_cap)
        cell["execution_count"] = execution_count if isinstance(execution_count, int) else None
        self._changed(cell, save)
        return cell["outputs"]

    def update_scribe(self, *, save: bool = True, **fields: Any) -> None:
        """Merge ``fields`` into ``metadata.scribe`` (e.g. ``status="stopped"``)."""
        self.scribe.update(json_safe(fields))
        if save:
            self.save()

    def conclude(
        self,
        answer: str,
        confidence: float,
        evidence: str,
        author: str = "agent",
        *,
        save: bool = True,
    ) -> int:
        """Append the Conclusion cell and record it as ``metadata.scribe.conclusion``."""
        index = self.add_markdown_cell(
            f"## Conclusion\n\n**Answer:** {answer}\n\n**Confidence:** {confidence:.2f}\n\n"
            f"**Evidence:**\n\n{evidence}\n",
            author,
            save=False,
        )
        self.update_scribe(
            save=save,
            status="concluded",
            conclusion={
                "answer": answer,
                "confidence": confidence,
                "evidence": evidence,
                "concluded": datetime.now().astimezone().isoformat(timespec="seconds"),
            },
        )
        return index

    def _changed(self, cell: Mapping[str, Any], save: bool) -> None:
        self._fragments.pop(cell["id"], None)
        if save:
            self.save()

    # -- saving -------------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The whole document as UTF-8 JSON in Jupyter's layout (one-space indent, sorted keys)."""
        parts = []
        for cell in self.cells:
            fragment = self._fragments.get(cell["id"])
            if fragment is None:
                text = json.dumps(cell_for_disk(cell), indent=1, sort_keys=True, ensure_ascii=False)
                fragment = "  " + text.replace("\n", "\n  ")  # JSON strings hold no raw newlines
                self._fragments[cell["id"]] = fragment
            parts.append(fragment)
        meta = json.dumps(self.nb["metadata"], indent=1, sort_keys=True, ensure_ascii=False)
        cells = "[\n" + ",\n".join(parts) + "\n ]" if parts else "[]"
        text = (
            f'{{\n "cells": {cells},\n "metadata": {meta.replace(chr(10), chr(10) + " ")},\n'
            f' "nbformat": 4,\n "nbformat_minor": {int(self.nb["nbformat_minor"])}\n}}\n'
        )
        # "replace" only matters for lone surrogates that slipped past clean_text.
        return text.encode("utf-8", "replace")

    def save(self) -> None:
        """Write the notebook now, atomically (temp file, fsync, rename, fsync the folder)."""
        self.write(self._snapshot())

    def save_soon(self) -> None:
        """Write the current state on a background thread and return at once.

        fsync can take milliseconds on a busy disk; this keeps it off the caller's path.
        Bursts coalesce (only the newest state is written), and the writes keep the same
        atomic order as :meth:`save`. :meth:`flush` waits for them.
        """
        snapshot = self._snapshot()
        with self._idle:
            self._pending = snapshot
            if self._writing:
                return
            self._writing = True
        _WRITER.submit(self._drain)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every scheduled save is on disk; raise if the newest one failed."""
        with self._idle:
            if not self._idle.wait_for(lambda: not self._writing, timeout):
                raise TimeoutError(f"{self.path}: still saving after {timeout} s")
        if self.save_error is not None:
            raise self.save_error

    @property
    def save_error(self) -> Exception | None:
        """Why the most recent background save failed; None once a save succeeds."""
        return self._save_error

    def _snapshot(self) -> tuple[int, bytes]:
        # Serialised on the caller's thread, so the bytes are a consistent state.
        self._version += 1
        return self._version, self.dumps()

    def _drain(self) -> None:
        while True:
            with self._idle:
                snapshot, self._pending = self._pending, None
                if snapshot is None:
                    self._writing = False
                    self._idle.notify_all()
                    return
            try:
                self.write(snapshot)
            except Exception as exc:  # kept for flush() and the tools to report
                self._save_error = exc
            else:
                self._save_error = None

    def write(self, snapshot: tuple[int, bytes]) -> None:
        """Write a snapshot atomically unless a newer one is already on disk (thread-safe).

        Raises :class:`NotebookSaveError` if it cannot; the file keeps the last good save.
        """
        version, data = snapshot
        with self._lock:
            if version <= self._written:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                on_disk = file_stamp(self.path)
                if on_disk is None or self._stamp in (None, on_disk):
                    self._stamp = file_stamp(atomic_write(self.path, data))
                else:
                    self._move_aside(data)
            except OSError as exc:
                raise NotebookSaveError(
                    f"could not save notebook {self.path}: {disk_trouble(exc)}; the run "
                    "continues in memory and saving is retried at the next change"
                ) from exc
            self._written = version

    def _move_aside(self, data: bytes) -> None:
        """Someone else rewrote the file: leave theirs, and save to a new file beside it."""
        original = self.path
        base = re.sub(r"\.scribe-\d+$", "", original.stem)
        names = (f"{base}.scribe-{n}.ipynb" for n in range(1, 10_000))
        self._create_first_free(original.parent, names, data)
        self._notices.append(
            f"{original} was changed by another program; left it as it is, and this "
            f"notebook is now saved to {self.path}"
        )

    def take_notices(self) -> list[str]:
        """Things a person should know about this notebook's file, each said once (thread-safe)."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices


def _plain(value: Any) -> Any:
    """NotebookNode trees as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def files_folder(notebook: Path) -> Path:
    """Where ``notebook``'s kernel works and writes its files and figures: beside it, and the
    only folder a sealed kernel may write (the notebook and its transcript are not)."""
    return notebook.with_name(f"{notebook.stem}.files")


def discard_notebook(notebook: Path) -> None:
    """Remove a notebook that never ran (its kernel did not start), and its files folder."""
    notebook.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        files_folder(notebook).rmdir()
