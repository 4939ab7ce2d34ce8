"""``scribe-tui bench --backend modal`` offline: the login check, what reaches the container
(no secret), a real bench whose agents and kernels run here, and Modal failing at once."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_bench import bench

from scribe_tui.bench.grid import build_grid, expand, model_spec
from scribe_tui.bench.modal_backend import DEFAULT_JOBS, ModalBenchRunner, ModalUnavailable
from scribe_tui.bench.report import load_results
from scribe_tui.runtime.host_process import HostProcess, host_env
from scribe_tui.runtime.loading import resolve_model
from scribe_tui.runtime.modal_host import CONTAINER_SANDBOX, build_modal_app
from scribe_tui.runtime.sealed import sandbox_state

pytestmark = pytest.mark.slow

CANARIES = {
    "ANTHROPIC_API_KEY": "sk-ant-canary",
    "HF_TOKEN": "hf_canary",
    "MODAL_TOKEN_ID": "ak-canary",
    "MODAL_TOKEN_SECRET": "as-canary",
}


@pytest.fixture
def no_modal_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_OAUTH_REFRESH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "missing.toml"))


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))


def test_no_modal_token_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, no_modal_token: None
) -> None:
    run = bench("--backend", "modal", "--axis", "organism=taboo", "--out", "o", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "modal token new" in run.stderr, run.stderr
    assert not (tmp_path / "o").exists()
    dry = bench(
        "--backend", "modal", "--axis", "organism=taboo", "--out", "o", "--dry-run", cwd=tmp_path
    )  # fmt: skip
    assert dry.returncode == 0 and f"{DEFAULT_JOBS} at once" in dry.stdout, dry.stderr
    assert not (tmp_path / "o").exists()


def test_no_secret_reaches_the_container_and_the_agents_stay_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container is the model host's GPU class alone: no Secret, no key in its config.
    The agent loop (with the Anthropic key) and the kernels are this machine's."""
    import modal
    from modal._utils.async_utils import synchronizer

    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    made: list[dict[str, Any]] = []
    real = modal.Secret.from_dict

    def recorded(env_dict: dict[str, Any], **kwargs: Any) -> Any:
        made.append(dict(env_dict))
        return real(env_dict, **kwargs)

    monkeypatch.setattr(modal.Secret, "from_dict", recorded)
    runs = expand(build_grid({}, [("agent", ["claude"]), ("organism", ["taboo"])]), 1)
    runner = ModalBenchRunner(tmp_path / "out", runs, jobs=2, gpu="T4")
    host = runner.modal_host(runs[0])
    assert isinstance(host, HostProcess)
    assert (host.launch.mode, host.launch.gpu) == ("modal", "T4")
    assert host.sealed == sandbox_state(True).sealed  # its kernels are sealed here
    assert runner._settings(runs[0]).mode == "modal" and runner._settings(runs[0]).agent == "claude"
    # What the host defines on Modal, with the hub token it is handed as spawn_host hands it.
    defined = build_modal_app(
        host.launch, resolve_model(model_spec("taboo")), hub_token=CANARIES["HF_TOKEN"]
    )
    serving = defined.cls._get_class_service_function()._spec_
    assert serving.secrets == [] and defined.download._spec_.secrets == []  # no hub download
    assert made == []
    assert not any(synchronizer._translate_in(s) for s in serving.secrets)
    # The local host process keeps Modal's token (it calls Modal) and nothing else secret.
    env = host_env("modal")
    assert "ANTHROPIC_API_KEY" not in env and "HF_TOKEN" not in env
    assert env["MODAL_TOKEN_ID"] == "ak-canary"


class LocalStandIn(ModalBenchRunner):
    """The bench with its Modal-hosted model replaced by the same model on this machine
    (Modal is unreachable here), and its runs told so (a kernel's client checks the host's
    mode); the rest is the modal bench's own code."""

    def modal_host(self, run: Any) -> HostProcess:
        host = super().modal_host(run)
        return HostProcess(
            host.launch.model, mode="local", sealed=host.sealed, allow_network=host.allow_network
        )

    def _settings(self, run: Any) -> Any:
        return dataclasses.replace(super()._settings(run), mode="local")


async def test_a_modal_bench_runs_agents_here_and_says_the_container_is_unsealed(
    tmp_path: Path, runtime_dir: None
) -> None:
    runs = expand(build_grid({}, [("agent", ["autopilot"]), ("organism", ["taboo"])]), 2)
    out = tmp_path / "out"
    events: list[dict[str, Any]] = []
    rows = await LocalStandIn(out, runs, jobs=2, gpu="T4", on_event=events.append).run()

    starting = [e for e in events if e["type"] == "host_starting"]
    assert [e["organism"] for e in starting] == [
        f"taboo on Modal T4; client.run there: {CONTAINER_SANDBOX}"
    ]
    assert events[-1]["model_loads"] == 1  # one GPU host for the organism, shared
    assert load_results(out) == rows and len(rows) == 2
    kernel_seal = sandbox_state(True).label
    for row in rows:
        assert row["scored"] is True and row["correct"] is True, row
        assert row["host_sandbox"] == "sandbox: off (Modal gVisor)"
        assert row["sandbox"] == kernel_seal  # the kernel ran here, sealed as in a local bench
        nbformat.validate(nbformat.read(out / row["notebook"], as_version=4))

    events.clear()
    assert await LocalStandIn(out, runs, jobs=2, on_event=events.append).run() == []
    assert events[0] == {"type": "bench_started", "total": 2, "done": 2, "jobs": 2}
    assert not [e for e in events if e["type"] == "host_starting"]


async def test_modal_unreachable_stops_the_bench_at_once_with_one_line(
    tmp_path: Path, runtime_dir: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real modal host against a server that never answers: no run starts."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{blackhole.getsockname()[1]}")
    runs = expand(build_grid({}, [("organism", ["taboo", "belief"])]), 1)
    events: list[dict[str, Any]] = []
    runner = ModalBenchRunner(
        tmp_path / "out", runs, jobs=2, modal_timeout=2, on_event=events.append
    )
    try:
        with pytest.raises(ModalUnavailable) as info:
            await runner.run()
    finally:
        blackhole.close()
    assert str(info.value) == (
        "Modal did not answer within 2 s: check the network (api.modal.com) "
        "or raise --modal-timeout."
    )
    assert not [e for e in events if e["type"] == "run_started"]
    assert load_results(tmp_path / "out") == []
    assert all(
        host._proc is None or host._proc.poll() is not None for host in runner._hosts.values()
    )
