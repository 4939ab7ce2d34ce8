"""A model host that serves calls from worker processes forked after its one load
(runtime.host_workers): side by side, the same answers, cancels, a stuck or crashed
worker, the seal, and no worker outliving its host."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import host_fixtures
import pytest
from host_fixtures import kill_host, wait_until

from scribe_tui.runtime.host_process import pid_alive, spawn_host
from scribe_tui.runtime.host_protocol import LaunchSpec
from scribe_tui.runtime.interp_client import InterpClient
from scribe_tui.runtime.sandbox import probe

tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Host:
    def __init__(self, model: Path, folder: Path, workers: int, sealed: bool = False) -> None:
        self.file = folder / "host.json"
        launch = LaunchSpec(model=str(model), device="cpu", workers=workers)
        self.proc = spawn_host(launch, self.file, parent_pid=None, idle_timeout=300, sealed=sealed)
        self.clients: list[InterpClient] = []

    def client(self) -> InterpClient:
        self.clients.append(InterpClient(host_file=self.file))
        return self.clients[-1]

    def close(self) -> None:
        for c in self.clients:
            c.close()
        kill_host(self.file)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def two_workers(tiny_model: Path, tmp_path: Path) -> Iterator[Host]:
    host = Host(tiny_model, tmp_path, workers=2)
    yield host
    host.close()


def meet(model, tokenizer, mine, theirs):
    """Leave ``mine``, then wait for ``theirs``: two calls meet only when they run together."""
    import os
    import time

    open(mine, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(theirs) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), os.path.exists(theirs)


def next_word_logits(model, tokenizer, prompt):
    import torch

    with torch.no_grad():
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        return model(ids).logits[0, -1]


def test_calls_run_side_by_side_in_workers_forked_after_one_load(
    two_workers: Host, tmp_path: Path
) -> None:
    a, b = two_workers.client(), two_workers.client()
    assert a.status().workers == 2 and "2 workers" in a.status().summary()
    # A notebook that prints info() reproduces on a one-process host: how it is served is not in it.
    assert "workers" not in a.info()
    results: dict[str, tuple[int, bool]] = {}
    marks = tmp_path / "a", tmp_path / "b"
    calls = [
        threading.Thread(
            target=lambda c=c, m=m, t=t, k=k: results.update({k: c.run(meet, mine=m, theirs=t)})
        )
        for c, m, t, k in ((a, marks[0], marks[1], "a"), (b, marks[1], marks[0], "b"))
    ]  # fmt: skip
    for t in calls:
        t.start()
    for t in calls:
        t.join(120)
    # Each saw the other's mark while it ran: one process serving one call at a time could not.
    assert results["a"][1] and results["b"][1]
    pids = {results["a"][0], results["b"][0]}
    assert len(pids) == 2 and two_workers.proc.pid not in pids
    status = a.status()
    assert status.loads == 1 and status.pid == two_workers.proc.pid

    # Every worker answers as the loaded model does: the same weights, shared, not reloaded.
    first = a.run(next_word_logits, prompt="the secret word is")
    with_b = b.run(next_word_logits, prompt="the secret word is")
    assert first.tolist() == with_b.tolist()
    assert isinstance(a.generate("the secret", max_new_tokens=3, temperature=0), str)
    with pytest.raises(TypeError, match="messages must be a string"):
        a.chat(3)  # an error raised in a worker comes back as the host's own would


def spin_after(model, tokenizer, started):
    open(started, "w").close()
    while True:
        pass


def swallow_interrupts(model, tokenizer, started):
    import contextlib
    import time

    while True:
        with contextlib.suppress(KeyboardInterrupt):
            open(started, "w").close()
            while True:
                time.sleep(0.01)


def shout(model, tokenizer, word):
    print("loud:", word.upper())
    return word


def interrupt_when(path: Path) -> threading.Thread:
    """Ctrl+C this process once ``path`` exists: InterpClient.run sends the host a cancel."""

    def wait_then_interrupt() -> None:
        wait_until(path.exists, 60)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt)
    thread.start()
    return thread


def test_a_cancel_reaches_the_worker_running_the_call(
    two_workers: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = two_workers.client()
    started = tmp_path / "started"
    interrupter = interrupt_when(started)
    with pytest.raises(KeyboardInterrupt):
        client.run(spin_after, started=str(started))  # never ends by itself
    interrupter.join()
    assert wait_until(lambda: client.status().calls_in_flight == 0, 60)
    assert client.run(shout, word="free") == "free"
    assert "loud: FREE" in capsys.readouterr().out  # output streams from the worker
    assert client.status().workers == 2 and client.status().pid == two_workers.proc.pid


def test_a_call_that_ignores_its_cancel_ends_its_worker_and_the_host_serves_on(
    two_workers: Host, tmp_path: Path
) -> None:
    client = two_workers.client()
    started = tmp_path / "started"
    interrupter = interrupt_when(started)
    with pytest.raises(KeyboardInterrupt):
        client.run(swallow_interrupts, started=str(started))
    interrupter.join()
    assert wait_until(lambda: client.status().workers == 1, 60), "the stuck worker stayed"
    assert client.run(shout, word="after") == "after"
    assert client.status().pid == two_workers.proc.pid  # the same host: nothing reloaded
    log = two_workers.file.with_suffix(".log").read_text()
    assert "the call ignored its cancel, so the worker process serving it was stopped" in log


def crash(model, tokenizer):
    import os

    os._exit(3)


def test_a_worker_that_dies_fails_its_call_in_one_line_and_the_last_one_restarts_the_host(
    tiny_model: Path, tmp_path: Path
) -> None:
    host = Host(tiny_model, tmp_path, workers=2)
    try:
        client = host.client()
        with pytest.raises(RuntimeError, match=r"died \(exit code 3"):
            client.run(crash)
        assert client.status().workers == 1
        assert client.run(shout, word="still") == "still"
        first = host.proc.pid
        # The last worker gone, the host exits; the next call starts a new one, with two.
        with pytest.raises(Exception, match="exit code 3"):
            client.run(crash)
        assert host.proc.wait(timeout=60) == 75
        assert client.run(shout, word="again") == "again"
        assert client.status().pid != first and client.status().workers == 2
    finally:
        host.close()


def test_a_host_stopped_mid_call_exits_cleanly_not_as_a_lost_worker(
    two_workers: Host, tmp_path: Path
) -> None:
    """Stopping the host ends its workers: the call they served is not a crash to report,
    and the host must not leave a note asking for a restart."""
    client = two_workers.client()
    started = tmp_path / "started"
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.run(spin_after, started=str(started))
        except BaseException as exc:  # whatever the host's end looks like
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert wait_until(started.exists, 60), "the call never started"
    two_workers.proc.send_signal(signal.SIGTERM)
    assert two_workers.proc.wait(timeout=60) == 0
    assert not two_workers.file.with_suffix(".exit").exists()
    caller.join(120)
    assert outcome, "the call cannot have finished by itself"


def worker_pids(model, tokenizer):
    import os

    return os.getpid(), os.getppid()


def test_workers_end_with_their_host(two_workers: Host) -> None:
    client = two_workers.client()
    seen: set[int] = set()
    for _ in range(4):
        pid, parent = client.run(worker_pids)
        assert parent == two_workers.proc.pid
        seen.add(pid)
    assert len(seen) == 2, "calls go to the idle worker first, so both answer in turn"
    os.kill(two_workers.proc.pid, signal.SIGKILL)
    two_workers.proc.wait()
    assert wait_until(lambda: not any(pid_alive(p) for p in seen), 30), "a worker outlived its host"


def read_text(model, tokenizer, path):
    with open(path) as f:
        return f.read()


@pytest.mark.skipif(not probe().sealed, reason=f"this machine cannot seal ({probe().label})")
def test_a_sealed_hosts_workers_are_sealed_as_it_is(tiny_model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "answer.json"
    outside.write_text('{"secret": "moon"}')
    (tmp_path / "host").mkdir()
    host = Host(tiny_model, tmp_path / "host", workers=2, sealed=True)
    try:
        client = host.client()
        assert client.status().workers == 2
        for _ in range(4):  # more calls than workers: each worker is asked
            with pytest.raises(PermissionError):
                client.run(read_text, path=str(outside))
    finally:
        host.close()
