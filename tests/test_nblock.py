"""One scribe-tui process per notebook: the lock file, across real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from scribe_tui.runtime.nblock import NotebookBusy, NotebookLock, lock_path

HOLDER = """
import sys
from scribe_tui.runtime.nblock import NotebookLock
NotebookLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()
"""

TRY = """
import sys
from scribe_tui.runtime.nblock import NotebookBusy, NotebookLock
try:
    NotebookLock(sys.argv[1]).acquire()
except NotebookBusy as exc:
    print(exc)
else:
    print("acquired")
"""


def hold_in_another_process(notebook: Path) -> subprocess.Popen[str]:
    """A process that holds ``notebook`` until its stdin closes or it is killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(notebook)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def try_in_another_process(notebook: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", TRY, str(notebook)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    path = tmp_path / "run.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def test_a_second_process_is_refused_with_the_holders_pid(notebook: Path) -> None:
    holder = hold_in_another_process(notebook)
    try:
        with pytest.raises(NotebookBusy) as busy:
            NotebookLock(notebook).acquire()
        assert str(busy.value) == (
            f"notebook {notebook} is in use by scribe-tui pid {holder.pid}; "
            "wait for it to finish or stop it"
        )
    finally:
        holder.kill()  # a crash: the kernel drops the lock, the file stays behind
        holder.wait()
    assert lock_path(notebook).exists()
    with NotebookLock(notebook):
        assert lock_path(notebook).read_text() == f"{os.getpid()}\n"
    assert not lock_path(notebook).exists()


def test_holds_in_one_process_are_counted(notebook: Path) -> None:
    first = NotebookLock(notebook)
    second = NotebookLock(notebook.parent / "." / notebook.name)  # another spelling
    first.acquire()
    second.acquire()
    first.release()
    assert try_in_another_process(notebook) == (
        f"notebook {notebook} is in use by scribe-tui pid {os.getpid()}; "
        "wait for it to finish or stop it"
    )
    second.release()
    assert not lock_path(notebook).exists()
    assert try_in_another_process(notebook) == "acquired"
