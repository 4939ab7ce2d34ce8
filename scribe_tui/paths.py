"""Where scribe-tui finds its packaged files and keeps its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platformdirs import PlatformDirs

_DIRS = PlatformDirs("scribe-tui", appauthor=False)
_PACKAGE = Path(__file__).resolve().parent


def prompts_dir() -> Path:
    """The prompts folder: packaged inside the wheel, or at the repository root in a checkout."""
    for candidate in (_PACKAGE / "prompts", _PACKAGE.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("prompts/ not found; reinstall scribe-tui")


def config_file() -> Path:
    """The user's TOML config file (may not exist)."""
    return Path(_DIRS.user_config_dir) / "config.toml"


def state_dir() -> Path:
    """Private per-user runtime state (host sockets and keys); created with mode 0700.

    The runtime dir when the session has one (``XDG_RUNTIME_DIR``), else the state dir:
    platformdirs would otherwise warn and fall back to a shared /tmp path.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR") if sys.platform.startswith("linux") else None
    path = Path(_DIRS.user_runtime_dir if runtime else _DIRS.user_state_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_data_dir() -> Path:
    """Per-user data no sealed process may read (real model paths of notebooks); mode 0700."""
    path = Path(_DIRS.user_data_dir) / "private"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def writable_folder(path: Path, what: str, remedy: str) -> str | None:
    """Create ``path`` if needed and prove it writable; a one-line reason if it is not.

    Checked before a model loads, so a folder that cannot hold the record fails in
    seconds rather than after the first cell (``what`` and ``remedy`` fill the line).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".scribe-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"cannot write {what} in {path}: {reason}; {remedy}"
    return None
