"""Local sockets under attack from a sealed kernel: silent clients, floods, malformed frames."""

from __future__ import annotations

import os
import socket
import struct
import threading
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

import pytest

from scribe_tui.mcp_server.watch_protocol import receive, send
from scribe_tui.runtime import handshake
from scribe_tui.runtime.handshake import Gate

KEY = os.urandom(32)


def serve(listener: Listener, gate: Gate, admitted: list[bool]) -> None:
    while True:
        try:
            conn = listener.accept()
        except OSError:
            return
        threading.Thread(target=lambda c=conn: admitted.append(gate.admit(c)), daemon=True).start()


def silent(address: str) -> socket.socket:
    """A client that connects and never answers the challenge."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(address)
    return sock


def hung_up(sock: socket.socket, timeout: float = 60.0) -> bool:
    """Whether the server closed ``sock`` (reads to EOF within a generous outer limit)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    return True


def test_silent_clients_are_hung_up_and_cannot_crowd_out_the_rest(tmp_path: Path) -> None:
    address = str(tmp_path / "s")
    listener = Listener(address, family="AF_UNIX")  # no authkey: the gate does the handshake
    admitted: list[bool] = []
    gate = Gate(KEY, timeout=2.0, pending=2)
    threading.Thread(target=serve, args=(listener, gate, admitted), daemon=True).start()
    try:
        squatters = [silent(address) for _ in range(2)]
        for _ in range(6000):  # both squatters hold a handshake slot (a wait, not a clock)
            if gate._slots._value == 0:  # type: ignore[attr-defined]
                break
            threading.Event().wait(0.01)
        third = silent(address)
        assert hung_up(third)  # turned away: two handshakes already wait
        assert all(hung_up(s) for s in squatters)  # their deadline passed
        # Their slots were freed before they saw the hang-up, so a retry finds room.
        assert gate._slots._value == 2  # type: ignore[attr-defined]
        good = Client(address, family="AF_UNIX", authkey=KEY)  # room again
        good.close()
        wrong = pytest.raises(Exception)
        with wrong:
            Client(address, family="AF_UNIX", authkey=b"x" * 32)
        for _ in range(6000):  # the server's side of the last two handshakes has finished
            if len(admitted) == 5:
                break
            threading.Event().wait(0.01)
    finally:
        listener.close()
    assert admitted.count(True) == 1 and len(admitted) == 5


def test_a_client_that_proved_the_key_is_not_hung_up_on_however_slow_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline once ran until the server read the client's last message, so a server
    thread starved past it hung up on a client that had finished: its request was lost."""
    real_answer = handshake.answer_challenge

    def starved_answer(conn: Connection, authkey: bytes) -> None:
        threading.Event().wait(1.0)  # the server's thread gets no CPU past the deadline
        real_answer(conn, authkey)

    monkeypatch.setattr(handshake, "answer_challenge", starved_answer)
    address = str(tmp_path / "s")
    listener = Listener(address, family="AF_UNIX")
    admitted: list[bool] = []
    threading.Thread(
        target=serve, args=(listener, Gate(KEY, timeout=0.2), admitted), daemon=True
    ).start()
    try:
        client = Client(address, family="AF_UNIX", authkey=KEY)
        client.send_bytes(b"request")
        assert client.poll(0.5) is False  # not hung up on: nothing to read, no EOF
        client.close()
    finally:
        listener.close()
    assert admitted == [True]


def test_malformed_watch_messages_are_refused_not_fatal() -> None:
    ours, theirs = socket.socketpair()
    conn = Connection(theirs.detach())
    try:
        deep = ("[" * 100_000 + "]" * 100_000).encode()
        ours.sendall(struct.pack("!i", len(deep)) + deep)
        with pytest.raises(ValueError):
            receive(conn)
        ours.sendall(struct.pack("!i", 4) + b"\xff\xfe\xfd\xfc")
        with pytest.raises(ValueError):
            receive(conn)
        ours.sendall(struct.pack("!i", -1) + struct.pack("!Q", 2**50))  # claims a petabyte
        with pytest.raises(OSError):
            receive(conn)  # refused from the header alone, nothing allocated
    finally:
        ours.close()
        conn.close()


def test_a_well_formed_message_still_arrives() -> None:
    ours, theirs = socket.socketpair()
    sender, receiver = Connection(ours.detach()), Connection(theirs.detach())
    send(sender, {"op": "send", "text": "hello"})
    assert receive(receiver) == {"op": "send", "text": "hello"}
    sender.close()
    receiver.close()
