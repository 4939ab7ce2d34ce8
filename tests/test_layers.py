"""DESIGN.md's layering: the core never imports Textual, and imports only point down."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import scribe_tui

PACKAGE = Path(scribe_tui.__file__).parent
CORE = ("agent", "tools", "runtime", "organisms", "techniques")


def core_modules() -> list[str]:
    names = []
    for layer in CORE:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(p for p in parts if p != "__init__"))
    return names


def test_importing_every_core_module_loads_no_textual() -> None:
    modules = [m for m in core_modules() if not m.endswith("__main__")]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("runtime", ("scribe_tui.tools", "scribe_tui.agent", "scribe_tui.app", "scribe_tui.ui")),
        ("tools", ("scribe_tui.agent.loop", "scribe_tui.app", "scribe_tui.ui")),
        ("agent", ("scribe_tui.app", "scribe_tui.ui", "scribe_tui.cli")),
        # The technique library sits below everything: the kernel and the host import it.
        (
            "techniques",
            (
                "scribe_tui.agent",
                "scribe_tui.tools",
                "scribe_tui.runtime",
                "scribe_tui.organisms",
                "scribe_tui.app",
                "scribe_tui.ui",
            ),
        ),
    ],
)
def test_imports_only_point_down(layer: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(forbidden)]
    assert not offenders, offenders
