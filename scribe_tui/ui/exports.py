"""Getting work out of the app: a cell's images as PNG files, the notebook as Markdown."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from scribe_tui.ui.render import CellModel, cell_to_markdown


def save_images(index: int, images: list[bytes]) -> list[Path]:
    """Cell ``index``'s PNG images, written to a fresh temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="scribe-images-"))
    paths = []
    for n, png in enumerate(images):
        path = folder / f"cell{index}_{n}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths


def open_in_viewer(paths: list[Path]) -> None:
    """Open each file in the desktop's viewer, where there is a display to show it on."""
    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener is not None and (os.environ.get("DISPLAY") or sys.platform == "darwin"):
        for path in paths:
            subprocess.Popen(
                [opener, str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )


def markdown_path(notebook: Path | None) -> Path:
    """Where ``/export`` writes: beside the notebook, else ``scribe-notebook.md`` here."""
    if notebook is not None:
        return Path(notebook).with_suffix(".md")
    return Path.cwd() / "scribe-notebook.md"


def export_markdown(title: str, cells: Iterable[CellModel], target: Path) -> None:
    """Write the notebook as Markdown (raises ``OSError`` if it cannot)."""
    body = "\n".join(cell_to_markdown(cell) for cell in cells)
    target.write_text(f"# {title}\n\n{body}", encoding="utf-8")
