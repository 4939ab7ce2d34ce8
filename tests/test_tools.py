"""The notebook tools against real ipykernel subprocesses: every tool, every error path."""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import io
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import pytest_asyncio
from PIL import Image
from test_nblock import hold_in_another_process, try_in_another_process

from scribe_tui.events import CellAdded, CellExecuting, CellUpdated, Event
from scribe_tui.runtime import notebook as notebook_module
from scribe_tui.runtime.kernel import KernelSession
from scribe_tui.runtime.notebook import NotebookSaveError
from scribe_tui.tools import TOOL_NAMES, NotebookTools, ToolResult
from scribe_tui.tools import notebook_tools as notebook_tools_module
from scribe_tui.tools.tokens import count_tokens

# Tests on the shared tool set run in its (module-scoped) event loop.
shared = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Env:
    tools: NotebookTools
    events: list[Event] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.tools.session("s1").notebook.path

    async def run(self, code: str, **kwargs: Any) -> ToolResult:
        result = await self.tools.call("execute_code", {"session_id": "s1", "code": code}, **kwargs)
        assert not result.is_error, result.text
        return result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    """One tool set with one live session ('s1') for the tests that can share a kernel."""
    events: list[Event] = []
    tools = NotebookTools(
        tmp_path_factory.mktemp("notebooks"),
        cell_timeout=60,
        metadata={"task": "test the tools", "model": "none", "agent": "pytest"},
        on_event=events.append,
    )
    env = Env(tools, events)
    started = await env.tools.call("start_new_session", {"experiment_name": "shared"})
    assert not started.is_error and "'s1'" in started.text
    yield env
    await env.tools.aclose()


async def valid(tools: NotebookTools, path: Path) -> nbformat.NotebookNode:
    """The notebook file, read once the background saves are done, and validated."""
    await tools.flush()
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def only_line(result: ToolResult) -> str:
    assert result.is_error
    assert len(result.content) == 1 and "\n" not in result.text
    return result.text


def test_definitions_match_the_tool_names() -> None:
    definitions = NotebookTools().definitions()
    assert tuple(d["name"] for d in definitions) == TOOL_NAMES
    assert set(TOOL_NAMES) == {
        "start_new_session",
        "start_session_resume_notebook",
        "start_session_continue_notebook",
        "execute_code",
        "edit_cell",
        "add_markdown",
        "init_session",
        "shutdown_session",
        "conclude",
    }
    for definition in definitions:
        schema = definition["input_schema"]
        assert definition["description"] and schema["type"] == "object"
        assert set(schema["required"]) <= set(schema["properties"])
        takes_session = "session_id" in schema["properties"]
        in_required = "session_id" in schema["required"]
        assert in_required == (takes_session and definition["name"] != "conclude")
    conclude = next(d for d in definitions if d["name"] == "conclude")["input_schema"]
    assert conclude["required"] == ["answer", "confidence", "evidence"]
    json.dumps(definitions)


@shared
async def test_init_session_runs_the_default_setup(env: Env) -> None:
    result = await env.tools.call("init_session", {"session_id": "s1"})
    assert not result.is_error
    assert result.text.startswith("Setup ran in code cell 0:\nPython 3.")
    assert "torch" in result.text
    cell = (await valid(env.tools, env.path)).cells[0]
    assert cell.metadata.scribe.author == "system" and cell.execution_count == 1


@shared
async def test_execute_code_returns_outputs_and_emits_events(env: Env) -> None:
    env.events.clear()
    code = "import sys\nprint('hello')\nprint('careful', file=sys.stderr)\n6 * 7"
    result = await env.run(code)
    assert result.content == [{"type": "text", "text": "hello\ncareful\n42"}]
    added, executing, *updates = env.events
    index = len(env.tools.session("s1").notebook.cells) - 1
    assert added == CellAdded(index=index, cell_id=added.cell_id, cell_type="code", source=code)
    assert executing == CellExecuting(index=index, cell_id=added.cell_id)
    final = updates[-1]
    assert isinstance(final, CellUpdated) and final.status == "ok"
    assert final.index == index and isinstance(final.execution_count, int)
    assert final.outputs[-1]["data"]["text/plain"] == "42"
    cell = (await valid(env.tools, env.path)).cells[index]
    assert cell.source == code and cell.outputs == final.outputs


