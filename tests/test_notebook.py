"""The notebook document: valid nbformat after every operation, atomic saves, capped outputs."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from scribe_tui.runtime.notebook import (
    Notebook,
    NotebookError,
    NotebookSaveError,
    cap_outputs,
    cap_text,
    format_size,
    slugify,
)

NOW = datetime(2025, 3, 4, 5, 6)


def valid(notebook: Notebook) -> dict:
    """Read the file back with nbformat, validate it, and return it."""
    nb = nbformat.read(notebook.path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor >= 5
    return nb


def noise_png(width: int, height: int) -> str:
    """A PNG that compresses badly, so its size tracks its area."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture
def notebook(tmp_path: Path) -> Notebook:
    return Notebook.create(
        tmp_path, "Find the secret", metadata={"task": "t", "model": "m", "agent": "a"}, now=NOW
    )


def test_create_names_and_metadata(notebook: Notebook, tmp_path: Path) -> None:
    assert notebook.path == tmp_path / "2025-03-04-05-06_find-the-secret.ipynb"
    nb = valid(notebook)
    scribe = nb.metadata.scribe
    assert (scribe.task, scribe.model, scribe.agent, scribe.status) == ("t", "m", "a", "running")
    assert datetime.fromisoformat(scribe.created).year == 2025
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.language_info.name == "python"


def test_name_clashes_get_a_suffix(notebook: Notebook, tmp_path: Path) -> None:
    second = Notebook.create(tmp_path, "Find the secret", now=NOW)
    third = Notebook.create(tmp_path, "Find the secret", now=NOW)
    assert second.path.name == "2025-03-04-05-06_find-the-secret-2.ipynb"
    assert third.path.name == "2025-03-04-05-06_find-the-secret-3.ipynb"
    assert valid(third)


def test_slugs_are_short_ascii(tmp_path: Path) -> None:
    assert slugify("Café: what's the SECRET?!") == "cafe-what-s-the-secret"
    assert len(slugify("word " * 30)) <= 40 and not slugify("word " * 30).endswith("-")
    assert slugify("秘密") == "notebook"
    assert Notebook.create(tmp_path, None, now=NOW).path.name == "2025-03-04-05-06_notebook.ipynb"


def test_every_operation_keeps_the_file_valid(notebook: Notebook) -> None:
    code = notebook.add_code_cell("print('hi')\nx = 1", author="agent")
    assert valid(notebook).cells[0].metadata.scribe.author == "agent"
    notebook.set_outputs(
        code,
        [
            {"output_type": "stream", "name": "stdout", "text": "hi\n"},
            {"output_type": "stream", "name": "stdout", "text": "there\n"},
            {"output_type": "execute_result", "data": {"text/plain": "1"}, "execution_count": 1},
            {"output_type": "display_data", "data": {"application/json": {"a": [1]}}},
            {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["tb"]},
            {"output_type": "clear_output"},  # not a stored output type: dropped
        ],
        execution_count=1,
    )
    nb = valid(notebook)
    assert [o.output_type for o in nb.cells[0].outputs] == [
        "stream",
        "execute_result",
        "display_data",
        "error",
    ]
    assert nb.cells[0].outputs[0].text == "hi\nthere\n"  # consecutive streams merged
    assert nb.cells[0].execution_count == 1
    notebook.add_markdown_cell("# Notes", author="person")
    assert valid(notebook).cells[1].metadata.scribe.author == "person"
    notebook.set_source(code, "x = 2", author="person")
    assert valid(notebook).cells[0].source == "x = 2"
    notebook.update_scribe(status="stopped")
    assert valid(notebook).metadata.scribe.status == "stopped"
    notebook.conclude("the word", 0.75, "three probes agree")
    nb = valid(notebook)
    assert nb.metadata.scribe.status == "concluded"
    assert nb.metadata.scribe.conclusion.answer == "the word"
    assert nb.metadata.scribe.conclusion.confidence == 0.75
    assert nb.cells[-1].source.startswith("## Conclusion")


