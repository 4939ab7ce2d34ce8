"""KernelSession against real ipykernel subprocesses; OutputCollector and the kernel
environment on their own."""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
import pytest_asyncio

from scribe_tui.runtime import kernel as kernel_module
from scribe_tui.runtime.environment import is_secret_name, kernel_environment
from scribe_tui.runtime.kernel import ExecutionResult, KernelError, KernelSession
from scribe_tui.runtime.outputs import OutputCollector

REPO = Path(__file__).resolve().parents[1]
# Tests on the shared kernel run in its (module-scoped) event loop.
shared = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session():
    """One kernel for the tests whose cells don't care what ran before them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
        async with KernelSession(extra_env={"SCRIBE_HOST_TOKEN": "handed-over"}) as kernel:
            yield kernel


def text_plain(result: ExecutionResult) -> str:
    (output,) = [o for o in result.outputs if o["output_type"] == "execute_result"]
    return output["data"]["text/plain"]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, within: float) -> bool:
    end = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


# -- results -------------------------------------------------------------------------


@shared
async def test_ok_result_with_execution_count_from_the_reply(session):
    first = await session.execute("40 + 2")
    assert first.status == "ok", first
    assert first.error is None and not first.state_lost and first.message == ""
    assert text_plain(first) == "42"
    assert first.outputs[0]["execution_count"] == first.execution_count
    assert first.duration > 0
    # No execute_result here: the count can only come from execute_reply.
    silent = await session.execute("quiet = 1")
    assert silent.outputs == []
    assert silent.execution_count == first.execution_count + 1


@shared
async def test_error_carries_the_traceback(session):
    result = await session.execute("def explode():\n    raise ValueError('boom')\nexplode()")
    assert result.status == "error"
    assert result.error["ename"] == "ValueError"
    assert result.error["evalue"] == "boom"
    assert any("explode" in line for line in result.error["traceback"])
    assert result.outputs[-1]["output_type"] == "error"
    assert result.outputs[-1]["traceback"] == result.error["traceback"]
    assert result.execution_count is not None


@shared
async def test_stream_chunks_merge_per_name(session):
    seen: list[list[dict]] = []
    code = textwrap.dedent(
        """
        import sys
        print("a", flush=True)
        print("b", flush=True)
        print("c", file=sys.stderr, flush=True)
        print("d", flush=True)
        """
    )
    result = await session.execute(code, on_output=seen.append)
    assert result.outputs == [
        stream("stdout", "a\nb\n"),
        stream("stderr", "c\n"),
        stream("stdout", "d\n"),
    ]
    # "a" and "b" arrived as separate messages and were merged by us.
    assert [stream("stdout", "a\n")] in seen


@shared
async def test_clear_output_now_and_with_wait(session):
    now = await session.execute(
        "from IPython.display import clear_output\nprint('old')\nclear_output()\nprint('new')"
    )
    assert now.outputs == [stream("stdout", "new\n")]
    waited = await session.execute(
        "print('old', flush=True)\nclear_output(wait=True)\nprint('new')"
    )
    assert waited.outputs == [stream("stdout", "new\n")]
    # A deferred clear with nothing after it leaves the old output, as in Jupyter.
    dangling = await session.execute("print('kept', flush=True)\nclear_output(wait=True)")
    assert dangling.outputs == [stream("stdout", "kept\n")]


@shared
async def test_update_display_data_replaces_the_earlier_output(session):
    code = textwrap.dedent(
        """
        from IPython.display import display
        handle = display("first", display_id=True)
        print("between")
        handle.update("second")
        """
    )
    result = await session.execute(code)
    assert result.status == "ok", result
    assert [o["output_type"] for o in result.outputs] == ["display_data", "stream"]
    assert result.outputs[0]["data"]["text/plain"] == "'second'"
    assert "transient" not in result.outputs[0]


@shared
async def test_images_are_kept_as_valid_nbformat(session):
    code = textwrap.dedent(
        """
        from IPython.display import display
        from PIL import Image
        display(Image.new("RGB", (4, 4), "red"))
        """
    )
    result = await session.execute(code)
    assert result.status == "ok", result
    (image,) = result.outputs
    assert image["output_type"] == "display_data"
    assert base64.b64decode(image["data"]["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x", outputs=result.outputs, execution_count=1)]
    )
    nbformat.validate(notebook)


# The cell waits until ipykernel's fd reader has passed the raw bytes to sys.stdout, so
# they go out under this cell (a reader that forwards them later would lose them).
RAW_BYTES = """
import sys, threading
seen, out, forward = threading.Event(), sys.stdout, sys.stdout.write
def watching(text):
    written = forward(text)
    if " bad" in text:
        seen.set()
    return written
