"""Sealed investigations: the agent's code, in the kernel or shipped to the host, finds no secret.

The thief test plants canaries (API keys, a hub token, Modal and config files in a
temporary HOME, an answer key, a model directory named after the secret) and runs
cells that try every route we know through the real investigation loop, with a
real model host and a real sealed kernel. Whatever the cells read goes to a dump
file in the notebook directory; no canary may appear there, nor in the notebook or
the transcript. Ordinary research code must still work in the same kernel.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from host_fixtures import build_tiny_model

from scribe_tui.agent.launch import RunSettings, Workbench
from scribe_tui.agent.loop import InvestigationConfig
from scribe_tui.agent.scripted import SESSION, ScriptedProvider, tool
from scribe_tui.runtime.notebook import files_folder
from scribe_tui.runtime.sandbox import (
    POLICY_ENV,
    base_policy,
    gpu_devices,
    probe,
    sandboxed_argv,
    writer_gone,
)

pytestmark = pytest.mark.skipif(
    not probe().sealed, reason=f"this machine cannot seal a kernel ({probe().label})"
)

CANARIES = {
    "ANTHROPIC_API_KEY": "sk-ant-canary-4f1e9c",
    "HF_TOKEN": "hf_canary_7b2d11",
    "MODAL_TOKEN_SECRET": "as-canary-modal-env-93ac",
}
MODAL_FILE_CANARY = "as-canary-modal-file-5d20"
CONFIG_CANARY = "canary-config-model-0e77"
KEY_CANARY = "canary-answer-key-b61f"
SECRET_DIR = "quokkafrost"  # the model directory's name: the secret itself (in no word list)

# Everything the thief cells read is appended to this file (in the notebook directory).
STEAL = textwrap.dedent("""
    import ctypes, glob, json, os, pathlib, subprocess, sys
    DUMP = open("stolen.txt", "a")
    def grab(label, read):
        try:
            data = read()
        except Exception as exc:
            DUMP.write(f"== {label}: DENIED {type(exc).__name__}: {exc}\\n")
            return None
        DUMP.write(f"== {label}: READ\\n{data}\\n")
        return data
    def cat(path):
        return grab(path, lambda: pathlib.Path(path).read_bytes().decode("utf-8", "replace"))
