"""Turning notebook cells and their nbformat outputs into Rich renderables.

Kept free of widgets so the notebook pane, the export and the tests share one
notion of what a cell looks like.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import Markdown
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text

#: Output lines shown per cell before "x to expand"; long prints would bury the notebook.
MAX_OUTPUT_LINES = 30
#: The half-block preview of an image is at most this many cells.
PREVIEW_COLS, PREVIEW_ROWS = 48, 10
SYNTAX_THEME = "monokai"

STATUS_GLYPHS = {
    "ok": ("✓", "green"),
    "error": ("✗ error", "bold red"),
    "timeout": ("⏱ timeout", "bold red"),
    "died": ("☠ kernel died", "bold red"),
}
AUTHOR_LABELS = {
    "agent": ("agent", "#5fafff"),
    "person": ("you", "#ffaf00"),
    "system": ("system", "grey62"),
}


@dataclass
class CellModel:
    """What the app knows about one notebook cell, built up from events."""

    index: int
    cell_id: str
    cell_type: Literal["code", "markdown"]
    source: str
    author: str = "agent"
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    status: str | None = None
    running: bool = False
    edited_by_person: bool = False
    expanded: bool = False

    def images(self) -> list[bytes]:
        """The PNG images among this cell's outputs, decoded."""
        found = []
        for output in self.outputs:
            png = _png_bytes(output)
            if png is not None:
                found.append(png)
        return found


def _png_base64(output: dict[str, Any]) -> str | bytes | None:
    raw = (output.get("data") or {}).get("image/png")
    if not raw:
        return None
    return "".join(raw) if isinstance(raw, list) else raw  # nbformat allows lists of lines


def _decode(raw: str | bytes) -> bytes | None:
    try:
        return base64.b64decode(raw)
    except (binascii.Error, ValueError):
        return None


def _png_bytes(output: dict[str, Any]) -> bytes | None:
    raw = _png_base64(output)
    return None if raw is None else _decode(raw)


class RenderOnce:
    """Renders ``renderable`` once per width, then replays the lines.

    Textual renders a widget's content to measure its height, again to paint it,
    and again whenever its styles change (the selection's background). A cell's
    content only changes with its own events, which build a new ``RenderOnce``,
    so highlighting its code once per width is enough. The lines live as long as
    the widget holding them: only mounted cells keep any.
    """

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable
        self._key: tuple[Any, ...] | None = None
        self._lines: list[list[Segment]] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        key = (options.max_width, options.no_wrap, options.overflow, options.justify)
        if key != self._key:
            self._lines = console.render_lines(
                self.renderable, options.update(height=None), pad=False
            )
            self._key = key
        new_line = Segment.line()
        for line in self._lines:
            yield from line
            yield new_line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.renderable)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def cell_header(cell: CellModel) -> Text:
    """``[3] agent ✓`` — execution count, author and status on one line."""
    header = Text(no_wrap=True, overflow="ellipsis")
    if cell.cell_type == "code":
        count = "*" if cell.running else (cell.execution_count or " ")
        header.append(f"[{count}]", style="bold")
    else:
        header.append("md ", style="dim")
    label, colour = AUTHOR_LABELS.get(cell.author, (cell.author, "grey62"))
    header.append(f" {label}", style=colour)
    if cell.edited_by_person and cell.author != "person":
        header.append(" · edited by you", style="#ffaf00")
    if cell.running:
        header.append(" · running…", style="bold yellow")
    elif cell.status in STATUS_GLYPHS:
        glyph, style = STATUS_GLYPHS[cell.status]
        header.append(f" {glyph}", style=style)
    return header


def render_cell(cell: CellModel) -> RenderableType:
    """The whole cell: header, source (markdown rendered or code highlighted), outputs."""
    parts: list[RenderableType] = [cell_header(cell)]
    if cell.cell_type == "markdown":
        parts.append(Markdown(cell.source or " "))
    else:
        parts.append(
            Syntax(
                cell.source or " ",
                "python",
                theme=SYNTAX_THEME,
                word_wrap=True,
                background_color="default",
            )
        )
    parts.extend(render_outputs(cell))
    return Group(*parts)