out.write = watching
try:
    sys.__stdout__.buffer.write(b"\\xff\\xfe bad\\n")
    sys.__stdout__.flush()
    assert seen.wait(60), "the fd reader never forwarded the bytes"
finally:
    del out.write
"""


@shared
async def test_invalid_utf8_output_crashes_nothing(session):
    # The issue's example; ipykernel 7's sys.stdout has no .buffer, older ones do.
    spec_example = await session.execute(
        'import sys\nsys.stdout.buffer.write(b"\\xff\\xfe bad")\nsys.stdout.flush()'
    )
    assert spec_example.status in ("ok", "error")
    # Raw bytes on file descriptor 1 reach us through ipykernel's fd capture.
    raw = await asyncio.wait_for(session.execute(RAW_BYTES), 120)
    after = await session.execute("1 + 1")
    assert raw.status == "ok", raw
    assert text_plain(after) == "2"
    text = "".join(o["text"] for o in raw.outputs if o["output_type"] == "stream")
    assert "\ufffd" in text and " bad" in text


@shared
async def test_output_reaches_the_callback_while_the_cell_runs(session, tmp_path):
    # "second" waits for a gate that the callback opens only once it has seen "first".
    gate = tmp_path / "gate"
    snapshots: list[list[dict]] = []

    def on_output(outputs: list[dict]) -> None:
        snapshots.append(outputs)
        gate.touch()

    code = (
        f"import os, time\nprint('first', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)\nprint('second')"
    )
    result = await asyncio.wait_for(session.execute(code, on_output=on_output), 60)
    assert snapshots[0] == [stream("stdout", "first\n")]
    assert snapshots[-1] == result.outputs == [stream("stdout", "first\nsecond\n")]


@shared
async def test_a_failing_callback_does_not_break_the_cell(session):
    def broken(outputs: list[dict]) -> None:
        raise RuntimeError("front end bug")

    result = await session.execute("print('hi')\n3", on_output=broken)
    assert result.status == "ok"
    assert text_plain(result) == "3"


@shared
async def test_concurrent_executes_are_serialised(session, tmp_path):
    # The slow cell is still running (held on a gate) when the fast one is asked for: the
    # gate opens only once the slow cell's first output is back, long after both started.
    gate = tmp_path / "gate"
    slow = session.execute(
        f"import os, time\nprint('slow', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)\nprint('done')",
        on_output=lambda outputs: gate.touch(),
    )
    fast = session.execute("print('fast')")
    slow_result, fast_result = await asyncio.wait_for(asyncio.gather(slow, fast), 60)
    assert slow_result.outputs == [stream("stdout", "slow\ndone\n")]
    assert fast_result.outputs == [stream("stdout", "fast\n")]


@shared
async def test_secrets_never_reach_the_kernel(session):
    result = await session.execute(
        "import os\n"
        "('ANTHROPIC_API_KEY' in os.environ, os.environ.get('SCRIBE_HOST_TOKEN'),"
        " os.environ.get('MPLBACKEND'), os.environ.get('PATH'))"
    )
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-ant-must-not-leak"
    expected = (False, "handed-over", kernel_environment()["MPLBACKEND"], os.environ["PATH"])
    assert ast.literal_eval(text_plain(result)) == expected


@shared
async def test_a_lost_idle_status_does_not_hang_the_cell(session, monkeypatch):
    # IOPub drops messages when flooded; simulate losing the final "idle".
    receive = session._kc.get_iopub_msg

    async def dropping_idle(timeout=None):
        msg = await receive(timeout=timeout)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return {"parent_header": {}, "msg_type": "dropped", "content": {}}
        return msg

    monkeypatch.setattr(session._kc, "get_iopub_msg", dropping_idle)
    monkeypatch.setattr(kernel_module, "_IDLE_GRACE", 0.3)
    result = await session.execute("print('out')\n5", timeout=30)
    assert result.status == "ok", result
    assert result.outputs[0] == stream("stdout", "out\n")
    assert text_plain(result) == "5"


# -- timeouts, interrupts, deaths ----------------------------------------------------


@shared
async def test_timeout_interrupts_and_keeps_state(session):
    pid = session.pid
    await session.execute("survivor = 41")
    result = await session.execute("while True:\n    pass", timeout=1.0)
    assert result.status == "timeout"
    assert not result.state_lost
    assert result.message == "Timed out after 1 s: kernel interrupted, state kept."
    assert result.execution_count is not None
    assert text_plain(await session.execute("survivor + 1")) == "42"
    assert session.pid == pid


@shared
async def test_interrupt_stops_the_running_cell(session):
    seen = asyncio.Event()
    running = asyncio.create_task(
        session.execute(
            "import time\nprint('go', flush=True)\ntime.sleep(60)",
            timeout=30,
            on_output=lambda outputs: seen.set(),
        )
    )
    await asyncio.wait_for(seen.wait(), 30)
    await session.interrupt()
    result = await running
    assert result.status == "error"
    assert result.error["ename"] == "KeyboardInterrupt"
    assert result.message == "Interrupted: state kept."
    # An interrupt between cells is harmless.
    pid = session.pid
    await session.interrupt()
    assert text_plain(await session.execute("1 + 1")) == "2"
    assert session.pid == pid


@shared
async def test_cancelled_execute_interrupts_the_kernel(session):
    pid = session.pid
    seen = asyncio.Event()
    running = asyncio.create_task(
        session.execute(
            "kept = 7\nimport time\nprint('go', flush=True)\ntime.sleep(60)",
            on_output=lambda outputs: seen.set(),
        )
    )
    await asyncio.wait_for(seen.wait(), 30)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # Had the kernel not been interrupted it would still sleep, and this would time out.
    after = await session.execute("kept", timeout=20)
    assert after.status == "ok", after
    assert text_plain(after) == "7"
    assert session.pid == pid


@shared
async def test_dead_kernel_is_detected_and_restarted(session):
    old_pid = session.pid
    await session.execute("doomed = 1")
    result = await session.execute("import os\nos._exit(1)", timeout=60)
    assert result.status == "died"
    assert result.state_lost
    assert result.duration < 3.0
    assert result.execution_count is None
    assert result.message == "Kernel died (exit code 1) and was restarted: state lost."
    assert session.pid != old_pid and session.is_alive
    assert gone(old_pid)
    lost = await session.execute("doomed")
    assert lost.error["ename"] == "NameError"
    assert text_plain(await session.execute("1 + 1")) == "2"


@shared
async def test_kernel_killed_between_cells_is_replaced_before_the_next(session):
    old_pid = session.pid
    await session.execute("doomed = 1")
    os.kill(old_pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while session.is_alive and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert not session.is_alive
    result = await session.execute("'doomed' in dir()")
    assert result.status == "ok", result
    assert text_plain(result) == "False"
    assert result.state_lost
    assert (
        result.message == "Kernel died (exit code -9) between cells and was restarted: state lost."
    )
    assert session.pid != old_pid


@shared
async def test_kernel_ignoring_the_interrupt_is_restarted(session, monkeypatch):
    monkeypatch.setattr(session, "interrupt_grace", 1.0)
    old_pid = session.pid
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    result = await session.execute(code, timeout=0.5)
    assert result.status == "timeout"
    assert result.state_lost
    assert "ignored the interrupt and was restarted: state lost" in result.message
    assert session.pid != old_pid
    assert gone(old_pid)
    assert text_plain(await session.execute("2 + 2")) == "4"


@shared
async def test_restart_abandons_a_running_cell_and_loses_state(session):
    old_pid = session.pid
    seen = asyncio.Event()
    await session.execute("forgotten = 1")
    running = asyncio.create_task(
        session.execute(
            "import time\nprint('go', flush=True)\ntime.sleep(60)",
            on_output=lambda outputs: seen.set(),
        )
    )
    await asyncio.wait_for(seen.wait(), 30)
    await session.restart()
    result = await running
    assert result.status == "died" and result.state_lost
    assert result.message == "Kernel restarted while the cell ran: state lost."
    assert result.outputs == [stream("stdout", "go\n")]
    assert session.pid != old_pid
    assert gone(old_pid)
    assert (await session.execute("forgotten")).error["ename"] == "NameError"


# -- lifecycle and orphans -----------------------------------------------------------


async def test_shutdown_kills_the_kernel_and_its_children(tmp_path):
    kernel = KernelSession(cwd=tmp_path)
    await kernel.start()
    pid = kernel.pid
    child = await kernel.execute(
        "import os, subprocess\nchild = subprocess.Popen(['sleep', '60'])\n(os.getcwd(), child.pid)"
    )
    cwd, child_pid = ast.literal_eval(text_plain(child))
    assert Path(cwd) == tmp_path
    seen = asyncio.Event()
    running = asyncio.create_task(
        kernel.execute(
            "print('go', flush=True)\nwhile True:\n    pass", on_output=lambda o: seen.set()
        )
    )
    await asyncio.wait_for(seen.wait(), 30)
    await kernel.shutdown()
    result = await running
    assert result.status == "died" and result.state_lost
    assert result.message == "Session shut down while the cell ran."
    assert not kernel.is_alive and kernel.pid is None
    assert wait_gone(pid, 5) and wait_gone(child_pid, 5)
    with pytest.raises(KernelError, match="start a new session"):
        await kernel.execute("1")
    with pytest.raises(KernelError, match="start a new session"):
        await kernel.restart()
    await kernel.shutdown()  # idempotent


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # dropping it unclosed is the point
async def test_dropped_session_kills_its_kernel():
    kernel = KernelSession()
    await kernel.start()
    pid = kernel.pid
    del kernel
    gc.collect()
    assert wait_gone(pid, 5)


@contextlib.contextmanager
def session_in_a_subprocess(main_body: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run ``main_body`` as ``async def main(kernel)`` in another Python; it must print
    the kernel's pid. Yields that process and the pid, and kills both afterwards."""
    script = (
        "import asyncio\n"
        "from scribe_tui.runtime.kernel import KernelSession\n"
        "async def main(kernel):\n"
        + textwrap.indent(textwrap.dedent(main_body), "    ")
        + "\nasyncio.run(main(KernelSession()))\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kernel_pid = None
    try:
        kernel_pid = int(parent.stdout.readline())
        assert not gone(kernel_pid)
        yield parent, kernel_pid
    finally:
        parent.kill()
        parent.communicate()
        if kernel_pid is not None and not gone(kernel_pid):
            os.kill(kernel_pid, signal.SIGKILL)


def test_killing_the_parent_leaves_no_orphan_kernel():
    body = """
        await kernel.start()
        print(kernel.pid, flush=True)
        await asyncio.sleep(3600)
    """
    with session_in_a_subprocess(body) as (parent, kernel_pid):
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # ipykernel's parent poller checks once a second.
        assert wait_gone(kernel_pid, 10)


def test_ctrl_c_during_a_cell_leaves_no_kernel_behind():
    body = """
        code = "import time\\nprint('go', flush=True)\\ntime.sleep(60)"
        await kernel.execute(code, on_output=lambda outputs: print(kernel.pid, flush=True))
    """
    with session_in_a_subprocess(body) as (parent, kernel_pid):
        parent.send_signal(signal.SIGINT)
        _, stderr = parent.communicate(timeout=30)
        assert "KeyboardInterrupt" in stderr
        # Gone by the time its parent has exited: the exit-time safety net killed it, not
        # ipykernel's parent poller (which would need up to a second more).
        assert gone(kernel_pid)


async def test_missing_interpreter_raises_kernel_error():
    with pytest.raises(KernelError, match=r"/nonexistent/python.*ipykernel is installed"):
        await KernelSession(python="/nonexistent/python").start()


async def test_kernel_that_exits_at_startup_reports_its_stderr(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named ipykernel_launcher' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(KernelError, match="No module named ipykernel_launcher; check that"):
        await KernelSession(python=str(fake)).start()


async def test_unknown_kernel_name_raises_kernel_error():
    with pytest.raises(KernelError, match="No kernel named 'no-such-kernel'"):
        await KernelSession(kernel_name="no-such-kernel").start()


# -- OutputCollector -----------------------------------------------------------------


def display(data: str, display_id: str | None = None, msg_type: str = "display_data") -> dict:
    content: dict = {"data": {"text/plain": data}, "metadata": {}}
    if display_id:
        content["transient"] = {"display_id": display_id}
    if msg_type == "execute_result":
        content["execution_count"] = 3
    return content


def test_collector_merges_consecutive_streams_of_one_name():
    collector = OutputCollector()
    for name, text in [("stdout", "a"), ("stdout", "b"), ("stderr", "c"), ("stdout", "d")]:
        assert collector.handle("stream", {"name": name, "text": text})
    assert collector.outputs == [
        stream("stdout", "ab"),
        stream("stderr", "c"),
        stream("stdout", "d"),
    ]
    assert not collector.handle("stream", {"name": "stdout", "text": ""})


def test_collector_snapshots_are_never_mutated():
    collector = OutputCollector()
    collector.handle("stream", {"name": "stdout", "text": "a"})
    collector.handle("display_data", display("one", "d"))
    first = collector.outputs
    collector.handle("stream", {"name": "stdout", "text": "b"})
    collector.handle("stream", {"name": "stdout", "text": "c"})
    collector.handle("update_display_data", display("two", "d"))
    collector.handle("clear_output", {"wait": False})
    assert first == [
        stream("stdout", "a"),
        {"output_type": "display_data", "data": {"text/plain": "one"}, "metadata": {}},
    ]


def test_collector_merges_a_huge_print_in_linear_time():
    # 20 MB in 200k chunks: joining on every chunk would take minutes (the suite's timeout).
    collector = OutputCollector()
    chunk = "x" * 99 + "\n"
    for _ in range(200_000):
        collector.handle("stream", {"name": "stdout", "text": chunk})
    (output,) = collector.outputs
    assert len(output["text"]) == 20_000_000


def test_collector_clear_output():
    collector = OutputCollector()
    assert not collector.handle("clear_output", {"wait": False})
    collector.handle("stream", {"name": "stdout", "text": "old"})
    assert collector.handle("clear_output", {"wait": False})
    assert collector.outputs == []


def test_collector_clear_output_wait_defers_to_the_next_output():
    collector = OutputCollector()
    collector.handle("display_data", display("frame 1", "anim"))
    assert not collector.handle("clear_output", {"wait": True})
    # An update is not a new output: the old one stays, updated, until something new comes.
    assert collector.handle("update_display_data", display("frame 2", "anim"))
    assert [o["data"]["text/plain"] for o in collector.outputs] == ["frame 2"]
    assert collector.handle("error", {"ename": "E", "evalue": "v", "traceback": ["t"]})
    assert collector.outputs == [
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]}
    ]
    # The clear also forgot the display id.
    assert not collector.handle("update_display_data", display("frame 3", "anim"))