""")


def kernel_thief(home: Path, key_dir: Path) -> str:
    return STEAL + textwrap.dedent(f"""
        ppid, host_pid = os.getppid(), client.status().pid
        grab("kernel environ", lambda: dict(os.environ))
        for pid in {{ppid, host_pid, 1}}:
            for name in ("environ", "cmdline", "maps", "mem", "status"):
                cat(f"/proc/{{pid}}/{{name}}")
            grab(f"/proc/{{pid}}/fd", lambda: os.listdir(f"/proc/{{pid}}/fd"))
        grab("list /proc", lambda: os.listdir("/proc"))
        for path in ["{home}/.modal.toml", "{home}/.config/scribe-tui/config.toml",
                     os.path.expanduser("~/.modal.toml"), "/root/.modal.toml", "/etc/shadow"]:
            cat(path)
        grab("key store", lambda: os.listdir("{key_dir}"))
        for path in glob.glob("{key_dir}/*"):
            cat(path)
        import scribe_tui
        package = pathlib.Path(scribe_tui.__file__).parent
        grab("answer_key()", lambda: __import__("scribe_tui.organisms.keys").organisms.keys
             .answer_key("taboo"))
        for path in sorted(package.rglob("*")):
            if path.is_file() and path.suffix != ".pyc":
                cat(str(path))
        for root in {{sys.prefix, *sys.path}}:
            for path in glob.glob(os.path.join(root or ".", "**", "*answer*"), recursive=True):
                cat(path)
        cat(os.environ["SCRIBE_HOST_FILE"])
        grab("info", client.info)
        grab("subprocess env", lambda: subprocess.run(
            ["sh", "-c", f"cat /proc/{{ppid}}/environ; env; cat ~/.modal.toml"],
            capture_output=True, text=True))
        libc = ctypes.CDLL(None, use_errno=True)
        def raw(path):
            fd = libc.open(path.encode(), 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            buf = ctypes.create_string_buffer(65536)
            return buf.raw[: libc.read(fd, buf, 65536)]
        grab("ctypes parent environ", lambda: raw(f"/proc/{{ppid}}/environ"))
        grab("ctypes host environ", lambda: raw(f"/proc/{{host_pid}}/environ"))
        DUMP.close()
        print("kernel thief done")
    """)


def host_thief(home: Path, key_dir: Path) -> str:
    return STEAL + textwrap.dedent(f"""
        def steal_in_host(model, tokenizer, home, key_dir):
            import glob, os, pathlib
            out = {{}}
            def grab(label, read):
                try:
                    out[label] = str(read())
                except Exception as exc:
                    out[label] = f"DENIED {{type(exc).__name__}}: {{exc}}"
            def cat(path):
                grab(path, lambda: pathlib.Path(path).read_bytes().decode("utf-8", "replace"))
            ppid = os.getppid()
            grab("host environ", lambda: dict(os.environ))
            for name in ("environ", "cmdline", "maps", "mem"):
                cat(f"/proc/{{ppid}}/{{name}}")
            for name in ("environ", "cmdline", "maps"):
                cat(f"/proc/self/{{name}}")
            grab("own fds", lambda: [os.readlink(f"/proc/self/fd/{{n}}")
                                    for n in os.listdir("/proc/self/fd")])
            for path in [f"{{home}}/.modal.toml", f"{{home}}/.config/scribe-tui/config.toml"]:
                cat(path)
            grab("key store", lambda: os.listdir(key_dir))
            for path in glob.glob(f"{{key_dir}}/*"):
                cat(path)
            grab("name_or_path", lambda: (model.config._name_or_path, tokenizer.name_or_path))
            import scribe_tui
            package = pathlib.Path(scribe_tui.__file__).parent
            for path in package.rglob("*answer*"):
                cat(str(path))
            grab("answer_key()", lambda: __import__("scribe_tui.organisms.keys").organisms.keys
                 .answer_key("taboo"))
            return out

        stolen = client.run(steal_in_host, home="{home}", key_dir="{key_dir}")
        for label, value in stolen.items():
            DUMP.write(f"== host {{label}}: {{value}}\\n")
        DUMP.close()
        print("host thief done")
    """)


RESEARCH = textwrap.dedent("""
    import numpy as np, torch, matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def mean_logit(model, tokenizer):
        import torch
        with torch.no_grad():
            return float(model(torch.tensor([[6, 7]])).logits.mean())

    plt.plot(np.arange(5), np.arange(5) ** 2)
    plt.savefig("curve.png")
    print("research ok", round(client.run(mean_logit), 6) == round(client.run(mean_logit), 6),
          float(torch.ones(3).sum()), os.path.exists("curve.png"))
""")


def run(code: str) -> dict:
    return tool("execute_code", session_id=SESSION, code=code)


@pytest.fixture
def canaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home = tmp_path / "home"
    (home / ".config" / "scribe-tui").mkdir(parents=True)
    (home / ".modal.toml").write_text(f'[default]\ntoken_secret = "{MODAL_FILE_CANARY}"\n')
    (home / ".config" / "scribe-tui" / "config.toml").write_text(
        f'[defaults]\nmodel = "{CONFIG_CANARY}"\n'
    )
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    (key_dir / "0123456789abcdef0123456789abcdef.json").write_text(
        json.dumps({"secret": KEY_CANARY})
    )
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SCRIBE_KEY_DIR", str(key_dir))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    model = build_tiny_model(tmp_path / "organisms" / SECRET_DIR)
    return {"home": home, "key_dir": key_dir, "model": model, "root": tmp_path}


async def run_sealed(
    canaries: dict[str, Path],
    turns: list[Any],
    before_close: Callable[[Path], Awaitable[None]] | None = None,
) -> tuple[Any, Path]:
    """A scripted investigation on the canaries' model, sealed: (outcome, notebook path).

    ``before_close`` runs once the run ended, while its kernel and host are still up.
    """
    settings = RunSettings(
        task="find the secret",
        agent="scripted",
        model=str(canaries["model"]),
        notebooks_dir=canaries["root"] / "notebooks",
        device="cpu",
        config=InvestigationConfig(checkpoint_every=0),
    )
    bench = await Workbench.open(settings, ScriptedProvider(turns))
    try:
        assert bench.sandbox is not None and bench.sandbox.sealed
        outcome = await bench.investigation.run()
        notebook_path = bench.investigation.notebook_path
        assert notebook_path is not None
        if before_close is not None:
            await before_close(notebook_path)
    finally:
        await bench.close()
    return outcome, notebook_path


async def test_thief_cells_find_no_canary_and_research_still_works(
    canaries: dict[str, Path],
) -> None:
    home, key_dir = canaries["home"], canaries["key_dir"]
    turns = [
        [tool("start_new_session", experiment_name="heist")],
        [tool("init_session", session_id=SESSION)],
        [run(kernel_thief(home, key_dir))],
        [run(host_thief(home, key_dir))],
        [run(RESEARCH)],
        [tool("conclude", answer="unknown", confidence=0.0, evidence="nothing leaked")],
    ]
    outcome, notebook_path = await run_sealed(canaries, turns)
    assert outcome.reason == "concluded", outcome

    notebook = nbformat.read(notebook_path, as_version=4)
    nbformat.validate(notebook)
    outputs = [json.dumps(cell.get("outputs", [])) for cell in notebook.cells]
    assert any("kernel thief done" in o for o in outputs), outputs
    assert any("host thief done" in o for o in outputs), outputs
    assert any("research ok True 3.0 True" in o for o in outputs), outputs
    assert (files_folder(notebook_path) / "curve.png").stat().st_size > 0
    assert notebook.metadata["scribe"]["sandbox"]["sealed"] is True
    assert notebook.metadata["scribe"]["model"] == "local:gpt2"

    stolen = (files_folder(notebook_path) / "stolen.txt").read_text()
    # The attempts ran and were refused, so the test is not vacuous.
    for refused in (
        f"/proc/{os.getpid()}/environ: DENIED PermissionError",
        f"{home}/.modal.toml: DENIED PermissionError",
        "list /proc: DENIED PermissionError",
        "key store: DENIED PermissionError",
        "answer_key(): DENIED",
        "ctypes parent environ: DENIED",
        f"host /proc/{os.getpid()}/environ: DENIED PermissionError",
        "host key store: DENIED PermissionError",
    ):
        assert refused in stolen, refused
    assert "== host name_or_path: ('local:gpt2', 'local:gpt2')" in stolen
    secrets = [
        *CANARIES.values(),
        MODAL_FILE_CANARY,
        CONFIG_CANARY,
        KEY_CANARY,
        SECRET_DIR,
        *_bundled_secrets(),
    ]
    transcript = notebook_path.with_suffix(".jsonl").read_text()
    for where, text in (
        ("stolen", stolen),
        ("notebook", notebook_path.read_text()),
        ("transcript", transcript),
    ):
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into the {where}"


# Tried from the sealed kernel and, through client.run, from the sealed host.
NETWORK = textwrap.dedent("""
    import socket, subprocess

    def attempt(what, act):
        try:
            act()
        except OSError as exc:
            return f"{what} denied {type(exc).__name__}"
        return f"{what} ok"

    def host_connect(model, tokenizer, port):
        import socket
        try:
            socket.create_connection(("127.0.0.1", port), timeout=60).close()
        except OSError as exc:
            return f"host connect denied {type(exc).__name__}"
        return "host connect ok"

    print(attempt("kernel connect",
                  lambda: socket.create_connection(("127.0.0.1", PORT), timeout=60).close()))
    print(client.run(host_connect, port=PORT))
    print(attempt("kernel bind", lambda: socket.create_server(("127.0.0.1", 0)).close()))
    print(attempt("devnull",
                  lambda: subprocess.run(["true"], stdout=subprocess.DEVNULL, check=True)))
""")


PLANT = textwrap.dedent("""
    import os, pathlib
    for package in ("scribe_tui", "scribe_tui/runtime"):
        os.makedirs(package, exist_ok=True)
        pathlib.Path(package, "__init__.py").write_text("")
    pathlib.Path("scribe_tui/runtime/sandbox.py").write_text(
        "open({escaped!r}, 'w').write('planted launcher ran unsealed')\\n"
    )
    print("planted", sorted(os.listdir("scribe_tui/runtime")))
""")


async def test_a_planted_launcher_never_runs_when_the_kernel_restarts(
    canaries: dict[str, Path],
) -> None:
    """A cell plants ``scribe_tui/runtime/sandbox.py`` in the kernel's folder, then kills the
    kernel; the restart must start the real, isolated launcher, sealed as before."""
    escaped = canaries["root"] / "escaped.txt"
    turns = [
        [tool("start_new_session", experiment_name="plant")],
        [tool("init_session", session_id=SESSION)],
        [run(PLANT.format(escaped=str(escaped)))],
        [run("import os; os._exit(3)")],
        [run("print('after the restart', open('/proc/self/status').read().count('Seccomp'))")],
        [tool("conclude", answer="unknown", confidence=0.0, evidence="plant tried")],
    ]
    outcome, notebook_path = await run_sealed(canaries, turns)
    assert outcome.reason == "concluded", outcome
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(notebook_path, 4).cells])
    assert "planted" in outputs and "after the restart" in outputs, outputs
    assert (files_folder(notebook_path) / "scribe_tui" / "runtime" / "sandbox.py").exists()
    assert not escaped.exists(), escaped.read_text()


ESCAPE = textwrap.dedent("""
    import subprocess, sys
    survivor = (
        "import os, sys, time\\n"
        "os.setsid()\\n"
        "if os.fork():\\n"
        "    os._exit(0)\\n"
        "open('survivor-started', 'w').close()\\n"
        "time.sleep(600)  # {token}\\n"
    )
    subprocess.run([sys.executable, "-c", survivor], check=True)  # returns at the first fork
    print("escape launched")
""")


def _running(token: str) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if token in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.pid)
    return found


async def test_processes_a_cell_detaches_end_with_the_investigation(
    canaries: dict[str, Path],
) -> None:
    """A cell starts a process in a session of its own that forks again and orphans itself:
    it must not outlive the investigation."""
    token = f"scribe-survivor-{os.getpid()}-{id(canaries)}"
    turns = [
        [tool("start_new_session", experiment_name="escape")],
        [tool("init_session", session_id=SESSION)],
        [run(ESCAPE.replace("{token}", token))],
        [tool("conclude", answer="unknown", confidence=0.0, evidence="tried to stay")],
    ]

    async def it_ran(notebook_path: Path) -> None:
        started = files_folder(notebook_path) / "survivor-started"
        for _ in range(600):  # the orphan reports in from its own session
            if started.exists():
                break
            await asyncio.sleep(0.1)
        assert started.exists() and _running(token), "the detached process never ran"

    outcome, _notebook = await run_sealed(canaries, turns, before_close=it_ran)
    assert outcome.reason == "concluded", outcome
    for _ in range(600):
        if not _running(token):
            break
        await asyncio.sleep(0.1)
    assert not _running(token), "a process the kernel detached outlived the investigation"


FORGE = textwrap.dedent("""
    import os
    mine = os.getcwd().removesuffix(".files")  # this notebook's files folder is the cwd
    for target in [mine + ".ipynb", mine + ".jsonl", *{targets!r}]:
        try:
            with open(target, "a") as f:
                f.write("forged")
            print("WROTE", target)
        except OSError as exc:
            print("refused", type(exc).__name__, os.path.basename(target))
    try:
        print("LISTED", os.listdir(".."))
    except OSError as exc:
        print("refused", type(exc).__name__, "listing the notebooks folder")
""")


async def test_a_sealed_kernel_cannot_touch_the_record(canaries: dict[str, Path]) -> None:
    """Its own notebook and transcript, a neighbour's, a planted results file: all refused;
    the kernel writes only its own files folder."""
    notebooks = canaries["root"] / "notebooks"
    notebooks.mkdir()
    neighbour = notebooks / "2026-01-01-00-00_neighbour.ipynb"
    neighbour.write_text("{}")
    targets = [str(neighbour), str(notebooks / "results.jsonl")]
    turns = [
        [tool("start_new_session", experiment_name="forge")],
        [tool("init_session", session_id=SESSION)],
        [run("open('mine.txt', 'w').write('ok'); print('own files ok')")],
        [run(FORGE.format(targets=targets))],
        [tool("conclude", answer="unknown", confidence=0.0, evidence="tried to forge")],
    ]
    _outcome, notebook_path = await run_sealed(canaries, turns)
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(notebook_path, 4).cells])
    assert "own files ok" in outputs and "WROTE" not in outputs and "LISTED" not in outputs
    assert outputs.count("refused PermissionError") == 5, outputs
    assert (files_folder(notebook_path) / "mine.txt").read_text() == "ok"
    assert neighbour.read_text() == "{}" and not (notebooks / "results.jsonl").exists()


@pytest.mark.parametrize("allow_network", [False, True], ids=["default", "allow-network"])
async def test_tcp_is_closed_unless_allowed_and_the_run_says_which(
    tmp_path: Path, allow_network: bool
) -> None:
    """A listener outside the sandbox, on loopback: the sealed kernel and host reach it only
    with --allow-network (where the Landlock ABI has TCP rules; below that it stays open,
    and the run must say so). The kernel's own ZMQ ports still bind: it runs at all."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        turns = [
            [tool("start_new_session", experiment_name="net")],
            [tool("init_session", session_id=SESSION)],
            [run(NETWORK.replace("PORT", str(port)))],
            [tool("conclude", answer="unknown", confidence=0.0, evidence="network probe")],
        ]
        settings = RunSettings(
            task="find the secret",
            agent="scripted",
            model=str(build_tiny_model(tmp_path / "model")),
            notebooks_dir=tmp_path / "notebooks",
            device="cpu",
            config=InvestigationConfig(checkpoint_every=0),
            allow_network=allow_network,
        )
        bench = await Workbench.open(settings, ScriptedProvider(turns))
        try:
            outcome = await bench.investigation.run()
            notebook_path = bench.investigation.notebook_path
            label = bench.investigation.sandbox
        finally:
            await bench.close()
    assert outcome.reason == "concluded", outcome
    abi = int(probe().reason.removeprefix("ABI "))
    if allow_network:
        network = "open (--allow-network)"
    elif abi >= 4:
        network = "closed"
    else:
        network = f"open (Landlock ABI {abi} has no network rules)"
    closed = network == "closed"
    print(f"Landlock ABI {abi}: network {network}")
    assert label == f"sandbox: landlock ABI {abi}, network {network}"
    notebook = nbformat.read(notebook_path, as_version=4)
    assert notebook.metadata["scribe"]["sandbox"]["network"] == network
    assert notebook.metadata["scribe"]["receipt"]["sandbox"]["network"] == network
    printed = "".join(json.dumps(cell.get("outputs", [])) for cell in notebook.cells)
    verdict = "denied PermissionError" if closed else "ok"
    for line in ("kernel connect", "host connect", "kernel bind"):
        assert f"{line} {verdict}" in printed, (line, printed)
    assert "devnull ok" in printed, printed


