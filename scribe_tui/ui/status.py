"""The status bar: subject model, device memory, host, agent state, turn, tokens, cost, time."""

from __future__ import annotations

import time
from dataclasses import replace

from rich.text import Text
from textual.widgets import Static

from scribe_tui.events import Status

AGENT_STATES = {
    "starting": ("◌ starting", "dim"),
    "running": ("● running", "bold green"),
    "paused": ("‖ paused", "bold yellow"),
    "waiting": ("⚠ waiting for you", "bold reverse #ffaf00"),
    "concluded": ("✓ concluded", "bold #5fafff"),
    "failed": ("✗ failed", "bold red"),
    "stopped": ("■ stopped", "bold"),
    "stopping": ("… saving and stopping", "bold yellow"),
}
HOST_FIELDS = ("host_state", "device", "memory_used", "memory_total", "utilization", "detail")
HOST_STYLES = {"ready": "green", "loading": "yellow", "failed": "bold red"}

#: The bar's clock; a module attribute so snapshot tests can freeze it without freezing asyncio.
now = time.monotonic


def human_bytes(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.1f}{unit}" if unit in "GT" else f"{n:.0f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_count(n: int) -> str:
    return (
        f"{n / 1_000_000:.1f}M" if n >= 1_000_000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)
    )


def human_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def memory_bar(used: int, total: int, width: int = 8) -> Text:
    """``▕███░░░░░▏`` coloured by how full the device is."""
    fraction = max(0.0, min(1.0, used / total)) if total else 0.0
    filled = round(fraction * width)
    colour = "green" if fraction < 0.7 else "yellow" if fraction < 0.9 else "red"
    return Text.assemble("▕", ("█" * filled, colour), ("░" * (width - filled), "grey35"), "▏")


class StatusBar(Static):
    """One line built from the latest :class:`Status` plus the app's own view of the agent."""

    def __init__(self, subject: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.subject = subject
        self.status = Status(agent_state="starting")
        self.agent_state = "starting"
        self.queued = 0
        self._elapsed_base = 0.0
        self._elapsed_at = now()
        self._clock_running = True

    def on_mount(self) -> None:
        self.redraw()

    def set_status(self, status: Status) -> None:
        if status.host_state == "unknown":
            # The loop's own snapshots know nothing of the host: keep what the poller said.
            status = replace(status, **{f: getattr(self.status, f) for f in HOST_FIELDS})
        self.status = status
        self.queued = status.queued
        self._elapsed_base, self._elapsed_at = status.elapsed, now()
        self.redraw()

    def set_queued(self, queued: int) -> None:
        self.queued = queued
        self.redraw()

    def set_agent_state(self, state: str) -> None:
        self.agent_state = state
        self._clock_running = state not in ("concluded", "failed", "stopped")
        if not self._clock_running:
            self._elapsed_base, self._elapsed_at = self.elapsed, now()
        self.redraw()

    @property
    def elapsed(self) -> float:
        extra = now() - self._elapsed_at if self._clock_running else 0.0
        return self._elapsed_base + extra

    def redraw(self) -> None:
        self.update(self.render_status())

    def render_status(self) -> Text:
        s = self.status
        sep = (" │ ", "grey42")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" ")
        if self.subject:
            text.append(self.subject, style="bold")
            text.append(" · ")
        text.append(s.device or "device ?", style="cyan")
        if s.memory_total:
            on_gpu = s.device.startswith(("cuda", "mps", "gpu", "modal"))  # Modal: its GPU
            text.append(" GPU " if on_gpu else " RAM ")
            text.append_text(memory_bar(s.memory_used or 0, s.memory_total))
            text.append(f" {human_bytes(s.memory_used or 0)}/{human_bytes(s.memory_total)}")
            if s.utilization is not None:  # compute load, not memory: say so
                text.append(f" {s.utilization:.0f}% util")
        text.append(*sep)
        host = s.host_state + (f" {s.detail}" if s.host_state == "loading" and s.detail else "")
        text.append("host ", style="dim")
        text.append(host, style=HOST_STYLES.get(s.host_state, ""))
        text.append(*sep)
        label, style = AGENT_STATES.get(self.agent_state, (self.agent_state, "bold"))
        text.append(label, style=style)
        if self.queued:  # before the counters: a narrow terminal cuts from the right
            text.append(*sep)
            text.append(f"{self.queued} queued", style="bold #ffaf00")
        text.append(*sep)
        text.append(f"turn {s.turn}")
        text.append(*sep)
        text.append(f"{human_count(s.input_tokens + s.output_tokens)} tok")
        text.append(*sep)
        text.append(f"${s.cost_usd:.2f}")
        text.append(*sep)
        text.append(human_duration(self.elapsed))
        if s.sandbox:
            text.append(*sep)
            sealed = s.sandbox.startswith("sandbox: landlock")
            if sealed and "network open" in s.sandbox:
                text.append("sealed, network open", style="bold #ffaf00")
            else:
                text.append(
                    "sealed" if sealed else s.sandbox, style="green" if sealed else "bold red"
                )
        return text
