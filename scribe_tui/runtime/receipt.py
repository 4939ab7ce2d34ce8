"""The receipt: what a notebook ran on, recorded in ``metadata.scribe.receipt``.

Versions, device and dtype, the model's display name, SHA-256 digests of its weight
files (and of its base checkpoint's), the organism kind, the agent and its model id,
digests of the prompts, the seeds, the sandbox state and the git commit of the
working directory. Built in the scribe-tui process, never in the kernel: the kernel
is sealed away from weights paths, and the receipt holds digests, never paths (a
local model's path can name its secret).

:func:`differences` compares two receipts' environments, for ``reproduce``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from scribe_tui.runtime.nbfiles import atomic_write
from scribe_tui.runtime.status import HostStatus

__all__ = ["RECEIPT_VERSION", "build_receipt", "differences", "weights_digests"]

RECEIPT_VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")
PROMPTS = ("system.md", "methodology.md", "checkpoint.md")
# Compared by `reproduce`, most consequential first; the agent's side is not re-run there.
ENVIRONMENT = (
    ("weights", "weights sha256"),
    ("base_weights", "base weights sha256"),
    ("model", "model"),
    ("organism", "organism kind"),
    ("scribe_tui", "scribe-tui"),
    ("python", "Python"),
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("device", "device"),
    ("device_name", "device name"),
    ("dtype", "dtype"),
    ("sandbox", "sandbox"),
    ("git", "git commit"),
)
_CHUNK = 1 << 20


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """scribe-tui, Python, torch and transformers versions (read without importing them)."""
    return {
        "scribe_tui": _version("scribe-tui"),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _HashCache:
    """Digests of big files by (path, size, mtime, inode), so a 16 GB model is read once."""

    def __init__(self) -> None:
        from scribe_tui.paths import private_data_dir  # holds paths: no sealed process reads it

        self.path = private_data_dir() / "weights-sha256.json"
        try:
            self.entries: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    def digest(self, file: Path) -> str:
        real = str(file.resolve())
        status = os.stat(real)
        stamp = [status.st_size, status.st_mtime_ns, status.st_ino]
        entry = self.entries.get(real)
        if isinstance(entry, dict) and entry.get("stamp") == stamp:
            return str(entry["sha256"])
        value = _sha256(Path(real))
        self.entries[real] = {"stamp": stamp, "sha256": value}
        self.changed = True
        return value

    def save(self) -> None:
        if self.changed:
            with contextlib.suppress(OSError):  # a cache: losing it costs time, not truth
                atomic_write(self.path, json.dumps(self.entries).encode())


def directory_digest(directory: Path, cache: _HashCache | None = None) -> dict[str, Any] | None:
    """One SHA-256 over a model directory's weight files (names and contents); None if none."""
    files = sorted(
        p for p in directory.rglob("*") if p.name.endswith(WEIGHT_SUFFIXES) and p.is_file()
    )
    if not files:
        return None
    combined = hashlib.sha256()
    size = 0
    for file in files:
        value = cache.digest(file) if cache is not None else _sha256(file)
        combined.update(f"{value}  {file.relative_to(directory).as_posix()}\n".encode())
        size += file.stat().st_size
    return {"sha256": combined.hexdigest(), "files": len(files), "bytes": size}


def weights_digests(model_spec: str) -> dict[str, Any]:
    """Digests of the weights (``weights``, ``base_weights``) and the organism kind.

    Torch-free and safe to run in a thread while the host loads. Anything that cannot
    be hashed here (a hub model not in the local cache) is recorded as None.
    """
    from scribe_tui.runtime.loading import ModelLoadError, resolve_model

    try:
        resolved = resolve_model(model_spec)
    except ModelLoadError:
        return {"weights": None, "base_weights": None, "organism": None}
    cache = _HashCache()
    try:
        return _digests(resolved, cache)
    except OSError:  # unreadable weights: the run goes on, its receipt says "unknown"
        return {"weights": None, "base_weights": None, "organism": _organism_kind(resolved)}
    finally:
        cache.save()


