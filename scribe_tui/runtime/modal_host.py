"""``--mode modal``: the model lives in a Modal GPU container; the local host forwards to it.

The kernel still talks only to the local host, so Modal credentials never enter
the kernel. The local host sends ``client.run``'s cloudpickle blob through
unopened, and the container unpickles it.

Why cloudpickle rather than shipping source: notebook techniques call helpers
and read globals defined in other cells, which ``inspect.getsource`` would lose.
Pickled bytecode is only valid within one Python minor version, so the image's
Python is pinned to this interpreter's, and torch/transformers/cloudpickle to the
local versions, so pickled tensors and library classes match on both sides.

:class:`RemoteHostLogic` is a plain class holding all the container-side logic;
the Modal class built by :func:`build_modal_app` only delegates to it, so the
same code runs offline in tests (directly, or through Modal's ``.local()``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from scribe_tui.runtime.host_protocol import LaunchSpec, pack_exception, unpack_exception
from scribe_tui.runtime.loading import ModelLoadError, Progress, ResolvedModel, resolve_model
from scribe_tui.runtime.status import DeviceUsage

DEFAULT_GPU = "L4"
SCALEDOWN_WINDOW = 300  # seconds a container stays warm after its last call
LOGIN_HINT = (
    "Modal is not logged in: run `modal token new` (or `modal setup`), "
    "or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET."
)
REMOTE_MODEL_ROOT = "/scribe/model"


def modal_credentials_problem(
    environ: dict[str, str] | None = None, config_path: Path | None = None
) -> str | None:
    """A one-line "how to log in" message when no Modal token is configured, else None.

    Mirrors where the Modal SDK looks (environment, then ``~/.modal.toml`` or
    ``MODAL_CONFIG_PATH``) without importing it, so the answer takes milliseconds.
    """
    env = os.environ if environ is None else environ
    if env.get("MODAL_TOKEN_ID") and env.get("MODAL_TOKEN_SECRET"):
        return None
    if env.get("MODAL_OAUTH_REFRESH_TOKEN"):
        return None
    path = config_path or Path(env.get("MODAL_CONFIG_PATH") or Path.home() / ".modal.toml")
    try:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return LOGIN_HINT
    for profile in profiles.values():
        if isinstance(profile, dict) and profile.get("token_id") and profile.get("token_secret"):
            return None
    return LOGIN_HINT


# --- container side ------------------------------------------------------------------------------


class RemoteHostLogic:
    """Everything the Modal container does, as a plain class (testable without Modal).

    ``config`` is plain data: ``resolved`` (a :class:`ResolvedModel` as a dict, with
    container paths), ``device``, ``dtype``, ``mode`` and ``name``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.executor: Any = None

    def load(self) -> None:
        from scribe_tui.runtime.capture import install_output_capture

        install_output_capture()
        from scribe_tui.runtime.executor import ModelExecutor
        from scribe_tui.runtime.loading import load_model

        loaded = load_model(
            ResolvedModel(**self.config["resolved"]),
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


_IMAGE_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "cloudpickle", "psutil")
_IF_INSTALLED = ("numpy", "matplotlib", "pandas")
"""What a notebook function may refer to: in the image where it is installed here."""


def _pinned(package: str) -> str | None:
    """``package==<the version installed here>``; None where it is not installed here."""
    try:
        version = metadata.version(package).split("+")[0]  # 2.13.0+cpu → the CUDA wheel
    except metadata.PackageNotFoundError:
        return None
    return f"{package}=={version}"


def image_spec(
    launch: LaunchSpec, resolved: ResolvedModel, remote_root: str = REMOTE_MODEL_ROOT
) -> dict[str, Any]:
    """What the container image holds, as plain data: Python version, packages, local dirs.

    Local model directories (bundled organisms, local paths) are mounted under
    ``remote_root`` in the container; hub ids are downloaded there.
    """
    # Everything at this machine's versions: a function pickled here (which may refer to
    # numpy, matplotlib or pandas) must unpickle there, and results must not drift.
    needed = [*_IMAGE_PACKAGES, *(["peft"] if resolved.adapter else [])]
    if launch.device == "auto":
        needed.append("accelerate")  # several GPUs → device_map="auto"
    pins = [_pinned(package) or package for package in needed]
    pins += [pin for pin in map(_pinned, _IF_INSTALLED) if pin is not None]
    dirs: dict[str, str] = {}
    remote = dict(
        path=resolved.path, tokenizer_path=resolved.tokenizer_path, adapter=resolved.adapter
    )
    for key, value in remote.items():
        if value and Path(value).is_dir():
            target = f"{remote_root}/{len(dirs)}"
            dirs.setdefault(str(Path(value).resolve()), target)
            remote[key] = dirs[str(Path(value).resolve())]
    return {
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pip": pins,
        "local_dirs": dirs,
        "config": {
            "resolved": {**resolved.__dict__, **remote, "local_files_only": False},
            "device": "cuda" if launch.device == "auto" else launch.device,
            "dtype": launch.dtype,
            "mode": launch.mode if launch.mode != "modal" else "local",
            "name": launch.display_name,
        },
    }


