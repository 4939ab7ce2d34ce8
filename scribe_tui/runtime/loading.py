"""Find and load the subject model: a bundled organism, a local directory, or a hub id.

Resolution (:func:`resolve_model`) is cheap and torch-free, so a bad model id
fails in well under a second: a hub id when the hub is unreachable and the
model is not in the local cache is refused before torch is imported.
Loading (:func:`load_model`) reports phases and a fraction through a callback.
A model host never downloads: :mod:`scribe_tui.runtime.hub_fetch` fills the hub
cache first, and the host reads only its models' folders there (:func:`hub_repo_dir`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scribe_tui.runtime.sandbox import gpu_devices

Progress = Callable[[str, float], None]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelLoadError(Exception):
    """The model cannot be found or loaded; ``str()`` is one line saying why and what to do."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where the weights come from; ``adapter`` is set for a PEFT adapter on ``path``."""

    display: str
    path: str
    tokenizer_path: str
    adapter: str | None = None
    local_files_only: bool = False
    base: str | None = None  # the checkpoint before fine-tuning, for model diffing
    organism: str | None = None  # the organism directory (organism.json, card), if one


def resolve_model(
    spec: str,
    *,
    adapter: str | None = None,
    base_model: str | None = None,
    display: str | None = None,
    probe_hub: bool = True,
) -> ResolvedModel:
    """Turn ``organism:NAME`` (or an organism directory), a local path or a hub id into paths
    to load, without importing torch.

    ``probe_hub=False`` takes a hub id as it is: no reachability probe, no cache check.
    """
    display = display or spec
    local = Path(spec).expanduser()
    if spec.startswith("organism:") or (local / "organism.json").is_file():
        model_dir, base_dir = _resolve_organism(spec)
        path = str(model_dir)
        if adapter is None and (Path(path) / "adapter_config.json").exists():
            adapter, path = path, str(base_model or base_dir or _adapter_base(Path(path)))
        base = str(base_dir) if base_dir else None
        return ResolvedModel(
            display,
            path,
            _tokenizer_source(adapter, path),
            adapter,
            base=base,
            organism=str(model_dir.parent),
        )
    if local.is_dir():
        if (local / "adapter_config.json").exists() and adapter is None:
            base = base_model or _adapter_base(local)
            base_resolved = resolve_model(base, display=display, probe_hub=probe_hub)
            return ResolvedModel(
                display,
                base_resolved.path,
                _tokenizer_source(str(local), base_resolved.path),
                str(local),
                base_resolved.local_files_only,
                base=base_resolved.path,  # the adapter's own base: diff without the adapter
            )
        if not (local / "config.json").exists():
            raise ModelLoadError(
                f"'{display}' is a directory but not a model (no config.json in it)."
            )
        tokenizer = _tokenizer_source(adapter, str(local))
        if not any((Path(tokenizer) / name).exists() for name in TOKENIZER_FILES):
            raise ModelLoadError(
                f"'{display}' has weights but no tokenizer (none of {', '.join(TOKENIZER_FILES)} "
                f"in {tokenizer}): copy the tokenizer files of the model it came from into it."
            )
        return ResolvedModel(display, str(local), tokenizer, adapter)
    if spec.startswith(("/", ".", "~")) or not _HUB_ID.match(spec):
        raise ModelLoadError(f"Model '{display}' not found: no such directory.")
    offline = probe_hub and not hub_reachable()
    if offline:
        # Set before transformers/huggingface_hub are imported: they read it once.
        os.environ["HF_HUB_OFFLINE"] = "1"
        if not in_hub_cache(spec):
            raise ModelLoadError(offline_message(display))
    return ResolvedModel(display, spec, _tokenizer_source(adapter, spec), adapter, offline)


def offline_message(name: str) -> str:
    """Why hub model ``name`` cannot load: it is not cached and the hub is out of reach."""
    return (
        f"Model '{name}' not found: it is not a local directory and the Hugging Face "
        "hub is unreachable (offline). Use organism:taboo or a local path."
    )