def _digests(resolved: Any, cache: _HashCache) -> dict[str, Any]:
    from scribe_tui.runtime.loading import hub_snapshot

    model_dir = Path(resolved.path)
    if not model_dir.is_dir():
        model_dir = hub_snapshot(resolved.path) or model_dir
    weights = directory_digest(model_dir, cache) if model_dir.is_dir() else None
    if weights is not None and model_dir.parent.name == "snapshots":
        weights["revision"] = model_dir.name  # the hub commit the cache holds
    if resolved.adapter and weights is not None:
        adapter = directory_digest(Path(resolved.adapter), cache)
        weights["adapter_sha256"] = adapter["sha256"] if adapter else None
    base = None
    if resolved.base and resolved.base != resolved.path and Path(resolved.base).is_dir():
        base = directory_digest(Path(resolved.base), cache)
    return {"weights": weights, "base_weights": base, "organism": _organism_kind(resolved)}


def _organism_kind(resolved: Any) -> str | None:
    if not resolved.organism:
        return None
    try:
        meta = json.loads((Path(resolved.organism) / "organism.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(meta.get("kind")) if meta.get("kind") else None


def git_commit(directory: Path | None = None) -> dict[str, Any] | None:
    """The commit checked out in ``directory`` (default: here) and whether files changed."""
    where = str(directory or Path.cwd())

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", where, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def prompt_digests() -> dict[str, str]:
    """SHA-256 of each packaged prompt file the agent is given."""
    from scribe_tui.paths import prompts_dir

    folder = prompts_dir()
    return {name: _sha256(folder / name) for name in PROMPTS if (folder / name).is_file()}


def build_receipt(
    *,
    display_name: str,
    host: HostStatus,
    digests: Mapping[str, Any],
    requested: Mapping[str, Any],
    agent: str | None = None,
    agent_model: str | None = None,
    methodology: bool | None = None,
    seeds: Mapping[str, Any] | None = None,
    sandbox: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The receipt written when a notebook starts (``completed`` is added at its end)."""
    receipt: dict[str, Any] = {
        "version": RECEIPT_VERSION,
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        **versions(),
        "platform": platform.platform(terse=True),
        "device": host.device,
        "device_name": host.device_name,
        "dtype": host.dtype,
        "requested": dict(requested),
        "model": display_name,
        **{key: digests.get(key) for key in ("weights", "base_weights", "organism")},
        "sandbox": dict(sandbox or {}),
        "git": git_commit(),
    }
    if agent is not None:
        receipt.update(
            agent=agent,
            agent_model=agent_model,
            prompts={**prompt_digests(), "methodology": methodology},
            seeds=dict(seeds or {}),
        )
    return receipt


def _shown(key: str, value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    if key in ("weights", "base_weights") and isinstance(value, Mapping):
        return str(value.get("sha256", "?"))[:16] + "…"
    if key == "sandbox" and isinstance(value, Mapping):
        return str(value.get("mechanism", "?"))
    if key == "git" and isinstance(value, Mapping):
        return str(value.get("commit", "?"))[:12] + (" (dirty)" if value.get("dirty") else "")
    return str(value)


def _comparable(key: str, value: Any) -> Any:
    if key in ("weights", "base_weights") and isinstance(value, Mapping):
        return value.get("sha256"), value.get("adapter_sha256")
    if key == "sandbox" and isinstance(value, Mapping):
        return value.get("mechanism")
    return value


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, was, is) for every environment fact that changed, weights first."""
    found = []
    for key, label in ENVIRONMENT:
        if key not in old:
            continue  # an older receipt that never recorded it
        before, after = old.get(key), new.get(key)
        if _comparable(key, before) != _comparable(key, after):
            found.append((label, _shown(key, before), _shown(key, after)))
    return found