def build_modal_app(
    launch: LaunchSpec, resolved: ResolvedModel, *, remote_root: str = REMOTE_MODEL_ROOT
) -> tuple[Any, Any]:
    """The ephemeral Modal app and its GPU class for this model: ``(app, cls)``."""
    import modal

    spec = image_spec(launch, resolved, remote_root)
    image = modal.Image.debian_slim(python_version=spec["python_version"]).pip_install(*spec["pip"])
    for local, remote in spec["local_dirs"].items():
        image = image.add_local_dir(local, remote)
    image = image.add_local_python_source("scribe_tui")
    secrets = []
    token = os.environ.get("HF_TOKEN")
    if token and not spec["local_dirs"]:
        secrets.append(modal.Secret.from_dict({"HF_TOKEN": token}))
    config = spec["config"]
    app = modal.App("scribe-model-host")

    # serialized=True: the class is built per model (its image depends on it), so it is
    # cloudpickled to the container, which the pinned Python version makes safe.
    @app.cls(
        image=image,
        gpu=launch.gpu or DEFAULT_GPU,
        scaledown_window=SCALEDOWN_WINDOW,
        timeout=3600,
        serialized=True,
        secrets=secrets,
        # One container per host: the host serves each connection on its own thread, and
        # concurrent calls must queue on one GPU, not start a second.
        max_containers=1,
        # It runs untrusted code: no Modal credentials inside, no Modal API from there.
        restrict_modal_access=True,
    )
    class ModelHost:
        @modal.enter()
        def load(self) -> None:
            self.logic = RemoteHostLogic(config)
            self.logic.load()

        @modal.method()
        def run(self, payload: bytes) -> dict[str, Any]:
            return self.logic.run(payload)

        @modal.method()
        def call(self, op: str, kwargs: dict[str, Any]) -> dict[str, Any]:
            return self.logic.call(op, kwargs)

    return app, ModelHost


# --- local host side -----------------------------------------------------------------------------


class ModalBackend:
    """The local host's backend in modal mode: forwards calls to the container."""

    def __init__(self, launch: LaunchSpec, *, progress: Progress) -> None:
        self.launch, self.progress = launch, progress
        self.device = self.dtype = ""
        self._obj: Any = None
        self._usage = DeviceUsage()
        self._last_reply: float | None = None
        # The app's run() (and the output) contexts live as long as the backend: dropped,
        # garbage collection would close them and Modal would stop the app mid-session.
        self._contexts = contextlib.ExitStack()

    @property
    def container(self) -> str:
        """``cold`` until a container answers, ``warm`` while one should still be up."""
        if self._last_reply is None or time.monotonic() - self._last_reply > SCALEDOWN_WINDOW:
            return "cold"
        return "warm"

    def start(self) -> None:
        """Connect (bounded by ``launch.modal_timeout``), then start a container and load."""
        problem = modal_credentials_problem()
        if problem:
            raise ModelLoadError(problem)
        resolved = resolve_model(
            self.launch.model,
            adapter=self.launch.adapter,
            base_model=self.launch.base_model,
            display=self.launch.display_name,
        )
        self.progress("connecting to Modal", 0.05)
        try:
            app, cls = build_modal_app(self.launch, resolved)
        except ImportError:
            raise ModelLoadError(
                "--mode modal needs the modal package: pip install 'scribe-tui[modal]'."
            ) from None
        self._run_bounded(lambda: _enter(self._contexts, app), "connecting to Modal")
        self._obj = cls()
        self.progress("starting a GPU container (image build and model load on first use)", 0.5)
        info = self._reply(self._obj.call.remote("info", {}))["value"]
        self.device = f"modal {self.launch.gpu or DEFAULT_GPU} ({info['device']})"
        self.dtype = info["dtype"]

    def _run_bounded(self, fn: Any, phase: str) -> Any:
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = fn()
            except BaseException as exc:
                result["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        start = time.monotonic()
        while thread.is_alive():
            waited = time.monotonic() - start
            if waited > self.launch.modal_timeout:
                raise ModelLoadError(
                    f"Modal did not answer within {self.launch.modal_timeout:.0f} s: "
                    "check the network (api.modal.com) or raise --modal-timeout."
                )
            self.progress(
                f"{phase} ({waited:.0f} s)", 0.05 + 0.4 * waited / self.launch.modal_timeout
            )
            thread.join(0.25)
        if "error" in result:
            message = str(result["error"]).strip().splitlines()
            raise ModelLoadError(
                f"Modal: {message[0] if message else type(result['error']).__name__}"
            )
        return result.get("value")

    def _reply(self, reply: dict[str, Any]) -> dict[str, Any]:
        self._last_reply = time.monotonic()
        used, total, util, name = reply.pop("usage", (None, None, None, ""))
        self._usage = DeviceUsage(used, total, util, name)
        return reply

    def run(
        self, payload: bytes, stream: Any = None, call_id: str = "", variant: str = "model"
    ) -> dict[str, Any]:
        if variant != "model":
            error = LookupError("client.run_base is not available in modal mode yet.")
            return {"ok": False, "kind": "exception", "error": pack_exception(error)}
        return self._reply(self._obj.run.remote(payload))

    def _call(self, op: str, kwargs: dict[str, Any]) -> Any:
        reply = self._reply(self._obj.call.remote(op, kwargs))
        if reply["ok"]:
            return reply["value"]
        raise unpack_exception(reply["error"])

    def generate(self, **kwargs: Any) -> Any:
        return self._call("generate", kwargs)

    def chat(self, **kwargs: Any) -> Any:
        return self._call("chat", kwargs)

    def info(self) -> dict[str, Any]:
        return {**self._call("info", {}), "mode": self.launch.mode, "device": self.device}

    def cancel(self, call_id: str) -> bool:
        return False  # a remote call runs to completion

    def usage(self) -> DeviceUsage:
        """The last usage a container reported (asking would wake a scaled-down container)."""
        return self._usage

    def close(self) -> None:
        """Stop the app (and its containers) now; the host is shutting down."""
        self._contexts.close()


def _enter(contexts: contextlib.ExitStack, app: Any) -> Any:
    """Run ``app`` inside ``contexts``, which the backend holds until it closes."""
    import modal

    contexts.enter_context(modal.enable_output())
    return contexts.enter_context(app.run())
