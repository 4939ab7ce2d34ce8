"""Authenticating a local socket's clients without letting silent ones pile up.

The model host and the MCP watch server both take clients on a Unix socket that a sealed
kernel can find and connect to (Landlock does not cover connecting to a path socket),
and both authenticate each client with :mod:`multiprocessing.connection`'s HMAC
challenge on a thread of its own. A client that connects and then says nothing would pin
that thread for good: each client must prove the key within a deadline, and only a
bounded number of them try at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge

HANDSHAKE_S = 10.0
"""A client that has not proved its key by then is hung up on."""
MAX_PENDING = 16
"""Handshakes in progress at once; a client beyond them is turned away at once."""


def hang_up(conn: Connection) -> None:
    """Close ``conn`` so that both ends notice, even a thread blocked reading it.

    Closing the descriptor alone would leave such a read (and the other side) waiting.
    """
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()


class Gate:
    """Runs the mutual HMAC challenge for a server, bounded in time and in number."""

    def __init__(
        self, authkey: bytes, *, timeout: float = HANDSHAKE_S, pending: int = MAX_PENDING
    ) -> None:
        self._authkey, self.timeout = authkey, timeout
        self._slots = threading.BoundedSemaphore(pending)

    def admit(self, conn: Connection) -> bool:
        """True once ``conn`` proved the key and we proved ours; else it is closed (late,
        wrong, or too many).

        The deadline covers the client's proof only. Once it has proved the key it is
        trusted like any connected client, which may also sit silent: a deadline that
        could still fire there would hang up on a client whose own side had finished
        (its last message is the one we read last), and the request it sends next would
        be lost without a word.
        """
        if not self._slots.acquire(blocking=False):
            hang_up(conn)
            return False
        freed, settled = threading.Lock(), threading.Lock()

        def free() -> None:
            # Once, and before any hang-up: a client that sees its connection close may
            # retry at once, and must find the slot free again.
            if freed.acquire(blocking=False):
                self._slots.release()

        timer = threading.Timer(self.timeout, self._expire, (conn, settled, free))
        timer.daemon = True
        timer.start()
        try:
            deliver_challenge(conn, self._authkey)
        except Exception:  # a wrong key, a client that hung up or ran out of time
            free()
            hang_up(conn)
            return False
        if not settled.acquire(blocking=False):  # the deadline won the race and hung up
            return False
        timer.cancel()
        free()
        try:
            answer_challenge(conn, self._authkey)
        except Exception:
            hang_up(conn)
            return False
        return True

    @staticmethod
    def _expire(conn: Connection, settled: threading.Lock, free: Callable[[], None]) -> None:
        if settled.acquire(blocking=False):
            free()
            hang_up(conn)