@shared
async def test_a_persons_cell_is_attributed(env: Env) -> None:
    env.events.clear()
    await env.run("person_was_here = True", author="person")
    assert env.events[0].author == "person"
    assert (await valid(env.tools, env.path)).cells[-1].metadata.scribe.author == "person"


@shared
async def test_live_output_streams_while_the_cell_runs(env: Env) -> None:
    env.events.clear()
    await env.run("import time\nprint('first', flush=True)\ntime.sleep(0.6)\nprint('second')")
    updates = [e for e in env.events if isinstance(e, CellUpdated)]
    live = [u for u in updates if u.status is None and u.outputs]
    assert live and live[0].outputs[0]["text"] == "first\n"
    assert updates[-1].status == "ok" and updates[-1].outputs[0]["text"] == "first\nsecond\n"


@shared
async def test_errors_show_the_users_frames(env: Env) -> None:
    result = await env.run(
        "import json\n\ndef parse(s):\n    return json.loads(s)\n\nparse('{bad')"
    )
    text = result.text
    assert text.startswith("Traceback (most recent call last):")
    assert "Cell In[" in text and "parse('{bad')" in text and "json/decoder.py" in text
    assert text.rstrip().splitlines()[-1].startswith("JSONDecodeError: Expecting property name")
    assert "\x1b" not in text and "IPython" not in text and "ipykernel" not in text
    assert (await valid(env.tools, env.path)).cells[-1].outputs[-1].output_type == "error"


@shared
async def test_edit_cell_reruns_it_and_optionally_the_cells_below(env: Env) -> None:
    notebook = env.tools.session("s1").notebook
    await env.run("base = 1")
    first = len(notebook.code_indices()) - 1
    await env.run("derived = base + 1\nderived")
    await env.run("print(derived * 10)")
    result = await env.tools.call(
        "edit_cell",
        {"session_id": "s1", "code": "base = 100", "cell_index": first, "rerun_below": True},
    )
    assert not result.is_error
    assert result.text == (
        f"Code cell {first} replaced and re-run:\n(no output)\n"
        "Re-ran 2 of 2 code cells in order: 2 ok, 0 failed."
    )
    cells = (await valid(env.tools, env.path)).cells
    assert cells[notebook.code_index(first)].source == "base = 100"
    assert cells[notebook.code_index(-1)].outputs[0].text == "1010\n"
    assert (await env.run("derived")).text == "101"

    # Default index: the last code cell; no re-run below unless asked.
    await env.run("boom = 1")
    await env.run("1 / 0")
    result = await env.tools.call(
        "edit_cell", {"code": "boom = 2", "cell_index": -2, "rerun_below": True}
    )
    assert result.text.endswith(
        f"1 failed.\n- code cell {len(notebook.code_indices()) - 1}: "
        "ZeroDivisionError: division by zero"
    )
    result = await env.tools.call("edit_cell", {"code": "print('fixed')"})
    assert (
        result.text == f"Code cell {len(notebook.code_indices()) - 1} replaced and re-run:\nfixed"
    )
    assert (await valid(env.tools, env.path)).cells[-1].source == "print('fixed')"


@shared
async def test_add_markdown(env: Env) -> None:
    env.events.clear()
    result = await env.tools.call("add_markdown", {"session_id": "s1", "content": "# Findings"})
    assert not result.is_error and str(env.path) in result.text
    assert isinstance(env.events[0], CellAdded) and env.events[0].cell_type == "markdown"
    cell = (await valid(env.tools, env.path)).cells[-1]
    assert (cell.cell_type, cell.source) == ("markdown", "# Findings")


@shared
async def test_timeout_interrupts_and_keeps_state(env: Env) -> None:
    await env.run("kept = 'still here'")
    env.tools.cell_timeout = 1.5
    try:
        result = await env.run("while True:\n    pass")
    finally:
        env.tools.cell_timeout = 60
    assert result.text.endswith("Timed out after 1.5 s; kernel interrupted, variables kept.")
    assert (await env.run("kept")).text == "'still here'"
    await valid(env.tools, env.path)


