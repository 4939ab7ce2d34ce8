"""The status bar's GPU figures: this process's memory on the model's GPUs, NVML by UUID.

No GPU here: torch's CUDA calls and NVML are replaced at their edge, recording which
devices the probe touched.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, replace
from typing import Any

import pytest
import torch

from scribe_tui.runtime import status as status_module
from scribe_tui.runtime.status import probe_device
from scribe_tui.ui.status import StatusBar

GIB = 1 << 30


@dataclass
class Properties:
    total_memory: int
    uuid: str


class FakeCuda:
    """Two GPUs torch sees (CUDA_VISIBLE_DEVICES=3,5: NVML counts them as 3 and 5)."""

    def __init__(self) -> None:
        self.touched: set[int] = set()
        self.reserved = {0: 3 * GIB, 1: 5 * GIB}
        self.properties = {0: Properties(80 * GIB, "aaaa-3"), 1: Properties(80 * GIB, "bbbb-5")}

    def memory_reserved(self, index: int) -> int:
        self.touched.add(index)
        return self.reserved[index]

    def get_device_properties(self, index: int) -> Properties:
        return self.properties[index]

    def get_device_name(self, index: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def mem_get_info(self, index: int) -> tuple[int, int]:
        raise AssertionError("mem_get_info opens a context on the device: whole-device view")


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    fake = FakeCuda()
    for name in ("memory_reserved", "get_device_properties", "get_device_name", "mem_get_info"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    nvml = types.ModuleType("pynvml")
    busy = {"GPU-aaaa-3": 37.0, "GPU-bbbb-5": 81.0}  # keyed by UUID, as NVML is
    nvml.nvmlInit = lambda: None  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByUUID = lambda uuid: uuid  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu=busy[handle])  # type: ignore[attr-defined]

    def by_index(index: int) -> Any:
        raise AssertionError("NVML's index is not torch's under CUDA_VISIBLE_DEVICES")

    nvml.nvmlDeviceGetHandleByIndex = by_index  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    status_module._nvml_module.cache_clear()
    yield fake
    status_module._nvml_module.cache_clear()


def test_one_gpu_reports_this_process_s_memory_and_touches_no_other(cuda: FakeCuda) -> None:
    usage = probe_device("cuda:1")
    assert cuda.touched == {1}
    assert (usage.memory_used, usage.memory_total, usage.utilization) == (5 * GIB, 80 * GIB, 81.0)
    assert usage.name == "NVIDIA H100 80GB HBM3"


def test_a_spread_model_sums_the_gpus_it_sits_on(cuda: FakeCuda) -> None:
    usage = probe_device("cuda", gpus=[0, 1])
    assert cuda.touched == {0, 1}
    assert (usage.memory_used, usage.memory_total, usage.utilization) == (8 * GIB, 160 * GIB, 59.0)
    assert usage.name.startswith("2× ")
    cuda.touched.clear()
    probe_device("cuda", gpus=[0])  # on one of several visible GPUs: that one only
    assert cuda.touched == {0}


def test_without_nvml_there_is_no_utilisation(
    cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: not installed
    status_module._nvml_module.cache_clear()
    usage = probe_device("cuda:0")
    assert usage.memory_used == 3 * GIB and usage.utilization is None


def test_a_modal_gpu_is_labelled_gpu() -> None:
    bar = StatusBar()
    bar.status = replace(
        bar.status, device="modal L4 (cuda)", memory_used=2 * GIB, memory_total=24 * GIB
    )
    text = bar.render_status().plain
    assert "modal L4 (cuda) GPU" in text and "RAM" not in text, text
