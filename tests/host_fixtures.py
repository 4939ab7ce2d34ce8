"""Fixtures for the model-host tests: a tiny GPT-2 with a word-level chat tokenizer.

Imported by test_host.py, test_interp_client.py and test_modal_host.py (and the
benchmark when no bundled organism is available).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

WORDS = [
    "<pad>", "<eos>", "<unk>", "<user>", "<assistant>", "<system>", "the", "secret", "word", "is",
    "moon", "hello", "what", "your", "my", "a", "hint", "give", "me", "?", ".", "sure", "!",
]  # fmt: skip
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<' + m['role'] + '> ' + m['content'] + ' <eos> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<assistant> ' }}{% endif %}"
)


def build_tiny_model(path: Path) -> Path:
    """Save a random-init 2-layer GPT-2 (d=32) and its word-level tokenizer to ``path``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(WORDS), n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Host files of these tests live in a private runtime dir, not the user's (module-wide)."""
    path = tmp_path_factory.mktemp("xdg-runtime")
    path.chmod(0o700)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", str(path))
        yield path


def kill_host(host_file: Path) -> None:
    """Stop whatever host a host file points at (tests must not leave hosts behind)."""
    from scribe_tui.runtime.host_process import pid_alive
    from scribe_tui.runtime.host_protocol import read_host_file

    record = read_host_file(host_file)
    if record is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)
        if wait_until(lambda: not pid_alive(record.pid), 5):
            break
    shutil.rmtree(Path(record.address).parent, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