@shared
async def test_a_20_mb_print_stays_within_budget_and_cap(env: Env) -> None:
    await env.tools.flush()
    before = env.path.stat().st_size
    code = "print('\\n'.join(f'line {i:07d} ' + 'y' * 50 for i in range(330_000)))"
    result = await env.run(code)
    text = result.text
    assert count_tokens(text) <= env.tools.token_budget + 100
    assert text.startswith("line 0000000") and text.rstrip().endswith("y" * 50)
    number = len(env.tools.session("s1").notebook.code_indices()) - 1
    assert f"lines omitted; code cell {number} of {env.path} keeps more of it" in text
    assert "(scribe-tui: output truncated: 2" in text
    stored = (await valid(env.tools, env.path)).cells[-1].outputs[0].text
    assert len(stored.encode()) <= env.tools.output_cap_bytes + 200
    assert env.path.stat().st_size - before < env.tools.output_cap_bytes * 1.2


@shared
async def test_invalid_utf8_output(env: Env) -> None:
    code = (
        "import os, sys\n"
        "print('lone \\udcff surrogate', flush=True)\n"
        "os.write(1, b'raw \\xff\\xfe bytes\\n')\n"
    )
    result = await env.run(code)
    assert "lone \ufffd surrogate" in result.text
    await valid(env.tools, env.path)
    env.path.read_bytes().decode("utf-8")  # strict


@shared
async def test_fifty_images_are_capped_and_resized(env: Env) -> None:
    code = (
        "import io\n"
        "from PIL import Image as PILImage\n"
        "from IPython.display import Image, display\n"
        "for i in range(50):\n"
        "    buffer = io.BytesIO()\n"
        "    PILImage.new('RGB', (1600, 400), (i * 5, 90, 200)).save(buffer, format='PNG')\n"
        "    display(Image(data=buffer.getvalue()))\n"
    )
    result = await env.run(code)
    images = [b for b in result.content if b["type"] == "image"]
    assert len(images) == env.tools.max_images == 8
    for block in images:
        size = Image.open(io.BytesIO(base64.b64decode(block["source"]["data"]))).size
        assert size == (1024, 256)
    assert "42 more images omitted" in result.text
    assert len((await valid(env.tools, env.path)).cells[-1].outputs) == 50


@shared
async def test_kernel_death_is_reported_and_recovered(env: Env) -> None:
    started = await env.tools.call("start_new_session", {"experiment_name": "doomed"})
    sid = started.text.split("'")[1]
    try:
        path = env.tools.session(sid).notebook.path
        await env.tools.call("execute_code", {"session_id": sid, "code": "doomed = 1"})
        result = await env.tools.call(
            "execute_code", {"session_id": sid, "code": "import os\nos._exit(1)"}
        )
        assert not result.is_error
        assert result.text.startswith(
            "The kernel died (exit code 1); it was restarted and all variables were lost: "
            "re-run setup with init_session or re-execute the cells you need."
        )
        nb = await valid(env.tools, path)
        assert [c.source for c in nb.cells] == ["doomed = 1", "import os\nos._exit(1)"]
        lost = await env.tools.call("execute_code", {"session_id": sid, "code": "doomed"})
        assert "NameError" in lost.text
        again = await env.tools.call("execute_code", {"session_id": sid, "code": "1 + 1"})
        assert again.text == "2"
    finally:
        await env.tools.call("shutdown_session", {"session_id": sid})


@shared
async def test_resume_and_fork_rebuild_state(env: Env) -> None:
    tools = env.tools
    sid = (await tools.call("start_new_session", {"experiment_name": "resume me"})).text
    sid = sid.split("'")[1]
    for code in ("a = 2", "1 / 0", "b = a * 21"):
        await tools.call("execute_code", {"session_id": sid, "code": code})
    await tools.call("add_markdown", {"session_id": sid, "content": "notes"})
    path = tools.session(sid).notebook.path
    shut = await tools.call("shutdown_session", {"session_id": sid})
    assert not shut.is_error and (await valid(tools, path)).metadata.scribe.status == "stopped"
    after = only_line(await tools.call("execute_code", {"session_id": sid, "code": "1"}))
    assert f"Session '{sid}' was shut down" in after and "start_session_resume_notebook" in after

    resumed = await tools.call("start_session_resume_notebook", {"notebook_path": str(path)})
    assert not resumed.is_error
    # The cell that ended in an error is not re-run: what it did was never whole.
    assert "Re-ran 2 of 2 code cells in order: 2 ok, 0 failed.\n" in resumed.text
    assert "Not re-run, as they had ended in an error or an interrupt: code cell 1 (Zero" in (
        resumed.text
    )
    rid = resumed.text.split("session '")[1].split("'")[0]
    try:
        assert tools.session(rid).notebook.path == path
        assert (await tools.call("execute_code", {"session_id": rid, "code": "b"})).text == "42"
        nb = await valid(tools, path)
        assert len(nb.cells) == 5 and nb.metadata.scribe.status == "running"
        again = only_line(
            await tools.call("start_session_resume_notebook", {"notebook_path": str(path)})
        )
        assert f"already open in session '{rid}'" in again

        forked = await tools.call(
            "start_session_continue_notebook",
            {"notebook_path": str(path), "experiment_name": "second look"},
        )
        assert not forked.is_error and "Re-ran 3 of 3 code cells" in forked.text
        fid = forked.text.split("session '")[1].split("'")[0]
        fork = tools.session(fid).notebook.path
        original = path.read_bytes()
        assert fork != path and fork.name.endswith("_second-look.ipynb")
        result = await tools.call("execute_code", {"session_id": fid, "code": "b + 1"})
        assert result.text == "43"
        scribe = (await valid(tools, fork)).metadata.scribe
        assert scribe.forked_from == str(path) and scribe.agent == "pytest"
        assert path.read_bytes() == original
        await tools.call("shutdown_session", {"session_id": fid})
    finally:
        await tools.call("shutdown_session", {"session_id": rid})