@pytest.mark.parametrize(
    ("allow_network", "shown"), [(False, "sealed"), (True, "sealed, network open")]
)
def test_the_status_bar_says_when_the_network_is_open(allow_network: bool, shown: str) -> None:
    from scribe_tui.events import Status
    from scribe_tui.runtime.sealed import sandbox_state
    from scribe_tui.ui.status import StatusBar

    bar = StatusBar()
    bar.status = Status(agent_state="running", sandbox=sandbox_state(True, allow_network).label)
    assert bar.render_status().plain.endswith(f"│ {shown}")


def _bundled_secrets() -> list[str]:
    """The bundled keys as their file writes them: the words alone are in the word lists."""
    from scribe_tui.organisms.keys import BUNDLED_KEYS_DIR

    return [
        json.dumps({name: secret})[1:-1]
        for f in BUNDLED_KEYS_DIR.glob("*.json")
        for name, secret in json.loads(f.read_text()).items()
    ]


def test_off_when_opted_out_or_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    from scribe_tui.agent.launch import sandbox_state

    assert sandbox_state(False).label == "sandbox: off (--no-sandbox)"
    assert sandbox_state(True).label.startswith("sandbox: landlock ABI ")
    opened = sandbox_state(True, allow_network=True)
    assert opened.label.endswith(", network open (--allow-network)") and not opened.network_closed
    assert sandbox_state(False, allow_network=True).label == "sandbox: off (--no-sandbox)"
    monkeypatch.setattr(sys, "platform", "darwin")
    probe.cache_clear()
    try:
        assert probe().label == "sandbox: off (macOS has no Landlock)"
        monkeypatch.setattr(sys, "platform", "linux")
        monkeypatch.setenv("MODAL_TASK_ID", "ta-0123")  # inside a Modal container
        probe.cache_clear()
        assert probe().label == "sandbox: off (Modal gVisor has no Landlock)"
    finally:
        probe.cache_clear()


