"""Modal mode offline: credentials, a bounded wait without network, the class body via .local().

Modal is unreachable here, so its edge is replaced where a test needs it to answer: its
client, ``App.run`` (where images build), ``Secret.from_dict`` (recorded, still real),
and a spawned call (:class:`FakeCall`, the container's work on a thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import pickle
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import cloudpickle
import host_fixtures
import pytest

from scribe_tui.runtime import host_process
from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.host_protocol import HostStartError, LaunchSpec
from scribe_tui.runtime.loading import ModelLoadError, ResolvedModel, resolve_model
from scribe_tui.runtime.modal_host import (
    BUILD_PHASE,
    HUB_CACHE,
    LOGIN_HINT,
    ModalBackend,
    RemoteHostLogic,
    _enter,
    build_modal_app,
    image_spec,
    modal_credentials_problem,
)
from scribe_tui.runtime.modal_remote import GATED_HINT, download_to_cache

# Shared host-test fixtures: a tiny GPT-2, and a private runtime dir for host files.
tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def technique(model, tokenizer, word):
    print("in the container:", word)
    return {"layers": model.config.n_layer, "ids": tokenizer(word).input_ids}


def runaway(model, tokenizer):
    """A technique that would hold the GPU for a minute."""
    for _ in range(1200):
        time.sleep(0.05)
    return "finished"


class FakeCall:
    """Modal's FunctionCall at its edge: the container's work runs on a thread, and
    ``cancel()`` raises InputCancellation in it, as Modal does in a cancelled input's
    container; ``get()`` then raises, as for an input that did not succeed."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.cancels = 0
        self._result: dict[str, Any] = {}
        self._ident: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(fn, args), daemon=True)
        self._thread.start()
        self._started.wait()

    def _work(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._ident = threading.get_ident()
        self._started.set()
        try:
            self._result["value"] = fn(*args)
        except BaseException as exc:
            self._result["error"] = exc

    def get(self) -> Any:
        import modal

        self._thread.join()
        if self.cancels:
            raise modal.exception.RemoteError("the input was cancelled")
        if "error" in self._result:
            raise self._result["error"]
        return self._result["value"]

    def cancel(self, terminate_containers: bool = False) -> None:
        import modal

        self.cancels += 1
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self._ident), ctypes.py_object(modal.exception.InputCancellation)
        )


def forwarding_to(logic: RemoteHostLogic, spawned: list[FakeCall] | None = None) -> Any:
    """What ``cls()`` gives the backend, with each remote call run by ``logic`` here."""

    def spawn(payload: bytes) -> FakeCall:
        call = FakeCall(logic.run, payload)
        if spawned is not None:
            spawned.append(call)
        return call

    return SimpleNamespace(
        run=SimpleNamespace(spawn=spawn), call=SimpleNamespace(remote=logic.call)
    )


def test_credentials_come_from_env_or_modal_toml(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    assert modal_credentials_problem({}, missing) == LOGIN_HINT
    assert "modal token new" in LOGIN_HINT and "modal setup" in LOGIN_HINT
    assert (
        modal_credentials_problem({"MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-1"}, missing)
        is None
    )
    config = tmp_path / "modal.toml"
    config.write_text('[work]\ntoken_id = "ak-1"\ntoken_secret = "as-1"\nactive = true\n')
    assert modal_credentials_problem({}, config) is None
    assert modal_credentials_problem({"MODAL_CONFIG_PATH": str(config)}) is None
    config.write_text("[work]\nactive = true\n")
    assert modal_credentials_problem({}, config) == LOGIN_HINT


def test_no_token_fails_at_once_without_network_or_a_process(monkeypatch, tmp_path: Path) -> None:
    for var in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_OAUTH_REFRESH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "missing.toml"))
    # "At once": before any connection, name lookup or host process is even attempted.
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise OSError(f"the test forbids {what}")

        return attempt

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(host_process, "spawn_host", refuse("spawn_host"))
    hp = HostProcess("organism:taboo", mode="modal")
    with pytest.raises(HostStartError) as info:
        hp.start_sync()
    assert str(info.value) == LOGIN_HINT
    assert attempts == [] and hp.pid is None