@shared
async def test_resume_does_not_rerun_a_cell_that_was_interrupted(env: Env) -> None:
    tools = env.tools
    sid = (await tools.call("start_new_session", {"experiment_name": "esc"})).text.split("'")[1]
    session = tools.session(sid)
    await tools.call("execute_code", {"session_id": sid, "code": "kept = 1"})
    env.events.clear()
    slow = "import time\nprint('started', flush=True)\ntime.sleep(30)\nslept = True"
    running = asyncio.ensure_future(tools.call("execute_code", {"session_id": sid, "code": slow}))
    for _ in range(400):  # the cell is running once it has printed
        if any(isinstance(e, CellUpdated) and e.outputs for e in env.events):
            break
        await asyncio.sleep(0.05)
    await session.kernel.interrupt()  # what Esc does
    assert "KeyboardInterrupt" in (await running).text
    path = session.notebook.path
    await tools.call("shutdown_session", {"session_id": sid})

    resumed = await tools.call("start_session_resume_notebook", {"notebook_path": str(path)})
    rid = resumed.text.split("session '")[1].split("'")[0]
    try:
        assert "Re-ran 1 of 1 code cells in order: 1 ok, 0 failed." in resumed.text
        assert "code cell 1 (KeyboardInterrupt)" in resumed.text
        probe = "kept, 'slept' in globals()"
        assert (await tools.call("execute_code", {"session_id": rid, "code": probe})).text == (
            "(1, False)"
        )
        cell = (await valid(tools, path)).cells[1]
        assert cell.outputs[-1].ename == "KeyboardInterrupt"  # its record is kept as it was
    finally:
        await tools.call("shutdown_session", {"session_id": rid})


@shared
async def test_cancelling_a_call_interrupts_the_cell_and_keeps_its_output(env: Env) -> None:
    env.events.clear()
    task = asyncio.ensure_future(
        env.run("import time\nprint('started', flush=True)\ntime.sleep(60)")
    )
    for _ in range(200):
        if any(isinstance(e, CellUpdated) and e.outputs for e in env.events):
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cell = (await valid(env.tools, env.path)).cells[-1]
    assert cell.outputs[0].text == "started\n"
    assert (await env.run("'responsive'")).text == "'responsive'"