def test_saved_file_matches_what_nbformat_would_write(notebook: Notebook) -> None:
    for i in range(5):
        index = notebook.add_code_cell(f"x = {i}\nprint(x)")
        notebook.set_outputs(index, [{"output_type": "stream", "name": "stdout", "text": "0\n1\n"}])
    notebook.set_source(2, "changed\nsource")  # invalidates one cached cell
    ours = nbformat.reads(notebook.path.read_text(encoding="utf-8"), as_version=4)
    theirs = nbformat.reads(nbformat.writes(nbformat.from_dict(notebook.nb)), as_version=4)
    assert ours == theirs
    assert json.loads(notebook.path.read_text())["cells"][0]["source"] == ["x = 0\n", "print(x)"]


def test_saves_leave_no_temporary_files(notebook: Notebook) -> None:
    for i in range(3):
        notebook.add_code_cell(str(i))
    assert [p.name for p in notebook.path.parent.iterdir()] == [notebook.path.name]


class FullDisk:
    """A file whose writes stop half-way with ENOSPC, as on a disk that fills up."""

    def __init__(self, handle: io.BufferedWriter) -> None:
        self.handle = handle

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def write(self, data: bytes) -> int:
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> object:
        return getattr(self.handle, name)


def test_a_full_disk_keeps_the_last_good_file_and_the_next_save_retries(
    notebook: Notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook.add_code_cell("saved = 1")
    before = notebook.path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))

    notebook.add_code_cell("only in memory", save=False)
    notebook.save_soon()
    with pytest.raises(NotebookSaveError) as failed:
        notebook.flush()
    message = str(failed.value)
    assert message == (
        f"could not save notebook {notebook.path}: No space left on device; free some space; "
        "the run continues in memory and saving is retried at the next change"
    )
    assert notebook.save_error is failed.value
    with pytest.raises(NotebookSaveError, match="No space left on device"):
        notebook.save()  # the same on the caller's thread
    assert notebook.path.read_bytes() == before
    assert [c.source for c in valid(notebook).cells] == ["saved = 1"]
    assert [p.name for p in notebook.path.parent.iterdir()] == [notebook.path.name]

    monkeypatch.undo()
    notebook.add_code_cell("space again", save=False)
    notebook.save_soon()
    notebook.flush()
    assert notebook.save_error is None
    sources = [c.source for c in valid(notebook).cells]
    assert sources == ["saved = 1", "only in memory", "space again"]


def test_a_file_changed_by_someone_else_is_kept_and_saves_move_beside_it(
    notebook: Notebook,
) -> None:
    original = notebook.path
    notebook.add_code_cell("ours = 1")
    theirs = nbformat.read(original, as_version=4)
    theirs.cells.append(nbformat.v4.new_markdown_cell("a person's note, written in Jupyter"))
    nbformat.write(theirs, original)

    notebook.add_code_cell("ours = 2")
    aside = original.with_name("2025-03-04-05-06_find-the-secret.scribe-1.ipynb")
    assert notebook.path == aside
    assert [c.source for c in valid(notebook).cells] == ["ours = 1", "ours = 2"]
    assert nbformat.read(original, as_version=4) == theirs
    assert notebook.take_notices() == [
        f"{original} was changed by another program; left it as it is, and this notebook "
        f"is now saved to {aside}"
    ]
    notebook.add_code_cell("ours = 3")  # goes on in the new file, and says nothing more
    assert [c.source for c in valid(notebook).cells][-1] == "ours = 3"
    assert notebook.take_notices() == []
    assert nbformat.read(original, as_version=4) == theirs

    # Replaced rather than rewritten (another inode), after a load: still noticed.
    loaded = Notebook.load(aside)
    aside.with_name("edited.tmp").write_bytes(aside.read_bytes().replace(b"ours = 3", b"edit"))
    os.replace(aside.with_name("edited.tmp"), aside)
    loaded.update_scribe(status="stopped")
    assert loaded.path.name == "2025-03-04-05-06_find-the-secret.scribe-2.ipynb"
    assert valid(loaded).metadata.scribe.status == "stopped"
    assert "edit" in [c.source for c in nbformat.read(aside, as_version=4).cells]
    assert len(loaded.take_notices()) == 1

    loaded.path.unlink()  # deleted: nothing to keep, so the file is simply written again
    loaded.add_markdown_cell("back")
    assert loaded.path.name.endswith(".scribe-2.ipynb") and loaded.take_notices() == []
    assert valid(loaded).cells[-1].source == "back"


