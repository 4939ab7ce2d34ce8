"""The research record without kernels: receipts, drift verdicts, the index, export, fork cuts,
and every command's bad inputs (one line, exit code 2, nothing written)."""

from __future__ import annotations

import base64
import io
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from scribe_tui.agent.transcript import Transcript, TranscriptData
from scribe_tui.cli import main
from scribe_tui.integrity import signed
from scribe_tui.organisms.registry import BUNDLED_DIR
from scribe_tui.record.drift import compare_outputs
from scribe_tui.record.fork import fork_conversation
from scribe_tui.record.index import parse_since
from scribe_tui.runtime.nblock import NotebookLock
from scribe_tui.runtime.notebook import Notebook
from scribe_tui.runtime.receipt import differences, weights_digests

WHEN = datetime(2026, 11, 21, 6, 0).astimezone()


@pytest.fixture(autouse=True)
def private_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash caches and model records go to a temporary data dir."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def investigation(
    folder: Path,
    task: str = "find the secret",
    *,
    status: str = "concluded",
    answer: str | None = "moon",
    model: str = "organism:taboo",
    now: datetime = WHEN,
    outputs: list[dict[str, Any]] | None = None,
    **scribe: Any,
) -> Path:
    """A real notebook as `scribe-tui investigate` writes it."""
    metadata = {"task": task, "model": model, "agent": "autopilot"}
    notebook = Notebook.create(folder, task, metadata=metadata, now=now)
    for n in range(3):
        index = notebook.add_code_cell(f"print({n})")
        notebook.set_outputs(index, outputs or [_stream(f"{n}\n")], n + 1)
    if answer:
        notebook.conclude(answer, 0.9, "evidence")
    notebook.update_scribe(status=status, **scribe)
    return notebook.path


