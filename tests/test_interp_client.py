"""InterpClient from a real Jupyter kernel, standalone hosts, and the setup cell."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import host_fixtures
import pytest
from host_fixtures import kill_host

from scribe_tui.runtime.host_process import HostProcess, pid_alive
from scribe_tui.runtime.host_protocol import HostStartError, read_host_file
from scribe_tui.runtime.interp_client import InterpClient, setup_code

# Shared host-test fixtures: a tiny GPT-2, and a private runtime dir for host files.
tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # ship by value, like notebook code


def last_logits(model, tokenizer):
    import torch

    return model(torch.tensor([[6, 7]])).logits[0, -1]


def _text(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append("\n".join(out["traceback"]))
    return "".join(parts)


TECHNIQUE_CELL = """
def top_tokens(model, tokenizer, prompt, k):
    import torch
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        probs = model(ids).logits[0, -1].softmax(-1)
    print("computed in the host")
    return [tokenizer.decode([int(i)]) for i in probs.topk(k).indices]

tops = client.run(top_tokens, prompt="the secret word is", k=3)
print(len(tops), all(isinstance(t, str) for t in tops))
"""

ERROR_CELL = """
def broken(model, tokenizer):
    return model.transformer.h[99]

client.run(broken)
"""

LOADS_CELL = "s = client.status(); print('loads', s.loads, 'pid', s.pid)"


async def test_kernel_uses_the_investigation_host_across_a_restart(tiny_model: Path) -> None:
    from scribe_tui.runtime.kernel import KernelSession

    host = HostProcess(str(tiny_model), device="cpu")
    await host.start()
    await host.wait_ready(timeout=120)
    try:
        async with KernelSession(extra_env=host.kernel_env()) as kernel:
            setup = await kernel.execute(setup_code(str(tiny_model)), timeout=60)
            text = _text(setup.outputs)
            assert "InterpClient: " in text and "on cpu (float32)" in text
            assert "2 layers — ready" in text and setup.status == "ok"

            ran = await kernel.execute(TECHNIQUE_CELL, timeout=60)
            assert _text(ran.outputs) == "computed in the host\n3 True\n"

            failed = await kernel.execute(ERROR_CELL, timeout=60)
            assert failed.status == "error"
            assert failed.error["ename"] == "IndexError"
            trace = _text(failed.outputs)
            assert (
                "Traceback in the model host" in trace and "return model.transformer.h[99]" in trace
            )

            first = _text((await kernel.execute(LOADS_CELL, timeout=60)).outputs)
            await kernel.restart()
            await kernel.execute(setup_code(str(tiny_model)), timeout=60)
            second = _text((await kernel.execute(LOADS_CELL, timeout=60)).outputs)
            assert first == second == f"loads 1 pid {host.pid}\n"
    finally:
        host.stop()


def _bundled_or_tiny(tiny_model: Path) -> str:
    from scribe_tui.runtime.loading import ModelLoadError, resolve_model

    try:
        resolve_model("organism:taboo")
    except ModelLoadError:
        return str(tiny_model)
    return "organism:taboo"


async def test_setup_cell_in_a_fresh_kernel_starts_its_own_host(
    tiny_model: Path, monkeypatch
) -> None:
    from scribe_tui.runtime.kernel import KernelSession

    monkeypatch.delenv("SCRIBE_HOST_FILE", raising=False)
    spec = _bundled_or_tiny(tiny_model)
    async with KernelSession() as kernel:
        setup = await kernel.execute(setup_code(spec), timeout=120)
        where = await kernel.execute("print(client._host_file)", timeout=30)
    host_file = Path(_text(where.outputs).strip())
    try:
        text = _text(setup.outputs)
        assert f"Starting the model host for {spec}…" in text
        assert f"InterpClient: {spec} on cpu (float32)" in text and text.endswith("— ready\n")
    finally:
        kill_host(host_file)


def test_client_with_a_model_starts_a_shared_host_that_others_reuse(
    tiny_model: Path, capsys, monkeypatch
) -> None:

    monkeypatch.delenv("SCRIBE_HOST_FILE", raising=False)
    first = InterpClient(model=str(tiny_model), device="cpu")
    host_file = first._host_file
    try:
        assert "Starting the model host for" in capsys.readouterr().out
        record = read_host_file(host_file)
        assert record.owner_pid is None  # no investigation: it outlives kernels, exits when idle
        second = InterpClient(model=str(tiny_model), device="cpu")
        assert "Starting" not in capsys.readouterr().out
        assert second.status().pid == first.status().pid == record.pid
        assert second.status().loads == 1
        # Never the path, which can name a secret: the display name.
        assert repr(second) == f"<InterpClient local:gpt2 mode=local host pid {record.pid}>"
        other_dtype = InterpClient(model=str(tiny_model), device="cpu", dtype="bfloat16")
        try:
            assert other_dtype.info()["dtype"] == "bfloat16"
            assert str(other_dtype.run(last_logits).dtype) == "torch.float32"  # bf16 sent as f32
            assert other_dtype.status().pid != record.pid
        finally:
            kill_host(other_dtype._host_file)
    finally:
        kill_host(host_file)
    assert not pid_alive(record.pid)


def test_client_without_model_or_investigation_says_what_to_do(monkeypatch) -> None:
    monkeypatch.delenv("SCRIBE_HOST_FILE", raising=False)
    with pytest.raises(HostStartError, match=r"InterpClient\(model='organism:taboo'\)"):
        InterpClient()


def test_client_for_a_bad_model_fails_with_the_hosts_one_line(monkeypatch) -> None:
    monkeypatch.delenv("SCRIBE_HOST_FILE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HostStartError, match=r"^Model 'nobody/nothing' not found: .*offline"):
        InterpClient(model="nobody/nothing")


def test_setup_code_is_short_and_names_the_model_unless_hidden() -> None:
    code = setup_code("organism:taboo")
    assert "client = InterpClient(model='organism:taboo')\nprint(client.describe())\n" in code
    assert len(code.splitlines()) <= 5
    compile(code, "<setup>", "exec")
    assert "mode='blackbox'" in setup_code("organism:taboo", mode="blackbox")
    hidden = setup_code("organism:taboo", hide_model_name=True)
    assert "taboo" not in hidden and "client = InterpClient()" in hidden
