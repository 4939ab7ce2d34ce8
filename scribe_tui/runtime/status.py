"""The model host's status snapshot, and the device probes that fill it.

Front ends poll :class:`HostStatus` (through ``HostProcess.status()`` or
``InterpClient.status()``); the host builds it without taking the model lock,
so it answers while a ``client.run`` is busy.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

State = Literal["starting", "loading", "ready", "failed", "stopped"]


@dataclass(frozen=True)
class HostStatus:
    """One snapshot of the model host: model state, device, memory and call counters.

    ``progress`` is 0..1 while loading, with ``phase`` saying what is happening;
    ``message`` is the one-line reason when ``state`` is ``"failed"``. Memory is in
    bytes: device memory on CUDA, process RSS against system RAM on CPU.
    """

    state: State
    phase: str = ""
    progress: float = 0.0
    message: str = ""
    model: str = ""
    mode: str = "local"
    device: str = ""
    device_name: str = ""
    dtype: str = ""
    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    calls_in_flight: int = 0
    calls: int = 0
    last_call_s: float | None = None
    loads: int = 0
    pid: int | None = None
    container: str | None = None
    workers: int = 1  # processes serving calls side by side (runtime.host_workers)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (it crosses the socket as built-in types only)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostStatus:
        """Inverse of :meth:`to_dict`; unknown keys (a newer host) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        """One line for a status bar, e.g. ``ready · cpu float32 · 312 MiB / 16 GiB · 3 calls``."""
        if self.state == "failed":
            return f"failed: {self.message}"
        if self.state in ("loading", "starting"):
            what = self.phase or self.state
            return f"{self.state}: {what} ({self.progress:.0%})"
        parts = [self.state]
        if self.device:
            parts.append(f"{self.device} {self.dtype}".strip())
        if self.device_name:
            parts.append(self.device_name)
        if self.memory_used is not None:
            total = f" / {_bytes(self.memory_total)}" if self.memory_total else ""
            parts.append(f"{_bytes(self.memory_used)}{total}")
        if self.utilization is not None:
            parts.append(f"{self.utilization:.0f}% util")
        if self.container:
            parts.append(f"container {self.container}")
        if self.workers > 1:
            parts.append(f"{self.workers} workers")
        busy = f", {self.calls_in_flight} running" if self.calls_in_flight else ""
        parts.append(f"{self.calls} calls{busy}")
        if self.last_call_s is not None:
            parts.append(f"last {self.last_call_s * 1000:.0f} ms")
        if self.phase not in ("", self.state):  # e.g. a busy host's "no answer in 2 s"
            parts.append(self.phase)
        return " · ".join(parts)


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if unit == "GiB" else f"{n / scale:.0f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class DeviceUsage:
    """What a probe measured; any field may be unknown (None)."""

    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    name: str = ""


def probe_device(device: str, gpus: Sequence[int] | None = None) -> DeviceUsage:
    """Name, memory and utilisation for ``device`` ("cpu", "cuda", "cuda:1").

    CUDA reports what this process holds (the caching allocator's reserve) against each
    device's size, over ``gpus`` (the devices the model sits on; default: the one
    ``device`` names), never touching another GPU: a probe must not open a context there.
    Utilisation comes from NVML (``nvidia-ml-py``), matched by UUID, since NVML counts
    every GPU and torch only those ``CUDA_VISIBLE_DEVICES`` shows. CPU reports this
    process's RSS against system RAM and its CPU share. Never raises.
    """
    if device.startswith("cuda") and "torch" in sys.modules:
        return _probe_cuda(device, gpus)
    return _probe_cpu()


def _probe_cpu() -> DeviceUsage:
    try:
        import psutil

        proc = _process()
        return DeviceUsage(
            memory_used=proc.memory_info().rss,
            memory_total=psutil.virtual_memory().total,
            # Since the previous probe; psutil keeps the baseline on the Process object.
            utilization=proc.cpu_percent(None) / (os.cpu_count() or 1),
            name=_cpu_name(),
        )
    except Exception:
        return DeviceUsage()


@functools.cache
def _process() -> Any:
    import psutil

    return psutil.Process()


@functools.cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def _probe_cuda(device: str, gpus: Sequence[int] | None) -> DeviceUsage:
    try:
        import torch

        indices = list(gpus) if gpus else [torch.device(device).index or 0]
        used = total = 0
        for index in indices:
            used += torch.cuda.memory_reserved(index)
            total += torch.cuda.get_device_properties(index).total_memory
        utils = [u for u in (_nvml(torch, i) for i in indices) if u is not None]
        name = torch.cuda.get_device_name(indices[0])
        return DeviceUsage(
            memory_used=used,
            memory_total=total,
            utilization=sum(utils) / len(utils) if utils else None,
            name=f"{len(indices)}× {name}" if len(indices) > 1 else name,
        )
    except Exception:
        return DeviceUsage()


def _nvml(torch: Any, index: int) -> float | None:
    """Utilisation of torch's GPU ``index`` from NVML, or None without NVML or a match."""
    nvml = _nvml_module()
    if nvml is None:
        return None
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        return None


@functools.cache
def _nvml_module() -> Any:
    try:
        import pynvml  # from nvidia-ml-py

        pynvml.nvmlInit()
    except Exception:  # not installed, or no NVIDIA driver
        return None
    return pynvml
