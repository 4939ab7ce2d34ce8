"""Getting images out of the app: a cell's images as PNG files, opened in a viewer.

The notebook itself is exported by :mod:`scribe_tui.record.export` (``/export``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


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
