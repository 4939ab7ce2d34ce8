"""Papermill's parameters convention, and the ``results`` cell a sweep reads back.

- **In:** the first code cell tagged ``parameters`` holds the defaults (``seed = 0``).
  A run's values go into a new code cell tagged ``injected-parameters`` right after it
  (an earlier injected cell is replaced), so later assignments win and the defaults
  stay visible, as papermill writes them.
- **Out:** a code cell tagged ``results`` ends with a dict of plain values
  (``{"mse": float(mse), "l0": l0}``); the dict it shows is the run's row in the table.

Pure functions on plain notebook dicts: no kernel, no model.
"""

from __future__ import annotations

import ast
import itertools
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from scribe_tui.record.source import RecordError

__all__ = [
    "INJECTED_TAG",
    "PARAMETERS_TAG",
    "RESULTS_TAG",
    "combinations",
    "file_label",
    "inject",
    "parameter_names",
    "parameters_position",
    "parse_axis",
    "read_results",
    "run_label",
]

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
RESULTS_TAG = "results"


def _tags(cell: Mapping[str, Any]) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def _code(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parameters_position(nb: Mapping[str, Any]) -> int | None:
    """Where the first code cell tagged ``parameters`` sits among all cells (None: none)."""
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and PARAMETERS_TAG in _tags(cell):
            return index
    return None


def parameter_names(nb: Mapping[str, Any], name: str) -> list[str]:
    """The names the parameters cell assigns at top level; RecordError (one line) if there
    is no such cell or it is not Python that can be read (``name`` is the notebook's)."""
    position = parameters_position(nb)
    if position is None:
        raise RecordError(
            f"{name} has no parameters cell: tag the code cell that sets the defaults "
            f"(e.g. `seed = 0`) with {PARAMETERS_TAG!r}"
        )
    try:
        tree = ast.parse(_code(nb["cells"][position]))
    except SyntaxError as exc:
        raise RecordError(f"{name}: its parameters cell is not valid Python ({exc.msg})") from None
    names: list[str] = []
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        for target in targets:
            for leaf in ast.walk(target):  # `a, b = 1, 2` assigns both
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return names


def _value(text: str) -> Any:
    """A command-line value as Python: numbers, booleans, None and quoted strings by their
    literal syntax, anything else as the string it is (``--axis model=gpt2``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``NAME=V1,V2`` as given to ``--axis``; RecordError (one line) if malformed."""
    name, sep, values = text.partition("=")
    name = name.strip()
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.isidentifier() or not items:
        raise RecordError(f"--axis {text!r}: write NAME=V1,V2 (e.g. seed=1,2,3)")
    return name, [_value(v) for v in items]


def combinations(axes: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the last axis varying fastest."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def run_label(parameters: Mapping[str, Any]) -> str:
    """``seed=1 lr=0.01``: how a run is named in tables and progress lines."""
    return " ".join(
        f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in parameters.items()
    )


def file_label(parameters: Mapping[str, Any]) -> str:
    """``seed-1_lr-0.01``: the run's parameters as a file-name part."""
    parts = (f"{k}-{v}" for k, v in parameters.items())
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-_.")[:80]


def inject(nb: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``nb`` (plain dicts, its parameters cell present) with ``parameters``
    assigned in an ``injected-parameters`` cell right after the parameters cell."""
    cells = [cell for cell in nb["cells"] if INJECTED_TAG not in _tags(cell)]
    document = {**nb, "cells": [dict(cell) for cell in cells]}
    position = parameters_position(document)
    assert position is not None, "checked by parameter_names"
    lines = "".join(f"{name} = {value!r}\n" for name, value in parameters.items())
    document["cells"].insert(
        position + 1,
        {
            "id": secrets.token_hex(4),
            "cell_type": "code",
            "metadata": {"tags": [INJECTED_TAG]},
            "source": f"# Parameters\n{lines}",
            "outputs": [],
            "execution_count": None,
        },
    )
    return document


def read_results(cells: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], str]:
    """The values the executed ``results`` cells show, and a one-line problem ("" if none).

    Each such cell's ``execute_result`` must be the repr of a dict of Python literals
    (numbers, strings, lists...): its text is read back with ``ast.literal_eval``, never run.
    """
    found: dict[str, Any] = {}
    problems: list[str] = []
    for cell in cells:
        if cell.get("cell_type") != "code" or RESULTS_TAG not in _tags(cell):
            continue
        shown = [
            o["data"]["text/plain"]
            for o in cell.get("outputs", [])
            if o.get("output_type") == "execute_result" and "text/plain" in o.get("data", {})
        ]
        if not shown:
            problems.append("a results cell shows no value (end it with a dict)")
            continue
        text = "".join(shown[-1]) if isinstance(shown[-1], list) else str(shown[-1])
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if not isinstance(value, dict):
            problems.append(
                "a results cell's value is not a dict of plain values "
                f"(use float(x) for tensors and numpy numbers): {text[:60]!r}"
            )
            continue
        found.update({str(k): v for k, v in value.items()})
    return found, "; ".join(problems)
