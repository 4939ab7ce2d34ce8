"""The investigation notebook: an nbformat v4.5 document saved atomically after every change.

The file on disk is valid by construction: cells are built from the v4.5 schema's
shapes, outputs pass through :func:`cap_outputs` (which also bounds their size), and
every save is a complete document written to a temporary file and renamed over the
old one, so a crash mid-save leaves the previous version intact. Serialised cells are
cached until they change, so a save costs one join and one write however long the
notebook grows.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import os
import platform
import re
import secrets
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from nbformat.warnings import DuplicateCellId, MissingIDFieldWarning

DEFAULT_TEXT_CAP = 100_000
"""Bytes of text kept per output (stream text, one mimetype, a traceback)."""
DEFAULT_IMAGE_CAP = 2_000_000
"""Bytes of base64 kept per image; larger images are downscaled to fit."""

SLUG_MAX = 40
# One long-lived thread writes every notebook: starting a thread per save costs more than
# the write, and the executor finishes queued writes when the interpreter exits.
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebook-save")
_SURROGATES = re.compile("[\ud800-\udfff]")
_JSON_MIME = re.compile(r"^application/(.*\+)?json$")
_BINARY_IMAGE = re.compile(r"^image/(?!svg)")


class NotebookError(ValueError):
    """A notebook that cannot be used; the message is one line saying what to do."""


def format_size(n: int) -> str:
    """``20000000`` → ``20.0 MB``, ``100000`` → ``100 kB`` (decimal units)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 10_000:
        return f"{n / 1000:.0f} kB"
    if n >= 1000:
        return f"{n / 1000:.1f} kB"
    return f"{n} B"


def clean_text(text: str) -> str:
    """Replace lone surrogates (undecodable bytes from the kernel) so the text encodes as UTF-8."""
    if _SURROGATES.search(text) is None:
        return text
    return _SURROGATES.sub("\ufffd", text)


def join_text(value: Any) -> str:
    """An nbformat multiline string (str or list of str) as one str."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return "" if value is None else str(value)


def cap_text(text: str, limit: int) -> str:
    """Keep at most ``limit`` UTF-8 bytes of ``text``: head and tail around a truncation note."""
    if len(text) * 4 <= limit:  # no character takes more than 4 bytes: surely fits
        return text
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    head_end = limit * 2 // 3
    tail_start = len(data) - (limit - head_end)
    # Cut at line ends when one is near, so the kept parts read as whole lines.
    newline = data.rfind(b"\n", head_end * 9 // 10, head_end)
    head_end = newline + 1 if newline >= 0 else head_end
    newline = data.find(b"\n", tail_start, tail_start + (len(data) - tail_start) // 10)
    tail_start = newline + 1 if newline >= 0 else tail_start
    lines = data.count(b"\n", head_end, tail_start)
    note = (
        f"\n[scribe-tui: output truncated: {format_size(len(data))} → {format_size(limit)}; "
        f"{format_size(tail_start - head_end)} ({lines} lines) omitted here]\n"
    )
    head = data[:head_end].decode("utf-8", "ignore")
    tail = data[tail_start:].decode("utf-8", "ignore")
    return head + note + tail


def _fit_image(b64: str, limit: int) -> str | None:
    """Downscale a base64 image until its PNG encoding fits ``limit``; None if impossible."""
    from PIL import Image  # Pillow is only needed when an image is too big

    try:
        image = Image.open(io.BytesIO(base64.b64decode(b64)))
        image.load()
    except (OSError, ValueError, binascii.Error, Image.DecompressionBombError):
        return None
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")
    # Bytes scale with area, so scale each side by the square root of the overshoot.
    scale = min(1.0, (limit / max(len(b64), 1)) ** 0.5 * 0.9)
    for _ in range(6):
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        buffer = io.BytesIO()
        image.resize(size, Image.Resampling.LANCZOS).save(buffer, format="PNG", optimize=True)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        if len(encoded) <= limit:
            return encoded
        scale *= 0.7
    return None


def _cap_bundle(
    data: Mapping[str, Any], metadata: dict[str, Any], text_cap: int, image_cap: int
) -> dict[str, Any]:
    bundle: dict[str, Any] = {}
    notes: list[str] = []
    for mime, value in data.items():
        mime = str(mime)
        if _JSON_MIME.match(mime):
            size = len(json.dumps(value, default=str))
            if size <= text_cap:
                bundle[mime] = json.loads(json.dumps(value, default=str))
            else:
                notes.append(f"[scribe-tui: {mime} output removed: {format_size(size)} is too big]")
        elif _BINARY_IMAGE.match(mime):
            b64 = re.sub(r"\s+", "", join_text(value))
            if len(b64) <= image_cap:
                bundle[mime] = b64
                continue
            fitted = _fit_image(b64, image_cap) if mime in ("image/png", "image/jpeg") else None
            metadata.pop(mime, None)  # width/height hints no longer match
            if fitted is None:
                notes.append(
                    f"[scribe-tui: {mime} image removed: {format_size(len(b64))} exceeds the "
                    f"{format_size(image_cap)} limit]"
                )
            else:
                bundle["image/png"] = fitted
        else:
            bundle[mime] = cap_text(clean_text(join_text(value)), text_cap)
    if notes:
        plain = bundle.get("text/plain", "")
        bundle["text/plain"] = (plain + "\n" if plain else "") + "\n".join(notes)
    return bundle


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def cap_outputs(
    outputs: Iterable[Mapping[str, Any]],
    *,
    text_cap: int = DEFAULT_TEXT_CAP,
    image_cap: int = DEFAULT_IMAGE_CAP,
) -> list[dict[str, Any]]:
    """Schema-valid copies of nbformat outputs: streams merged, text and images capped.

    Unknown output types are dropped; undecodable text is repaired. The result is safe
    to store in a notebook cell and to hand to a renderer.
    """
    result: list[dict[str, Any]] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            name = output.get("name")
            name = name if name in ("stdout", "stderr") else "stdout"
            text = join_text(output.get("text"))
            last = result[-1] if result else None
            if last is not None and last["output_type"] == "stream" and last["name"] == name:
                last["text"] += text
            else:
                result.append({"output_type": "stream", "name": name, "text": text})
        elif kind in ("display_data", "execute_result"):
            metadata = dict(_json_safe(output.get("metadata") or {}))
            capped: dict[str, Any] = {
                "output_type": kind,
                "data": _cap_bundle(output.get("data") or {}, metadata, text_cap, image_cap),
                "metadata": metadata,
            }
            if kind == "execute_result":
                count = output.get("execution_count")
                capped["execution_count"] = count if isinstance(count, int) else None
            result.append(capped)
        elif kind == "error":
            frames = [clean_text(join_text(f)) for f in output.get("traceback") or []]
            if sum(len(f) for f in frames) > text_cap // 4:  # chars; ANSI-heavy, so be strict
                frames = [cap_text(f, text_cap // 6) for f in frames]
                if len(frames) > 6:
                    skipped = f"[scribe-tui: {len(frames) - 5} traceback frames omitted]"
                    frames = [*frames[:2], skipped, *frames[-3:]]
            result.append(
                {
                    "output_type": "error",
                    "ename": cap_text(clean_text(str(output.get("ename", ""))), text_cap // 10),
                    "evalue": cap_text(clean_text(str(output.get("evalue", ""))), text_cap),
                    "traceback": frames,
                }
            )
    for output in result:
        if output["output_type"] == "stream":
            output["text"] = cap_text(clean_text(output["text"]), text_cap)
    return result


def slugify(name: str, max_len: int = SLUG_MAX) -> str:
    """An ASCII file-name slug: ``"Find the secret (v2)!"`` → ``find-the-secret-v2``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "notebook"