def render_outputs(cell: CellModel) -> list[RenderableType]:
    """Each output as a renderable; text beyond ``MAX_OUTPUT_LINES`` folds unless expanded."""
    rendered: list[RenderableType] = []
    budget = None if cell.expanded else MAX_OUTPUT_LINES
    hidden = 0
    for output in _merge_streams(cell.outputs):
        kind = output.get("output_type")
        if kind == "stream":
            style = "red" if output.get("name") == "stderr" else ""
            text = Text(_text(output.get("text")).rstrip("\n"), style=style)
        elif kind == "error":
            text = _traceback(output)
            text.stylize("on #3a0000")
        elif kind in ("execute_result", "display_data"):
            raw = _png_base64(output)
            preview = None if raw is None else _cached_preview(raw)
            if preview is not None:
                rendered.append(preview)
                continue
            data = output.get("data") or {}
            if "text/markdown" in data:
                rendered.append(Markdown(_text(data["text/markdown"])))
                continue
            text = Text(_text(data.get("text/plain", "")).rstrip("\n"))
            if kind == "execute_result" and cell.execution_count:
                text = Text.assemble((f"Out[{cell.execution_count}]: ", "dim"), text)
        else:
            continue
        if budget is not None:
            lines = text.split("\n", allow_blank=True)
            if len(lines) > budget:
                hidden += len(lines) - budget
                text = Text("\n").join(lines[:budget])
            budget -= min(len(lines), budget)
            if not text.plain and hidden:
                continue
        rendered.append(text)
    if hidden:
        rendered.append(Text(f"… {hidden} more output lines · x to expand", style="dim italic"))
    return rendered


def _traceback(output: dict[str, Any]) -> Text:
    """An error output's traceback, minus IPython's rules of dashes (they only wrap badly)."""
    lines = [
        line
        for chunk in output.get("traceback") or []
        for line in Text.from_ansi(_text(chunk)).split("\n", allow_blank=True)
        if line.plain.strip("- ")
    ]
    if not lines:
        return Text(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
    return Text("\n").join(lines)


def _merge_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive stream chunks of the same name become one (kernels send many)."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output.get("output_type") == "stream"
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            merged[-1] = {**previous, "text": _text(previous["text"]) + _text(output.get("text"))}
        else:
            merged.append(output)
    return merged


def image_size(png: bytes) -> tuple[int, int] | None:
    """Pixel size of an image, or None if Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        return None


@lru_cache(maxsize=32)
def _cached_preview(raw: str | bytes) -> RenderableType | None:
    """A base64 PNG's preview, or None if undecodable: cells redraw often, images rarely change."""
    png = _decode(raw)
    return None if png is None else image_preview(png)


def image_preview(png: bytes) -> RenderableType:
    """A truecolour half-block preview plus a caption saying how to open the real image.

    Two pixels per character cell (``▀`` with foreground and background colours)
    keep plots recognisable in any terminal, graphics protocol or not.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as image:
            width, height = image.size
            scale = min(PREVIEW_COLS / width, 2 * PREVIEW_ROWS / height, 1.0)
            cols, rows = max(1, round(width * scale)), max(2, round(height * scale))
            rows += rows % 2
            small = image.convert("RGB").resize((cols, rows))
    except (UnidentifiedImageError, OSError):
        return Text(f"[image: {len(png):,} bytes, unreadable]", style="dim italic")
    pixels = small.load()
    assert pixels is not None
    art = Text(no_wrap=True, overflow="crop")
    for y in range(0, rows, 2):
        for x in range(cols):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            art.append("▀", Style(color=f"rgb{top}", bgcolor=f"rgb{bottom}"))
        art.append("\n")
    caption = Text(f"🖼 image {width}×{height} PNG · o to open", style="dim italic")
    return Group(art, caption)
