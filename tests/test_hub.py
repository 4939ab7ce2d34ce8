"""Hub models: downloaded before the sealed host starts, by scribe-tui's own fetch step.

A loopback HTTP server speaks the parts of the Hugging Face hub's API that
huggingface_hub uses to download a snapshot (model info, the file tree, and
``/{repo}/resolve/{revision}/{file}`` with the headers it checks), serving a tiny
GPT-2. ``HF_ENDPOINT`` points at it and ``HF_HOME`` at a temporary folder, so the
real huggingface_hub downloads into a real cache, and real sealed hosts load from it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cloudpickle
import host_fixtures
import pytest

from scribe_tui.runtime.host_process import HostProcess, pid_alive
from scribe_tui.runtime.host_protocol import HostStartError
from scribe_tui.runtime.hub_fetch import wanted_files
from scribe_tui.runtime.interp_client import InterpClient
from scribe_tui.runtime.sandbox import probe
from scribe_tui.runtime.sealed import sealed_kernel
from scribe_tui.runtime.status import HostStatus

tiny_model = host_fixtures.tiny_model
private_runtime_dir = host_fixtures.private_runtime_dir
cloudpickle.register_pickle_by_value(sys.modules[__name__])

sealing = pytest.mark.skipif(
    not probe().sealed, reason=f"this machine cannot seal a host ({probe().label})"
)

REPO, GATED = "someone/tiny-gpt2", "bigcorp/gated-tiny"
TOKEN = "hf_canary_loopback_5e0c"
SHA = "0123456789abcdef0123456789abcdef01234567"
# In the repos but not read by from_pretrained: never downloaded.
EXTRA = {"README.md": b"# tiny\n", "flax_model.msgpack": b"\0" * 64, "original/params.json": b"{}"}


# --- the loopback hub ----------------------------------------------------------------------------


@dataclass
class Hub:
    """What the server serves and what it was asked for."""

    url: str
    repos: dict[str, dict[str, bytes]]
    gated: set[str]
    served: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    # Set: the weights are served only once it is set, so a test sees the download midway.
    hold: threading.Event | None = None


def _oid(data: bytes) -> str:
    """A git blob id, as the hub reports for files outside LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubHandler(BaseHTTPRequestHandler):
    hub: Hub

    def log_message(self, *args: object) -> None:
        return None  # quiet; the test reads hub.served instead

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?")[0]
        self.hub.served.append((path, self.headers.get("Authorization", "")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo = "/".join(parts[2:4])
            files = self.hub.repos.get(repo)
            if files is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            if parts[4:5] == ["tree"]:
                listing = [
                    {"type": "file", "path": n, "size": len(d), "oid": _oid(d)}
                    for n, d in files.items()
                ]
                return self._json(listing, body)
            info = {
                "id": repo,
                "sha": SHA,
                "private": False,
                "gated": "manual" if repo in self.hub.gated else False,
                "siblings": [
                    {"rfilename": n, "size": len(d), "blobId": _oid(d)} for n, d in files.items()
                ],
            }
            return self._json(info, body)
        # /{org}/{name}/resolve/{revision}/{file...}
        repo, rest = "/".join(parts[:2]), parts[2:]
        files = self.hub.repos.get(repo)
        if files is None or rest[:1] != ["resolve"] or len(rest) < 3:
            return self._error(404, "RepoNotFound", "Repository not found")
        name = "/".join(rest[2:])
        if name not in files:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", SHA)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if repo in self.hub.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._error(401, "GatedRepo", f"Access to model {repo} is restricted.")
        data = files[name]
        if body and name == "model.safetensors" and self.hub.hold is not None:
            self.hub.hold.wait(120)  # released by the test; the bound only ends a failed test
        self.send_response(200)
        self.send_header("X-Repo-Commit", SHA)
        self.send_header("ETag", f'"{_oid(data)}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
        return None

    def _json(self, value: object, body: bool) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache and no token, wherever the machine keeps its own."""
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    for name in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN_PATH",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@pytest.fixture
def hub(tiny_model: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    files = {f.name: f.read_bytes() for f in sorted(tiny_model.iterdir()) if f.is_file()}
    files.update(EXTRA)
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    state = Hub(
        f"http://127.0.0.1:{server.server_address[1]}",
        repos={REPO: files, GATED: dict(files)},
        gated={GATED},
    )
    HubHandler.hub = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    yield state
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(
    spec: str, *, sealed: bool, watch: Callable[[HostStatus], None] | None = None
) -> tuple[HostProcess, list[HostStatus]]:
    host = HostProcess(spec, device="cpu", sealed=sealed)
    host.start_sync()
    seen: list[HostStatus] = []

    def progress(status: HostStatus) -> None:
        seen.append(status)
        if watch is not None:
            watch(status)

    try:
        host.wait_ready_sync(timeout=180, on_progress=progress)
    except BaseException:
        host.stop()
        raise
    return host, seen


def shout(model, tokenizer, word):
    return {"word": word, "vocab": len(tokenizer), "layers": model.config.n_layer}


def reach_out(model, tokenizer, port, token_file):
    """What a technique could try from the host: the network, and the token file."""
    import socket

    out = {}
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        out["connect"] = "ok"
    except OSError as exc:
        out["connect"] = type(exc).__name__
    try:
        with open(token_file) as f:
            out["token file"] = "READ " + f.read()
    except OSError as exc:
        out["token file"] = type(exc).__name__
    return out


def _cached_files(repo: str, home: Path) -> set[str]:
    snapshot = home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / SHA
    return {str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if not p.is_dir()}


# --- tests ---------------------------------------------------------------------------------------


@sealing
def test_a_sealed_host_gets_an_uncached_hub_model_downloaded_and_serves_it(
    hub: Hub, hf_home: Path, tiny_model: Path
) -> None:
    (hf_home / "token").write_text(TOKEN)  # as `hf auth login` leaves it
    hub.hold = threading.Event()
    midway: list[HostStatus] = []

    def watch(status: HostStatus) -> None:
        # The small files are in, the weights are held back: the download is midway.
        if status.phase.endswith(": 5 of 6 files"):
            midway.append(status)
            hub.hold.set()  # type: ignore[union-attr]

    host, seen = _start(REPO, sealed=True, watch=watch)
    try:
        with InterpClient(host_file=host.host_file) as client:
            assert client.run(shout, word="hub") == {"word": "hub", "vocab": 23, "layers": 2}
            port = int(hub.url.rsplit(":", 1)[1])
            reached = client.run(reach_out, port=port, token_file=str(hf_home / "token"))
    finally:
        host.stop()
    # The host is sealed: the download cannot have been its own.
    connect = "PermissionError" if probe().network_closed else "ok"
    assert reached == {"connect": connect, "token file": "PermissionError"}
    assert midway, seen
    shown = midway[0].summary()  # what the status bar and the headless lines say
    expected = rf"loading: downloading {REPO} \(1\d\d\.\d kB\): 5 of 6 files \(\d%\)"
    assert re.fullmatch(expected, shown), shown
    assert 0 < midway[0].progress < 0.1 and midway[0].state == "loading", shown
    assert seen[-1].state == "ready"
    # What from_pretrained reads, and nothing else.
    assert _cached_files(REPO, hf_home) == {f.name for f in tiny_model.iterdir()}
    assert not [p for p, _ in hub.served if p.endswith(tuple(EXTRA))]


@pytest.mark.parametrize(
    ("spec", "endpoint", "expected"),
    [
        (
            GATED,
            "hub",
            f"'{GATED}' is a gated model: accept its licence at HUB/{GATED} with your Hugging "
            "Face account, then set HF_TOKEN to a token of that account (or run `hf auth login`).",
        ),
        (
            "nobody/no-such-model",
            "hub",
            "Model 'nobody/no-such-model' not found on the Hugging Face hub: no such repository "
            "(a private one needs HF_TOKEN or `hf auth login`).",
        ),
        (
            REPO,
            "closed",
            f"Model '{REPO}' not found: it is not a local directory and the Hugging Face hub is "
            "unreachable (offline). Use organism:taboo or a local path.",
        ),
    ],
    ids=["gated-without-token", "no-such-repo", "hub-unreachable"],
)
@sealing
def test_a_model_that_cannot_be_downloaded_fails_in_one_line(
    hub: Hub,
    hf_home: Path,
    spec: str,
    endpoint: str,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if endpoint == "closed":
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    host = HostProcess(spec, device="cpu", sealed=True)
    host.start_sync()
    try:
        with pytest.raises(HostStartError) as info:
            host.wait_ready_sync(timeout=180)
        assert host.status().message == str(info.value)
        log = host.log_file.read_text() if host.log_file.exists() else ""
    finally:
        host.stop()
    assert str(info.value) == expected.replace("HUB", hub.url)
    assert "Traceback" not in log, log
    assert "model.safetensors" not in _cached_files(spec, hf_home)


@sealing
def test_a_gated_model_downloads_with_hf_token(
    hub: Hub, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    host, _seen = _start(GATED, sealed=True)
    try:
        with InterpClient(host_file=host.host_file) as client:
            assert client.run(shout, word="gated")["layers"] == 2
    finally:
        host.stop()
    weights = [auth for p, auth in hub.served if p.endswith("/model.safetensors")]
    assert weights and set(weights) == {f"Bearer {TOKEN}"}
    assert "model.safetensors" in _cached_files(GATED, hf_home)


KERNEL_THIEF = textwrap.dedent("""
    import os
    from scribe_tui.runtime.interp_client import InterpClient

    client = InterpClient()
    host_pid = client.status().pid
    for path in (TOKEN_FILE, f"/proc/{host_pid}/environ"):
        try:
            data = open(path, "rb").read()
            print("READ", path, TOKEN.encode() in data)
        except OSError as exc:
            print("refused", type(exc).__name__)

    def host_environ(model, tokenizer):
        import os
        return dict(os.environ)

    print("kernel env has it:", TOKEN in repr(dict(os.environ)))
    print("host env has it:", TOKEN in repr(client.run(host_environ)))
""")


@sealing
async def test_the_token_is_out_of_reach_of_a_sealed_kernel_and_the_host(
    hub: Hub, hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    token_file = hf_home / "token"
    token_file.write_text(TOKEN)
    host, _seen = _start(GATED, sealed=True)
    try:
        cwd = tmp_path / "notebooks"
        cwd.mkdir()
        kernel = sealed_kernel(host, probe(), cwd)
        try:
            code = KERNEL_THIEF.replace("TOKEN_FILE", repr(str(token_file)))
            result = await kernel.execute(code.replace("TOKEN", repr(TOKEN)), timeout=120)
        finally:
            await kernel.shutdown()
        pid = host.pid
        # Unsealed and as the same user (or root), this test may look: the host's
        # environment was never given the token (it came by stdin only to the fetch step).
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except PermissionError:
            environ = b""
        assert pid_alive(pid)
    finally:
        host.stop()
    printed = "".join(o.get("text", "") for o in result.outputs)
    assert printed.splitlines() == [
        "refused PermissionError",
        "refused PermissionError",
        "kernel env has it: False",
        "host env has it: False",
    ], result.outputs
    assert TOKEN.encode() not in environ


@sealing
def test_a_cached_model_loads_with_no_hub_at_all(
    tiny_model: Path, hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache of its own (HF_HUB_CACHE, apart from HF_HOME), and nothing listening."""
    cache = tmp_path / "big-disk" / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(tiny_model, repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    host, seen = _start(REPO, sealed=True)
    try:
        with InterpClient(host_file=host.host_file) as client:
            assert client.run(shout, word="cached")["vocab"] == 23
    finally:
        host.stop()
    assert not any(s.phase.startswith("downloading") for s in seen)


def test_only_what_from_pretrained_reads_is_downloaded() -> None:
    sizes = {
        "config.json": 1,
        "model-00001-of-00002.safetensors": 5,
        "model-00002-of-00002.safetensors": 5,
        "model.safetensors.index.json": 1,
        "consolidated.safetensors": 10,
        "pytorch_model.bin": 10,
        "tokenizer.model": 1,
        "merges.txt": 1,
        "chat_template.jinja": 1,
        "original/consolidated.00.pth": 10,
        "README.md": 1,
        "onnx/model.onnx": 10,
    }
    assert sorted(wanted_files(sizes)) == [
        "chat_template.jinja",
        "config.json",
        "merges.txt",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.model",
    ]
    pickles = {"config.json": 1, "pytorch_model.bin": 10, "vocab.json": 1}
    assert sorted(wanted_files(pickles)) == ["config.json", "pytorch_model.bin", "vocab.json"]


def test_a_plain_notebook_client_downloads_before_it_starts_a_host(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside an investigation InterpClient starts the host itself: the same fetch step."""
    from scribe_tui.paths import state_dir

    try:
        with pytest.raises(HostStartError) as info:
            InterpClient(model=GATED, device="cpu", timeout=180)
        assert str(info.value).startswith(f"'{GATED}' is a gated model: accept its licence")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        with InterpClient(model=GATED, device="cpu", timeout=180) as client:
            assert client.run(shout, word="notebook")["layers"] == 2
    finally:
        for host_file in (state_dir() / "hosts").glob("*.json"):
            host_fixtures.kill_host(host_file)
    assert f"Starting the model host for {GATED}…" in capsys.readouterr().out


async def test_an_investigation_on_an_uncached_hub_model_receipts_the_downloaded_weights(
    hub: Hub, hf_home: Path, tmp_path: Path
) -> None:
    """The weights are hashed once downloaded, not while the download is under way."""
    from scribe_tui.agent.launch import RunSettings, Workbench
    from scribe_tui.agent.loop import InvestigationConfig
    from scribe_tui.agent.scripted import ScriptedProvider
    from scribe_tui.runtime.receipt import directory_digest

    settings = RunSettings(
        task="find the secret",
        agent="scripted",
        model=REPO,
        notebooks_dir=tmp_path / "notebooks",
        device="cpu",
        config=InvestigationConfig(checkpoint_every=0),
    )
    bench = await Workbench.open(settings, ScriptedProvider([]))
    try:
        weights = bench.receipt["weights"]
    finally:
        await bench.close()
    snapshot = next((hf_home / "hub").glob(f"models--{REPO.replace('/', '--')}/snapshots/*"))
    assert weights is not None and weights["revision"] == snapshot.name
    assert weights["sha256"] == directory_digest(snapshot)["sha256"]
