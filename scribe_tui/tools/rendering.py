"""What the agent sees of a cell: nbformat outputs → Anthropic content blocks.

Pure functions, no kernel: text streams and results in order, errors as the
exception line plus the user's own frames, images resized to at most 1024 px on
the long side (and at most a handful per result), HTML as text, and everything cut
to a token budget as head + tail with a marker that says where the rest is.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scribe_tui.runtime.notebook import join_text
from scribe_tui.tools.tokens import count_tokens

DEFAULT_TOKEN_BUDGET = 2000
MAX_IMAGES = 8
MAX_IMAGE_SIDE = 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BLOCK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/h[1-6]|/li|/table)\b[^>]*>", re.IGNORECASE)
_CELL_TAG = re.compile(r"</t[dh]\s*>", re.IGNORECASE)
_FRAME_FILE = re.compile(r"^\s*File\s+(\S.*?):\d+")
# Frames in these files are the kernel's own machinery, never the user's code.
_INTERNAL = re.compile(r"[/\\](?:IPython|ipykernel|asyncio|traitlets|tornado|zmq)[/\\]")
_TRUNCATION_NOTE = re.compile(r"\[scribe-tui: output truncated:[^\]]*\]")
_LIBRARY_FRAMES_KEPT = 3
_EXIT_CODE = re.compile(r"\((exit code [^)]*)\)")


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor escapes."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def collapse_progress(text: str) -> str:
    """Keep what a terminal would show of ``\\r``-redrawn lines (progress bars)."""
    if "\r" not in text:
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


def html_to_text(markup: str) -> str:
    """A readable text fallback for HTML: tags dropped, entities decoded, rows kept as lines."""
    text = _CELL_TAG.sub("\t", markup)
    text = _BLOCK_TAG.sub("\n", text)
    text = html.unescape(_TAG.sub("", text))
    lines = [re.sub(r" +", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def error_line(error: Mapping[str, Any]) -> str:
    """``ename: evalue`` on one line (the first line of a multi-line message)."""
    ename = str(error.get("ename", "Error"))
    evalue = strip_ansi(str(error.get("evalue", ""))).strip()
    first = evalue.splitlines()[0] if evalue else ""
    return f"{ename}: {first}" if first else ename


def trim_traceback(frames: Sequence[str]) -> list[str]:
    """The user's part of an IPython traceback, ANSI stripped.

    Drops the banner, the final ``ename: evalue`` line (reported separately) and frames
    inside IPython/ipykernel; keeps every cell frame and the last few library frames,
    which show where a library call failed.
    """
    plain = [strip_ansi(join_text(frame)).rstrip("\n") for frame in frames]
    body = [
        frame
        for frame in plain
        if frame.strip()
        and not frame.startswith("-" * 20)
        and "Traceback (most recent call last)" not in frame.splitlines()[0]
    ]
    if body and not body[-1].lstrip().startswith(("Cell ", "File ")) and len(body) > 1:
        body = body[:-1]  # the closing "ename: evalue" line
    kept: list[str] = []
    library: list[str] = []
    for frame in body:
        match = _FRAME_FILE.match(frame)
        if match and _INTERNAL.search(match.group(1)):
            continue
        if match:
            library.append(frame)
            continue
        kept.extend(_flush_library(library, final=False))
        library = []
        kept.append(frame)
    kept.extend(_flush_library(library, final=True))
    return kept


def _flush_library(frames: list[str], *, final: bool) -> list[str]:
    # Library frames between cell frames are the call path; at the bottom, where it broke.
    if len(frames) <= _LIBRARY_FRAMES_KEPT:
        return frames
    omitted = f"[… {len(frames) - _LIBRARY_FRAMES_KEPT} library frames omitted …]"
    if final:
        return [omitted, *frames[-_LIBRARY_FRAMES_KEPT:]]
    return [*frames[:_LIBRARY_FRAMES_KEPT], omitted]


def format_error(error: Mapping[str, Any]) -> str:
    """An error output as a Python-style traceback of the user's frames, ANSI stripped."""
    evalue = strip_ansi(str(error.get("evalue", ""))).strip()
    line = f"{error.get('ename', 'Error')}: {evalue}" if evalue else error_line(error)
    frames = trim_traceback(error.get("traceback") or [])
    if not frames:
        return line
    if str(error.get("ename")) == "SyntaxError":  # IPython's frame already ends with the message
        return "\n".join(frames)
    return "\n".join(["Traceback (most recent call last):", *frames, line])


def image_block(mime: str, data: str, max_side: int = MAX_IMAGE_SIDE) -> dict[str, Any] | None:
    """An Anthropic image block, long side ≤ ``max_side`` (resized as PNG); None if unreadable."""
    from PIL import Image

    b64 = re.sub(r"\s+", "", data)
    try:
        raw = base64.b64decode(b64, validate=True)
        image = Image.open(io.BytesIO(raw))
        width, height = image.size
    except (OSError, ValueError, binascii.Error, Image.DecompressionBombError):
        return None
    if max(width, height) > max_side or mime not in IMAGE_TYPES:
        try:
            scale = min(1.0, max_side / max(width, height))
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = image.convert("RGBA") if image.mode not in ("RGB", "RGBA", "L") else image
            buffer = io.BytesIO()
            image.resize(size, Image.Resampling.LANCZOS).save(buffer, format="PNG")
        except (OSError, ValueError):
            return None
        b64, mime = base64.b64encode(buffer.getvalue()).decode("ascii"), "image/png"
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": b64}}


