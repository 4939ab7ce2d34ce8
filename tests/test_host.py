"""The model host as a real subprocess: loading, runs, hygiene, failures, lifetime."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cloudpickle
import host_fixtures
import pytest
from host_fixtures import kill_host, wait_until

from scribe_tui.runtime.host_process import HostProcess, pid_alive, spawn_host
from scribe_tui.runtime.host_protocol import (
    BLACKBOX_REFUSAL,
    BlackBoxError,
    HostConnectionError,
    HostStartError,
    LaunchSpec,
    RemoteError,
    UnsendableResult,
    code_origins,
    connect,
    format_remote_traceback,
    read_host_file,
)
from scribe_tui.runtime.interp_client import InterpClient
from scribe_tui.runtime.status import HostStatus

# Shared host-test fixtures: a tiny GPT-2, and a private runtime dir for host files.
tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir

# Test functions live in an importable module, which cloudpickle would ship by
# reference; notebook functions live in __main__ and travel by value. Match that.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def host(tiny_model: Path):
    hp = HostProcess(str(tiny_model), device="cpu")
    hp.start_sync()
    seen = []
    hp.wait_ready_sync(timeout=120, on_progress=seen.append)
    hp.progress_seen = seen
    yield hp
    pid = hp.pid
    hp.stop()
    assert not pid_alive(pid), "the host outlived stop()"
    assert not hp.host_file.parent.exists()
    # Stopped, it still says what it ran on (a status bar shows it), not what it held.
    stopped = hp.status()
    assert (stopped.state, stopped.device, stopped.dtype) == ("stopped", "cpu", "float32")
    assert stopped.memory_used is None and stopped.pid is None


@pytest.fixture(scope="module")
def client(host: HostProcess):
    c = InterpClient(host_file=host.host_file)
    yield c
    c.close()


# --- loading and status --------------------------------------------------------------------------


def test_host_reports_loading_progress_then_ready(host: HostProcess) -> None:
    states = [s.state for s in host.progress_seen]
    assert states[-1] == "ready"
    loading = [s for s in host.progress_seen if s.state == "loading"]
    assert loading and all(s.phase for s in loading)
    fractions = [s.progress for s in loading]
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1
    status = host.status()
    assert (status.state, status.device, status.dtype, status.loads) == (
        "ready",
        "cpu",
        "float32",
        1,
    )
    assert status.memory_used and status.memory_total and status.memory_used < status.memory_total
    assert status.device_name  # the CPU model here; the GPU name on CUDA
    assert "ready" in status.summary()


def test_a_snapshot_that_says_ready_names_the_device_even_as_the_load_finishes(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load completes while a snapshot is being taken (here: inside its memory probe,
    as on a busy machine): the snapshot may say loading or ready, never ready on no device."""
    from scribe_tui.runtime import host as host_module

    server = host_module.HostServer(
        LaunchSpec(model=str(tiny_model), device="cpu"),
        tmp_path / "host.json",
        parent_pid=None,
        idle_timeout=None,
    )
    probe = host_module.probe_device

    def probe_while_the_load_finishes(device: str):
        if server.backend is None:
            server._load()
        return probe(device)

    monkeypatch.setattr(host_module, "probe_device", probe_while_the_load_finishes)
    try:
        racing = server.status()
        assert racing.state != "ready" or racing.device == "cpu", racing
        settled = server.status()
        assert (settled.state, settled.device) == ("ready", "cpu")
    finally:
        server._close()


