"""Records only scribe-tui writes: each line of a transcript and of a bench's results carries
an HMAC keyed by a per-user secret that no sealed process can read.

The kernel cannot write those files (it writes only its own files folder), so this guards
what the seal does not: a process outside it, a copy edited by hand, a row planted in a
folder that ``list`` or ``bench report`` reads. A line that fails is reported and never
trusted: ``resume`` refuses its transcript, the bench leaves the row out and says so.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from scribe_tui.organisms.keys import key_store_dir

MAC = "mac"
"""The key under which a record carries its HMAC."""


def _key() -> bytes:
    # Beside the answer keys: a private folder outside every sandbox's grants.
    return _key_in(key_store_dir())


@functools.cache
def _key_in(store: Path) -> bytes:
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = store / "record.key"
    if not path.exists():
        # Written whole under another name, then linked into place: a process racing this
        # one reads either no key or the whole of one, never half.
        tmp = store / f".record.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first: its key is the key
        finally:
            tmp.unlink()
    return path.read_bytes()


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != MAC}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hmac.new(_key(), text.encode("utf-8"), hashlib.sha256).hexdigest()


def signed(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its HMAC (computed over every other key, in canonical JSON)."""
    return {**record, MAC: _digest(record)}


def verified(record: dict[str, Any]) -> bool:
    """Whether ``record`` carries the HMAC scribe-tui wrote for exactly these contents."""
    given = record.get(MAC)
    return isinstance(given, str) and hmac.compare_digest(given, _digest(record))