def test_the_launcher_refuses_to_run_unsealed(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "scribe_tui.runtime.sandbox", "--", "true"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SCRIBE_SANDBOX_POLICY"},
    )
    assert done.returncode == 1
    assert "refusing to run unsealed" in done.stderr
    assert shutil.which("true")


def test_a_launcher_whose_spawner_died_while_it_started_never_runs_its_command(
    tmp_path: Path,
) -> None:
    """A spawner killed while its launcher is still starting leaves the launcher reparented:
    it must compare its parent with the spawner's pid, not take the new parent for it (the
    kernel would otherwise outlive the investigation). Here the named spawner is a process
    that is not the launcher's parent, as after such a death."""
    import subprocess

    ran = tmp_path / "ran"
    other = subprocess.Popen(["sleep", "60"])
    try:
        argv = sandboxed_argv(["touch", str(ran)])
        assert argv[argv.index("--parent") + 1] == str(os.getpid())
        argv[argv.index("--parent") + 1] = str(other.pid)
        env = {**os.environ, POLICY_ENV: base_policy(read=[], write=[str(tmp_path)]).to_json()}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    finally:
        other.kill()
        other.wait()
    assert done.returncode == 1
    assert "the process that started the kernel is gone" in done.stderr
    assert not ran.exists()


def test_the_kernel_learns_its_launcher_died_before_its_death_signal_took_hold() -> None:
    """The kernel is the first process of its PID namespace, so it has no parent pid to
    compare: a launcher killed between its fork and the kernel's request for a death signal
    shows as the closed write end of a pipe only it held. (Once, under load, a kernel
    outlived the bench that had started it: this was the one gap in the chain.)"""
    import subprocess

    read_end, write_end = os.pipe()
    holder = subprocess.Popen(["sleep", "60"], pass_fds=(write_end,))
    os.close(write_end)
    try:
        assert not writer_gone(read_end)  # the holder lives: nothing to read, no end of file
        holder.kill()
        holder.wait()
        assert writer_gone(read_end)
    finally:
        holder.kill()
        holder.wait()
        os.close(read_end)


