"""Capture what a technique prints, live, without touching other threads' output.

``sys.stdout``/``sys.stderr`` are replaced once by proxies; while a technique runs,
writes from its thread go to the call's :class:`Capture`, which forwards them line by
line (or keeps them for the reply). Torch-free, so the host installs it first thing.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from typing import Any

Stream = Callable[[str, str], None]


class Capture:
    """Route this thread's prints to ``stream`` (line by line) or to a buffer."""

    def __init__(self, stream: Stream | None) -> None:
        self._stream = stream
        self._buffers = {"stdout": io.StringIO(), "stderr": io.StringIO()}
        self._thread = threading.get_ident()

    def __enter__(self) -> Capture:
        _ProxyStream.sink = self
        return self

    def __exit__(self, *exc: object) -> None:
        _ProxyStream.sink = None
        self.flush()

    def owns_current_thread(self) -> bool:
        return threading.get_ident() == self._thread

    def write(self, name: str, text: str) -> None:
        buffer = self._buffers[name]
        buffer.write(text)
        if self._stream is not None and ("\n" in text or buffer.tell() > 8192):
            self.flush()

    def flush(self) -> None:
        if self._stream is None:
            return
        for name, buffer in self._buffers.items():
            text = buffer.getvalue()
            if text:
                buffer.seek(0)
                buffer.truncate()
                self._stream(name, text)

    def rest(self) -> dict[str, str]:
        """Output not streamed yet."""
        return {name: buffer.getvalue() for name, buffer in self._buffers.items()}


class _ProxyStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr for the life of the process.

    Installed once, before transformers is imported, so library loggers that keep
    a reference to ``sys.stderr`` also end up in the technique's output.
    """

    sink: Capture | None = None

    def __init__(self, name: str, real: Any) -> None:
        self.name, self._real = name, real

    def write(self, text: str) -> int:
        sink = _ProxyStream.sink
        if sink is not None and sink.owns_current_thread():
            sink.write(self.name, text)
        else:
            self._real.write(text)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")


def install_output_capture() -> None:
    """Make technique output capturable; idempotent."""
    if not isinstance(sys.stdout, _ProxyStream):
        sys.stdout = _ProxyStream("stdout", sys.stdout)
    if not isinstance(sys.stderr, _ProxyStream):
        sys.stderr = _ProxyStream("stderr", sys.stderr)
