"""Modal mode offline: credentials, a bounded wait without network, the class body via .local()."""

from __future__ import annotations

import contextlib
import pickle
import socket
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cloudpickle
import host_fixtures
import pytest

from scribe_tui.runtime import host_process
from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.host_protocol import HostStartError, LaunchSpec
from scribe_tui.runtime.loading import resolve_model
from scribe_tui.runtime.modal_host import (
    LOGIN_HINT,
    ModalBackend,
    RemoteHostLogic,
    _enter,
    build_modal_app,
    image_spec,
    modal_credentials_problem,
)

# Shared host-test fixtures: a tiny GPT-2, and a private runtime dir for host files.
tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def technique(model, tokenizer, word):
    print("in the container:", word)
    return {"layers": model.config.n_layer, "ids": tokenizer(word).input_ids}


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
    bad = logic.call("generate", {"prompt": 42})
    assert not bad["ok"] and bad["error"]["type"] == "TypeError"

    # The local host's side of the forwarding, with the Modal handle replaced by the logic.
    backend = ModalBackend(launch, progress=lambda phase, fraction: None)
    backend._obj = SimpleNamespace(
        run=SimpleNamespace(remote=logic.run), call=SimpleNamespace(remote=logic.call)
    )
    assert backend.container == "cold"
    assert backend.run(cloudpickle.dumps((technique, {"word": "hint"})))["ok"]
    assert backend.container == "warm" and backend.usage().memory_used
    assert isinstance(backend.chat(messages="hello", max_new_tokens=2), str)
    assert backend.info()["mode"] == "modal"
    assert backend.cancel("any-call") is False


def test_modal_class_body_runs_offline_through_local(mounted, monkeypatch) -> None:
    launch, model_dir, root = mounted
    loads = []
    real_load = RemoteHostLogic.load
    monkeypatch.setattr(RemoteHostLogic, "load", lambda self: loads.append(1) or real_load(self))
    app, cls = build_modal_app(launch, resolve_model(str(model_dir)), remote_root=root)
    assert app.name == "scribe-model-host"
    obj = cls()
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
    app, _cls = build_modal_app(launch, resolve_model(str(model_dir)), remote_root=root)
    backend = ModalBackend(launch, progress=lambda phase, fraction: None)
    _enter(backend._contexts, app)
    gc.collect()
    assert ended == []  # the session goes on
    backend.close()
    assert ended == ["app", "output"]  # stopped on shutdown, in reverse order of entry