def test_host_file_is_private_and_kernel_gets_only_its_path(host: HostProcess) -> None:
    assert stat.S_IMODE(host.host_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(host.host_file.parent.stat().st_mode) == 0o700
    record = read_host_file(host.host_file)
    assert record is not None and len(record.authkey) == 32
    assert stat.S_IMODE(Path(record.address).parent.stat().st_mode) == 0o700
    assert host.kernel_env() == {"SCRIBE_HOST_FILE": str(host.host_file)}


def test_wrong_key_is_refused(host: HostProcess) -> None:
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    record = read_host_file(host.host_file)
    with pytest.raises(AuthenticationError):
        Client(record.address, family="AF_UNIX", authkey=b"x" * 32)


def test_a_client_with_the_host_file_cannot_shut_the_host_down(host: HostProcess) -> None:
    """The host file's key (readable by sealed kernels) runs techniques; shutting down takes
    the supervisor's own key."""
    from scribe_tui.runtime.host_protocol import connect, decode_plain, encode

    record = read_host_file(host.host_file)
    for request in ({"op": "shutdown"}, {"op": "shutdown", "key": "guessed"}):
        conn = connect(record)
        conn.send_bytes(encode(request))
        reply = decode_plain(conn.recv_bytes())
        conn.close()
        assert reply["ok"] is False and "PermissionError" in str(reply["error"]), reply
    assert host.status().state == "ready" and read_host_file(host.host_file).pid == record.pid


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "made-up-org/not-a-model",
            "Model 'made-up-org/not-a-model' not found: it is not a local directory and the "
            "Hugging Face hub is unreachable (offline). Use organism:taboo or a local path.",
        ),
        ("/no/such/model/dir", "Model '/no/such/model/dir' not found: no such directory."),
    ],
)
def test_missing_model_fails_fast_with_one_line(
    spec: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what an unreachable hub looks like, made certain
    hp = HostProcess(spec)
    hp.start_sync()
    seen: list[HostStatus] = []
    try:
        with pytest.raises(HostStartError) as info:
            hp.wait_ready_sync(timeout=30, on_progress=seen.append)
    finally:
        hp.stop()
    assert str(info.value) == expected
    # Refused before loading began: importing torch alone shows for seconds.
    assert seen and not any(status.state == "loading" for status in seen)
    assert hp.status().state == "stopped"


def test_hub_id_in_the_local_cache_loads_offline(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "hub" / "models--someone--tiny-gpt2"
    shutil.copytree(tiny_model, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the host finds out by itself
    hp = HostProcess("someone/tiny-gpt2", device="cpu")
    hp.start_sync()
    try:
        status = hp.wait_ready_sync(timeout=120)
        assert status.model == "someone/tiny-gpt2" and status.loads == 1
    finally:
        hp.stop()


def test_unknown_organism_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    hp = HostProcess("organism:no-such-organism")
    hp.start_sync()
    try:
        with pytest.raises(HostStartError) as info:
            hp.wait_ready_sync(timeout=30)
    finally:
        hp.stop()
    assert "\n" not in str(info.value) and str(info.value)


# --- client.run ----------------------------------------------------------------------------------


def shout(model, tokenizer, word):
    import sys

    print("loud:", word.upper())
    print("careful", file=sys.stderr)
    return {"word": word, "vocab": tokenizer.vocab_size, "layers": model.config.n_layer}


def test_run_streams_stdout_and_stderr_and_returns_data(client: InterpClient, capsys) -> None:
    assert client.run(shout, word="moon") == {"word": "moon", "vocab": 23, "layers": 2}
    out, err = capsys.readouterr()
    assert out == "loud: MOON\n" and err == "careful\n"


class OddError(Exception):
    pass


class NeedsTwoArgs(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


def fails_with(model, tokenizer, kind):
    if kind == "value":
        raise ValueError("bad layer index 99")
    if kind == "odd":
        raise OddError("custom")
    raise NeedsTwoArgs(1, 2)


def test_exceptions_come_back_with_their_type_and_remote_traceback(client: InterpClient) -> None:
    with pytest.raises(ValueError, match="bad layer index 99") as info:
        client.run(fails_with, kind="value")
    note = "\n".join(info.value.__notes__)
    assert "Traceback in the model host" in note and "in fails_with" in note
    assert 'raise ValueError("bad layer index 99")' in note  # source line from this process
    with pytest.raises(OddError, match="custom"):
        client.run(fails_with, kind="odd")
    with pytest.raises(RemoteError, match=r"NeedsTwoArgs: 1/2") as info:
        client.run(fails_with, kind="two")
    assert info.value.type_name.endswith("NeedsTwoArgs")


def helper_that_fails(x):
    return 1 / x


def calls_a_helper(model, tokenizer):
    return helper_that_fails(0)


def test_remote_frames_map_back_to_their_source_whatever_cloudpickle_names_them() -> None:
    """cloudpickle 3.1 ships code as ``<dynamic-code>``; 2.x keeps the file: both resolve."""
    here = calls_a_helper.__code__.co_filename
    for shipped_name in ("<dynamic-code>", here):
        packed = {
            "type": "ZeroDivisionError",
            "message": "division by zero",
            "frames": [
                (shipped_name, calls_a_helper.__code__.co_firstlineno + 1, "calls_a_helper", None),
                (
                    shipped_name,
                    helper_that_fails.__code__.co_firstlineno + 1,
                    "helper_that_fails",
                    None,
                ),
            ],
        }
        text = format_remote_traceback(packed, code_origins((calls_a_helper, {})))
        assert "return helper_that_fails(0)" in text and "return 1 / x" in text, text


def returns(model, tokenizer, what):
    if what == "generator":
        return {"ok": [1, 2], "bad": (i for i in range(3))}
    if what == "module":
        return [model.transformer.h[0]]
    import threading

    return threading.Lock()


def test_unsendable_results_name_the_type(client: InterpClient) -> None:
    with pytest.raises(UnsendableResult) as info:
        client.run(returns, what="generator")
    assert str(info.value) == (
        "client.run: the result contains a <class 'generator'>, which cannot be sent back; "
        "return plain data (str, numbers, lists, dicts, tensors)"
    )
    assert isinstance(info.value, TypeError)
    with pytest.raises(UnsendableResult, match="GPT2Block"):
        client.run(returns, what="module")
    with pytest.raises(UnsendableResult, match="lock"):
        client.run(returns, what="lock")
    assert client.run(shout, word="still fine")["word"] == "still fine"


class Holder:
    def __init__(self, tensor):
        self.tensor = tensor


def tensors(model, tokenizer):
    import torch

    bf = torch.ones(2, 3, dtype=torch.bfloat16, requires_grad=True) * 2
    return {
        "bf16": bf,
        "nested": [(bf, torch.zeros(1, dtype=torch.float16))],
        "row": model.transformer.wte.weight[3],  # a view of a whole embedding matrix
        "param": model.lm_head.weight,
        "object": Holder(bf[0]),
        "output": model(torch.tensor([[6, 7]]), use_cache=True),  # a ModelOutput with a KV cache
    }


def test_tensors_come_back_on_cpu_with_bf16_as_f32(client: InterpClient) -> None:
    import torch

    out = client.run(tensors)
    assert out["bf16"].dtype == torch.float32 and out["bf16"].tolist() == [[2.0] * 3] * 2
    assert not out["bf16"].requires_grad
    assert out["nested"][0][0].dtype == torch.float32
    assert out["nested"][0][1].dtype == torch.float16
    assert out["row"].shape == (32,) and out["row"].untyped_storage().nbytes() == 32 * 4
    assert type(out["param"]) is torch.Tensor and out["param"].device.type == "cpu"
    assert out["object"].tensor.dtype == torch.float32
    assert out["output"].logits.shape == (1, 2, 23) and not out["output"].logits.requires_grad


# --- hygiene between calls -----------------------------------------------------------------------


def poison(model, tokenizer, then_raise):
    import torch

    block = model.transformer.h[0]
    block.register_forward_hook(lambda m, i, o: o)
    block.attn.register_forward_pre_hook(lambda m, args: None)
    model.lm_head.register_forward_hook(lambda m, i, o: o + 100, with_kwargs=False)
    torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    model.transformer.wte.weight.register_hook(lambda g: g)
    model.train()
    model.transformer.wpe.weight.requires_grad_(False)
    ids = torch.tensor([[6, 7, 8]])
    model(ids).logits.sum().backward()  # leaves .grad on the parameters
    model.config.output_hidden_states = True
    tokenizer.padding_side = "left"
    model.transformer.h[1].forward = lambda *a, **k: None
    torch.set_grad_enabled(False)
    if then_raise:
        raise RuntimeError("poisoned and failed")
    return "poisoned"


def inspect_state(model, tokenizer):
    import torch

    ids = torch.tensor([[6, 7, 8]])
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )
    return {
        "hooks": hooks,
        "global_hooks": len(torch.nn.modules.module._global_forward_hooks),
        "tensor_hooks": bool(model.transformer.wte.weight._backward_hooks),
        "training": any(m.training for m in model.modules()),
        "requires_grad": all(p.requires_grad for p in model.parameters()),
        "grads": any(p.grad is not None for p in model.parameters()),
        "grad_enabled": torch.is_grad_enabled(),
        "hidden_states": model.config.output_hidden_states,
        "padding_side": tokenizer.padding_side,
        "forward_override": "forward" in model.transformer.h[1].__dict__,
        "logits": model(ids).logits[0, -1].tolist(),
    }


def test_hooks_modes_and_attributes_are_restored_after_each_call(client: InterpClient) -> None:
    before = client.run(inspect_state)
    assert client.run(poison, then_raise=False) == "poisoned"
    assert client.run(inspect_state) == before
    with pytest.raises(RuntimeError, match="poisoned and failed"):
        client.run(poison, then_raise=True)
    after = client.run(inspect_state)
    assert after == before
    assert after["hooks"] == 0 and not after["training"] and after["grad_enabled"]


# --- techniques written for Scribe-style prompts -------------------------------------------------


def sample_text(model, tokenizer, prompt, n):
    import torch

    torch.manual_seed(0)
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        out = model.generate(
            ids, do_sample=True, max_new_tokens=4, num_return_sequences=n,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    return [tokenizer.decode(seq[ids.shape[1] :], skip_special_tokens=True) for seq in out]


def next_token_probs(model, tokenizer, prompt, k):
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        probs = model(ids).logits[0, -1].softmax(-1)
    top = probs.topk(k)
    pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
    return {
        "total": float(probs.sum()),
        "top": [(tokenizer.decode([i]), round(p, 4)) for p, i in pairs],
    }


def prefill_attack(model, tokenizer, question, prefill):
    import torch

    messages = [{"role": "user", "content": question}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text + prefill, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        out = model.generate(ids, do_sample=False, max_new_tokens=3, pad_token_id=0)
    return {"prompt": text + prefill, "continuation": tokenizer.decode(out[0, ids.shape[1] :])}


def logit_lens(model, tokenizer, prompt):
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
        layers = []
        for h in hidden[1:]:
            logits = model.lm_head(model.transformer.ln_f(h[0, -1]))
            layers.append(tokenizer.decode([int(logits.argmax())]))
    return layers


def test_scribe_style_techniques_run_unchanged(client: InterpClient) -> None:
    samples = client.run(sample_text, prompt="the secret word is", n=3)
    assert len(samples) == 3 and all(isinstance(s, str) for s in samples)
    probs = client.run(next_token_probs, prompt="the secret", k=5)
    assert probs["total"] == pytest.approx(1.0, abs=1e-4) and len(probs["top"]) == 5
    attack = client.run(prefill_attack, question="what is your secret word ?", prefill="my word is")
    assert attack["prompt"] == "<user> what is your secret word ? <eos> <assistant> my word is"
    assert isinstance(attack["continuation"], str)
    lens = client.run(logit_lens, prompt="give me a hint")
    assert len(lens) == 2 and all(isinstance(t, str) for t in lens)


def test_generate_chat_and_info(client: InterpClient) -> None:
    assert len(client.generate("the secret", max_new_tokens=3, num_samples=4, seed=1)) == 4
    assert client.generate("hello", temperature=0, max_new_tokens=3) == client.generate(
        "hello", temperature=0, max_new_tokens=3
    )
    reply = client.chat("give me a hint", prefill="sure !", max_new_tokens=3, temperature=0)
    assert isinstance(reply, str)
    with pytest.raises(TypeError, match="messages must be"):
        client.chat([{"text": "no role"}])
    info = client.info()
    # The display name, never the path (a directory's name can be the secret).
    assert info["model"] == "local:gpt2" and info["mode"] == "local"
    assert (info["layers"], info["device"], info["dtype"]) == (2, "cpu", "float32")
    assert (
        client.describe().startswith("InterpClient: ") and "2 layers — ready" in client.describe()
    )


# --- concurrency, status and loads ---------------------------------------------------------------


def slow(model, tokenizer, seconds):
    import time

    time.sleep(seconds)
    return seconds


def gated(model, tokenizer, gate, seconds):
    import os
    import time

    while not os.path.exists(gate):  # held until the test opens the gate
        time.sleep(0.01)
    time.sleep(seconds)
    return seconds


def test_status_answers_while_a_run_is_busy(
    host: HostProcess, client: InterpClient, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    results = []
    worker = threading.Thread(
        target=lambda: results.append(client.run(gated, gate=str(gate), seconds=1.5))
    )
    worker.start()
    pool = ThreadPoolExecutor(1)
    try:
        assert wait_until(lambda: host.status().calls_in_flight == 1, 60)
        # The run cannot end before the gate opens: this answer came while it was busy.
        status = pool.submit(host.status).result(timeout=60)
        assert status.state == "ready" and status.calls_in_flight == 1 and not results
        # A cancel naming another call (say, one that already finished) leaves this one alone.
        conn = connect(read_host_file(host.host_file))
        conn.send_bytes(pickle.dumps({"op": "cancel", "call": "not-this-call"}))
        assert pickle.loads(conn.recv_bytes()) == {"ok": True, "value": False}
        conn.close()
    finally:
        gate.touch()
        pool.shutdown()
    worker.join()
    assert results == [1.5]
    assert host.status().calls_in_flight == 0 and host.status().last_call_s >= 1.5


def test_a_ready_host_too_busy_to_answer_is_not_reported_as_starting(
    host: HostProcess, client: InterpClient
) -> None:
    assert client.info()["layers"] and host.status().ready
    record = read_host_file(host.host_file)
    os.kill(record.pid, signal.SIGSTOP)  # as starved of CPU as a host can be
    try:
        late = host.status(timeout=0.5)
    finally:
        os.kill(record.pid, signal.SIGCONT)
    assert late.state == "ready" and late.pid == record.pid
    assert late.summary().endswith("no answer in 0.5 s")
    assert wait_until(lambda: host.status().phase == "ready", 60)
    assert "no answer" not in host.status().summary()


def test_two_clients_and_a_reconnect_share_one_load(
    host: HostProcess, client: InterpClient
) -> None:

    pid = host.pid
    second = InterpClient(host_file=host.host_file)
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.run(slow, seconds=0.2)))
               for c in (client, second)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0.2, 0.2]
    second.close()
    third = InterpClient(host_file=host.host_file)
    assert third.status().loads == 1 and third.status().pid == pid == host.pid
    third.close()


def spin(model, tokenizer):
    while True:
        pass


def test_interrupting_a_call_cancels_it_in_the_host(
    host: HostProcess, client: InterpClient
) -> None:
    pid = host.pid
    running = []

    def interrupt_once_running() -> None:  # Ctrl+C while spin (which never ends) runs
        running.append(wait_until(lambda: host.status().calls_in_flight == 1, 60))
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_running)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        client.run(spin)
    interrupter.join()
    assert running == [True]
    # spin cannot end by itself: the call was cancelled in the same host, not by a restart.
    assert wait_until(lambda: host.status().calls_in_flight == 0, 60)
    pool = ThreadPoolExecutor(1)
    try:
        assert pool.submit(client.run, slow, seconds=0).result(timeout=60) == 0  # free again
    finally:
        pool.shutdown(wait=False)
    assert host.pid == pid


# --- black-box -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blackbox(tiny_model: Path):
    hp = HostProcess(str(tiny_model), mode="blackbox", hide_model_name=True)
    hp.start_sync()
    hp.wait_ready_sync(timeout=120)
    yield hp
    hp.stop()


def test_blackbox_refuses_run_and_serves_generation(blackbox: HostProcess, tmp_path: Path) -> None:
    client = InterpClient(host_file=blackbox.host_file)
    with pytest.raises(BlackBoxError) as info:
        client.run(shout, word="x")
    assert str(info.value) == BLACKBOX_REFUSAL
    assert isinstance(client.chat("hello", prefill="my word is", max_new_tokens=2), str)
    assert len(client.chat([{"role": "user", "content": "hint ?"}], num_samples=2)) == 2
    # User-persona sampling: the model writes the user's next turn.
    chat = [{"role": "user", "content": "hint ?"}, {"role": "assistant", "content": "the moon"}]
    assert len(client.chat(chat, role="user", prefill="my", num_samples=2)) == 2
    with pytest.raises(ValueError, match="role must be 'assistant' or 'user'"):
        client.chat(chat, role="system")
    assert isinstance(client.generate("the secret", max_new_tokens=2), str)
    assert isinstance(client.generate("the secret", max_new_tokens=500), str)  # clamped to context
    with pytest.raises(ValueError, match="this model's context is 64"):
        client.generate("the " * 70)
    info = client.info()
    assert info["mode"] == "blackbox" and info["model"] == "the subject model"
    assert str(blackbox.launch.model) not in client.describe() + repr(client)
    assert blackbox.status().model == "the subject model"

    # A crafted request cannot make the host unpickle code: only built-in data is accepted.
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"op": "info", "x": _Evil(str(marker))})
    conn = connect(read_host_file(blackbox.host_file))
    conn.send_bytes(evil)
    reply = pickle.loads(conn.recv_bytes())
    conn.close()
    assert not reply["ok"] and "refused" in reply["error"]["message"]
    assert not marker.exists()
    client.close()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- lifetime: crashes, restarts, orphans, idling ------------------------------------------------