def _new_cell_id() -> str:
    return secrets.token_hex(4)


def _split(value: str) -> list[str] | str:
    # Line lists keep the file diffable, as Jupyter writes it.
    return value.splitlines(True) if "\n" in value else value


def _cell_for_disk(cell: Mapping[str, Any]) -> dict[str, Any]:
    disk = dict(cell)
    disk["source"] = _split(cell["source"])
    if cell["cell_type"] == "code":
        outputs = []
        for output in cell["outputs"]:
            output = dict(output)
            if output["output_type"] == "stream":
                output["text"] = _split(output["text"])
            elif "data" in output:
                output["data"] = {
                    mime: _split(value)
                    if isinstance(value, str) and not _BINARY_IMAGE.match(mime)
                    else value
                    for mime, value in output["data"].items()
                }
            outputs.append(output)
        disk["outputs"] = outputs
    return disk


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if nothing is there yet; False on a name clash."""
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)  # atomic "create if absent" with the full content already in place
    except FileExistsError:
        return False
    except OSError:  # filesystems without hard links: reserve the name, then replace
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            return False
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _fsync_dir(path.parent)
    return True


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
        meta = dict(_json_safe(dict(metadata or {})))
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
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"{now.strftime('%Y-%m-%d-%H-%M')}_{slug}"
        data = self.dumps()
        for n in range(1, 10_000):
            path = directory / (f"{stem}.ipynb" if n == 1 else f"{stem}-{n}.ipynb")
            if not path.exists() and _create_exclusive(path, data):
                self.path = path
                return
        raise NotebookError(f"{directory}: no free notebook name for {stem}; clean up the folder")

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
        return cls(path, nb, text_cap=text_cap, image_cap=image_cap)

    def fork(
        self,
        directory: Path | str | None = None,
        name: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Notebook:
        """A saved copy under a new name whose ``metadata.scribe.forked_from`` names this one."""
        now = now or datetime.now().astimezone()
        directory = Path(directory) if directory is not None else self.path.parent
        scribe = {k: v for k, v in self.scribe.items() if k not in ("conclusion", "forked_from")}
        scribe.update(_json_safe(dict(metadata or {})))
        if name:
            scribe["experiment"] = name
        scribe.update(
            status="running",
            created=now.isoformat(timespec="seconds"),
            forked_from=str(self.path),
        )
        nb = json.loads(json.dumps(self.nb))
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
        self.scribe.update(_json_safe(fields))
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
                text = json.dumps(
                    _cell_for_disk(cell), indent=1, sort_keys=True, ensure_ascii=False
                )
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
        """Write a snapshot atomically unless a newer one is already on disk (thread-safe)."""
        version, data = snapshot
        with self._lock:
            if version <= self._written:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data)
            self._written = version


def _plain(value: Any) -> Any:
    """NotebookNode trees as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
