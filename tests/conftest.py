"""Suite-wide fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_reaches_children() -> None:
    """Tests press Ctrl-C on what they start. A shell that runs the suite in the
    background (``pytest &``) starts it with SIGINT ignored, which every child would
    inherit; Python's own handler is reset to the default in a child instead."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def private_key_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keys of organisms trained by tests (and by CLI subprocesses, which inherit the
    environment) go to a temporary store, never the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRIBE_KEY_DIR", str(tmp_path_factory.mktemp("answer-keys")))
        yield
