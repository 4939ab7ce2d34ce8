"""How a re-executed cell's outputs compare with the recorded ones.

Each code cell gets one verdict: ``identical``; ``within tolerance`` (the same text
with numbers that moved by no more than the tolerance); ``changed``; ``new error``
(it raises where it did not); or ``not run`` (the kernel died before it). Execution
counts and traceback frames are left out of the comparison: a traceback names the
cell's execution count and the kernel's paths, which say nothing about the result.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scribe_tui.runtime.nbfiles import join_text

__all__ = ["DEFAULT_TOLERANCE", "CellDrift", "Verdict", "compare_outputs"]

Verdict = Literal["identical", "within tolerance", "changed", "new error", "not run"]
DEFAULT_TOLERANCE = 1e-3
"""Relative (and, near zero, absolute) change a printed number may show and still match."""

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_BINARY = re.compile(r"^image/(?!svg)")
_SHOWN = 60


@dataclass(frozen=True)
class CellDrift:
    """One code cell's verdict; ``number`` counts code cells from 1, as ``[N]`` shows them."""

    number: int
    verdict: Verdict
    detail: str = ""

    @property
    def reproduced(self) -> bool:
        return self.verdict in ("identical", "within tolerance")


def _parts(outputs: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Outputs as comparable (kind, text) pairs: each stream's whole text, then the rest in order.

    A kernel flushes stdout and stderr separately, so how their chunks interleave (a
    library warning before or after the cell's prints) is timing, not the result.
    """
    streams: dict[str, str] = {}
    parts = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            name = f"stream:{output.get('name')}"
            streams[name] = streams.get(name, "") + join_text(output.get("text"))
        elif kind in ("display_data", "execute_result"):
            for mime, value in sorted((output.get("data") or {}).items()):
                text = value if isinstance(value, str) else None
                if text is None:
                    text = (
                        json.dumps(value, sort_keys=True)
                        if isinstance(value, dict)
                        else join_text(value)
                    )
                parts.append((f"data:{mime}", text))
        elif kind == "error":
            parts.append(("error", f"{output.get('ename', '')}: {output.get('evalue', '')}"))
    return sorted(streams.items()) + parts


def _clip(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…")


def _first_difference(old: str, new: str) -> str:
    """The first line that differs, as ``'was' → 'is'`` (or the line that came or went)."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for number, (before, after) in enumerate(zip(old_lines, new_lines, strict=False), 1):
        if before != after:
            return f"line {number}: {_clip(before)} → {_clip(after)}"
    common = min(len(old_lines), len(new_lines))
    if len(old_lines) > common:
        return f"line {common + 1} is gone: {_clip(old_lines[common])}"
    if len(new_lines) > common:
        return f"new line {common + 1}: {_clip(new_lines[common])}"
    return f"{_clip(old)} → {_clip(new)}"  # the same lines: only line endings differ


def _numbers_close(old: str, new: str, tolerance: float) -> tuple[bool, str]:
    """Whether ``new`` is ``old`` with numbers moved within ``tolerance``; and the largest move."""
    if _NUMBER.sub("#", old) != _NUMBER.sub("#", new):
        return False, ""
    worst, shown = -1.0, ""
    for before, after in zip(_NUMBER.findall(old), _NUMBER.findall(new), strict=True):
        if before == after:
            continue
        a, b = float(before), float(after)
        if not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
            return False, ""
        move = abs(a - b) / max(abs(a), abs(b), 1e-300)
        if move > worst:
            worst, shown = move, f"{before} → {after}"
    return True, shown


def compare_outputs(
    old: Iterable[Mapping[str, Any]],
    new: Iterable[Mapping[str, Any]],
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Verdict, str]:
    """The verdict for one cell, and a short detail saying what differs."""
    before, after = _parts(old), _parts(new)
    if before == after:
        return "identical", ""
    errors_before = [text for kind, text in before if kind == "error"]
    errors_after = [text for kind, text in after if kind == "error"]
    if errors_after and errors_after != errors_before:
        return "new error", errors_after[-1]
    if [kind for kind, _ in before] != [kind for kind, _ in after]:
        if errors_before and not errors_after:
            return "changed", f"no longer raises {errors_before[-1]}"
        return "changed", "different outputs: " + _kinds(before) + " → " + _kinds(after)
    details = []
    for (kind, was), (_, now) in zip(before, after, strict=True):
        if was == now:
            continue
        if _BINARY.match(kind.removeprefix("data:")):
            return "changed", f"the {_label(kind)} image differs"
        close, moved = _numbers_close(was, now, tolerance)
        if not close:
            return "changed", f"{_label(kind)}: {_first_difference(was, now)}"
        details.append(moved)
    return "within tolerance", f"largest move {details[0]}" if len(details) == 1 else (
        f"numbers moved in {len(details)} outputs, e.g. {details[0]}"
    )


def _label(kind: str) -> str:
    """``stream:stdout`` → ``stdout``, ``data:text/plain`` → ``text/plain``."""
    return kind.split(":", 1)[-1]


def _kinds(parts: list[tuple[str, str]]) -> str:
    return ", ".join(_label(kind) for kind, _ in parts) or "none"