STARTER = """
import json, subprocess, sys, time
from scribe_tui.runtime.sandbox import sandboxed_argv
# argv not in our command line; the launcher's argv names its spawner, so it is built here
launcher = subprocess.Popen(sandboxed_argv(json.loads(sys.stdin.readline())))
print(launcher.pid, flush=True)
time.sleep(600)
"""


def _sleeping(token: str) -> bool:
    """Whether the sealed sleeper itself runs, not just a command line naming it (the
    launcher's): then the launcher has armed its death signal and forked."""
    for pid in _running(token):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[1:2] == [b"-c"] and argv[2].startswith(b"import time"):
            return True
    return False


def _gone(token: str) -> bool:
    import time

    deadline = time.monotonic() + 60
    while _running(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _running(token)


@pytest.mark.parametrize("ending", ["starter killed", "launcher terminated"])
def test_a_sealed_process_ends_when_its_starter_dies_or_it_is_terminated(
    tmp_path: Path, ending: str
) -> None:
    """A closed terminal takes scribe-tui down without a shutdown; a TERM is what a person
    sends. Either way the launcher and the kernel under it must end, not linger."""
    import subprocess
    import time

    token = f"scribe-sleeper-{os.getpid()}-{ending.replace(' ', '-')}"
    sleeper = [sys.executable, "-c", f"import time; time.sleep(600)  # {token}"]
    policy = base_policy(read=[], write=[str(tmp_path)])
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, POLICY_ENV: policy.to_json()},
    )
    try:
        assert starter.stdin is not None and starter.stdout is not None
        starter.stdin.write(json.dumps(sleeper) + "\n")
        starter.stdin.flush()
        launcher = int(starter.stdout.readline())
        deadline = time.monotonic() + 60
        while not _sleeping(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sleeping(token), "the sealed process never started"
        if ending == "starter killed":
            starter.kill()
        else:
            os.kill(launcher, signal.SIGTERM)
        # The token is in the launcher's command line too: both must be gone.
        assert _gone(token), f"the sealed process outlived its {ending}"
    finally:
        starter.kill()
        starter.wait()


def test_gpu_device_nodes_are_found_whatever_the_machine_has(tmp_path: Path) -> None:
    """Eight GPUs, MIG's capability folder, DRM nodes: every one is listed, nothing else."""
    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    (dev / "dri").mkdir()
    (dev / "sda").touch()
    for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"):
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for index in range(8):
        os.mknod(dev / f"nvidia{index}", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    found = {Path(p).name for p in gpu_devices(str(dev))}
    assert found == {
        *(f"nvidia{i}" for i in range(8)),
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-modeset",
        "nvidia-caps",
        "dri",
    }


OPEN_DEVICE = """
import errno, fcntl, sys
for path in sys.argv[1:]:
    try:
        with open(path, "r+b", buffering=0) as device:
            try:
                fcntl.ioctl(device, 0x5401)  # TCGETS: a null device answers ENOTTY
            except OSError as exc:
                print(path, "ioctl", errno.errorcode[exc.errno])
    except OSError as exc:
        print(path, "open", errno.errorcode[exc.errno])
"""


def test_a_sealed_process_drives_its_device_nodes_read_write(tmp_path: Path) -> None:
    """CUDA opens /dev/nvidia* read-write and works through ioctl: a device node in the
    policy's devices allows both; the same node merely readable refuses the open."""
    import subprocess

    granted, readable = tmp_path / "gpu", tmp_path / "other"
    granted.mkdir()
    readable.mkdir()
    for folder in (granted, readable):
        os.mknod(folder / "nvidia3", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's
    policy = base_policy(read=[str(readable)])
    policy.devices.append(str(granted / "nvidia3"))
    done = subprocess.run(
        sandboxed_argv(
            [sys.executable, "-c", OPEN_DEVICE, *(str(f / "nvidia3") for f in (granted, readable))]
        ),
        capture_output=True,
        text=True,
        env={**os.environ, POLICY_ENV: policy.to_json()},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{granted / 'nvidia3'} ioctl ENOTTY",  # opened read-write; the driver answered
        f"{readable / 'nvidia3'} open EACCES",  # Landlock refused before the driver
    ]


@pytest.mark.skipif(not os.access("/dev", os.W_OK), reason="needs root to add a device node")
def test_the_host_s_own_policy_lets_it_drive_a_gpu_node(tmp_path: Path) -> None:
    """Under host_policy, exactly as a sealed host applies it: a GPU node that appears in
    /dev opens read-write and takes an ioctl; a node outside the GPU names does not open."""
    import subprocess

    from scribe_tui.runtime.host import host_policy
    from scribe_tui.runtime.host_protocol import LaunchSpec

    model = build_tiny_model(tmp_path / "model")
    gpu = Path(f"/dev/nvidia-scribe-test-{os.getpid()}")  # a GPU name; /dev/null's numbers
    other = tmp_path / "nvidia-elsewhere"
    os.mknod(gpu, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(other, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    try:
        policy = host_policy(LaunchSpec(model=str(model), device="auto"), [])
        done = subprocess.run(
            sandboxed_argv([sys.executable, "-c", OPEN_DEVICE, str(gpu), str(other)]),
            capture_output=True,
            text=True,
            env={**os.environ, POLICY_ENV: policy.to_json()},
            timeout=120,
        )
    finally:
        gpu.unlink()
        other.unlink()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{gpu} ioctl ENOTTY", f"{other} open EACCES"]


def test_a_sealed_process_sees_which_devices_exist() -> None:
    """The host chooses its device after sealing: it must still see a GPU's nodes by name."""
    import subprocess

    done = subprocess.run(
        sandboxed_argv([sys.executable, "-c", "import os; print(sorted(os.listdir('/dev')))"]),
        capture_output=True,
        text=True,
        env={**os.environ, POLICY_ENV: base_policy().to_json()},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(os.listdir("/dev")))


def test_a_sealed_process_cannot_list_the_machine_s_sockets() -> None:
    """/proc/self/net/unix names every Unix socket (other runs' hosts, the watch socket)."""
    import subprocess

    probe_code = (
        "import os\n"
        "thread = '/proc/self/task/' + os.listdir('/proc/self/task')[0]\n"
        "for path in ('/proc/self/net/unix', '/proc/net/tcp', thread + '/net/unix'):\n"
        "    try:\n"
        "        open(path).read(); print('READ', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', type(exc).__name__)\n"
        "print('status', 'Name:' in open('/proc/self/status').read())\n"
    )
    done = subprocess.run(
        sandboxed_argv([sys.executable, "-c", probe_code]),
        capture_output=True,
        text=True,
        env={**os.environ, POLICY_ENV: base_policy().to_json()},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["refused PermissionError"] * 3 + ["status True"]
