"""Suite-wide fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_reaches_children() -> None:
    """Tests press Ctrl-C on what they start. A shell that runs the suite in the
    background (``pytest &``) starts it with SIGINT ignored, which every child would
    inherit; Python's own handler is reset to the default in a child instead."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def private_key_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keys of organisms trained by tests (and by CLI subprocesses, which inherit the
    environment) go to a temporary store, never the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRIBE_KEY_DIR", str(tmp_path_factory.mktemp("answer-keys")))
        yield


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can write, root included: a read-only bind mount where we are root
    (permission bits do not stop root), else a folder without write permission."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