def test_a_20_mb_print_is_capped_on_disk(tmp_path: Path) -> None:
    notebook = Notebook.create(tmp_path, "big", text_cap=100_000)
    index = notebook.add_code_cell("print(...)")
    text = "".join(f"line {i:07d} {'y' * 50}\n" for i in range(330_000))
    assert len(text) > 20_000_000
    stored = notebook.set_outputs(
        index, [{"output_type": "stream", "name": "stdout", "text": text}]
    )
    kept = stored[0]["text"]
    assert len(kept.encode()) < 101_000
    assert kept.startswith("line 0000000") and kept.endswith(f"line 0329999 {'y' * 50}\n")
    assert re.search(
        r"\[scribe-tui: output truncated: 2\d\.\d MB → 100 kB; .* omitted here\]", kept
    )
    assert notebook.path.stat().st_size < 120_000
    assert valid(notebook)


def test_cap_text_handles_multibyte_and_reports_sizes() -> None:
    text = "é" * 200_000  # 400 kB of UTF-8
    capped = cap_text(text, 10_000)
    assert len(capped.encode()) < 10_300
    assert "400 kB → 10 kB" in capped
    assert cap_text("small", 10) == "small"
    assert (format_size(20_000_000), format_size(100_000), format_size(999)) == (
        "20.0 MB",
        "100 kB",
        "999 B",
    )


def test_big_images_are_downscaled_or_dropped(notebook: Notebook) -> None:
    big = noise_png(600, 600)  # ~1.4 MB of base64
    index = notebook.add_code_cell("show()")
    notebook.image_cap = 200_000
    stored = notebook.set_outputs(
        index,
        [
            {
                "output_type": "display_data",
                "data": {"image/png": big, "text/plain": "<Figure>"},
                "metadata": {"image/png": {"width": 600}},
            },
            {"output_type": "display_data", "data": {"image/png": "A" * 300_000}, "metadata": {}},
        ],
    )
    fitted = stored[0]["data"]["image/png"]
    assert len(fitted) <= 200_000
    width = Image.open(io.BytesIO(base64.b64decode(fitted))).width
    assert 0 < width < 600
    assert stored[0]["metadata"] == {}
    assert "image/png" not in stored[1]["data"]
    assert "image removed: 300 kB exceeds the 200 kB limit" in stored[1]["data"]["text/plain"]
    assert valid(notebook)


def test_invalid_utf8_is_repaired(notebook: Notebook) -> None:
    undecodable = b"bad \xff\xfe bytes".decode("utf-8", "surrogateescape")
    index = notebook.add_code_cell("print(" + undecodable + ")")
    notebook.set_outputs(index, [{"output_type": "stream", "name": "stdout", "text": undecodable}])
    notebook.path.read_bytes().decode("utf-8")  # strict: raises if anything slipped through
    nb = valid(notebook)
    assert nb.cells[0].outputs[0].text == "bad \ufffd\ufffd bytes"


def test_huge_tracebacks_and_json_are_bounded() -> None:
    outputs = cap_outputs(
        [
            {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["f" * 5000] * 50},
            {"output_type": "display_data", "data": {"application/json": {"k": "v" * 20_000}}},
        ],
        text_cap=10_000,
    )
    assert len(outputs[0]["traceback"]) == 6
    assert sum(len(frame) for frame in outputs[0]["traceback"]) < 12_000
    assert "application/json" not in outputs[1]["data"]
    assert "is too big" in outputs[1]["data"]["text/plain"]


