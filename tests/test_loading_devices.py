"""Choosing where and in what precision the subject model loads (CPU torch, mknod'd GPUs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import host_fixtures
import pytest
import torch

from scribe_tui.runtime.loading import ModelLoadError, choose_device, choose_dtype

tiny_model = host_fixtures.tiny_model


def fake_dev(root: Path, *names: str) -> str:
    root.mkdir()
    for name in names:
        os.mknod(root / name, 0o666 | stat.S_IFCHR, os.makedev(195, 0))
    return str(root)


def test_auto_never_loads_on_the_cpu_beside_a_gpu_torch_cannot_use(tmp_path: Path) -> None:
    assert not torch.cuda.is_available()  # the CPU wheel this suite installs
    dev = fake_dev(tmp_path / "dev", "nvidiactl", "nvidia0")
    with pytest.raises(ModelLoadError) as raised:
        choose_device("auto", dev=dev)
    message = str(raised.value)
    assert "nvidia" in message and "--device cpu" in message and "\n" not in message
    assert choose_device("cpu", dev=dev) == "cpu"  # asked for by name: fine


def test_auto_is_the_cpu_on_a_machine_without_a_gpu(tmp_path: Path) -> None:
    assert choose_device("auto", dev=fake_dev(tmp_path / "dev", "null")) == "cpu"


@pytest.mark.parametrize(
    ("capability", "dtype"), [((7, 5), "float16"), ((7, 0), "float16"), ((8, 0), "bfloat16")]
)
def test_auto_dtype_is_bf16_only_where_the_named_gpu_has_it_natively(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], dtype: str
) -> None:
    asked: list[torch.device] = []

    def capability_of(device: torch.device) -> tuple[int, int]:
        asked.append(device)
        return capability

    # The driver's answer is the boundary: T4 (7.5) and V100 (7.0) emulate bf16 slowly.
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    assert choose_dtype("auto", "cuda:1") == dtype
    assert asked == [torch.device("cuda:1")]


# --- GPU memory: no GPU here, so torch.cuda's answers are replaced at their edge -----------------

GIB = 1 << 30


class Properties:
    total_memory = 80 * GIB


@pytest.fixture
def h100s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight 80 GiB GPUs as torch.cuda would describe them."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Properties())


def test_several_gpus_split_a_model_only_when_one_cannot_hold_it(h100s: None) -> None:
    from scribe_tui.runtime.loading import _needs_several_gpus

    assert _needs_several_gpus(4 * GIB) is False  # a 2B model stays whole on one GPU
    assert _needs_several_gpus(140 * GIB) is True  # a 70B model in bf16 is spread


def test_weights_go_straight_to_the_gpu_and_running_out_is_one_line(
    tiny_model: Path, h100s: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not into CPU RAM first and then .to(): on a 128 GB machine a 70B model never gets
    there. A GPU without room is a load error that says what to do."""
    from transformers import AutoModelForCausalLM

    from scribe_tui.runtime import loading

    asked: list[dict] = []

    def out_of_memory(path: str, **kwargs: object) -> None:
        asked.append(kwargs)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loading, "choose_device", lambda requested: requested)
    monkeypatch.setattr(loading, "choose_dtype", lambda requested, device: "bfloat16")
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", out_of_memory)
    resolved = loading.resolve_model(str(tiny_model))
    with pytest.raises(ModelLoadError) as raised:
        loading.load_model(resolved, device="cuda:3", dtype="auto", progress=lambda *_: None)
    assert asked[0]["device_map"] == {"": "cuda:3"}
    message = str(raised.value)
    assert "does not fit in cuda:3's 80 GiB" in message and "--device cpu" in message
    assert "\n" not in message


def test_a_moved_model_that_does_not_fit_is_one_line_too(
    tiny_model: Path, h100s: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without accelerate the weights load, then move: that move is where memory runs out."""
    from scribe_tui.runtime import loading

    def no_room(self: torch.nn.Module, *args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loading, "choose_device", lambda requested: requested)
    monkeypatch.setattr(loading, "choose_dtype", lambda requested, device: "float32")
    monkeypatch.setattr(loading, "_accelerate_installed", lambda: False)
    monkeypatch.setattr(torch.nn.Module, "to", no_room)
    resolved = loading.resolve_model(str(tiny_model))
    with pytest.raises(ModelLoadError, match=r"does not fit in cuda:0's 80 GiB"):
        loading.load_model(resolved, device="cuda:0", dtype="auto", progress=lambda *_: None)


def test_a_base_model_without_room_beside_the_subject_is_refused_before_loading(
    tiny_model: Path, h100s: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from scribe_tui.runtime import loading

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1024, 80 * GIB))
    resolved = replace(loading.resolve_model(str(tiny_model)), base=str(tiny_model))
    with pytest.raises(ModelLoadError, match=r"does not fit beside the subject model on cuda:1"):
        loading.load_base(resolved, device="cuda:1", dtype="float32")