BAD_INPUTS = [
    ("nope", {}, "Unknown tool 'nope'; the tools are: start_new_session,"),
    ("execute_code", "{not json", "The arguments for execute_code are not valid JSON"),
    ("execute_code", "[1, 2]", "must be a JSON object"),
    ("execute_code", {"session_id": "s1"}, "execute_code needs 'code'"),
    ("execute_code", {"session_id": 3, "code": "1"}, "'session_id' must be a string, not a number"),
    ("execute_code", {"code": "1", "cell": 2}, "execute_code has no argument 'cell'"),
    (
        "edit_cell",
        {"code": "1", "cell_index": "1"},
        "'cell_index' must be an integer, not a string",
    ),
    ("edit_cell", {"code": "1", "cell_index": 1.5}, "'cell_index' must be an integer"),
    ("edit_cell", {"code": "1", "rerun_below": "yes"}, "'rerun_below' must be a boolean"),
    ("edit_cell", {"code": "1", "cell_index": 10_000}, "cell_index 10000 is out of range"),
    ("conclude", {"answer": "a", "confidence": True, "evidence": "e"}, "not a boolean"),
    ("conclude", {"answer": "a", "confidence": 1.5, "evidence": "e"}, "between 0 and 1"),
    ("conclude", '{"answer": "a", "confidence": NaN, "evidence": "e"}', "finite number"),
    (
        "execute_code",
        {"session_id": "abc", "code": "1"},
        "Unknown session 'abc'. Start one with start_new_session, or use one of: s1.",
    ),
    ("start_session_resume_notebook", {"notebook_path": "nowhere.ipynb"}, "no such notebook"),
    ("start_session_resume_notebook", {"notebook_path": "notes.txt"}, "not a notebook"),
    ("start_session_continue_notebook", {"notebook_path": "nowhere.ipynb"}, "no such notebook"),
]


@shared
@pytest.mark.parametrize(("name", "arguments", "message"), BAD_INPUTS)
async def test_bad_input_is_one_helpful_line(
    env: Env, name: str, arguments: dict | str, message: str
) -> None:
    cells = len(env.tools.session("s1").notebook.cells)
    assert message in only_line(await env.tools.call(name, arguments))
    assert len((await valid(env.tools, env.path)).cells) == cells


@shared
async def test_broken_notebook_file_is_refused(env: Env, tmp_path: Path) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    text = only_line(
        await env.tools.call("start_session_resume_notebook", {"notebook_path": str(broken)})
    )
    assert "not a valid Jupyter notebook" in text and "repair" in text


