"""Process exit codes, defined once for every command and front end."""

from __future__ import annotations

EXIT_OK = 0
"""Concluded (or the command did what it was asked)."""
EXIT_FAILED = 1
"""The run failed, or (``reproduce``) the notebook drifted."""
EXIT_DRIFT = 1
"""``reproduce``: the re-execution differs from the notebook."""
EXIT_USAGE = 2
"""Bad input: a one-line message says what to do instead."""
EXIT_BUDGET = 3
"""A budget ran out before a conclusion."""
EXIT_INTERRUPTED = 130
"""Stopped by the person before the end (Ctrl-C, quit): ``resume`` goes on."""

EXIT_FOR_REASON = {
    "concluded": EXIT_OK,
    "budget": EXIT_BUDGET,
    "interrupted": EXIT_INTERRUPTED,
    "failed": EXIT_FAILED,
}
"""The exit code for an investigation's stop reason."""
