"""What every command shares: the usage error and the guard for a closed stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit code 2."""


def quiet_on_closed_pipe(command: Callable[[], int]) -> int:
    """Run ``command``; a reader that stopped early (``scribe-tui list | head``) ends it quietly.

    Python would print a BrokenPipeError traceback, twice (once more when it flushes stdout
    at exit): point stdout at /dev/null so the exit is silent, as ``ls | head`` is.
    """
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code