@shared
async def test_unexpected_failures_are_reported_not_raised(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def renderer_bug(*args: Any, **kwargs: Any) -> list[dict]:
        raise ValueError("renderer bug\nsecond line")

    monkeypatch.setattr(notebook_tools_module, "render_outputs", renderer_bug)
    text = only_line(await env.tools.call("execute_code", {"code": "ran = 'yes'"}))
    assert text == (
        "execute_code failed unexpectedly: ValueError: renderer bug; "
        "the notebook keeps everything saved so far."
    )
    monkeypatch.undo()
    assert (await valid(env.tools, env.path)).cells[-1].source == "ran = 'yes'"

    def broken_handler(event: Event) -> None:
        raise RuntimeError("front end bug")

    monkeypatch.setattr(env.tools, "on_event", broken_handler)
    assert (await env.run("'events failing is fine'")).text == "'events failing is fine'"
    assert (await valid(env.tools, env.path)).cells[-1].source == "'events failing is fine'"


@shared
async def test_a_failing_disk_is_reported_and_retried(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    await env.tools.flush()
    before = env.path.read_bytes()

    def disk_full(path: Path, data: bytes) -> os.stat_result:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(notebook_module, "atomic_write", disk_full)
    await env.run("print('unsaved')")
    with pytest.raises(NotebookSaveError, match="No space left"):
        await env.tools.flush()
    assert env.path.read_bytes() == before
    warned = await env.run("'still working'")
    assert warned.content[0]["text"] == "'still working'"
    assert warned.content[-1]["text"] == (
        f"Warning: could not save notebook {env.path}: No space left on device; free some "
        "space; the run continues in memory and saving is retried at the next change"
    )
    monkeypatch.undo()
    await env.run("'disk is back'")
    nb = await valid(env.tools, env.path)
    assert [c.source for c in nb.cells[-3:]] == [
        "print('unsaved')",
        "'still working'",
        "'disk is back'",
    ]
    assert (await env.run("'no warning'")).content == [{"type": "text", "text": "'no warning'"}]


@shared
async def test_sessions_keep_other_processes_off_their_notebooks(env: Env) -> None:
    busy = f"is in use by scribe-tui pid {os.getpid()}; wait for it to finish or stop it"
    assert try_in_another_process(env.path) == f"notebook {env.path} {busy}"

    started = await env.tools.call("start_new_session", {"experiment_name": "held"})
    sid = started.text.split("'")[1]
    path = env.tools.session(sid).notebook.path
    assert try_in_another_process(path) == f"notebook {path} {busy}"
    await env.tools.call("shutdown_session", {"session_id": sid})
    assert not path.with_name(f".{path.name}.lock").exists()

    holder = hold_in_another_process(path)
    try:
        refused = only_line(
            await env.tools.call("start_session_resume_notebook", {"notebook_path": str(path)})
        )
        assert refused == (
            f"notebook {path} is in use by scribe-tui pid {holder.pid}; "
            "wait for it to finish or stop it"
        )
        assert list(env.tools.sessions) == ["s1"]
    finally:
        holder.communicate("")  # closing stdin lets it exit, which releases the lock
    resumed = await env.tools.call("start_session_resume_notebook", {"notebook_path": str(path)})
    assert not resumed.is_error, resumed.text
    await env.tools.call("shutdown_session", {"session_id": resumed.text.split("'")[1]})


@shared
async def test_a_notebook_edited_elsewhere_is_kept_and_the_session_saves_beside_it(
    env: Env,
) -> None:
    started = await env.tools.call("start_new_session", {"experiment_name": "edited"})
    sid = started.text.split("'")[1]
    session = env.tools.session(sid)
    original = session.notebook.path
    try:
        await env.tools.call("execute_code", {"session_id": sid, "code": "x = 1"})
        theirs = await valid(env.tools, original)
        theirs.cells.append(nbformat.v4.new_markdown_cell("edited in Jupyter"))
        nbformat.write(theirs, original)
        result = await env.tools.call("execute_code", {"session_id": sid, "code": "x + 1"})
        assert result.text == "2"
        await env.tools.flush()  # the change is saved in the background
        aside = original.with_name(f"{original.stem}.scribe-1.ipynb")
        assert session.notebook.path == aside
        assert [c.source for c in (await valid(env.tools, aside)).cells] == ["x = 1", "x + 1"]
        assert nbformat.read(original, as_version=4) == theirs
        assert env.tools.take_notices() == [
            f"{original} was changed by another program; left it as it is, and this "
            f"notebook is now saved to {aside}"
        ]
        assert env.tools.take_notices() == []
    finally:
        await env.tools.call("shutdown_session", {"session_id": sid})


@shared
async def test_session_id_may_be_left_out_only_when_unambiguous(env: Env) -> None:
    assert (await env.tools.call("execute_code", {"code": "'implicit'"})).text == "'implicit'"
    other = await env.tools.call("start_new_session", {})
    sid = other.text.split("'")[1]
    try:
        text = only_line(await env.tools.call("execute_code", {"code": "1"}))
        assert text == f"Several sessions are running (s1, {sid}); pass session_id to say which."
        text = only_line(
            await env.tools.call("conclude", {"answer": "a", "confidence": 0.5, "evidence": "e"})
        )
        assert "Several sessions are running" in text
    finally:
        await env.tools.call("shutdown_session", {"session_id": sid})


@shared
async def test_conclude_records_the_answer(env: Env) -> None:
    result = await env.tools.call(
        "conclude",
        json.dumps({"answer": "forty-two", "confidence": 0.8, "evidence": "cells 3 and 4"}),
    )
    assert not result.is_error and str(env.path) in result.text
    assert "read as a named answer" in result.text
    assert env.tools.session("s1").concluded
    nb = await valid(env.tools, env.path)
    assert nb.metadata.scribe.status == "concluded"
    assert nb.metadata.scribe.conclusion.answer == "forty-two"
    assert nb.metadata.scribe.conclusion.confidence == 0.8
    assert nb.cells[-1].cell_type == "markdown" and "forty-two" in nb.cells[-1].source


@shared
async def test_no_session_and_closed_tools(tmp_path: Path) -> None:
    tools = NotebookTools(tmp_path)
    text = only_line(await tools.call("execute_code", {"code": "1"}))
    assert text == "No session is running; start one with start_new_session."
    await tools.aclose()
    text = only_line(await tools.call("start_new_session", {}))
    assert "closed" in text
    assert not list(tmp_path.iterdir())


@shared
async def test_kernel_start_failure_leaves_no_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = functools.partial(KernelSession, python=str(tmp_path / "no-such-python"))
    monkeypatch.setattr(notebook_tools_module, "KernelSession", broken)
    tools = NotebookTools(tmp_path / "notebooks")
    text = only_line(await tools.call("start_new_session", {"experiment_name": "x"}))
    assert text.startswith("Could not start a kernel")
    assert not list((tmp_path / "notebooks").glob("*.ipynb"))
    assert not tools.sessions
    await tools.aclose()
