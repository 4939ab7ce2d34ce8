"""Turn a cell's IOPub messages into nbformat v4 outputs, the way Jupyter front ends do.

Pure bookkeeping (no kernel, no I/O) so it can be tested on hand-written messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbformat import NotebookNode, from_dict

__all__ = ["OutputCollector"]


class OutputCollector:
    """Accumulates one cell's outputs.

    Consecutive stream chunks with the same name merge into one output; their text is kept
    as a list of chunks and joined only when ``outputs`` is read, so a huge print arriving
    in many chunks costs linear time. ``clear_output`` (``wait=True`` defers the clear until
    the next output) and ``update_display_data`` (by display id, within this cell) are
    honoured.

    Nodes handed out by ``outputs`` are never mutated afterwards (changes replace them), so
    a front end may keep a returned list as a snapshot.
    """

    def __init__(self) -> None:
        self._outputs: list[NotebookNode] = []
        # Unjoined text of the last output, when it is a stream: its parts, first one included.
        self._stream_parts: list[str] = []
        self._clear_pending = False
        self._display_ids: dict[str, list[int]] = {}

    @property
    def outputs(self) -> list[NotebookNode]:
        """The current outputs, as a new list."""
        self._join_stream()
        return list(self._outputs)

    def handle(self, msg_type: str, content: Mapping[str, Any]) -> bool:
        """Apply one IOPub message; return whether the outputs changed."""
        if msg_type == "clear_output":
            if content.get("wait", False):
                self._clear_pending = True
                return False
            return self._clear()
        if msg_type == "update_display_data":
            return self._update_display(content)
        if msg_type == "stream":
            return self._stream(content["name"], content.get("text", ""))
        if msg_type in ("display_data", "execute_result"):
            self._apply_pending_clear()
            display_id = content.get("transient", {}).get("display_id")
            if display_id:
                # A new display with a known id also refreshes the earlier ones, as in Jupyter.
                self._update_display(content)
            self._append(_display_node(msg_type, content), display_id)
            return True
        if msg_type == "error":
            self._apply_pending_clear()
            self._append(
                NotebookNode(
                    output_type="error",
                    ename=content.get("ename", ""),
                    evalue=content.get("evalue", ""),
                    traceback=list(content.get("traceback", [])),
                )
            )
            return True
        return False

    def _stream(self, name: str, text: str) -> bool:
        if not text:
            return False
        self._apply_pending_clear()
        if self._stream_parts and self._outputs[-1]["name"] == name:
            self._stream_parts.append(text)
            return True
        self._append(NotebookNode(output_type="stream", name=name, text=text))
        self._stream_parts = [text]
        return True

    def _append(self, node: NotebookNode, display_id: str | None = None) -> None:
        self._join_stream()
        self._stream_parts = []
        if display_id:
            self._display_ids.setdefault(display_id, []).append(len(self._outputs))
        self._outputs.append(node)

    def _join_stream(self) -> None:
        if len(self._stream_parts) > 1:
            text = "".join(self._stream_parts)
            self._stream_parts = [text]
            name = self._outputs[-1]["name"]
            self._outputs[-1] = NotebookNode(output_type="stream", name=name, text=text)

    def _update_display(self, content: Mapping[str, Any]) -> bool:
        display_id = content.get("transient", {}).get("display_id")
        indices = self._display_ids.get(display_id, []) if display_id else []
        for index in indices:
            old = self._outputs[index]
            self._outputs[index] = _display_node(old["output_type"], content, old)
        return bool(indices)

    def _apply_pending_clear(self) -> None:
        if self._clear_pending:
            self._clear_pending = False
            self._clear()

    def _clear(self) -> bool:
        had_outputs = bool(self._outputs)
        self._outputs = []
        self._stream_parts = []
        self._display_ids = {}
        return had_outputs


def _display_node(
    output_type: str, content: Mapping[str, Any], previous: NotebookNode | None = None
) -> NotebookNode:
    node = NotebookNode(
        output_type=output_type,
        data=from_dict(content.get("data", {})),
        metadata=from_dict(content.get("metadata", {})),
    )
    if output_type == "execute_result":
        count = content.get("execution_count")
        node["execution_count"] = previous["execution_count"] if previous is not None else count
    return node
