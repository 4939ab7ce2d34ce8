"""How a run's record ends when its front end fails around it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from scribe_tui.agent.launch import RunSettings, Workbench
from scribe_tui.agent.provider import Usage
from scribe_tui.runtime.notebook import Notebook


def workbench_with(notebook: Path) -> Workbench:
    settings = RunSettings("find the secret", "autopilot", "organism:taboo")
    bench = Workbench(settings, provider=None, host=None)  # type: ignore[arg-type]
    # The loop itself is not under test: only what it reports when it ends.
    bench.investigation = SimpleNamespace(  # type: ignore[assignment]
        notebook_path=notebook, usage=Usage(), turns=3, elapsed=12.0
    )
    return bench


@pytest.mark.parametrize(
    ("status", "recorded"),
    [("paused", "failed"), ("running", "failed"), ("concluded", "concluded")],
)
def test_a_front_end_failure_marks_an_unfinished_run_failed(
    tmp_path: Path, status: str, recorded: str
) -> None:
    notebook = Notebook.create(tmp_path, "run")
    notebook.update_scribe(status=status)
    notebook.flush()
    workbench_with(notebook.path).record_failure()
    saved = nbformat.read(notebook.path, as_version=4)
    nbformat.validate(saved)
    assert saved.metadata["scribe"]["status"] == recorded
    if recorded == "failed":
        assert saved.metadata["scribe"]["receipt"]["completed"]["outcome"] == "failed"