def test_collector_updates_every_output_with_the_display_id():
    collector = OutputCollector()
    collector.handle("execute_result", display("v1", "x", "execute_result"))
    collector.handle("stream", {"name": "stdout", "text": "between"})
    collector.handle("display_data", display("v2", "x"))
    assert [o["data"]["text/plain"] for o in collector.outputs[::2]] == ["v2", "v2"]
    assert collector.handle("update_display_data", display("v3", "x"))
    first, middle, last = collector.outputs
    assert first["output_type"] == "execute_result" and first["execution_count"] == 3
    assert first["data"]["text/plain"] == last["data"]["text/plain"] == "v3"
    assert middle == stream("stdout", "between")
    assert "transient" not in first
    assert not collector.handle("update_display_data", display("v4", "unknown"))
    assert not collector.handle("update_display_data", display("v4"))


def test_collector_ignores_non_output_messages():
    collector = OutputCollector()
    assert not collector.handle("status", {"execution_state": "busy"})
    assert not collector.handle("execute_input", {"code": "1", "execution_count": 1})
    assert not collector.handle("comm_open", {})
    assert collector.outputs == []


def test_collected_outputs_are_valid_nbformat():
    collector = OutputCollector()
    collector.handle("stream", {"name": "stdout", "text": "a"})
    collector.handle("stream", {"name": "stdout", "text": "b"})
    collector.handle("execute_result", display("1", msg_type="execute_result"))
    collector.handle("display_data", display("img", "d"))
    collector.handle("error", {"ename": "E", "evalue": "v", "traceback": []})
    cell = nbformat.v4.new_code_cell("x", outputs=collector.outputs, execution_count=3)
    nbformat.validate(nbformat.v4.new_notebook(cells=[cell]))