def hub_repos(resolved: ResolvedModel) -> list[str]:
    """The hub repositories ``resolved`` loads from: those of its paths that are hub ids."""
    names = (resolved.path, resolved.tokenizer_path, resolved.adapter, resolved.base)
    return list(dict.fromkeys(n for n in names if n and _HUB_ID.match(n) and not os.path.exists(n)))


def _resolve_organism(spec: str) -> tuple[Path, Path | None]:
    try:
        from scribe_tui.organisms.registry import resolve_model_spec
    except ImportError:
        raise ModelLoadError(
            f"Cannot load '{spec}': the bundled organisms are not available in this install."
        ) from None
    try:
        return resolve_model_spec(spec)
    except Exception as exc:  # UnknownOrganism and friends: their message is the one line
        raise ModelLoadError(_one_line(exc)) from None


def _adapter_base(adapter_dir: Path) -> str:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        return str(config["base_model_name_or_path"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"'{adapter_dir}' is a PEFT adapter without a usable base_model_name_or_path "
            f"({_one_line(exc)}); pass --base-model."
        ) from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
"""Any one of these makes a folder's tokenizer loadable; without them transformers 5 builds
an empty one silently."""


def _tokenizer_source(adapter: str | None, path: str) -> str:
    if adapter and (Path(adapter) / "tokenizer_config.json").exists():
        return adapter
    return path


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face endpoint accepts a TCP connection within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            # getaddrinfo has no timeout of its own; the thread join bounds it.
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def _hf_home() -> str:
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return _expand(os.environ.get("HF_HOME") or default)


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


# The hub's paths as huggingface_hub derives them from the environment, read anew on each
# call: huggingface_hub.constants keeps what the environment said when it was imported.
def hub_cache_dir() -> Path:
    """The hub cache: ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else
    ``$HF_HOME/hub``."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(_expand(cache) if cache else os.path.join(_hf_home(), "hub"))


def hub_repo_dir(repo_id: str) -> Path:
    """Where the hub cache keeps model ``repo_id`` (its refs, snapshots and blobs)."""
    return hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"


def hub_snapshot(repo_id: str) -> Path | None:
    """The hub cache's copy of ``repo_id`` at ``main``, if it is there (read from the cache's
    layout where the environment puts it now; nothing is downloaded)."""
    if not _HUB_ID.match(repo_id):
        return None
    repo = hub_repo_dir(repo_id)
    try:
        commit = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    snapshot = repo / "snapshots" / commit
    return snapshot if commit and snapshot.is_dir() else None


def hub_token_files() -> list[str]:
    """The files that hold hub tokens (``hf auth login`` writes them): no sealed process
    may read them."""
    token = _expand(os.environ.get("HF_TOKEN_PATH") or os.path.join(_hf_home(), "token"))
    return [token, os.path.join(os.path.dirname(token), "stored_tokens")]


def in_hub_cache(repo_id: str) -> bool:
    """Whether the hub cache holds a snapshot of model ``repo_id``."""
    snapshots = hub_repo_dir(repo_id) / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- loading (imports torch) ---------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready for techniques: eval mode, on its device."""

    model: Any
    tokenizer: Any
    device: str
    dtype: str


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def choose_device(requested: str, dev: str = "/dev") -> str:
    """``auto`` → cuda when available, else cpu; an unavailable ``cuda`` is an error, and so
    is ``auto`` on a machine whose NVIDIA GPU torch cannot use (never a silent CPU load)."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        nvidia = [p for p in gpu_devices(dev) if os.path.basename(p).startswith("nvidia")]
        if nvidia:
            build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise ModelLoadError(
                f"This machine has an NVIDIA GPU ({nvidia[0]}) that torch {torch.__version__} "
                f"({build}) cannot use: install a CUDA build of torch that matches the driver, "
                "or pass --device cpu to load on the CPU."
            )
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"--device {requested}: no CUDA device is available to torch {torch.__version__}."
        )
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ModelLoadError(f"--device must be auto, cpu or cuda[:N], not {requested!r}.")
    return requested


def choose_dtype(requested: str, device: str) -> str:
    """``auto`` → bfloat16 on GPUs that support it (else float16), float32 on CPU."""
    import torch

    if requested == "auto":
        if device.startswith("cuda"):
            # Native bf16 from compute capability 8.0 (Ampere); is_bf16_supported() counts
            # emulation (slow on T4, V100) and asks about the current device, not this one.
            major, _minor = torch.cuda.get_device_capability(torch.device(device))
            return "bfloat16" if major >= 8 else "float16"
        return "float32"
    if requested not in _DTYPES:
        raise ModelLoadError(
            f"--dtype must be auto, float32, bfloat16 or float16, not {requested!r}."
        )
    return _DTYPES[requested]


def load_model(
    resolved: ResolvedModel, *, device: str, dtype: str, progress: Progress
) -> LoadedModel:
    """Load weights and tokenizer; every failure becomes a one-line :class:`ModelLoadError`."""
    progress("importing torch", 0.05)
    import torch

    device = choose_device(device)
    dtype = choose_dtype(dtype, device)
    progress("importing transformers", 0.3)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import __version__ as tf_version

    kwargs: dict[str, Any] = {
        **_dtype_kwargs(dtype, tf_version),
        "local_files_only": resolved.local_files_only,
    }
    size = weights_size(resolved.path)
    spread = device == "cuda" and _needs_several_gpus(size) and _has_accelerate()
    if spread:
        kwargs["device_map"] = "auto"
    elif device != "cpu" and _accelerate_installed():
        kwargs["device_map"] = {"": device}  # straight onto the GPU, not via CPU RAM first
    progress("loading weights", 0.5)
    try:
        with _weight_progress(progress, 0.5, 0.9):
            model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
        if resolved.adapter:
            progress("applying adapter", 0.9)
            model = _apply_adapter(model, resolved.adapter, resolved.local_files_only)
        progress("loading tokenizer", 0.92)
        tokenizer = AutoTokenizer.from_pretrained(
            resolved.tokenizer_path, local_files_only=resolved.local_files_only
        )
        if len(tokenizer) <= 1:
            raise ModelLoadError(
                f"'{resolved.display}' loaded an empty tokenizer from {resolved.tokenizer_path}: "
                "give the model its tokenizer files (tokenizer.json or vocab files)."
            )
        if "device_map" not in kwargs and device != "cpu":
            progress(f"moving to {device}", 0.95)
            model.to(device)
    except ModelLoadError:
        raise
    except torch.cuda.OutOfMemoryError:
        raise _too_big(resolved.display, device, size) from None
    except Exception as exc:
        raise ModelLoadError(f"Could not load '{resolved.display}': {_one_line(exc)}") from None
    model.eval()
    return LoadedModel(model, tokenizer, "cuda" if spread else device, dtype)


def weights_size(path: str) -> int:
    """Bytes of a model folder's weight files (safetensors, else .bin); 0 when unknown."""
    folder = Path(path) if os.path.isdir(path) else hub_snapshot(path)
    if folder is None:
        return 0
    for pattern in ("*.safetensors", "*.bin"):
        files = [f for f in folder.glob(pattern) if f.is_file()]
        if files:
            return sum(f.stat().st_size for f in files)
    return 0


