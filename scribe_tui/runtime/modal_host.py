"""``--mode modal``: the model lives in a Modal GPU container; the local host forwards to it.

The kernel still talks only to the local host, so Modal credentials never enter
the kernel. The local host sends ``client.run``'s cloudpickle blob through
unopened, and the container unpickles it.

Why cloudpickle rather than shipping source: notebook techniques call helpers
and read globals defined in other cells, which ``inspect.getsource`` would lose.
Pickled bytecode is only valid within one Python minor version, so the image's
Python is pinned to this interpreter's, and torch/transformers/cloudpickle to the
local versions, so pickled tensors and library classes match on both sides.

The container-side logic is plain code in :mod:`scribe_tui.runtime.modal_remote`;
the Modal objects built by :func:`build_modal_app` only delegate to it, so the
same code runs offline in tests (directly, or through Modal's ``.local()``).

Hub models and their token: a download function, the only one given ``HF_TOKEN``
(as a Modal Secret), fills a persistent Volume used as the hub cache; the class
that runs technique code gets no secret and mounts that Volume read-only, loading
offline. Agent code runs in that class (gVisor, no Landlock), so it can read
anything its container holds, and a read-only cache cannot be planted for later
runs. The Volume also spares cold starts a second download.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from scribe_tui.runtime.host_protocol import LaunchSpec, pack_exception, unpack_exception
from scribe_tui.runtime.loading import ModelLoadError, Progress, ResolvedModel, resolve_model
from scribe_tui.runtime.modal_remote import (
    HUB_CACHE,
    RemoteHostLogic,
    download_to_cache,
)
from scribe_tui.runtime.status import DeviceUsage

DEFAULT_GPU = "L4"
SCALEDOWN_WINDOW = 300  # seconds a container stays warm after its last call
LOGIN_HINT = (
    "Modal is not logged in: run `modal token new` (or `modal setup`), "
    "or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET."
)
REMOTE_MODEL_ROOT = "/scribe/model"
HUB_VOLUME = "scribe-hub-cache"  # a persistent Modal Volume: downloads survive the app
IMAGE_BUILD_TIMEOUT = 1800.0  # the first build installs CUDA torch: minutes, not seconds
DOWNLOAD_TIMEOUT = 3600  # seconds for the weights to reach the Volume
CONTAINER_SANDBOX = "sandbox: off (Modal gVisor)"
"""What seals client.run code in the container: nothing but gVisor (no Landlock there)."""


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


# --- the image and the app ----------------------------------------------------------------------


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
    ``remote_root`` in the container; hub ids (``hub``) are downloaded into the
    hub cache Volume first, and loaded from it offline.
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
    hub = sorted({value for value in remote.values() if value and not Path(value).is_dir()})
    for key, value in remote.items():
        if value and Path(value).is_dir():
            target = f"{remote_root}/{len(dirs)}"
            dirs.setdefault(str(Path(value).resolve()), target)
            remote[key] = dirs[str(Path(value).resolve())]
    return {
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pip": pins,
        "local_dirs": dirs,
        "hub": hub,
        "config": {
            # The container never reaches the hub: hub ids come from the Volume.
            "resolved": {**resolved.__dict__, **remote, "local_files_only": True},
            "hub": hub,
            "hub_cache": HUB_CACHE,
            "device": "cuda" if launch.device == "auto" else launch.device,
            "dtype": launch.dtype,
            "mode": launch.mode if launch.mode != "modal" else "local",
            "name": launch.display_name,
        },
    }


class ModalApp(NamedTuple):
    """What :func:`build_modal_app` defines: the app, its GPU class, the download function."""

    app: Any
    cls: Any
    download: Any
    hub: list[str]  # the hub ids ``download`` must fetch before the class can load


def build_modal_app(
    launch: LaunchSpec,
    resolved: ResolvedModel,
    *,
    remote_root: str = REMOTE_MODEL_ROOT,
    hub_token: str | None = None,
) -> ModalApp:
    """The ephemeral Modal app for this model; defining it needs no network."""
    import modal

    spec = image_spec(launch, resolved, remote_root)
    python = spec["python_version"]
    image = modal.Image.debian_slim(python_version=python).pip_install(*spec["pip"])
    for local, remote in spec["local_dirs"].items():
        image = image.add_local_dir(local, remote)
    image = image.add_local_python_source("scribe_tui")
    # A small image of its own: a download need not wait for CUDA torch to build.
    fetcher = (
        modal.Image.debian_slim(python_version=python)
        .pip_install(_pinned("huggingface_hub") or "huggingface_hub")
        .add_local_python_source("scribe_tui")
    )
    volume = modal.Volume.from_name(HUB_VOLUME, create_if_missing=True)
    config, hub = spec["config"], spec["hub"]
    app = modal.App("scribe-model-host")

    # The token's one holder: this function runs only our code, never the agent's.
    @app.function(
        image=fetcher,
        secrets=[modal.Secret.from_dict({"HF_TOKEN": hub_token})] if hub_token and hub else [],
        volumes={HUB_CACHE: volume},
        timeout=DOWNLOAD_TIMEOUT,
        serialized=True,
    )
    def download(repos: list[str]) -> str | None:
        error = download_to_cache(repos, HUB_CACHE)
        # Committed before the class starts: its container mounts what is committed then.
        modal.Volume.from_name(HUB_VOLUME).commit()
        return error

    # serialized=True: the class is built per model (its image depends on it), so it is
    # cloudpickled to the container, which the pinned Python version makes safe.
    @app.cls(
        image=image,
        gpu=launch.gpu or DEFAULT_GPU,
        scaledown_window=SCALEDOWN_WINDOW,
        timeout=3600,
        serialized=True,
        # Agent code runs here: no secret, and a cache it cannot plant files in.
        volumes={HUB_CACHE: volume.with_mount_options(read_only=True)},
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

    return ModalApp(app, ModelHost, download, hub)


# --- local host side -----------------------------------------------------------------------------


BUILD_PHASE = "building the container image (the first build installs CUDA torch: minutes)"
_CANCELLED = "the call was cancelled"


class ModalBackend:
    """The local host's backend in modal mode: forwards calls to the container.

    ``hub_token`` reaches only the download function's secret (see
    :func:`build_modal_app`); without one, the token ``huggingface_hub`` keeps
    on this machine (``hf auth login``) is used, if any.
    """

    def __init__(
        self,
        launch: LaunchSpec,
        *,
        progress: Progress,
        hub_token: str | None = None,
        build_timeout: float = IMAGE_BUILD_TIMEOUT,
    ) -> None:
        self.launch, self.progress = launch, progress
        self.build_timeout = build_timeout
        self.device = self.dtype = ""
        self._hub_token = hub_token
        self._obj: Any = None
        self._usage = DeviceUsage()
        self._last_reply: float | None = None
        # The app's run() (and the output) contexts live as long as the backend: dropped,
        # garbage collection would close them and Modal would stop the app mid-session.
        self._contexts = contextlib.ExitStack()
        # Calls in flight by id (their FunctionCall once spawned), for cancel().
        self._calls: dict[str, Any] = {}
        self._cancelled: set[str] = set()
        self._calls_changed = threading.Condition()

    @property
    def container(self) -> str:
        """``cold`` until a container answers, ``warm`` while one should still be up."""
        if self._last_reply is None or time.monotonic() - self._last_reply > SCALEDOWN_WINDOW:
            return "cold"
        return "warm"

    def start(self) -> None:
        """Connect, build the image, fill the hub cache, then start a container and load.

        Each step is bounded on its own: connecting by ``launch.modal_timeout``, the
        image build by ``build_timeout``, the download by :data:`DOWNLOAD_TIMEOUT`.
        """
        problem = modal_credentials_problem()
        if problem:
            raise ModelLoadError(problem)
        resolved = resolve_model(
            self.launch.model,
            adapter=self.launch.adapter,
            base_model=self.launch.base_model,
            display=self.launch.display_name,
            probe_hub=False,  # the container downloads: whether this machine can is moot
        )
        self.progress("connecting to Modal", 0.05)
        try:
            defined = build_modal_app(self.launch, resolved, hub_token=self._token())
        except ImportError:
            raise ModelLoadError(
                "--mode modal needs the modal package: pip install 'scribe-tui[modal]'."
            ) from None
        client = self._bounded(
            _connect,
            "connecting to Modal",
            self.launch.modal_timeout,
            (0.05, 0.15),
            f"Modal did not answer within {self.launch.modal_timeout:.0f} s: "
            "check the network (api.modal.com) or raise --modal-timeout.",
        )
        self._bounded(
            lambda: _enter(self._contexts, defined.app, client),
            BUILD_PHASE,
            self.build_timeout,
            (0.15, 0.5),
            f"the container image did not build within {self.build_timeout / 60:.0f} min: "
            "see its build log on the app's page at modal.com/apps (a finished build is "
            "reused next time).",
            failed=_build_failure,
        )
        if defined.hub:
            error = self._bounded(
                lambda: defined.download.remote(defined.hub),
                f"downloading {', '.join(defined.hub)} into the Modal volume {HUB_VOLUME}",
                DOWNLOAD_TIMEOUT,
                (0.5, 0.7),
                f"the download did not finish within {DOWNLOAD_TIMEOUT / 60:.0f} min.",
            )
            if error:
                raise ModelLoadError(error)
        self._obj = defined.cls()
        self.progress("starting a GPU container and loading the model", 0.75)
        info = self._reply(self._obj.call.remote("info", {}))["value"]
        self.device = f"modal {self.launch.gpu or DEFAULT_GPU} ({info['device']})"
        self.dtype = info["dtype"]

    def _token(self) -> str | None:
        if self._hub_token:
            return self._hub_token
        try:
            from huggingface_hub import get_token
        except ImportError:
            return None
        return get_token()

    def _bounded(
        self,
        fn: Callable[[], Any],
        phase: str,
        timeout: float,
        span: tuple[float, float],
        timed_out: str,
        failed: Callable[[BaseException], str] | None = None,
    ) -> Any:
        """``fn()`` on a thread, reporting ``phase`` while it runs; one-line errors.

        ``span`` is the progress range the phase moves through; ``failed`` words an
        exception ``fn`` raised (default: ``Modal: <its first line>``).
        """
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
            if waited > timeout:
                raise ModelLoadError(timed_out)
            self.progress(
                f"{phase} ({waited:.0f} s)", span[0] + (span[1] - span[0]) * waited / timeout
            )
            thread.join(0.25)
        if "error" in result:
            error = result["error"]
            raise ModelLoadError((failed or _modal_failure)(error)) from error
        return result.get("value")

    def _reply(self, reply: dict[str, Any]) -> dict[str, Any]:
        self._last_reply = time.monotonic()
        used, total, util, name = reply.pop("usage", (None, None, None, ""))
        self._usage = DeviceUsage(used, total, util, name)
        return reply

    def run(
        self, payload: bytes, stream: Any = None, call_id: str = "", variant: str = "model"
    ) -> dict[str, Any]:
        """Spawn the call and wait for it, so that :meth:`cancel` can stop it remotely."""
        if variant != "model":
            error = LookupError("client.run_base is not available in modal mode yet.")
            return {"ok": False, "kind": "exception", "error": pack_exception(error)}
        with self._calls_changed:
            self._calls[call_id] = None
        try:
            call = self._obj.run.spawn(payload)
            with self._calls_changed:
                self._calls[call_id] = call
                cancelled = call_id in self._cancelled
            if cancelled:  # cancel() came while the call was being spawned
                call.cancel()
            try:
                return self._reply(call.get())
            except Exception:
                if call_id not in self._cancelled:
                    raise
                interrupted = KeyboardInterrupt(_CANCELLED)
                return {"ok": False, "kind": "exception", "error": pack_exception(interrupted)}
        finally:
            with self._calls_changed:
                self._calls.pop(call_id, None)
                self._cancelled.discard(call_id)
                self._calls_changed.notify_all()

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
        """Cancel run ``call_id`` in the container (``FunctionCall.cancel``): True if in flight.

        The container raises in the technique and stays up, its model loaded, for the
        next call. A cancel for a call that has not reached this host yet is not kept.
        """
        if not call_id:
            return False
        with self._calls_changed:
            if call_id not in self._calls:
                return False
            self._cancelled.add(call_id)
            call = self._calls[call_id]
        if call is not None:  # else run() cancels it once spawned
            call.cancel()
        return True

    def wait_stopped(self, call_id: str, timeout: float) -> bool:
        """Whether run ``call_id`` has returned, after waiting up to ``timeout`` s for it."""
        with self._calls_changed:
            return self._calls_changed.wait_for(lambda: call_id not in self._calls, timeout)

    def usage(self) -> DeviceUsage:
        """The last usage a container reported (asking would wake a scaled-down container)."""
        return self._usage

    def close(self) -> None:
        """Stop the app (and its containers) now; the host is shutting down."""
        self._contexts.close()


def _connect() -> Any:
    """A Modal client that has answered once: the network and the token work."""
    import modal

    client = modal.Client.from_env()
    client.hello()
    return client


def _enter(contexts: contextlib.ExitStack, app: Any, client: Any = None) -> Any:
    """Run ``app`` inside ``contexts``, which the backend holds until it closes.

    This creates the app's objects, so it builds the images and the Volume.
    """
    import modal

    contexts.enter_context(modal.enable_output())
    return contexts.enter_context(app.run(client=client))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _modal_failure(exc: BaseException) -> str:
    return f"Modal: {_first_line(exc)}"


def _build_failure(exc: BaseException) -> str:
    """An image build's failure, told as one (not as a network problem), with its log."""
    from modal.exception import ImageBuildError

    if not isinstance(exc, ImageBuildError):
        return _modal_failure(exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = lines[-1] if lines else "no reason given"
    return (
        f"Modal could not build the container image ({cause}): "
        f"see its build log with `modal image logs {exc.image_id}`."
    )