def bundle_text(data: Mapping[str, Any]) -> str | None:
    """The best text form of a mime bundle: text/plain, else markdown, HTML, JSON, LaTeX."""
    if "text/plain" in data:
        return join_text(data["text/plain"])
    if "text/markdown" in data:
        return join_text(data["text/markdown"])
    if "text/html" in data:
        return html_to_text(join_text(data["text/html"]))
    for mime, value in data.items():
        if re.match(r"^application/(.*\+)?json$", mime):
            return json.dumps(value, indent=1, ensure_ascii=False, default=str)
    if "text/latex" in data:
        return join_text(data["text/latex"])
    kinds = ", ".join(sorted(data))
    return f"[output of type {kinds} not shown]" if kinds else None


def status_line(
    status: str, *, timeout: float | None, message: str, state_lost: bool, restarted: bool = True
) -> str:
    """The one line that reports a timeout or a dead kernel (empty for ok/error).

    ``message`` is the kernel session's own line; ``restarted`` whether a fresh kernel is up.
    """
    if state_lost and not restarted:
        said = message.strip().rstrip(".") or "The kernel was lost"
        return (
            f"{said}. All variables were lost and no kernel is running; the next cell starts "
            "a fresh one (run init_session first)."
        )
    lost = (
        "it was restarted and all variables were lost: re-run setup with init_session "
        "or re-execute the cells you need."
    )
    if status == "timeout":
        after = f"Timed out after {timeout:g} s" if timeout else "Timed out"
        if state_lost:
            return f"{after} and the kernel would not stop; {lost}"
        return f"{after}; kernel interrupted, variables kept."
    if status == "died":
        code = _EXIT_CODE.search(message)
        reason = code.group(1) if code else message.strip().rstrip(".") or "no reason given"
        return f"The kernel died ({reason}); {lost}"
    return ""


def truncate(text: str, budget: int, where: str | None = None) -> str:
    """Cut ``text`` to about ``budget`` tokens: head and tail, and a marker naming the gap."""
    total = count_tokens(text)
    if total <= budget:
        return text
    chars_per_token = len(text) / total
    keep = max(budget - 60, budget // 2)  # leave room for the marker
    head_chars = int(keep * 0.6 * chars_per_token)
    tail_chars = int(keep * 0.4 * chars_per_token)
    head_end = _line_cut(text, head_chars, forward=False)
    tail_start = _line_cut(text, len(text) - tail_chars, forward=True)
    omitted = text[head_end:tail_start]
    lines = omitted.count("\n")
    marker = f"[… ≈{count_tokens(omitted)} tokens, {lines} lines omitted"
    notes = _TRUNCATION_NOTE.findall(omitted)
    if notes:  # the notebook holds a capped copy, not everything
        marker += f"; {where or 'the notebook'} keeps more of it ({notes[0][1:-1]})"
    elif where:
        marker += f"; full output in {where}"
    marker += " …]"
    return f"{text[:head_end]}\n{marker}\n{text[tail_start:]}"


def _line_cut(text: str, at: int, *, forward: bool) -> int:
    """Move a cut to a nearby line boundary (within 20% of a line's worth), else keep it."""
    window = 200
    if forward:
        nl = text.find("\n", at, at + window)
        return nl + 1 if nl >= 0 else at
    nl = text.rfind("\n", max(0, at - window), at)
    return nl + 1 if nl >= 0 else at


def render_outputs(
    outputs: Sequence[Mapping[str, Any]],
    *,
    status: str = "ok",
    message: str = "",
    state_lost: bool = False,
    restarted: bool = True,
    timeout: float | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_images: int = MAX_IMAGES,
    max_image_side: int = MAX_IMAGE_SIDE,
    where: str | None = None,
) -> list[dict[str, Any]]:
    """Content blocks for a cell's outputs: one text block (if any text), then the images.

    ``where`` names the cell holding the full output ("code cell 3 of notebooks/x.ipynb");
    it appears in truncation markers.
    """
    parts: list[str] = []
    images: list[dict[str, Any]] = []
    skipped = 0
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(collapse_progress(strip_ansi(join_text(output.get("text")))))
        elif kind == "error":
            parts.append(format_error(output))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data") or {}
            image_mime = next((m for m in data if m.startswith("image/") and "svg" not in m), None)
            if image_mime is None:
                text = bundle_text(data)
                if text is not None:
                    parts.append(strip_ansi(text))
                continue
            if len(images) >= max_images:
                skipped += 1
                continue
            block = image_block(image_mime, join_text(data[image_mime]), max_image_side)
            if block is None:
                parts.append(f"[{image_mime} image could not be decoded]")
            else:
                images.append(block)
                if len(outputs) > 1:
                    parts.append(f"[image {len(images)}]")
    if skipped:
        also = f"; all are in {where}" if where else ""
        parts.append(f"[{skipped} more images omitted: at most {max_images} are shown{also}]")
    text = "\n".join(part.rstrip("\n") for part in parts if part.strip())
    text = truncate(text, token_budget, where) if text else ""
    line = status_line(
        status, timeout=timeout, message=message, state_lost=state_lost, restarted=restarted
    )
    text = f"{text}\n{line}" if text and line else text or line
    blocks: list[dict[str, Any]] = []
    if text:
        blocks.append({"type": "text", "text": text})
    blocks.extend(images)
    if not blocks:
        blocks.append({"type": "text", "text": "(no output)"})
    return blocks
