"""One status snapshot for status bars: the loop's counters merged with the model host's state.

The loop knows turns, tokens and cost; the host knows device, memory and loading
progress. A background thread polls the host so a front end can read
:meth:`StatusBoard.snapshot` on its own clock without ever blocking on a socket.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

from scribe_tui.events import Event, Status

if TYPE_CHECKING:
    from scribe_tui.runtime.host_process import HostProcess
    from scribe_tui.runtime.status import HostStatus


def host_fields(host: HostStatus) -> dict[str, object]:
    """The :class:`Status` fields a host snapshot fills in."""
    if host.state in ("loading", "starting"):
        detail = f"{host.phase} {host.progress:.0%}".strip()
    elif host.state == "failed":
        detail = host.message
    else:
        detail = f"{host.calls} calls" + (
            f", {host.calls_in_flight} running" if host.calls_in_flight else ""
        )
    return {
        "host_state": host.state,
        "device": host.device,
        "memory_used": host.memory_used,
        "memory_total": host.memory_total,
        "utilization": host.utilization,
        "detail": detail,
    }


class StatusBoard:
    """Keeps the newest loop :class:`Status` and host snapshot; merges them on demand."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._loop_status = Status(agent_state="starting", host_state="starting")
        self._host: dict[str, object] = {"host_state": "starting"}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def event(self, event: Event) -> None:
        """An investigation event sink: remembers the loop's latest Status."""
        if isinstance(event, Status):
            with self._lock:
                self._loop_status = event

    def host_update(self, host: HostStatus) -> None:
        """A host snapshot (during loading, or from the poller)."""
        with self._lock:
            self._host = host_fields(host)

    def snapshot(self) -> Status:
        """The merged status, without I/O."""
        with self._lock:
            return dataclasses.replace(self._loop_status, **self._host)  # type: ignore[arg-type]

    def poll(self, host: HostProcess) -> None:
        """Start polling ``host`` in a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.host_update(host.status())
                except Exception:  # a stopped or restarting host: keep the last snapshot
                    continue

        self._thread = threading.Thread(target=run, name="scribe-host-status", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 3)
            self._thread = None