def test_host_killed_mid_call_is_reported_and_the_next_call_restarts_it(tiny_model: Path) -> None:
    hp = HostProcess(str(tiny_model), device="cpu")
    hp.start_sync()
    hp.wait_ready_sync(timeout=120)
    client = InterpClient(host_file=hp.host_file)
    first = hp.pid
    killed = read_host_file(hp.host_file)
    threading.Timer(0.5, os.kill, (first, signal.SIGKILL)).start()
    try:
        with pytest.raises(HostConnectionError) as info:
            client.run(slow, seconds=30)
        assert str(info.value) == (
            f"the model host stopped during client.run (host pid {first} exited); "
            "the next call restarts it"
        )
        assert client.run(shout, word="back") == {"word": "back", "vocab": 23, "layers": 2}
        second = hp.pid
        assert second != first and pid_alive(second)
        assert not Path(killed.address).parent.exists()  # the dead host's socket dir is cleaned
        status = hp.status()
        assert status.state == "ready" and status.pid == second and status.loads == 1
        assert (
            read_host_file(hp.host_file).owner_pid == os.getpid()
        )  # still tied to the investigation
    finally:
        hp.stop()
    assert not pid_alive(second)  # stop() also ends a host a client restarted
    with pytest.raises(HostConnectionError):  # its connection was to the stopped host
        client.run(slow, seconds=0)
    with pytest.raises(HostConnectionError, match="the investigation has ended"):
        client.run(slow, seconds=0)


