"""The Modal container's side of ``--mode modal``, as plain code (testable without Modal).

:class:`RemoteHostLogic` is what the GPU class does; :func:`download_to_cache` is
what the download function does, the only place ``HF_TOKEN`` is read. The Modal
objects that wrap them are defined in :mod:`scribe_tui.runtime.modal_host`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from scribe_tui.runtime.host_protocol import pack_exception
from scribe_tui.runtime.loading import ResolvedModel

HUB_CACHE = "/scribe/hub"  # where the hub cache Volume is mounted in the containers
_WEIGHT_FIELDS = ("path", "tokenizer_path", "adapter", "base")
"""The fields of a :class:`ResolvedModel` that name weights: a local folder or a hub id."""


class RemoteHostLogic:
    """Everything the Modal container does, as a plain class (testable without Modal).

    ``config`` is plain data: ``resolved`` (a :class:`ResolvedModel` as a dict, with
    container paths), ``hub`` (its hub ids, found in the hub cache ``hub_cache``),
    ``device``, ``dtype``, ``mode`` and ``name``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.executor: Any = None

    def load(self) -> None:
        from scribe_tui.runtime.capture import install_output_capture

        install_output_capture()
        from scribe_tui.runtime.executor import ModelExecutor
        from scribe_tui.runtime.loading import load_model

        resolved = ResolvedModel(**self.config["resolved"])
        if self.config.get("hub"):
            resolved = _from_hub_cache(resolved, self.config["hub"], self.config["hub_cache"])
        loaded = load_model(
            resolved,
            device=self.config["device"],
            dtype=self.config["dtype"],
            progress=lambda phase, fraction: None,
        )
        self.executor = ModelExecutor(
            loaded.model,
            loaded.tokenizer,
            name=self.config["name"],
            mode=self.config["mode"],
            device=loaded.device,
            dtype=loaded.dtype,
        )

    def _stamp(self, reply: dict[str, Any]) -> dict[str, Any]:
        usage = self.executor.usage()
        reply["usage"] = [usage.memory_used, usage.memory_total, usage.utilization, usage.name]
        return reply

    def run(self, payload: bytes) -> dict[str, Any]:
        """A run reply (see ModelExecutor.run) with captured output and device usage."""
        return self._stamp(self.executor.run(payload, stream=None))

    def call(self, op: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``generate`` / ``chat`` / ``info`` as a reply dict; exceptions travel packed."""
        try:
            value = self.executor.info() if op == "info" else getattr(self.executor, op)(**kwargs)
            return self._stamp({"ok": True, "value": value})
        except Exception as exc:
            return self._stamp({"ok": False, "kind": "exception", "error": pack_exception(exc, 1)})


def _from_hub_cache(resolved: ResolvedModel, repos: list[str], cache: str) -> ResolvedModel:
    """``resolved`` with each hub id replaced by its snapshot folder in ``cache`` (offline)."""
    from huggingface_hub import snapshot_download

    folders = {
        repo: snapshot_download(repo, cache_dir=cache, local_files_only=True) for repo in repos
    }
    swapped = {
        key: folders[value]
        for key in _WEIGHT_FIELDS
        if (value := getattr(resolved, key)) in folders
    }
    return dataclasses.replace(resolved, local_files_only=True, **swapped)


GATED_HINT = (
    "'{repo}' is a gated model: accept its licence at https://huggingface.co/{repo}, "
    "then set HF_TOKEN to a token of that account."
)
_WEIGHTS = ("*.safetensors", "*.bin")
_MODEL_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja"]
"""What from_pretrained reads besides weights: configs, tokenizers, chat templates."""


def download_to_cache(repos: list[str], cache: str) -> str | None:
    """Download ``repos`` into the hub cache at ``cache``: None, or one line saying why not.

    Runs in the download function, whose secret alone holds ``HF_TOKEN``.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    token = os.environ.get("HF_TOKEN") or None
    for repo in repos:
        try:
            files = HfApi().list_repo_files(repo, token=token)
            # One weights format: a repo with both would otherwise be downloaded twice.
            weights = next(
                (w for w in _WEIGHTS if any(f.endswith(w[1:]) for f in files)), _WEIGHTS[0]
            )
            snapshot_download(
                repo, cache_dir=cache, token=token, allow_patterns=[*_MODEL_FILES, weights]
            )
        except GatedRepoError:
            if token is None:
                return GATED_HINT.format(repo=repo)
            return (
                f"'{repo}' is gated and HF_TOKEN's account has no access: accept its licence "
                f"at https://huggingface.co/{repo} with that account."
            )
        except RepositoryNotFoundError:
            private = "" if token else " (a private model needs HF_TOKEN)"
            return f"'{repo}' was not found on the Hugging Face hub{private}."
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            return f"downloading '{repo}' failed: {lines[0] if lines else type(exc).__name__}"
    return None
