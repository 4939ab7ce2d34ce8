"""A bench's grid: axes from a TOML spec and ``--axis`` flags, expanded into runs with stable ids.

    [grid]
    agent = ["autopilot", "claude:claude-sonnet-4-6"]
    organism = ["taboo", "belief", "organisms/*"]
    mode = ["whitebox"]
    methodology = ["on", "off"]
    investigators = [1, 5]   # parallel investigators per run, aggregated into one verdict

    [run]
    repeat = 3
    jobs = 2
    out = "bench-out"

Every bad value is a :class:`GridError` whose message is one line saying what to do.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

AXES = (
    "agent",
    "organism",
    "mode",
    "methodology",
    "checkpoint_every",
    "max_turns",
    "max_cost",
    "max_minutes",
    "seed",
    "investigators",
)
DEFAULTS: dict[str, list[Any]] = {
    "agent": ["autopilot"],
    "organism": ["taboo"],
    "mode": ["whitebox"],
    "methodology": ["on"],
    "checkpoint_every": [10],
    "seed": [0],
    "investigators": [1],
}
RUN_KEYS = ("repeat", "jobs", "out", "backend", "gpu", "unscored")
_INTS = ("checkpoint_every", "max_turns", "seed", "investigators")
_FLOATS = ("max_cost", "max_minutes")


class GridError(ValueError):
    """A bad spec, axis or value; the message is one line."""


@dataclass(frozen=True)
class RunSpec:
    """One investigation of the grid: a value for every axis, and which repeat it is."""

    axes: tuple[tuple[str, Any], ...]
    repeat: int

    def __getitem__(self, axis: str) -> Any:
        return dict(self.axes).get(axis)

    @property
    def run_id(self) -> str:
        """Readable and stable: the main axes, every other axis off its default as
        ``axis=value`` (``methodology=off``), the repeat, and a digest of every value.

        It names the run's folder, which the sealed kernel sees: an organism given as a
        directory appears by its kind, never by its (possibly telling) name.
        """
        values = dict(self.axes)
        # An axis added later enters the digest only off its default, so the runs of
        # benches made before it keep their ids (and resume).
        hashed = {k: v for k, v in values.items() if (k, v) != ("investigators", 1)}
        digest = hashlib.sha256(
            json.dumps([hashed, self.repeat], sort_keys=True).encode()
        ).hexdigest()[:6]
        named = ("agent", "organism", "mode")  # values that say which axis they are
        parts = [values["agent"], organism_label(values["organism"]), values["mode"]]
        # Values like "off" or "5" say nothing without their axis; defaults are left out so
        # that adding an axis to a grid keeps the ids (and so the finished runs) it had.
        parts += [
            f"{axis}={values[axis]}"
            for axis in AXES
            if axis not in named and axis in values and [values[axis]] != DEFAULTS.get(axis)
        ]
        slug = "_".join(re.sub(r"[^A-Za-z0-9.=-]+", "-", str(p)).strip("-") for p in parts)
        return f"{slug}_r{self.repeat}_{digest}"

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.axes), "repeat": self.repeat}


def organism_label(value: str) -> str:
    """How results and folders name an organism: its bundled name, or ``local-KIND``."""
    from scribe_tui.runtime.host_protocol import LaunchSpec

    if os.sep in value or value.startswith("."):
        return LaunchSpec(model=value).display_name.replace(":", "-")
    return value.removeprefix("organism:")


def model_spec(organism: str) -> str:
    """The ``--model`` an organism axis value stands for."""
    if os.sep in organism or organism.startswith(".") or organism.startswith("organism:"):
        return organism
    return f"organism:{organism}"


def load_spec(path: Path) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(grid axes, run defaults) from a TOML spec file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GridError(f"cannot read the spec {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GridError(f"{path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"grid", "run"}
    if unknown:
        raise GridError(f"{path}: unknown table(s) {sorted(unknown)}; use [grid] and [run]")
    grid = {k: v if isinstance(v, list) else [v] for k, v in data.get("grid", {}).items()}
    run = dict(data.get("run", {}))
    bad = set(run) - set(RUN_KEYS)
    if bad:
        raise GridError(f"{path}: unknown [run] key(s) {sorted(bad)}; known: {', '.join(RUN_KEYS)}")
    return grid, run


def parse_axis(text: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2`` as given to ``--axis``."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise GridError(f"--axis {text!r}: write KEY=V1,V2 (e.g. agent=autopilot,claude)")
    return key.strip(), [v.strip() for v in values.split(",") if v.strip()]


def build_grid(
    spec: Mapping[str, list[Any]], flags: Iterable[tuple[str, list[str]]]
) -> dict[str, list[Any]]:
    """Defaults, then the spec's axes, then ``--axis`` flags; every value checked."""
    grid = {k: list(v) for k, v in DEFAULTS.items()}
    for key, values in [*spec.items(), *flags]:
        if key not in AXES:
            raise GridError(f"unknown axis {key!r}; axes: {', '.join(AXES)}")
        if not values:
            raise GridError(f"axis {key!r} has no values")
        grid[key] = [_check(key, v) for v in values]
    grid["organism"] = _expand_organisms(grid["organism"])
    return grid


def _check(axis: str, value: Any) -> Any:
    text = str(value).strip()
    if axis == "agent":
        if text in ("autopilot", "claude") or (text.startswith("claude:") and len(text) > 7):
            return text
        raise GridError(f"agent {text!r}: use autopilot, claude or claude:MODEL")
    if axis == "mode":
        if text in ("whitebox", "blackbox"):
            return text
        raise GridError(f"mode {text!r}: use whitebox or blackbox")
    if axis == "methodology":
        if text.lower() in ("on", "off", "true", "false"):
            return "on" if text.lower() in ("on", "true") else "off"
        raise GridError(f"methodology {text!r}: use on or off")
    try:
        if axis in _INTS:
            number: float = int(text)
        elif axis in _FLOATS:
            number = float(text)
        else:
            return text
    except ValueError:
        raise GridError(f"{axis} {text!r} is not a number") from None
    if number < 0 or (number == 0 and axis != "checkpoint_every" and axis != "seed"):
        raise GridError(f"{axis} must be positive, got {text}")
    return number


def _expand_organisms(values: Sequence[str]) -> list[str]:
    """Bundled names stay names; directories and globs become organism directories."""
    from scribe_tui.organisms.registry import UnknownOrganism, organism_info

    found: list[str] = []
    for value in values:
        if any(c in value for c in "*?["):
            matches = sorted(
                p
                for p in glob.glob(os.path.expanduser(value))
                if Path(p, "organism.json").is_file()
            )
            if not matches:
                raise GridError(f"organism glob {value!r} matches no organism directory")
            found += [str(Path(p).resolve()) for p in matches]
            continue
        try:
            info = organism_info(value)
        except UnknownOrganism as exc:
            raise GridError(str(exc)) from None
        bundled = not (os.sep in value or value.startswith("."))
        found.append(info.name if bundled else str(info.path))
    return list(dict.fromkeys(found))


def expand(grid: Mapping[str, list[Any]], repeat: int) -> list[RunSpec]:
    """Every combination of the axes, ``repeat`` times, in a stable order."""
    if repeat < 1:
        raise GridError(f"--repeat must be at least 1, got {repeat}")
    keys = sorted(grid)
    return [
        RunSpec(tuple(zip(keys, combo, strict=True)), r)
        for combo in product(*(grid[k] for k in keys))
        for r in range(repeat)
    ]
