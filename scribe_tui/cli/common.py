"""What every command shares: the argument parser, the usage error, the early ``--model`` check
and the guard for a closed stdout."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn


class CommandParser(argparse.ArgumentParser):
    """The parser of every scribe-tui command: options are never abbreviated (``--investigator``
    is not ``--investigators``), and an error is one line that names the closest option and the
    command's ``--help`` instead of a usage block. Subcommands' parsers are of this class too."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As argparse's, but an unknown option is reported by the subcommand that was given it,
        so the hint names that command's options and help."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self._chosen(parsed).error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {self._with_hint(message)}; see {self.prog} --help\n")

    def _chosen(self, parsed: argparse.Namespace) -> CommandParser:
        """The innermost subcommand's parser that ``parsed`` went through (else this one)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get(getattr(parsed, action.dest, None))
                if isinstance(sub, CommandParser):
                    return sub._chosen(parsed)
        return self

    def _with_hint(self, message: str) -> str:
        """``unrecognized arguments: --atuo`` gains ``(did you mean --auto?)``."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return message
        words = []
        for word in message.removeprefix(prefix).split(" "):
            option = word.split("=", 1)[0]
            # A high cutoff: a typo's hint, not a guess (--bogus is not --out).
            close = option.startswith("-") and difflib.get_close_matches(
                option, list(self._option_string_actions), n=1, cutoff=0.75
            )
            words.append(f"{word} (did you mean {close[0]}?)" if close else word)
        return prefix + " ".join(words)


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit code 2."""


def check_model(spec: str) -> None:
    """UsageError for a ``--model`` that cannot load, found before a host starts.

    An organism or a local folder is resolved here; a path that names no folder, and a bundled
    organism's bare name (which would otherwise be looked up on the hub), are refused with what
    to write instead. Hub ids are checked where they load: resolving them may wait on the network.
    """
    from scribe_tui.organisms.registry import PREFIX, list_organisms
    from scribe_tui.runtime.loading import ModelLoadError, resolve_model

    if not (spec.startswith(PREFIX) or Path(spec).expanduser().exists()):
        if spec in {organism.name for organism in list_organisms()}:
            raise UsageError(
                f"--model {spec}: that is a bundled organism's name, not a local folder or hub "
                f"id: did you mean --model {PREFIX}{spec}?"
            )
        if looks_like_path(spec):
            raise UsageError(
                f"--model {spec}: no such folder; use {PREFIX}NAME (see `scribe-tui organisms "
                "list`), a local model folder, or a hub id (owner/name)"
            )
        return
    try:
        resolve_model(spec)
    except ModelLoadError as exc:
        raise UsageError(str(exc)) from None


def looks_like_path(spec: str) -> bool:
    """Whether a model spec is written as a filesystem path rather than a hub id.

    A hub id is ``name`` or ``owner/name``: at most one slash, with text on both sides. Anything
    starting with ``/``, ``./``, ``../`` or ``~``, or with more slashes (or a trailing one), is a
    path.
    """
    if spec in (".", "..") or spec.startswith(("/", "./", "../", "~", os.sep)):
        return True
    slashed = spec.replace(os.sep, "/")
    if "/" not in slashed:
        return False
    owner, _, name = slashed.partition("/")
    return not owner or not name or "/" in name


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


def claim_lines(notebook: Path | None) -> list[str]:
    """The structured claim a notebook concluded with (components, layers, a direction
    file), one line each for the end-of-run summary; none for a word answer."""
    import json

    from scribe_tui.runtime.notebook import files_folder

    try:
        meta = json.loads(notebook.read_text(encoding="utf-8"))["metadata"] if notebook else {}
        conclusion = meta.get("scribe", {}).get("conclusion") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    lines = []
    if conclusion.get("components"):
        lines.append(f"Components: {', '.join(conclusion['components'])}")
    if conclusion.get("layers"):
        lines.append(f"Layers: {', '.join(map(str, conclusion['layers']))}")
    direction = conclusion.get("direction")
    if isinstance(direction, dict) and notebook is not None:
        lines.append(
            f"Direction: {files_folder(notebook) / str(direction.get('path'))} "
            f"(layer {direction.get('layer')})"
        )
    return lines