# -- environment ---------------------------------------------------------------------


SECRETS = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "MODAL_TOKEN_ID",
    "OPENAI_ORG",
    "GITHUB_TOKEN",
    "my_api_key",
    "DB_PASSWORD",
    "CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
]


def test_kernel_environment_drops_secrets_and_adds_extra(monkeypatch):
    for name in SECRETS:
        monkeypatch.setenv(name, "secret")
    monkeypatch.setenv("SCRIBE_PLAIN", "kept")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    env = kernel_environment({"HOST_TOKEN": "deliberate"})
    assert not [name for name in SECRETS if name in env]
    assert all(is_secret_name(name) for name in SECRETS)
    assert env["SCRIBE_PLAIN"] == "kept" and env["AWS_REGION"] == "eu-west-1"
    assert env["PATH"] == os.environ["PATH"]
    assert env["HOST_TOKEN"] == "deliberate"
    assert env["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
    # Set by pytest right now; a kernel that saw it would stop capturing fd-level output.
    assert "PYTEST_CURRENT_TEST" in os.environ and "PYTEST_CURRENT_TEST" not in env


def test_kernel_environment_keeps_a_chosen_matplotlib_backend(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert kernel_environment()["MPLBACKEND"] == "Agg"
    assert kernel_environment({"MPLBACKEND": "svg"})["MPLBACKEND"] == "svg"
