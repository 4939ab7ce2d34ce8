"""The investigation loop with a scripted provider and the real notebook tools (real kernels)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from scribe_tui.agent.loop import CUT_OFF, Investigation, InvestigationConfig, parse_final_answer
from scribe_tui.agent.provider import ProviderError, TurnRequest, Usage
from scribe_tui.agent.scripted import SESSION, ScriptedProvider, ScriptedTurn, text, tool
from scribe_tui.agent.transcript import Transcript
from scribe_tui.events import Event
from scribe_tui.runtime import notebook as notebook_module
from scribe_tui.tools import NotebookTools

START = [tool("start_new_session", experiment_name="test")]
CONCLUDE = [tool("conclude", answer="42", confidence=0.8, evidence="it printed 42")]
PERSON = "Message from the person watching: "
STREAMED = ("status", "text_delta", "thinking_delta")


def run(code: str) -> dict[str, Any]:
    return tool("execute_code", session_id=SESSION, code=code)


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[NotebookTools]:
    notebook_tools = NotebookTools(tmp_path / "notebooks")
    yield notebook_tools
    await notebook_tools.aclose()


class Watch:
    """Collects an investigation's events and waits for particular ones."""

    def __init__(self, investigation: Investigation) -> None:
        self.events: list[Event] = []
        investigation.subscribe(self.events.append)

    def types(self) -> list[str]:
        return [e.type for e in self.events if e.type not in STREAMED]

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]

    async def until(self, check: Callable[[], Any], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out; events: {self.types()}"
            await asyncio.sleep(0.02)


class Held:
    """A scripted turn that notes the events seen when the provider is asked for it, and
    answers only once its gate is open (open from the start unless ``held``)."""

    def __init__(self, content: list[dict[str, Any]], *, held: bool = False) -> None:
        self.content = content
        self.gate = asyncio.Event()
        if not held:
            self.gate.set()
        self.watch: Watch | None = None
        self.saw: list[str] | None = None

    async def __call__(self, request: TurnRequest) -> list[dict[str, Any]]:
        assert self.watch is not None
        self.saw = self.watch.types()
        await self.gate.wait()
        return self.content


def start(
    turns: list[Any], tools: NotebookTools, **config: Any
) -> tuple[Investigation, ScriptedProvider, Watch]:
    provider = ScriptedProvider(turns)
    config.setdefault("checkpoint_every", 0)
    investigation = Investigation("find 42", provider, tools, config=InvestigationConfig(**config))
    watch = Watch(investigation)
    for turn in turns:
        if isinstance(turn, Held):
            turn.watch = watch
    return investigation, provider, watch


def last_user_texts(request: TurnRequest) -> list[str]:
    """The text of every block in the request's last user message, tool results flattened."""
    out = []
    for block in request.messages[-1]["content"]:
        if block["type"] == "tool_result":
            out += [b.get("text", "") for b in block["content"]]
        else:
            out.append(block.get("text", ""))
    return out


def code_cells(path: Path) -> list[Any]:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return [c for c in notebook.cells if c.cell_type == "code"]


def assert_valid_conversation(messages: list[dict[str, Any]]) -> None:
    """Roles alternate, and every tool_use is answered in the next message."""
    for i, message in enumerate(messages):
        assert message["role"] == ("user" if i % 2 == 0 else "assistant"), i
        uses = [b["id"] for b in message["content"] if b.get("type") == "tool_use"]
        if uses and i + 1 < len(messages):
            answered = [b["tool_use_id"] for b in messages[i + 1]["content"][: len(uses)]]
            assert answered == uses


async def test_full_run_to_conclusion(tools: NotebookTools) -> None:
    thinking = {"type": "thinking", "thinking": "plan", "signature": "sig-1"}
    turns = [
        [thinking, text("I'll start."), *START],
        [tool("init_session", session_id=SESSION)],
        [run("print(6 * 7)"), run("x = 42\nx"), tool("add_markdown", content="# Found 42")],
        CONCLUDE,
    ]
    investigation, provider, watch = start(turns, tools)
    outcome = await investigation.run()

    assert outcome.reason == "concluded"
    assert (outcome.answer, outcome.confidence) == ("42", 0.8)
    assert outcome.turns == 4 and outcome.elapsed > 0
    cells = code_cells(outcome.notebook_path)
    assert ["Session setup" in cells[0].source, cells[1].source] == [True, "print(6 * 7)"]
    assert cells[1].outputs[0]["text"] == "42\n"
    # Several calls in one turn: run in order, answered in one user message, in order.
    third = provider.requests[3].messages[-1]["content"]
    assert [b["type"] for b in third] == ["tool_result"] * 3
    assert third[1]["content"][0]["text"] == "42"
    # Thinking goes back exactly as received.
    assert provider.requests[1].messages[1]["content"][0] == thinking
    assert_valid_conversation(investigation.messages)

    types = watch.types()
    assert types[:2] == ["turn_started", "turn_finished"]
    first_cell = types.index("cell_added")
    assert types[first_cell - 1] == "tool_call_started"
    assert types[-2:] == ["concluded", "stopped"]
    assert watch.events[-1].type == "status" and watch.events[-1].agent_state == "concluded"

    data = Transcript.load(outcome.transcript_path)
    assert outcome.transcript_path == outcome.notebook_path.with_suffix(".jsonl")
    assert data.header["task"] == "find 42" and data.header["provider"] == "scripted"
    assert data.header["notebook"] == str(outcome.notebook_path)
    assert data.messages == investigation.messages
    # The transcript keeps every event but the streamed ones (deltas, live cell output).
    live = [e for e in watch.events if e.type == "cell_updated" and e.status is None]
    assert [e for e in data.events if e.type != "status"] == [
        e for e in watch.events if e.type not in STREAMED and e not in live
    ]
    assert len(data.of_kind("usage")) == 4


async def test_forgotten_session_is_started_for_the_agent(tools: NotebookTools) -> None:
    investigation, provider, _ = start([[run("print('hi')")], CONCLUDE], tools)
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    said = last_user_texts(provider.requests[1])
    assert said[0].startswith("[scribe-tui] No session was running, so session 's1' was started")
    assert said[1] == "hi"
    assert [c.source for c in code_cells(outcome.notebook_path)][1] == "print('hi')"


async def test_max_tokens_turn_runs_nothing(tools: NotebookTools) -> None:
    cut = ScriptedTurn([*START, run("print('never')")], stop_reason="max_tokens")
    investigation, provider, watch = start([cut, START, CONCLUDE], tools)
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    assert watch.of("tool_call_started")[0].name == "start_new_session"  # the second turn's
    results = provider.requests[1].messages[-1]["content"]
    assert [(r["is_error"], r["content"][0]["text"]) for r in results] == [(True, CUT_OFF)] * 2
    assert [c.source for c in code_cells(outcome.notebook_path)] == []


async def test_final_text_answer_is_recorded_with_its_confidence(tools: NotebookTools) -> None:
    final = text("## Result\nAnswer: the number is 42\nConfidence: 70%\nIt printed 42.")
    investigation, _, _ = start([START, [final]], tools)
    outcome = await investigation.run()
    assert (outcome.reason, outcome.answer, outcome.confidence) == (
        "concluded",
        "the number is 42",
        0.7,
    )
    meta = nbformat.read(outcome.notebook_path, as_version=4).metadata["scribe"]
    assert meta["conclusion"]["confidence"] == 0.7


async def test_a_full_disk_is_reported_once_and_saving_resumes_when_space_is_back(
    tools: NotebookTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, data: bytes) -> os.stat_result:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fill_the_disk(request: TurnRequest) -> list[dict[str, Any]]:
        monkeypatch.setattr(notebook_module, "atomic_write", disk_full)
        return [run("a = 1")]

    def free_space(request: TurnRequest) -> list[dict[str, Any]]:
        monkeypatch.undo()
        return [run("a + 1")]

    turns = [START, [run("0")], fill_the_disk, [run("b = 2")], free_space, CONCLUDE]
    investigation, provider, watch = start(turns, tools)
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    path = outcome.notebook_path
    message = (
        f"could not save notebook {path}: No space left on device; free some space; "
        "the run continues in memory and saving is retried at the next change"
    )
    assert [e.message for e in watch.of("error")] == [message]  # once, not at every step
    assert f"Warning: {message}" in last_user_texts(provider.requests[4])
    assert [c.source for c in code_cells(path)] == ["0", "a = 1", "b = 2", "a + 1"]


async def test_a_notebook_edited_elsewhere_mid_run_is_kept_and_the_run_follows_its_copy(
    tools: NotebookTools, tmp_path: Path
) -> None:
    def person_edits_the_file(request: TurnRequest) -> list[dict[str, Any]]:
        (path,) = (tmp_path / "notebooks").glob("*.ipynb")
        theirs = nbformat.read(path, as_version=4)
        theirs.cells.append(nbformat.v4.new_markdown_cell("a person's note"))
        nbformat.write(theirs, path)
        return [run("x = 2")]

    turns = [START, [run("x = 1")], person_edits_the_file, [run("x * 21")], CONCLUDE]
    investigation, _, watch = start(turns, tools)
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    original = outcome.transcript_path.with_suffix(".ipynb")
    aside = original.with_name(f"{original.stem}.scribe-1.ipynb")
    assert outcome.notebook_path == aside
    assert [c.source for c in code_cells(aside)] == ["x = 1", "x = 2", "x * 21"]
    assert nbformat.read(original, as_version=4).cells[-1].source == "a person's note"
    assert [e.message for e in watch.of("error")] == [
        f"{original} was changed by another program; left it as it is, and this notebook "
        f"is now saved to {aside}"
    ]
    records = [json.loads(line) for line in outcome.transcript_path.read_text().splitlines()]
    assert [r["path"] for r in records if r["kind"] == "notebook"][-1] == str(aside)


def test_parse_final_answer_defaults() -> None:
    assert parse_final_answer("It is moon, I think.") == (
        "It is moon, I think.",
        0.5,
        "It is moon, I think.",
    )
    assert parse_final_answer("**Answer:** moon\nconfidence 0.9")[:2] == ("moon", 0.9)


async def test_pause_takes_effect_at_the_next_boundary(tools: NotebookTools) -> None:
    first = Held([text("starting a session"), *START], held=True)
    investigation, provider, watch = start([first, CONCLUDE], tools)
    investigation.pause()  # a run can start paused
    task = asyncio.create_task(investigation.run())
    await watch.until(lambda: watch.of("paused"), 60)
    assert provider.requests == []
    investigation.resume()
    await watch.until(lambda: watch.of("turn_started"), 60)
    investigation.pause()  # mid-turn, held on its gate: the turn finishes, its calls wait
    first.gate.set()
    await watch.until(lambda: len(watch.of("paused")) == 2, 60)
    assert watch.types()[-3:] == ["turn_started", "turn_finished", "paused"]
    investigation.resume()
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.reason == "concluded"
    types = watch.types()
    assert types.count("resumed") == 2
    # The provider was first asked only after the first resume, and the held turn's call
    # ran only after the second: nothing moved while paused.
    assert first.saw is not None and "resumed" in first.saw
    resumed = [i for i, t in enumerate(types) if t == "resumed"]
    assert resumed[1] < types.index("tool_call_started")


async def test_interrupt_stops_a_streaming_turn_then_resume_completes(tools: NotebookTools) -> None:
    # 1075 pieces streamed over 600 s: on its own the turn ends long after any wait below.
    pieces = 1075
    thought = "Let me think about this for a long while. " * 400
    slow = ScriptedTurn([text(thought), *START], delay=600)
    investigation, provider, watch = start([slow, START, CONCLUDE], tools)
    task = asyncio.create_task(investigation.run())
    await watch.until(lambda: watch.of("text_delta"), 60)
    investigation.interrupt()
    await watch.until(lambda: watch.of("turn_finished"), 60)
    assert watch.of("turn_finished")[0].stop_reason == "interrupted"
    assert len(watch.of("text_delta")) < pieces  # cut mid-stream, not run out
    await watch.until(lambda: watch.of("paused"))
    assert watch.of("paused")[0].reason == "interrupted"
    investigation.resume()
    outcome = await task
    assert outcome.reason == "concluded"
    # The partial answer is kept as text only; the agent is told it was interrupted.
    kept = investigation.messages[1]["content"]
    assert len(kept) == 1 and kept[0]["text"].endswith("[interrupted by the person]")
    assert "interrupted your last turn" in last_user_texts(provider.requests[1])[0]
    assert_valid_conversation(investigation.messages)


async def test_interrupt_stops_a_running_cell_and_skips_the_rest(tools: NotebookTools) -> None:
    # The cell says it has started, then sleeps far past every wait below.
    busy = "import time\nprint('go', flush=True)\ntime.sleep(600)"
    turns = [START, [run(busy), run("print('skipped')")], CONCLUDE]
    investigation, provider, watch = start(turns, tools)
    task = asyncio.create_task(investigation.run())
    await watch.until(
        lambda: any(o.get("text") == "go\n" for e in watch.of("cell_updated") for o in e.outputs),
        60,
    )
    investigation.interrupt()
    await watch.until(lambda: watch.of("paused"), 60)
    investigation.resume()
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.reason == "concluded"
    cells = code_cells(outcome.notebook_path)
    assert len(cells) == 1 and cells[0].outputs[-1]["ename"] == "KeyboardInterrupt"
    said = last_user_texts(provider.requests[2])
    assert "KeyboardInterrupt" in said[0]
    assert said[1] == "Not run: the person interrupted the turn."


async def test_sent_messages_arrive_in_order_after_the_tool_results(tools: NotebookTools) -> None:
    slow = ScriptedTurn([*START], delay=0.5)
    investigation, provider, watch = start([slow, [run("1 + 1")], CONCLUDE], tools)
    task = asyncio.create_task(investigation.run())
    await watch.until(lambda: watch.of("turn_started"))
    investigation.send("try prefill")
    investigation.send("then persona sampling")
    assert (await task).reason == "concluded"
    assert PERSON not in json.dumps(provider.requests[0].messages)
    content = provider.requests[1].messages[-1]["content"]
    assert [b["type"] for b in content] == ["tool_result", "text", "text"]
    assert [b["text"] for b in content[1:]] == [
        PERSON + "try prefill",
        PERSON + "then persona sampling",
    ]
    assert watch.of("message_delivered")[0].texts == ["try prefill", "then persona sampling"]
    assert [e.queued for e in watch.of("message_queued")] == [1, 2]


async def test_person_cells_are_attributed_and_reported(tools: NotebookTools) -> None:
    slow = ScriptedTurn([run("print('agent')")], delay=0.5)
    investigation, provider, watch = start([START, slow, CONCLUDE], tools)
    task = asyncio.create_task(investigation.run())
    await watch.until(lambda: len(watch.of("turn_started")) == 2)  # the session exists
    investigation.pause()  # lands after the turn, before its call
    await watch.until(lambda: watch.of("paused"))
    await investigation.run_code("y = 40 + 2\nprint(y)")
    await investigation.edit_cell(0, "print('edited')")
    with pytest.raises(ValueError, match="out of range"):
        await investigation.edit_cell(7, "print('nope')")
    investigation.resume()
    outcome = await task
    cells = code_cells(outcome.notebook_path)
    assert [c.source for c in cells] == ["print('edited')", "print('agent')"]
    assert cells[0].metadata["scribe"]["author"] == "person"
    said = "\n".join(last_user_texts(provider.requests[2]))
    assert "They ran a cell of their own, code cell 0:\n```python\ny = 40 + 2" in said
    assert "They edited code cell 0 and re-ran it:\n```python\nprint('edited')" in said
    assert "42" in said and "edited" in said
    authors = [e.author for e in watch.of("tool_call_started")]
    assert authors == ["agent", "person", "person", "person", "agent", "agent"]


async def test_checkpoints_every_n_experiments_land_in_the_notebook(tools: NotebookTools) -> None:
    turns = [
        START,
        [run("1"), run("2")],
        [tool("add_markdown", content="## Checkpoint\nOne family tested.")],
        [run("3")],
        [run("4")],
        [text("## Checkpoint\nTwo families tested; continue.")],  # answered as text
        CONCLUDE,
    ]
    investigation, provider, watch = start(turns, tools, checkpoint_every=2)
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    asked = [
        i
        for i, r in enumerate(provider.requests)
        if "exploration checkpoint" in str(r.messages[-1])
    ]
    assert asked == [2, 5]
    assert [(e.number, e.experiments) for e in watch.of("checkpoint_requested")] == [(1, 2), (2, 4)]
    answers = [e.content for e in watch.of("checkpoint_answered")]
    assert answers == [
        "## Checkpoint\nOne family tested.",
        "## Checkpoint\nTwo families tested; continue.",
    ]
    notebook = nbformat.read(outcome.notebook_path, as_version=4)
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    assert markdown[:2] == answers
    assert "added to the notebook" in last_user_texts(provider.requests[6])[0]


async def test_a_note_written_while_a_checkpoint_is_due_is_not_the_checkpoint(
    tools: NotebookTools,
) -> None:
    """The agent answering the person while a request waits writes a note, not checkpoint 1."""
    turns = [
        START,
        [run("1")],
        [tool("add_markdown", content="### Message from the person\n\n> try the lens")],
        [tool("add_markdown", content="## Checkpoint\nOne family.")],
        CONCLUDE,
    ]
    investigation, _provider, watch = start(turns, tools, checkpoint_every=1)
    assert (await investigation.run()).reason == "concluded"
    assert [e.content for e in watch.of("checkpoint_answered")] == ["## Checkpoint\nOne family."]


async def test_confirm_checkpoints_waits_for_a_decision(tools: NotebookTools) -> None:
    turns = [START, [run("1")], [tool("add_markdown", content="## Checkpoint\nweak")], CONCLUDE]
    investigation, provider, watch = start(
        turns, tools, checkpoint_every=1, confirm_checkpoints=True
    )
    task = asyncio.create_task(investigation.run())
    await watch.until(lambda: watch.of("checkpoint_answered"), 60)
    assert watch.of("checkpoint_answered")[0].awaiting_approval
    waiting = "waiting for checkpoint approval"
    await watch.until(lambda: watch.of("status")[-1].agent_state == waiting, 60)
    assert len(provider.requests) == 3
    investigation.decide_checkpoint(1, "pivot", "try the logit lens")
    outcome = await task
    assert outcome.reason == "concluded"
    assert last_user_texts(provider.requests[3])[-1] == (
        PERSON + "(on checkpoint 1: pivot) try the logit lens"
    )
    assert watch.of("checkpoint_decided")[0].decision == "pivot"


async def test_requested_checkpoint_goes_out_with_the_next_message(tools: NotebookTools) -> None:
    idle = [tool("shutdown_session")]  # fails fast: no session, no kernel
    written = [text("## Checkpoint\nNothing tested yet.")]
    investigation, provider, watch = start([idle, written, [text("Answer: 42")]], tools)
    investigation.request_checkpoint()
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    assert "exploration checkpoint" not in str(provider.requests[0].messages)  # the task alone
    assert "exploration checkpoint" in last_user_texts(provider.requests[1])[-1]
    assert [e.number for e in watch.of("checkpoint_answered")] == [1]


async def test_budget_asks_once_to_conclude_then_stops(tools: NotebookTools) -> None:
    # Tool calls that fail fast need no kernel: the run stays cheap.
    idle = [tool("shutdown_session")]
    investigation, provider, watch = start([idle, idle, idle], tools, max_turns=1)
    outcome = await investigation.run()
    assert (outcome.reason, outcome.turns, len(provider.requests)) == ("budget", 2, 2)
    assert (
        "Budget reached (1 of 1 turns used). Call `conclude` now"
        in last_user_texts(provider.requests[1])[-1]
    )
    assert watch.of("stopped")[0].reason == "budget"


async def test_budget_answered_with_a_conclusion(tools: NotebookTools) -> None:
    costly = Usage(input_tokens=1000, output_tokens=10, cost_usd=0.6)
    provider = ScriptedProvider([START, [text("Answer: 42\nconfidence 0.6")]], usage=costly)
    config = InvestigationConfig(max_cost_usd=0.5, checkpoint_every=0)
    outcome = await Investigation("find 42", provider, tools, config=config).run()
    assert (outcome.reason, outcome.answer, outcome.confidence) == ("concluded", "42", 0.6)
    assert "$0.60 of $0.50 spent" in str(provider.requests[1].messages[-1])
    assert outcome.usage.cost_usd == pytest.approx(1.2)


async def test_old_outputs_shrink_when_the_context_is_large(tools: NotebookTools) -> None:
    big = "print('x' * 4000)"
    turns = [START, [run(big)], [run(big)], [run(big)], CONCLUDE]
    investigation, provider, _ = start(turns, tools, context_budget=2500, keep_results=1)
    outcome = await investigation.run()
    assert outcome.reason == "concluded"
    sent = json.dumps(provider.requests[4].messages)
    assert "[output of code cell 0 elided to save context; it is in the notebook]" in sent
    assert "[output of code cell 2 elided" not in sent  # the newest stays
    assert "x" * 1000 in json.dumps(Transcript.load(outcome.transcript_path).messages[4])


async def test_provider_errors(tools: NotebookTools) -> None:
    flaky = ScriptedTurn(error=ProviderError("overloaded", retryable=True))
    investigation, _, watch = start([flaky, [text("Answer: 42")]], tools, retry_delays=(0.01,))
    assert (await investigation.run()).reason == "concluded"
    assert not watch.of("error")[0].fatal

    fatal = ScriptedTurn(error=ProviderError("invalid x-api-key"))
    investigation, _, watch = start([fatal], tools)
    outcome = await investigation.run()
    assert (outcome.reason, outcome.detail) == ("failed", "invalid x-api-key")
    assert watch.of("error")[-1].fatal


KILLED_RUN = """
import asyncio, sys
from pathlib import Path
from scribe_tui.agent.loop import Investigation, InvestigationConfig
from scribe_tui.agent.scripted import ScriptedProvider, ScriptedTurn, tool, SESSION

def run(code):
    return tool("execute_code", session_id=SESSION, code=code)

async def main():
    from scribe_tui.tools import NotebookTools
    tools = NotebookTools(Path(sys.argv[1]))
    turns = [
        [tool("start_new_session", experiment_name="killed")],
        [tool("init_session", session_id=SESSION)],
        [run("a = 1"), run("b = a + 1")],
        ScriptedTurn([run("print('never')")], delay=120),
    ]
    config = InvestigationConfig(checkpoint_every=2)
    investigation = Investigation("add numbers", ScriptedProvider(turns), tools, config=config)

    def show(event):
        if event.type == "turn_started" and event.turn == 4:
            investigation.send("remember me")
            kernel = next(iter(tools.sessions.values())).kernel
            print("READY", kernel.pid, investigation.transcript.path, flush=True)

    investigation.subscribe(show)
    await investigation.run()

asyncio.run(main())
"""


async def test_resume_after_sigkill_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, tools: NotebookTools
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RUN, encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, str(script), str(tools.notebooks_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 120)
        assert line.startswith("READY"), line
        _, kernel_pid, path = line.split()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.stdout.close()
    with contextlib.suppress(ProcessLookupError):  # the killed process's orphaned kernel
        os.kill(int(kernel_pid), signal.SIGKILL)
    before = Transcript.load(path)
    assert len(before.messages) == 6  # the killed turn was never committed

    provider = ScriptedProvider([[run("print(a + b)")], CONCLUDE])
    investigation = Investigation.resume(
        path, provider, tools, InvestigationConfig(checkpoint_every=2)
    )
    outcome = await investigation.run()

    assert outcome.reason == "concluded" and outcome.turns == 5
    first = provider.requests[0]
    assert first.messages[:-1] == before.messages
    said = last_user_texts(first)
    # The results of `a = 1` and `b = a + 1`, recorded before the kill.
    assert said[:2] == ["(no output)", "(no output)"]
    assert "resumed after scribe-tui stopped" in said[2] and "session 's1'" in said[2]
    assert PERSON + "remember me" in said
    assert any("exploration checkpoint" in s for s in said)  # the due checkpoint survived too
    assert last_user_texts(provider.requests[1])[0] == "3"  # the kernel was rebuilt from cells
    cells = code_cells(outcome.notebook_path)
    assert [c.source for c in cells[1:]] == ["a = 1", "b = a + 1", "print(a + b)"]
    after = Transcript.load(path)
    assert after.messages[: len(before.messages)] == before.messages
    # Four calls before the kill; then the loop's reopening call and two more: none twice.
    assert [e.type for e in after.events].count("tool_call_started") == 7


async def test_a_call_failing_identically_stops_the_run(tools: NotebookTools) -> None:
    """The same failing call three times in a row is a loop, not persistence: the run fails."""
    bad = tool("edit_cell", session_id=SESSION, cell_index=99, code="1")
    turns = [START, [tool("init_session", session_id=SESSION)], [bad], [bad], [bad], CONCLUDE]
    investigation, provider, watch = start(turns, tools)
    outcome = await investigation.run()

    assert outcome.reason == "failed"
    assert "edit_cell failed 3 times in a row the same way" in outcome.detail
    assert len(provider.requests) == 5  # never asked for the turn after the third failure
    errors = [e for e in watch.of("error") if e.fatal]
    assert len(errors) == 1 and "\n" not in errors[0].message


async def test_a_failure_that_changes_is_not_a_loop(tools: NotebookTools) -> None:
    turns = [
        START,
        [tool("init_session", session_id=SESSION)],
        *[[tool("edit_cell", session_id=SESSION, cell_index=90 + i, code="1")] for i in range(3)],
        CONCLUDE,
    ]
    investigation, _provider, _watch = start(turns, tools)
    assert (await investigation.run()).reason == "concluded"