def _stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def _png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def valid(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


# -- drift verdicts ---------------------------------------------------------------------------


def test_drift_verdicts() -> None:
    same = [_stream("top: [('moon', 0.4312)]\n")]
    assert compare_outputs(same, same) == ("identical", "")
    moved = [_stream("top: [('moon', 0.4313)]\n")]
    verdict, detail = compare_outputs(same, moved, tolerance=1e-3)
    assert verdict == "within tolerance" and "0.4312 → 0.4313" in detail
    assert compare_outputs(same, moved, tolerance=1e-6)[0] == "changed"
    verdict, detail = compare_outputs(same, [_stream("top: [('sun', 0.4312)]\n")])
    assert verdict == "changed" and "'moon'" in detail and "'sun'" in detail
    error = {"output_type": "error", "ename": "KeyError", "evalue": "'x'", "traceback": ["..."]}
    assert compare_outputs(same, [*same, error]) == ("new error", "KeyError: 'x'")
    # Tracebacks name execution counts and paths: only the error itself is compared.
    assert compare_outputs([error], [{**error, "traceback": ["other"]}])[0] == "identical"
    assert compare_outputs([error], same) == ("changed", "no longer raises KeyError: 'x'")
    image = {"output_type": "display_data", "data": {"image/png": _png()}, "metadata": {}}
    other = {**image, "data": {"image/png": base64.b64encode(b"x").decode()}}
    assert compare_outputs([image], [other]) == ("changed", "the image/png image differs")
    result = {"output_type": "execute_result", "data": {"text/plain": "1"}, "metadata": {}}
    assert (
        compare_outputs([{**result, "execution_count": 3}], [{**result, "execution_count": 9}])[0]
        == "identical"
    )


def test_drift_ignores_how_stdout_and_stderr_chunks_interleave() -> None:
    # The kernel flushes the two streams apart, so a library warning may land first or last.
    warning = _stream("[transformers] a warning\n", "stderr")
    printed = [_stream("line one\n"), _stream("line two\n")]
    recorded = [warning, _stream("line one\nline two\n"), _result_of("1")]
    rerun = [printed[0], warning, printed[1], _result_of("1")]
    assert compare_outputs(recorded, rerun) == ("identical", "")
    swapped = [_stream("line two\nline one\n"), warning, _result_of("1")]
    verdict, detail = compare_outputs(recorded, swapped)
    assert verdict == "changed" and "'line one' → 'line two'" in detail
    assert compare_outputs(recorded, [*printed, _result_of("1")])[0] == "changed"


def test_the_drift_report_lists_only_the_cells_that_differ(tmp_path: Path) -> None:
    """Each cell's verdict is shown live as it runs; the report totals them and names
    only the cells with something to say, so no verdict is printed twice."""
    from scribe_tui.record.drift import CellDrift
    from scribe_tui.record.reproduce import Reproduction

    cells = [
        CellDrift(1, "identical"),
        CellDrift(2, "within tolerance", "largest move 0.4312 → 0.4313"),
        CellDrift(3, "identical"),
        CellDrift(4, "changed", "stdout: line 1: 'moon' → 'sun'"),
    ]
    result = Reproduction(tmp_path / "a.ipynb", tmp_path / "a.reproduced.ipynb", cells, wall=2.0)
    lines = result.report().splitlines()
    assert lines[1] == "Cells: 2 identical, 1 within tolerance, 1 changed"
    assert lines[2:4] == [
        "  [2]   within tolerance largest move 0.4312 → 0.4313",
        "  [4]   changed          stdout: line 1: 'moon' → 'sun'",
    ]
    assert lines[4].startswith("Drifted: ") and len(lines) == 5
    same = Reproduction(tmp_path / "a.ipynb", tmp_path / "b.ipynb", [CellDrift(1, "identical")])
    assert same.report().splitlines()[1:] == [
        "Cells: 1 identical",
        f"Reproduced: {tmp_path / 'a.ipynb'} → {tmp_path / 'b.ipynb'} (1 code cell, 0.0 s)",
    ]


def _result_of(text: str) -> dict[str, Any]:
    return {"output_type": "execute_result", "data": {"text/plain": text}, "metadata": {}}


# -- receipts -----------------------------------------------------------------------------------


def test_weights_digests_see_a_perturbed_tensor(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    bundled = weights_digests("organism:taboo")
    assert len(bundled["weights"]["sha256"]) == 64 and bundled["weights"]["files"] == 1
    assert bundled["base_weights"]["sha256"] != bundled["weights"]["sha256"]
    assert bundled["organism"] == "taboo"
    copy = tmp_path / "taboo-copy"
    shutil.copytree(BUNDLED_DIR / "taboo", copy)
    assert weights_digests(str(copy))["weights"] == bundled["weights"]
    weights = copy / "model" / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, weights)
    perturbed = weights_digests(str(copy))
    assert perturbed["weights"]["sha256"] != bundled["weights"]["sha256"]
    assert perturbed["base_weights"] == bundled["base_weights"]
    old = {**bundled, "torch": "2.13.0", "device": "cpu", "git": None}
    new = {**perturbed, "torch": "2.14.0", "device": "cpu", "git": None}
    changes = differences(old, new)
    assert [what for what, _, _ in changes] == ["weights sha256", "torch"]
    assert "/" not in json.dumps(perturbed)  # digests only: no path reaches a notebook


# -- the index ----------------------------------------------------------------------------------


def test_list_statuses_filters_scores_and_json(tmp_path: Path, capsys: Any) -> None:
    folder = tmp_path / "notebooks"
    concluded = investigation(folder, "concluded run")
    budget = investigation(folder, "budget run", status="budget-spent", answer=None)
    stale = investigation(folder, "crashed run", status="running", answer=None)
    live = investigation(folder, "live run", status="running", answer=None, now=WHEN + timedelta(1))
    belief = investigation(folder, "belief run", model="organism:belief", answer="France")
    reproduced = investigation(
        folder, "checked run", reproduction={"status": "reproduced", "copy": "x"}
    )
    copy = investigation(folder, "checked run copy", reproduction_of=str(reproduced))
    investigation(folder / "runs" / "r1", "bench run", answer="moon")
    (folder / "results.jsonl").write_text(
        json.dumps(
            signed(
                {
                    "notebook": str(
                        next((folder / "runs" / "r1").glob("*.ipynb")).relative_to(folder)
                    ),
                    "correct": True,
                    "abstained": False,
                    "false_positive": False,
                    "scored": True,
                }
            )
        )
        + "\n{half a line",
        encoding="utf-8",
    )
    nbformat.write(nbformat.v4.new_notebook(), folder / "from-jupyter.ipynb")
    with NotebookLock(live):
        assert main(["list", str(folder), "--json"]) == 0
    rows = {Path(row["path"]).name: row for row in json.loads(capsys.readouterr().out)}
    status = {name: row["status"] for name, row in rows.items()}
    assert status[concluded.name] == "concluded" and status[budget.name] == "budget-spent"
    assert status[stale.name] == "paused" and status[live.name] == "running"
    assert status[reproduced.name] == "reproduced"
    assert copy.name not in rows and "from-jupyter.ipynb" not in rows  # not investigations
    bench = next(row for row in rows.values() if row["task"] == "bench run")
    assert bench["score"] == "correct" and bench["answer"] == "moon"
    assert rows[belief.name]["organism"] == "belief"

    assert main(["list", str(folder), "--organism", "belief"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "→ France" in lines[0] and "[concluded]" in lines[0]
    assert main(["list", str(folder), "--status", "paused"]) == 0  # the live run ended too
    paused = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in paused] == [str(live), str(stale)]
    assert paused[1].startswith(f"{stale}  [paused] 'crashed run'")
    since = (WHEN + timedelta(days=1)).date().isoformat()
    assert main(["list", "--notebooks-dir", str(folder), "--since", since]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{live}  [paused] 'live run' · organism:taboo · autopilot · 3 cells"
    ]
    assert main(["list", str(folder), "--status", "drifted"]) == 0
    assert capsys.readouterr().out == f"No notebooks in {folder}/ match.\n"


def test_index_writes_a_table_github_renders(tmp_path: Path, capsys: Any) -> None:
    folder = tmp_path / "notebooks"
    first = investigation(folder, "find the secret | quickly", answer="moon")
    investigation(folder, "still going", status="stopped", answer=None)
    assert main(["index", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "INDEX.md")
    text = (folder / "INDEX.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    header = lines.index("| Notebook | Investigation | Status |")
    assert lines[header + 1] == "| --- | --- | --- |"
    rows = lines[header + 2 :]
    assert len(rows) == 2
    for row in rows:  # three cells each: escaped pipes do not split them
        assert row.replace("\\|", "").count("|") == 4
    row = next(r for r in rows if "quickly" in r)
    assert f"]({first.name})" in row and "concluded: moon (0.90)" in row
    assert "paused: no conclusion yet, 3 code cells" in text


def test_list_and_index_count_one_cell_in_the_singular(tmp_path: Path, capsys: Any) -> None:
    folder = tmp_path / "notebooks"
    metadata = {"task": "one cell", "model": "organism:taboo", "agent": "autopilot"}
    notebook = Notebook.create(folder, "one cell", metadata=metadata, now=WHEN)
    notebook.add_code_cell("print(1)")
    notebook.update_scribe(status="stopped")
    assert main(["list", str(folder)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(" · autopilot · 1 cell")
    assert main(["index", str(folder)]) == 0
    assert "no conclusion yet, 1 code cell |" in (folder / "INDEX.md").read_text(encoding="utf-8")


def test_since_accepts_dates_and_ages() -> None:
    now = datetime(2026, 11, 21, 12, 0).astimezone()
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2026-11-20", now).date().isoformat() == "2026-11-20"
    with pytest.raises(ValueError, match="an age like 3d"):
        parse_since("last tuesday", now)


# -- export -------------------------------------------------------------------------------------


def test_export_html_and_markdown_are_self_contained(tmp_path: Path, capsys: Any) -> None:
    image = {"output_type": "display_data", "data": {"image/png": _png(), "text/plain": "<Fig>"},
             "metadata": {}}  # fmt: skip
    notebook = investigation(tmp_path, outputs=[_stream("plotted\n"), image])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(notebook), "--to", "html"]) == 0
    html = notebook.with_suffix(".html")
    assert capsys.readouterr().out.strip() == str(html)
    page = html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "plotted" in page and "evidence" in page
    out = tmp_path / "out" / "run.md"
    assert main(["export", str(notebook), "--to", "md", "--out", str(out)]) == 0
    markdown = out.read_text(encoding="utf-8")
    assert markdown.startswith("# find the secret\n")
    assert "](data:image/png;base64," in markdown and "print(0)" in markdown
    # One file each: no image files written beside either export.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, html.name, "out"])
    assert [p.name for p in out.parent.iterdir()] == ["run.md"]
    # Another tool's notebook exports as well: export needs no scribe-tui metadata.
    other = tmp_path / "jupyter.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hello")])
    nbformat.write(nb, other)
    assert main(["export", str(other), "--to", "md"]) == 0
    assert "# Hello" in other.with_suffix(".md").read_text(encoding="utf-8")


# -- fork: where the conversation is cut ---------------------------------------------------------


def _use(call_id: str, name: str = "execute_code") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def _result(call_id: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": [{"type": "text", "text": "ok"}],
    }


def _transcript(turns: list[tuple[list[dict[str, Any]], list[int | None]]]) -> TranscriptData:
    """Records as the loop writes them: each assistant turn, then its results' pending records,
    then (with the next turn) the user message that carried them."""
    records: list[dict[str, Any]] = [
        {"kind": "message", "message": {"role": "user", "content": "task"}}
    ]
    for number, (uses, cells) in enumerate(turns):
        if number:
            carried = [_result(u["id"]) for u in turns[number - 1][0]]
            records.append({"kind": "message", "message": {"role": "user", "content": carried}})
        records.append({"kind": "message", "message": {"role": "assistant", "content": uses}})
        for use, cell in zip(uses, cells, strict=True):
            records.append({"kind": "pending", "block": _result(use["id"]), "cell": cell})
    return TranscriptData(Path("t.jsonl"), {"kind": "header", "task": "t"}, records)


def test_fork_cuts_after_the_result_that_made_the_cell() -> None:
    data = _transcript(
        [
            ([_use("a"), _use("b")], [0, 1]),  # setup and cell 1 in one turn
            ([_use("c", "add_markdown")], [None]),  # a note on cell 1
            ([_use("d"), _use("e")], [2, 3]),
            ([_use("f", "conclude")], [None]),
        ]
    )
    # Fork at cell [2] (number 1): the note after it and everything later is dropped,
    # and the turn that wrote the note is taken back whole.
    messages, pending = fork_conversation(data, 1)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert [r["block"]["tool_use_id"] for r in pending] == ["a", "b"]
    # Fork at cell [3] (number 2): d's result stays, e (same turn) is left unanswered.
    messages, pending = fork_conversation(data, 2)
    assert messages[-1]["content"] == [_use("d"), _use("e")]
    assert [(r["block"]["tool_use_id"], r["cell"]) for r in pending] == [("d", 2)]
    # At the last cell the conclusion is still cut off.
    messages, pending = fork_conversation(data, 3)
    assert messages[-1]["content"] == [_use("d"), _use("e")]
    assert [r["block"]["tool_use_id"] for r in pending] == ["d", "e"]


# -- bad inputs: one line, exit 2, nothing written -----------------------------------------------


def scribe_notebook_with_transcript(folder: Path) -> Path:
    path = investigation(folder)
    transcript = Transcript(path.with_suffix(".jsonl"))
    transcript.write_header(task="t", provider="autopilot", model="a", config={}, notebook=path)
    transcript.close()
    return path


@pytest.mark.parametrize(
    ("command", "case", "message"),
    [
        (["reproduce"], "missing", "no such notebook"),
        (["reproduce"], "foreign", "not a scribe-tui notebook"),
        (["reproduce"], "broken", "not a valid Jupyter notebook"),
        (["reproduce", "--out", "copy.txt"], "ours", "must be a .ipynb file"),
        (["reproduce", "--tolerance", "-1"], "ours", "--tolerance must be 0 or more"),
        (["reproduce"], "local", "pass --model PATH"),
        (["export"], "missing", "no such notebook"),
        (["export"], "broken", "not a valid Jupyter notebook"),
        (["fork", "--at", "2", "--auto"], "missing", "no such notebook"),
        (["fork", "--at", "2", "--auto"], "foreign", "not a scribe-tui notebook"),
        (["fork", "--at", "2", "--auto"], "untranscribed", "no transcript beside it"),
        (["fork", "--at", "4", "--auto"], "ours", "cell 4 is out of range"),
        (["fork", "--at", "0", "--auto"], "ours", "use 1..3"),
        (["fork", "--at", "2", "--auto", "--message", "  "], "ours", "--message is empty"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    command: list[str], case: str, message: str, tmp_path: Path, capsys: Any
) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    if case == "missing":
        path = folder / "missing.ipynb"
    elif case == "foreign":
        path = folder / "jupyter.ipynb"
        nbformat.write(nbformat.v4.new_notebook(), path)
    elif case == "broken":
        path = folder / "broken.ipynb"
        path.write_text("{not json", encoding="utf-8")
    elif case == "local":
        path = investigation(folder, model="local:taboo")
    elif case == "untranscribed":
        path = investigation(folder)
    else:
        path = scribe_notebook_with_transcript(folder)
    before = sorted(folder.iterdir())
    code = main([command[0], str(path), *command[1:], "--config", str(tmp_path / "none.toml")]
                if command[0] == "fork" else [command[0], str(path), *command[1:]])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err and len(err.splitlines()) == 1 and err.startswith("scribe-tui: ")
    assert sorted(folder.iterdir()) == before  # nothing written, no fork left behind


def test_index_and_list_of_a_missing_folder(tmp_path: Path, capsys: Any) -> None:
    assert main(["index", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["list", str(tmp_path / "nowhere")]) == 2
    assert main(["list", str(tmp_path), "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err


def test_the_tui_opens_its_fork_as_a_resumed_run(tmp_path: Path, monkeypatch: Any) -> None:
    from scribe_tui.agent.launch import RunSettings
    from scribe_tui.cli import investigate as headless
    from scribe_tui.record.fork import prepare_fork

    opened: list[Any] = []
    monkeypatch.setattr(headless, "run_interactive", lambda s, p: opened.append((s, p)) or 0)
    fork = prepare_fork(scribe_notebook_with_transcript(tmp_path / "notebooks"), 2, "go on")
    settings = RunSettings("find the secret", "autopilot", "organism:taboo", notebooks_dir=tmp_path)
    assert headless._open_fork(settings, fork) == 0
    ((forked, provider),) = opened
    assert forked.resume_from == fork and forked.notebooks_dir == fork.parent
    assert forked.model == "organism:taboo" and provider.name == "autopilot"