def _needs_several_gpus(size: int) -> bool:
    """Whether a model of ``size`` bytes of weights must be spread: only when it leaves no
    room on one GPU (a 2B model split over eight is slower, not faster)."""
    import torch

    if torch.cuda.device_count() < 2:
        return False
    room = torch.cuda.get_device_properties(0).total_memory
    return size == 0 or size > 0.8 * room  # unknown size: spread, as before


def _too_big(display: str, device: str, size: int) -> ModelLoadError:
    import torch

    index = torch.device(device if device != "cuda" else "cuda:0").index or 0
    total = torch.cuda.get_device_properties(index).total_memory
    need = f" ({size / 2**30:.1f} GiB of weights)" if size else ""
    return ModelLoadError(
        f"'{display}'{need} does not fit in {device}'s {total / 2**30:.0f} GiB: "
        "free the GPU, pick another (--device cuda:N), a smaller model, or --device cpu."
    )


def load_base(resolved: ResolvedModel, *, device: str, dtype: str) -> Any:
    """The base checkpoint on the subject model's device and dtype (loaded on first use).

    A second full copy: on a GPU without room for it, a one-line error before loading.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers import __version__ as tf_version

    if resolved.base is None:
        raise ModelLoadError(f"'{resolved.display}' has no base checkpoint to compare against.")
    size = weights_size(resolved.base)
    kwargs: dict[str, Any] = {
        **_dtype_kwargs(dtype, tf_version),
        "local_files_only": resolved.local_files_only,
    }
    if device.startswith("cuda"):
        free = sum(
            torch.cuda.mem_get_info(i)[0]
            for i in (range(torch.cuda.device_count()) if device == "cuda" else [device])
        )
        if size > 0.95 * free:
            raise ModelLoadError(
                f"The base model ({size / 2**30:.1f} GiB of weights) does not fit beside the "
                f"subject model on {device} ({free / 2**30:.1f} GiB free): compare against a "
                "control prompt instead, or use a GPU with room for both."
            )
        if _accelerate_installed():
            kwargs["device_map"] = "auto" if device == "cuda" else {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.base, **kwargs)
        if "device_map" not in kwargs and device != "cpu":
            model.to(device)
    except torch.cuda.OutOfMemoryError:
        raise _too_big("the base model", device, size) from None
    except Exception as exc:
        raise ModelLoadError(f"Could not load the base model: {_one_line(exc)}") from None
    return model.eval()


def _dtype_kwargs(dtype: str, tf_version: str) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: transformers renamed torch_dtype in 4.56."""
    import torch

    major, minor = (int(x) for x in re.findall(r"\d+", tf_version)[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": getattr(torch, dtype)}


def _accelerate_installed() -> bool:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        return False
    return True


def _has_accelerate() -> bool:
    if _accelerate_installed():
        return True
    print("several GPUs but accelerate is not installed: using one", file=sys.stderr)
    return False


def _apply_adapter(model: Any, adapter: str, local_files_only: bool) -> Any:
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelLoadError(
            f"'{adapter}' is a PEFT adapter: install peft (pip install 'scribe-tui[peft]')."
        ) from None
    # Merged, so techniques see a plain transformers model (hooks, lm_head, generate).
    peft_model = PeftModel.from_pretrained(model, adapter, local_files_only=local_files_only)
    return peft_model.merge_and_unload()


class _weight_progress:
    """Turn transformers' own progress bars into fractions between ``start`` and ``end``."""

    def __init__(self, progress: Progress, start: float, end: float) -> None:
        self.progress, self.start, self.end = progress, start, end
        self._last = 0.0

    def __enter__(self) -> None:
        from transformers.utils import logging as tf_logging

        self._set = getattr(tf_logging, "set_tqdm_hook", None)
        if self._set is not None:
            self._set(self._hook)

    def __exit__(self, *exc: object) -> None:
        if self._set is not None:
            self._set(None)

    def _hook(
        self, factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        total = kwargs.get("total")
        if total is None and args and hasattr(args[0], "__len__"):
            total = len(args[0])
        bar = factory(*args, **{**kwargs, "disable": True})
        return _ReportingBar(bar, total, kwargs.get("desc") or "loading weights", self._report)

    def _report(self, desc: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last > 0.1 or fraction >= 1.0:
            self._last = now
            self.progress(desc.lower(), self.start + (self.end - self.start) * min(fraction, 1.0))


class _ReportingBar:
    def __init__(
        self, bar: Any, total: int | None, desc: str, report: Callable[[str, float], None]
    ):
        self._bar, self._total, self._desc, self._report, self._n = bar, total, desc, report, 0

    def __iter__(self) -> Any:
        for item in self._bar:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self._n += n
        if self._total:
            self._report(self._desc, self._n / self._total)

    def __enter__(self) -> _ReportingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._bar, "close", None)
        if close:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bar, name)
