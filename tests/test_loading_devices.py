"""Choosing where and in what precision the subject model loads (CPU torch, mknod'd GPUs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from scribe_tui.runtime.loading import ModelLoadError, choose_device, choose_dtype


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
