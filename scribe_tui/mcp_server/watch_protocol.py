"""What `scribe-tui mcp` and `scribe-tui watch` share: the discovery file and the wire format.

A server listens on a Unix socket in a private (0700) temporary directory and
authenticates each watcher with :mod:`multiprocessing.connection`'s HMAC challenge
and a random key, as the model host does. It names the socket and the key in a
*discovery file* (mode 0600) in ``<state dir>/mcp/`` (0700), which no sealed kernel
may read (the state dir is outside every sandbox's grants).

Messages are JSON objects, one per ``send_bytes``; events travel as
``Event.to_dict`` writes them. Nothing read from the socket is unpickled.

Server to watcher: ``hello`` (model, sandbox), ``event``, ``done`` (a person's cell
finished: ``id``, ``error``). Watcher to server: ``pause``, ``resume``, ``interrupt``,
``send`` (``text``), ``request_checkpoint``, ``decide_checkpoint`` (``number``,
``decision``, ``message``), ``edit_cell`` (``id``, ``index``, ``code``), ``run_code``
(``id``, ``code``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from scribe_tui.runtime.handshake import hang_up
from scribe_tui.runtime.host_process import pid_alive

__all__ = ["hang_up"]  # re-exported: both ends of the watch socket use it

PROTOCOL_VERSION = 1
MAX_MESSAGE = 16 * 2**20
"""The longest message either side reads: a person's cell, an event with its outputs."""


class WatchError(RuntimeError):
    """No server to watch, or it went away; the message is one line that says what to do."""


@dataclass(frozen=True)
class ServerRecord:
    """A discovery file's contents: where a server listens, and what it serves."""

    pid: int
    address: str
    authkey: str  # hex
    started: float
    model: str
    notebooks: list[str] = field(default_factory=list)
    http: str | None = None  # the streamable HTTP URL, when serving HTTP


def servers_dir() -> Path:
    """Where servers leave their discovery files (created with mode 0700)."""
    from scribe_tui.paths import state_dir

    path = state_dir() / "mcp"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def record_path(pid: int | None = None) -> Path:
    """The discovery file of server ``pid`` (this process by default)."""
    return servers_dir() / f"{pid or os.getpid()}.json"


def write_record(record: ServerRecord) -> Path:
    """Atomically (re)write this server's discovery file with mode 0600."""
    path = record_path(record.pid)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"version": PROTOCOL_VERSION, **asdict(record)}, fh)
    os.replace(tmp, path)
    return path


def read_record(path: Path) -> ServerRecord | None:
    """The record in ``path``, or None if it is missing, half-written or of another version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.pop("version") != PROTOCOL_VERSION:
            return None
        return ServerRecord(**data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_servers() -> list[ServerRecord]:
    """Running servers, newest first; files left by dead ones are removed."""
    found = []
    for path in servers_dir().glob("*.json"):
        record = read_record(path)
        if record is not None and pid_alive(record.pid):
            found.append(record)
        elif record is not None:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda r: r.started, reverse=True)


def find_server(notebook: Path | None = None) -> ServerRecord:
    """The newest live server, or the one with ``notebook`` open; WatchError says what to do."""
    servers = live_servers()
    if not servers:
        raise WatchError(
            "no `scribe-tui mcp` server is running for this user; start one (your MCP client "
            "does, once registered: see the README), then run `scribe-tui watch` again"
        )
    if notebook is None:
        return servers[0]
    wanted = str(notebook.expanduser().resolve())
    for record in servers:
        if wanted in record.notebooks:
            return record
    raise WatchError(
        f"no running `scribe-tui mcp` server has {notebook} open; "
        "run `scribe-tui watch` without a notebook to attach to the newest server"
    )


def connect(record: ServerRecord) -> Connection:
    """An authenticated connection to the server in ``record``; WatchError if it fails."""
    try:
        return Client(record.address, family="AF_UNIX", authkey=bytes.fromhex(record.authkey))
    except (OSError, EOFError, ValueError, AuthenticationError) as exc:
        raise WatchError(
            f"could not connect to the scribe-tui mcp server (pid {record.pid}): "
            f"{exc or type(exc).__name__}; check that it is still running"
        ) from exc


def send(conn: Connection, message: dict[str, Any]) -> None:
    """Send one message (raises OSError if the other side is gone)."""
    conn.send_bytes(json.dumps(message, ensure_ascii=False, default=str).encode("utf-8"))


def receive(conn: Connection) -> dict[str, Any]:
    """Receive one message (raises EOFError/OSError when the other side is gone, ValueError
    for anything that is not one: oversized, not UTF-8 JSON, nested past reason)."""
    data = conn.recv_bytes(MAX_MESSAGE)  # OSError past the cap, before reading the body
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not a scribe-tui watch message ({type(exc).__name__})") from None
    if not isinstance(message, dict) or "op" not in message:
        raise ValueError("not a scribe-tui watch message")
    return message
