"""Token counts for cutting tool results to a budget, offline.

tiktoken's ``cl100k_base`` is used only when its file is already in tiktoken's cache
(tiktoken would otherwise download it on first use, with no timeout); without it a
calibrated characters-per-token estimate stands in. Claude's tokenizer is not
public, so both are estimates: close enough to size a head-and-tail cut.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

TextKind = Literal["output", "code"]

CHARS_PER_TOKEN: dict[TextKind, float] = {"output": 3.3, "code": 4.5}
"""Calibrated fallbacks: tool output (numbers, symbols, tracebacks) packs fewer chars per token."""

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def _cached_file() -> Path | None:
    """Where tiktoken keeps cl100k_base, if a good copy is there (tiktoken's own cache rules)."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:  # caching disabled: tiktoken would always download
        return None
    path = Path(cache_dir) / hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    try:
        data = path.read_bytes()
    except OSError:
        return None
    # A copy that fails the hash makes tiktoken re-download, so treat it as missing.
    return path if hashlib.sha256(data).hexdigest() == _CL100K_SHA256 else None


@functools.cache
def encoding() -> Any | None:
    """The tiktoken encoding if it can be had without the network, else None (probed once)."""
    if _cached_file() is None:
        return None
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # any failure just means: use the estimate
        return None


def count_tokens(text: str, kind: TextKind = "output") -> int:
    """Tokens in ``text``: exact for cl100k_base when available, else estimated from length."""
    if not text:
        return 0
    enc = encoding()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return math.ceil(len(text) / CHARS_PER_TOKEN[kind])
