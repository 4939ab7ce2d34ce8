"""``scribe-tui export``: a notebook as one self-contained HTML or Markdown file (nbconvert).

HTML carries its images inline, as nbconvert writes them. Markdown normally points at
image files written beside it; here each image becomes a ``data:`` URI instead, so the
single file is the whole record.
"""

from __future__ import annotations

import base64
from pathlib import Path

from scribe_tui.record.source import RecordError, open_notebook
from scribe_tui.runtime.nbfiles import atomic_write

__all__ = ["FORMATS", "export", "export_path"]

FORMATS = {"html": ".html", "md": ".md"}
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif", ".svg": "image/svg+xml"}  # fmt: skip


def export_path(notebook: Path, to: str) -> Path:
    """Where an export goes by default: beside the notebook, same name."""
    return notebook.with_suffix(FORMATS[to])


def export(path: Path, to: str, out: Path | None = None) -> Path:
    """Write ``path`` as ``to`` (html or md); returns the file written."""
    if to not in FORMATS:
        raise RecordError(f"--to {to}: use html or md")
    notebook = open_notebook(path)  # any notebook exports, not only ours
    target = out or export_path(path, to)
    if target.resolve() == path.resolve():
        raise RecordError("--out names the notebook itself: pick another file")
    import nbformat
    from nbconvert import HTMLExporter, MarkdownExporter

    nb = nbformat.from_dict(notebook.nb)
    scribe = notebook.scribe
    title = str(scribe.get("experiment") or scribe.get("task") or path.stem)
    resources = {"metadata": {"name": title}}
    if to == "html":
        body, _ = HTMLExporter(embed_images=True).from_notebook_node(nb, resources=resources)
    else:
        body, extracted = MarkdownExporter().from_notebook_node(nb, resources=resources)
        body = f"# {title}\n\n{_inline_images(body, extracted.get('outputs', {}))}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, body.encode("utf-8"))
    except OSError as exc:
        raise RecordError(
            f"cannot write {target}: {exc.strerror or exc}; check the folder"
        ) from None
    return target


def _inline_images(markdown: str, files: dict[str, bytes]) -> str:
    """Replace each extracted image's file name with a data URI of its bytes."""
    for name, data in files.items():
        mime = _IMAGE_TYPES.get(Path(name).suffix.lower())
        if mime is None:
            continue
        payload = data if isinstance(data, bytes) else str(data).encode()
        uri = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
        markdown = markdown.replace(f"]({name})", f"]({uri})")
    return markdown
