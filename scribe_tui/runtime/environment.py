"""The environment a kernel runs in: ours, minus credentials the agent's code must never see."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["is_secret_name", "kernel_environment"]

_SECRET_PREFIXES = ("ANTHROPIC_", "MODAL_", "OPENAI_", "AWS_ACCESS", "AWS_SECRET", "AWS_SESSION")
# HF_TOKEN and HUGGING_FACE_HUB_TOKEN are covered by TOKEN.
_SECRET_PARTS = ("API_KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def is_secret_name(name: str) -> bool:
    """Whether an environment variable name looks like it holds a credential."""
    upper = name.upper()
    return upper.startswith(_SECRET_PREFIXES) or any(part in upper for part in _SECRET_PARTS)


def kernel_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without secrets, plus ``extra``.

    ``extra`` is applied last and unfiltered: it is how a caller deliberately hands the
    kernel a value (such as the model host's socket token) whose name would look secret.
    Matplotlib defaults to the inline backend so figures come back as images.
    """
    env = {name: value for name, value in os.environ.items() if not is_secret_name(name)}
    # ipykernel stops capturing C-level (file descriptor) output when it sees this, so a
    # kernel started under pytest would behave unlike the real one.
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra or {})
    env.setdefault("MPLBACKEND", _INLINE_BACKEND)
    return env