def test_token_without_network_waits_visibly_then_fails(monkeypatch, tiny_model: Path) -> None:
    blackhole = socket.socket()  # accepts connections (backlog) and never answers
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{blackhole.getsockname()[1]}")
    hp = HostProcess(str(tiny_model), mode="modal", modal_timeout=2)
    hp.start_sync()
    seen = []
    try:
        # The 2 s Modal timeout, not this outer one, ends the wait: the message says which.
        with pytest.raises(HostStartError) as info:
            hp.wait_ready_sync(timeout=60, on_progress=seen.append)
        blackhole.setblocking(False)
        blackhole.accept()[0].close()  # the host did try this (silent) server
    finally:
        hp.stop()
        blackhole.close()
    assert str(info.value) == (
        "Modal did not answer within 2 s: check the network (api.modal.com) "
        "or raise --modal-timeout."
    )
    assert any(s.phase.startswith("connecting to Modal") for s in seen)


def test_image_pins_this_python_and_these_libraries(tiny_model: Path) -> None:
    launch = LaunchSpec(model=str(tiny_model), mode="modal", gpu="A100")
    spec = image_spec(launch, resolve_model(str(tiny_model)))
    assert spec["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    torch_version = metadata.version("torch").split("+")[0]
    assert f"torch=={torch_version}" in spec["pip"]
    assert f"cloudpickle=={metadata.version('cloudpickle')}" in spec["pip"]
    # What a notebook function may refer to unpickles there, at the versions it had here.
    for package in ("numpy", "matplotlib", "accelerate"):
        assert f"{package}=={metadata.version(package)}" in spec["pip"], spec["pip"]
    assert all("==" in pin for pin in spec["pip"]) and len(set(spec["pip"])) == len(spec["pip"])
    assert spec["local_dirs"] == {str(tiny_model.resolve()): "/scribe/model/0"}
    resolved = spec["config"]["resolved"]
    assert resolved["path"] == resolved["tokenizer_path"] == "/scribe/model/0"
    assert spec["config"]["device"] == "cuda"


@pytest.fixture(scope="module")
def mounted(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LaunchSpec, Path, str]:
    """The container's model mount, simulated: a symlink where the image would put the model."""
    root = tmp_path_factory.mktemp("mnt")
    (root / "0").symlink_to(tiny_model)
    return (
        LaunchSpec(model=str(tiny_model), mode="modal", device="cpu", dtype="float32"),
        tiny_model,
        str(root),
    )


def test_remote_logic_runs_techniques_and_returns_output(mounted) -> None:
    launch, model_dir, root = mounted
    config = image_spec(launch, resolve_model(str(model_dir)), root)["config"]
    logic = RemoteHostLogic(config)
    logic.load()
    reply = logic.run(cloudpickle.dumps((technique, {"word": "moon"})))
    assert reply["ok"] and pickle.loads(reply["value"]) == {"layers": 2, "ids": [10]}
    assert reply["stdout"] == "in the container: moon\n"  # no live stream: returned with the reply
    assert len(reply["usage"]) == 4 and reply["usage"][0] > 0
    assert logic.call("info", {})["value"]["layers"] == 2

    def where_from(model, tokenizer):
        return model.config._name_or_path, tokenizer.name_or_path

    # The folder the weights came from can spell the secret: the container shows the name.
    shown = pickle.loads(logic.run(cloudpickle.dumps((where_from, {})))["value"])
    assert shown == (config["name"], config["name"]) and str(model_dir) not in str(shown)
    bad = logic.call("generate", {"prompt": 42})
    assert not bad["ok"] and bad["error"]["type"] == "TypeError"

    # The local host's side of the forwarding, with the Modal handle replaced by the logic.
    backend = ModalBackend(launch, progress=lambda phase, fraction: None)
    backend._obj = forwarding_to(logic)
    assert backend.container == "cold"
    assert backend.run(cloudpickle.dumps((technique, {"word": "hint"})))["ok"]
    assert backend.container == "warm" and backend.usage().memory_used
    assert isinstance(backend.chat(messages="hello", max_new_tokens=2), str)
    assert backend.info()["mode"] == "modal"
    assert backend.cancel("any-call") is False


@pytest.mark.filterwarnings("ignore:.*mounted Volume")  # .local() has no Volume: none needed
def test_modal_class_body_runs_offline_through_local(mounted, monkeypatch) -> None:
    launch, model_dir, root = mounted
    loads = []
    real_load = RemoteHostLogic.load
    monkeypatch.setattr(RemoteHostLogic, "load", lambda self: loads.append(1) or real_load(self))
    defined = build_modal_app(launch, resolve_model(str(model_dir)), remote_root=root)
    assert defined.app.name == "scribe-model-host" and defined.hub == []
    obj = defined.cls()
    info = obj.call.local("info", {})  # runs the @modal.enter() hook first, locally
    assert info["ok"] and info["value"]["parameters"] > 0
    reply = obj.run.local(cloudpickle.dumps((technique, {"word": "secret"})))
    assert pickle.loads(reply["value"]) == {"layers": 2, "ids": [7]}
    assert obj.call.local("chat", {"messages": "hi", "max_new_tokens": 2})["ok"]
    assert loads == [1]  # @modal.enter() ran once for three calls


def test_the_app_outlives_a_garbage_collection_and_stops_with_the_backend(
    mounted, monkeypatch
) -> None:
    """Modal's run() and enable_output() are generator context managers: one dropped after
    __enter__ is closed by the next collection, and Modal then stops the app mid-session.
    Modal's runner is replaced at its edge by context managers that record when they end."""
    import gc

    import modal

    ended: list[str] = []

    def recorded(name: str) -> Any:
        @contextlib.contextmanager
        def context(*args: Any, **kwargs: Any) -> Iterator[None]:
            try:
                yield None
            finally:
                ended.append(name)

        return context

    monkeypatch.setattr(modal, "enable_output", recorded("output"))
    monkeypatch.setattr(modal.App, "run", recorded("app"))
    launch, model_dir, root = mounted
    defined = build_modal_app(launch, resolve_model(str(model_dir)), remote_root=root)
    backend = ModalBackend(launch, progress=lambda phase, fraction: None)
    _enter(backend._contexts, defined.app)
    gc.collect()
    assert ended == []  # the session goes on
    backend.close()
    assert ended == ["app", "output"]  # stopped on shutdown, in reverse order of entry


def test_cancel_stops_the_remote_call_through_function_call_cancel(mounted) -> None:
    """A runaway call is cancelled in the container (FunctionCall.cancel), not left holding
    the GPU; the host's watchdog sees it stop; the container serves the next call."""
    launch, model_dir, root = mounted
    logic = RemoteHostLogic(image_spec(launch, resolve_model(str(model_dir)), root)["config"])
    logic.load()
    backend = ModalBackend(launch, progress=lambda phase, fraction: None)
    spawned: list[FakeCall] = []
    backend._obj = forwarding_to(logic, spawned)
    replies: list[dict[str, Any]] = []
    caller = threading.Thread(
        target=lambda: replies.append(backend.run(cloudpickle.dumps((runaway, {})), call_id="c1"))
    )
    caller.start()
    deadline = time.monotonic() + 60
    while not spawned and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.cancel("someone-else") is False
    assert backend.cancel("c1") is True
    assert backend.wait_stopped("c1", 60)  # well before the minute the technique wanted
    caller.join(60)
    assert spawned[0].cancels == 1
    (reply,) = replies
    assert not reply["ok"] and reply["error"]["type"] == "KeyboardInterrupt"
    assert "cancelled" in reply["error"]["message"]
    assert backend.cancel("c1") is False  # finished: nothing left to cancel
    after = backend.run(cloudpickle.dumps((technique, {"word": "moon"})), call_id="c2")
    assert pickle.loads(after["value"]) == {"layers": 2, "ids": [10]}


def test_the_hub_token_reaches_only_the_download_functions_secret(monkeypatch) -> None:
    """Agent code runs in the GPU class: neither its secrets nor its environment hold the
    token, which only the download function (our code alone) gets, as a Secret."""
    import modal
    from modal._utils.async_utils import synchronizer

    made: dict[int, dict[str, Any]] = {}
    real = modal.Secret.from_dict

    def recorded(env_dict: dict[str, Any], **kwargs: Any) -> Any:
        secret = real(env_dict, **kwargs)
        made[id(synchronizer._translate_in(secret))] = dict(env_dict)
        return secret

    monkeypatch.setattr(modal.Secret, "from_dict", recorded)
    monkeypatch.setenv("HF_TOKEN", "hf_canary_env")  # the host's own, if it had one
    gated = ResolvedModel("org/gated-7b", "org/gated-7b", "org/gated-7b")
    launch = LaunchSpec(model="org/gated-7b", mode="modal")
    defined = build_modal_app(launch, gated, hub_token="hf_canary")
    assert defined.hub == ["org/gated-7b"]
    download = defined.download._spec_
    serving = defined.cls._get_class_service_function()._spec_
    assert [made[id(s)] for s in download.secrets] == [{"HF_TOKEN": "hf_canary"}]
    assert serving.secrets == [] or all(
        "hf_canary" not in str(made.get(id(s))) for s in serving.secrets
    )
    # The same persistent Volume as the hub cache: written by the download, read-only here.
    (cache,) = serving.volumes.values()
    assert list(serving.volumes) == list(download.volumes) == [HUB_CACHE]
    assert cache._mount_options.read_only
    assert download.volumes[HUB_CACHE]._mount_options is None  # writable
    assert serving.gpus == "L4" and download.gpus is None
    config = image_spec(launch, gated)["config"]
    assert config["hub"] == ["org/gated-7b"] and config["resolved"]["local_files_only"]
    assert "hf_canary" not in repr(config)
    without = build_modal_app(launch, gated, hub_token=None)
    assert without.download._spec_.secrets == []


class _GatedHub(BaseHTTPRequestHandler):
    """The hub's answer for a gated repo whose licence this token's account never accepted."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _GatedHub.seen.append(self.headers.get("authorization"))
        self.send_response(403 if self.headers.get("authorization") else 401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model org/gated-7b is restricted.")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_a_gated_model_without_access_says_accept_the_licence_and_set_hf_token(
    monkeypatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)  # no token file here
    try:
        monkeypatch.delenv("HF_TOKEN", raising=False)
        error = download_to_cache(["org/gated-7b"], str(tmp_path))
        assert error == GATED_HINT.format(repo="org/gated-7b")
        assert error.count("\n") == 0 and "HF_TOKEN" in error and "licence" in error
        assert _GatedHub.seen and not any(_GatedHub.seen)
        monkeypatch.setenv("HF_TOKEN", "hf_canary")  # as the download function's secret sets it
        error = download_to_cache(["org/gated-7b"], str(tmp_path))
        assert error is not None and "no access" in error and "licence" in error
        assert _GatedHub.seen[-1] == "Bearer hf_canary"  # the token reached the download
    finally:
        server.shutdown()


def test_the_container_loads_a_hub_model_from_the_volume_offline(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The hub cache as the download leaves it on the Volume; the class resolves the id there."""
    import shutil

    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    launch = LaunchSpec(model="org/tiny", mode="modal", device="cpu", dtype="float32")
    config = image_spec(launch, ResolvedModel("org/tiny", "org/tiny", "org/tiny"))["config"]
    logic = RemoteHostLogic({**config, "hub_cache": str(tmp_path / "hub")})
    logic.load()
    reply = logic.run(cloudpickle.dumps((technique, {"word": "moon"})))
    assert pickle.loads(reply["value"]) == {"layers": 2, "ids": [10]}


@pytest.fixture
def modal_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Modal token, and Modal's client answering at once (the edge: no network here)."""
    import modal

    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setattr(modal.Client, "from_env", lambda: SimpleNamespace(hello=lambda: None))
    monkeypatch.setattr(modal, "enable_output", contextlib.nullcontext)


def test_the_image_build_has_its_own_timeout_and_shows_progress(
    modal_answers: None, monkeypatch, tiny_model: Path
) -> None:
    """Building (inside App.run) outlasts the 2 s connect bound, is reported as it goes,
    and is bounded by the build timeout alone."""
    import modal

    release = threading.Event()

    @contextlib.contextmanager
    def slow_build(*args: Any, **kwargs: Any) -> Iterator[None]:
        release.wait(30)  # a build that takes its time
        yield None

    monkeypatch.setattr(modal.App, "run", slow_build)
    seen: list[tuple[str, float]] = []
    launch = LaunchSpec(model=str(tiny_model), mode="modal", modal_timeout=0.5)
    backend = ModalBackend(
        launch, progress=lambda phase, fraction: seen.append((phase, fraction)), build_timeout=3
    )
    try:
        with pytest.raises(ModelLoadError) as info:
            backend.start()
    finally:
        release.set()
    assert str(info.value).startswith("the container image did not build within")
    assert "network" not in str(info.value)
    building = [(p, f) for p, f in seen if p.startswith(BUILD_PHASE)]
    assert len(building) > 4 and building[-1][0].endswith("(3 s)"), seen
    fractions = [f for _, f in building]
    assert fractions == sorted(fractions) and fractions[0] >= 0.15 and fractions[-1] <= 0.5


def test_a_failed_image_build_is_told_as_a_build_failure_with_its_log(
    modal_answers: None, monkeypatch, tiny_model: Path
) -> None:
    import modal

    def broken_build(*args: Any, **kwargs: Any) -> Any:
        raise modal.exception.ImageBuildError(
            "Image build for im-42 failed with the exception:\n"
            "ERROR: No matching distribution found for torch==99.0\n",
            "im-42",
        )

    monkeypatch.setattr(modal.App, "run", broken_build)
    backend = ModalBackend(
        LaunchSpec(model=str(tiny_model), mode="modal"), progress=lambda phase, fraction: None
    )
    with pytest.raises(ModelLoadError) as info:
        backend.start()
    assert str(info.value) == (
        "Modal could not build the container image (ERROR: No matching distribution found "
        "for torch==99.0): see its build log with `modal image logs im-42`."
    )


async def test_a_modal_host_gets_hours_to_be_ready_a_local_one_minutes() -> None:
    """The first Modal start builds a CUDA image and fetches weights: 600 s would cut it off."""
    from scribe_tui.runtime.sealed import HOST_READY_TIMEOUT, MODAL_READY_TIMEOUT, start_host

    class Host:
        def __init__(self, mode: str) -> None:
            self.launch = LaunchSpec(model="org/m", mode=mode)
            self.waited: float | None = None

        async def start(self) -> None:
            pass

        async def wait_ready(self, timeout: float, on_progress: object) -> None:
            self.waited = timeout

    modal, local = Host("modal"), Host("local")
    await start_host(modal)  # type: ignore[arg-type]
    await start_host(local)  # type: ignore[arg-type]
    assert (modal.waited, local.waited) == (MODAL_READY_TIMEOUT, HOST_READY_TIMEOUT)
    assert MODAL_READY_TIMEOUT >= 3600 > HOST_READY_TIMEOUT