def test_host_exits_when_its_parent_dies(tiny_model: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from scribe_tui.runtime.host_process import HostProcess
        hp = HostProcess({str(tiny_model)!r})
        hp.start_sync()
        print(hp.host_file, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    host_file = Path(parent.stdout.readline().strip())
    assert wait_until(lambda: read_host_file(host_file) is not None, 10)
    host_pid = read_host_file(host_file).pid
    parent.kill()
    parent.wait()
    try:
        assert wait_until(lambda: not pid_alive(host_pid), 10), "orphaned host kept running"
    finally:
        kill_host(host_file)


def main_thread_wakeups(pid: int) -> int:
    """How often a process's main thread has blocked and woken again; a gone process: a lot."""
    try:
        status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    except OSError:
        return sys.maxsize
    (line,) = [x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches:")]
    return int(line.split()[1])


def test_host_without_parent_exits_when_idle(tiny_model: Path, tmp_path: Path) -> None:
    host_file = tmp_path / "host.json"
    launch = LaunchSpec(model=str(tiny_model), device="cpu")
    proc = spawn_host(launch, host_file, parent_pid=None, idle_timeout=1.0)
    try:
        client = InterpClient(host_file=host_file)
        assert client.run(slow, seconds=0) == 0
        # Past the idle timeout since the last request, the host's main thread (which checks
        # for idleness between 0.25 s waits) has woken several times: idle, it would be gone.
        since, host_pid = time.monotonic(), read_host_file(host_file).pid
        assert wait_until(lambda: time.monotonic() - since > 1.0, 60)
        woken = main_thread_wakeups(host_pid)
        assert wait_until(lambda: main_thread_wakeups(host_pid) >= woken + 3, 60)
        assert proc.poll() is None  # a connected client keeps it alive
        client.close()
        proc.wait(timeout=15)
        assert not host_file.exists()
    finally:
        kill_host(host_file)
        if proc.poll() is None:
            proc.kill()


def test_a_small_cpu_model_runs_single_threaded(client: InterpClient) -> None:
    def threads(model, tokenizer) -> int:
        import torch

        return torch.get_num_threads()

    # Intra-op threads only spin-wait on a tiny model when another process holds a core.
    assert client.run(threads) == 1


# --- cancelling: before a call starts, and a call that will not stop -----------------------------


def wait_for_file(model, tokenizer, path):
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return "released"


def touch(model, tokenizer, path):
    open(path, "w").close()
    return "ran"


def send_run(record, call_id, fn, **kwargs):
    """A raw ``run`` request under a call id of our choosing; returns its connection."""
    conn = connect(record)
    payload = cloudpickle.dumps((fn, kwargs))
    conn.send_bytes(pickle.dumps({"op": "run", "call": call_id, "payload": payload}))
    return conn


def receive(conn):
    assert conn.poll(60), "no reply from the host"
    reply = pickle.loads(conn.recv_bytes())
    conn.close()
    return reply


def cancel(record, call_id):
    conn = connect(record)
    conn.send_bytes(pickle.dumps({"op": "cancel", "call": call_id}))
    return receive(conn)["value"]


def assert_cancelled_before_start(reply) -> None:
    from scribe_tui.runtime.executor import CANCELLED_BEFORE_START
    from scribe_tui.runtime.host_protocol import unpack_exception

    assert not reply["ok"] and reply["kind"] == "exception"
    exc = unpack_exception(reply["error"])
    assert isinstance(exc, KeyboardInterrupt) and str(exc) == CANCELLED_BEFORE_START


def test_a_call_cancelled_before_it_starts_never_runs(
    host: HostProcess, client: InterpClient, tmp_path: Path
) -> None:
    record = read_host_file(host.host_file)
    release, ran = tmp_path / "release", tmp_path / "ran"
    results = []
    busy = threading.Thread(
        target=lambda: results.append(client.run(wait_for_file, path=str(release)))
    )
    busy.start()
    try:
        assert wait_until(lambda: host.status().calls_in_flight == 1, 60)
        queued = send_run(record, "queued-call", touch, path=str(ran))
        assert wait_until(lambda: host.status().calls_in_flight == 2, 60)  # behind the lock
        # True once the host has the call in hand; until then it keeps the cancel for it.
        assert wait_until(lambda: cancel(record, "queued-call"), 60)
    finally:
        release.touch()
        busy.join(60)
    assert results == ["released"]
    assert_cancelled_before_start(receive(queued))
    assert not ran.exists()

    # A cancel may overtake its call's request (it comes on another connection): it waits for it.
    assert cancel(record, "overtaken-call") is False
    assert_cancelled_before_start(receive(send_run(record, "overtaken-call", touch, path=str(ran))))
    assert not ran.exists()
    # A cancel for a call that already finished is harmless.
    assert cancel(record, "queued-call") is False
    assert client.run(touch, path=str(ran)) == "ran" and ran.exists()


def test_cancels_for_calls_that_never_arrive_are_not_kept_for_ever(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scribe_tui.runtime.executor import _REMEMBERED_CANCELS, ModelExecutor

    executor = ModelExecutor(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        AutoTokenizer.from_pretrained(tiny_model),
        name="tiny",
        mode="local",
        device="cpu",
        dtype="float32",
    )
    for i in range(3 * _REMEMBERED_CANCELS):
        assert executor.cancel(f"finished-{i}") is False
    assert len(executor._cancelled) == _REMEMBERED_CANCELS
    executor.cancel("next")
    payload = cloudpickle.dumps((slow, {"seconds": 0}))
    assert_cancelled_before_start(executor.run(payload, call_id="next"))
    assert "next" not in executor._cancelled  # forgotten once its call came
    assert pickle.loads(executor.run(payload, call_id="later")["value"]) == 0


def swallow_interrupts(model, tokenizer, started):
    import contextlib
    import time

    while True:
        with contextlib.suppress(KeyboardInterrupt):
            open(started, "w").close()  # inside: the test cancels only once this exists
            while True:
                time.sleep(0.01)


KILLED_MID_CALL = textwrap.dedent("""
    import sys, time
    from scribe_tui.runtime.interp_client import InterpClient

    def spin(model, tokenizer, started):
        open(started, "w").close()
        while True:
            time.sleep(0.01)

    InterpClient(host_file=sys.argv[1]).run(spin, started=sys.argv[2])
""")


def test_a_call_whose_kernel_was_killed_stops_and_frees_the_model(
    tiny_model: Path, tmp_path: Path
) -> None:
    """A killed kernel sends no cancel: the host notices its client hung up instead."""
    host_file = tmp_path / "host.json"
    launch = LaunchSpec(model=str(tiny_model), device="cpu")
    proc = spawn_host(launch, host_file, parent_pid=None, idle_timeout=300)
    other = InterpClient(host_file=host_file)
    try:
        assert other.status().state == "ready"
        started = tmp_path / "started"
        kernel = subprocess.Popen(
            [sys.executable, "-c", KILLED_MID_CALL, str(host_file), str(started)]
        )
        assert wait_until(started.exists, 60), "the call never started"
        kernel.kill()
        kernel.wait()
        answers: list[object] = []
        waiting = threading.Thread(target=lambda: answers.append(other.run(shout, word="free")))
        waiting.start()
        waiting.join(120)
        assert answers == [{"word": "free", "vocab": 23, "layers": 2}], "the model stayed held"
        status = other.status()
        assert status.calls_in_flight == 0 and status.pid == proc.pid  # cancelled, no restart
    finally:
        other.close()
        kill_host(host_file)
        if proc.poll() is None:
            proc.kill()


def test_a_call_that_ignores_its_cancel_restarts_the_host_and_costs_no_other_call(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scribe_tui.runtime.host import CANCEL_GRACE, EXIT_STUCK_CALL
    from scribe_tui.runtime.host_process import request_status

    host_file = tmp_path / "host.json"
    launch = LaunchSpec(model=str(tiny_model), device="cpu")
    proc = spawn_host(launch, host_file, parent_pid=None, idle_timeout=300)
    clients = []
    try:
        stuck, queued = InterpClient(host_file=host_file), InterpClient(host_file=host_file)
        clients += [stuck, queued]
        first = read_host_file(host_file)
        status_conn = connect(first)
        started = tmp_path / "started"
        outcomes, seen = [], []

        def run_queued() -> None:
            try:
                outcomes.append(queued.run(shout, word="queued"))
            except HostConnectionError as exc:
                outcomes.append(str(exc))

        queued_thread = threading.Thread(target=run_queued)

        def in_flight() -> int:
            return request_status(status_conn, timeout=30).calls_in_flight

        def interrupt_once_a_call_waits() -> None:
            try:
                seen.append(wait_until(started.exists, 60))
                queued_thread.start()
                seen.append(wait_until(lambda: in_flight() == 2, 60))
            finally:
                os.kill(os.getpid(), signal.SIGINT)  # what Esc or a cell timeout does to a kernel

        interrupter = threading.Thread(target=interrupt_once_a_call_waits)
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            stuck.run(swallow_interrupts, started=str(started))  # the interrupt sends a cancel
        interrupter.join(60)
        assert seen == [True, True]
        assert proc.wait(timeout=60) == EXIT_STUCK_CALL
        queued_thread.join(60)
        reason = f"a cancelled call did not stop within {CANCEL_GRACE:g} s"
        # The other client's call was waiting for the model lock: it is resent to a new host.
        assert outcomes == [{"word": "queued", "vocab": 23, "layers": 2}]
        assert "resending client.run" in capsys.readouterr().out
        log = host_file.with_suffix(".log").read_text().splitlines()
        assert f"model host: exiting: {reason}" in log
        status_conn.close()

        assert stuck.run(shout, word="back") == {"word": "back", "vocab": 23, "layers": 2}
        status = stuck.status()
        assert status.state == "ready" and status.pid != first.pid and status.loads == 1
        assert queued.status().pid == status.pid  # one new host serves both
    finally:
        for c in clients:
            c.close()
        kill_host(host_file)
        if proc.poll() is None:
            proc.kill()