def test_load_round_trip_and_code_cell_numbering(notebook: Notebook) -> None:
    notebook.add_markdown_cell("intro")
    notebook.add_code_cell("a = 1")
    notebook.add_markdown_cell("middle")
    notebook.add_code_cell("b = 2")
    loaded = Notebook.load(notebook.path)
    assert loaded.nb == notebook.nb
    assert loaded.code_indices() == [1, 3]
    assert (loaded.code_index(0), loaded.code_index(-1), loaded.code_number(3)) == (1, 3, 1)
    with pytest.raises(IndexError, match="there are 2 code cells"):
        loaded.code_index(2)
    with pytest.raises(IndexError):
        loaded.code_index(-3)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.ipynb", None, "no such notebook"),
        ("notes.txt", "hello", "not a notebook (expected a .ipynb file)"),
        ("broken.ipynb", "{not json", "not a valid Jupyter notebook"),
        ("schema.ipynb", json.dumps({"cells": 3, "nbformat": 4}), "not a valid Jupyter notebook"),
        ("binary.ipynb", b"\xff\xfe\x00garbage", "not a valid Jupyter notebook"),
    ],
)
def test_load_errors_say_what_to_do(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(NotebookError, match=re.escape(message)) as info:
        Notebook.load(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("minor", "ids"), [(4, [None, None]), (5, ["same", "same"])])
def test_load_repairs_missing_and_duplicate_ids(
    tmp_path: Path, minor: int, ids: list[str | None]
) -> None:
    cells = []
    for cell_id in ids:
        cell = {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": []}
        cell["execution_count"] = None
        if cell_id is not None:
            cell["id"] = cell_id
        cells.append(cell)
    path = tmp_path / "old.ipynb"
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": minor})
    )
    loaded = Notebook.load(path)
    loaded.add_code_cell("y = 2")
    nb = valid(loaded)
    assert len({cell.id for cell in nb.cells}) == 3


def test_fork_copies_with_fresh_metadata(notebook: Notebook, tmp_path: Path) -> None:
    notebook.add_code_cell("x = 1")
    notebook.conclude("answer", 0.5, "evidence")
    before = notebook.path.read_bytes()
    fork = notebook.fork(tmp_path / "forks", "second look", metadata={"agent": "b"}, now=NOW)
    assert fork.path == tmp_path / "forks" / "2025-03-04-05-06_second-look.ipynb"
    nb = valid(fork)
    scribe = nb.metadata.scribe
    assert scribe.forked_from == str(notebook.path)
    assert (scribe.status, scribe.agent, scribe.task) == ("running", "b", "t")
    assert "conclusion" not in scribe
    assert [c.source for c in nb.cells] == [c["source"] for c in notebook.cells]
    assert not {c.id for c in nb.cells} & {c["id"] for c in notebook.cells}
    assert notebook.path.read_bytes() == before


CHILD_SAVER = """
import sys
from scribe_tui.runtime.notebook import Notebook

notebook = Notebook.load(sys.argv[1], text_cap=10**9)
index = notebook.add_code_cell("big", save=False)
n = 0
while True:
    n += 1
    text = chr(ord("a") + n % 26) * 30_000_000
    notebook.set_outputs(index, [{"output_type": "stream", "name": "stdout", "text": text}], n)
"""


def test_a_process_killed_mid_save_leaves_a_valid_notebook(notebook: Notebook) -> None:
    notebook.add_code_cell("x = 1")
    original, original_bytes = valid(notebook), notebook.path.read_bytes()
    killed_mid_write = False
    for _ in range(3):
        notebook.path.write_bytes(original_bytes)
        child = subprocess.Popen([sys.executable, "-c", CHILD_SAVER, str(notebook.path)])
        try:
            deadline = time.monotonic() + 60
            while not list(notebook.path.parent.glob(".*.tmp")):
                assert child.poll() is None, "the saver exited early"
                assert time.monotonic() < deadline, "the saver never started a save"
                time.sleep(0.001)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        leftovers = list(notebook.path.parent.glob(".*.tmp"))
        killed_mid_write = killed_mid_write or bool(leftovers)
        nb = valid(Notebook.load(notebook.path))
        if len(nb.cells) == 2:  # a complete earlier save of the child's
            text = nb.cells[1].outputs[0].text
            assert len(text) == 30_000_000 and text == text[0] * 30_000_000
        else:
            assert nb == original
        for leftover in leftovers:
            leftover.unlink()
        if killed_mid_write:
            break
    assert killed_mid_write, "never caught the child in the middle of a write"
