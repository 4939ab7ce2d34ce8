"""Pure helpers behind a notebook file: what goes in it, its name, and how it is written.

- Contents: :func:`cap_outputs` makes schema-valid, size-capped copies of nbformat
  outputs (streams merged, text cut around a note, big images downscaled), with
  :func:`cap_text`, :func:`clean_text` (lone surrogates repaired), :func:`join_text`
  and :func:`json_safe`; :func:`cell_for_disk` lays a cell out as Jupyter writes it.
- Names: :func:`slugify` turns a task or experiment name into a file-name slug;
  :func:`format_size` writes byte counts for people.
- Writes: :func:`atomic_write` replaces a file so readers see the old or the new one,
  never a mix; :func:`create_exclusive` writes a new file only if the name is free;
  :func:`file_stamp` tells whether a file changed since it was written, and
  :func:`disk_trouble` says what a failed write needs.

:mod:`scribe_tui.runtime.notebook` builds the document on top of these.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import io
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_IMAGE_CAP",
    "DEFAULT_TEXT_CAP",
    "atomic_write",
    "cap_outputs",
    "cap_text",
    "cell_for_disk",
    "clean_text",
    "create_exclusive",
    "disk_trouble",
    "file_stamp",
    "format_size",
    "join_text",
    "json_safe",
    "slugify",
]

DEFAULT_TEXT_CAP = 100_000
"""Bytes of text kept per output (stream text, one mimetype, a traceback)."""
DEFAULT_IMAGE_CAP = 2_000_000
"""Bytes of base64 kept per image; larger images are downscaled to fit."""

SLUG_MAX = 40
_SURROGATES = re.compile("[\ud800-\udfff]")
_JSON_MIME = re.compile(r"^application/(.*\+)?json$")
_BINARY_IMAGE = re.compile(r"^image/(?!svg)")


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


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (anything else becomes its ``str``)."""
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
            metadata = dict(json_safe(output.get("metadata") or {}))
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


def _split(value: str) -> list[str] | str:
    # Line lists keep the file diffable, as Jupyter writes it.
    return value.splitlines(True) if "\n" in value else value


def cell_for_disk(cell: Mapping[str, Any]) -> dict[str, Any]:
    """A cell as Jupyter writes it: sources and text outputs as lists of lines."""
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


def _write_temp(path: Path, data: bytes) -> tuple[Path, os.stat_result]:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            written = os.fstat(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp, written


def atomic_write(path: Path, data: bytes) -> os.stat_result:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    Returns the new file's status as written (a rename keeps it), for :func:`file_stamp`.
    """
    tmp, written = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return written


def file_stamp(file: Path | os.stat_result) -> tuple[int, int, int] | None:
    """What changes when anyone rewrites a file: inode, modification time, size (None: gone)."""
    try:
        status = file if isinstance(file, os.stat_result) else os.stat(file)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def disk_trouble(exc: OSError) -> str:
    """Why a write failed and what to do, e.g. ``No space left on device; free some space``."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return f"{exc.strerror or exc}; {'free some space' if full else 'check the folder'}"


def create_exclusive(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if nothing is there yet; False on a name clash."""
    tmp, _ = _write_temp(path, data)
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
