"""One scribe-tui process per notebook: an advisory lock file beside it.

``.<name>.ipynb.lock`` holds the pid of the process that has the notebook open, locked
with ``flock``: the kernel drops the lock when that process exits, even by a crash, so
a stale file never blocks anyone (it is reused). Holds are counted per process, so the
command line and the notebook tools of one run can both hold the same notebook.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from scribe_tui.runtime.notebook import NotebookError

__all__ = ["NotebookBusy", "NotebookLock", "lock_path"]

_HELD: dict[Path, tuple[int, int]] = {}  # lock file -> (its descriptor, holds in this process)
_GUARD = threading.Lock()


class NotebookBusy(NotebookError):
    """Another scribe-tui process has the notebook open; the message names its pid."""


def lock_path(notebook: Path) -> Path:
    """The lock file of ``notebook``: hidden, and not an ``.ipynb``, so listings skip it."""
    return notebook.with_name(f".{notebook.name}.lock")


class NotebookLock:
    """A hold on one notebook for this process; :meth:`acquire`, later :meth:`release`."""

    def __init__(self, notebook: Path | str) -> None:
        self.notebook = Path(notebook)
        self.path = lock_path(self.notebook.resolve())
        self._held = False

    def acquire(self) -> None:
        """Hold the notebook; :class:`NotebookBusy` if another process does."""
        if self._held:
            return
        with _GUARD:
            try:
                fd, holds = _HELD.get(self.path) or (self._lock_file(), 0)
            except OSError as exc:
                raise NotebookError(
                    f"cannot lock notebook {self.notebook} ({self.path.name}): "
                    f"{exc.strerror or exc}; check the folder"
                ) from exc
            _HELD[self.path] = fd, holds + 1
        self._held = True

    def release(self) -> None:
        """Let go; the last hold in this process removes the lock file."""
        if not self._held:
            return
        self._held = False
        with _GUARD:
            fd, holds = _HELD.pop(self.path)
            if holds > 1:
                _HELD[self.path] = fd, holds - 1
                return
            # Unlinked while still locked: a process that opened the old file sees the
            # file under that name changed and tries again (see _lock_file).
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(fd)

    def __enter__(self) -> NotebookLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _lock_file(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                who = f"scribe-tui pid {holder}" if holder.isdigit() else "another scribe-tui"
                raise NotebookBusy(
                    f"notebook {self.notebook} is in use by {who}; wait for it to finish or stop it"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                os.close(fd)  # its holder removed it as we opened it: lock the new one
                continue
            # The pid only names the holder in others' errors; the lock holds without it.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd
