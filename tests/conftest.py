"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_key_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keys of organisms trained by tests (and by CLI subprocesses, which inherit the
    environment) go to a temporary store, never the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRIBE_KEY_DIR", str(tmp_path_factory.mktemp("answer-keys")))
        yield
