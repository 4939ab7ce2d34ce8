"""``scribe-tui bench --backend modal`` offline: the login check, and real runs through the
Modal function's ``.local()`` in place of Modal's ``map``, scored on this side only."""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cloudpickle
import nbformat
import pytest
from test_bench import bench

from scribe_tui.bench.grid import build_grid, expand
from scribe_tui.bench.modal_backend import (
    DEFAULT_JOBS,
    ModalBenchRunner,
    build_bench_app,
    image_contents,
    package_ignore,
)
from scribe_tui.bench.report import load_results
from scribe_tui.cli import bench as cli
from scribe_tui.organisms import keys

pytestmark = pytest.mark.slow

PACKAGE = Path(cli.__file__).resolve().parents[1]


@pytest.fixture
def no_modal_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_OAUTH_REFRESH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "missing.toml"))


@pytest.fixture
def unreachable_modal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token, and a server that refuses: whatever reaches for Modal fails instead of passing."""
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("MODAL_SERVER_URL", "http://127.0.0.1:9")


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


async def test_modal_bench_runs_each_run_in_the_container_function_and_scores_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    no_keys = tmp_path / "no-keys"  # the container's view: its image holds no answer keys
    no_keys.mkdir()
    received: list[Any] = []
    key_reads: list[str] = []
    in_container = False
    real_record = keys.answer_key_record

    def watched_record(organism: str) -> Any:
        key_reads.append("container" if in_container else "here")
        return real_record(organism)

    monkeypatch.setattr(keys, "answer_key_record", watched_record)

    async def local_map(app: Any, function: Any, requests: list[Any]) -> AsyncIterator[Any]:
        """Modal's map, with each call run by the Modal function's .local() instead."""
        nonlocal in_container
        assert function._spec_.gpus == "T4"
        for request in requests:
            received.append(request)
            assert json.loads(json.dumps(request)) == request  # plain data, nothing else
            in_container = True
            try:
                with pytest.MonkeyPatch.context() as container:
                    container.setenv("SCRIBE_KEY_DIR", str(no_keys))
                    container.setattr(keys, "BUNDLED_KEYS_DIR", no_keys)
                    result = await asyncio.to_thread(function.local, request)
            finally:
                in_container = False
            yield pickle.loads(cloudpickle.dumps(result))  # as Modal would ship it back

    runs = expand(build_grid({}, [("agent", ["autopilot"]), ("organism", ["taboo"])]), 2)
    out = tmp_path / "out"
    events: list[dict[str, Any]] = []
    runner = ModalBenchRunner(out, runs, jobs=2, gpu="T4", on_event=events.append, mapper=local_map)
    rows = await runner.run()

    assert [type(r) for r in received] == [dict, dict]
    assert {r["repeat"] for r in received} == {0, 1} and all(r["sandbox"] for r in received)
    assert key_reads == ["here", "here"]  # scored on this side, never in the container
    kinds = [e["type"] for e in events]
    assert kinds[0] == "bench_started" and kinds[-1] == "bench_finished"
    assert kinds.count("run_started") == kinds.count("run_finished") == 2
    assert events[-1]["model_loads"] == 2  # one container, one model load, per run
    assert load_results(out) == rows and len(rows) == 2
    for row in rows:
        assert row["scored"] is True and row["correct"] is True, row
        assert row["exit"] == "concluded" and row["cells"] >= 5
        notebook = out / row["notebook"]
        assert notebook.parent == out / "runs" / row["run_id"]
        nbformat.validate(nbformat.read(notebook, as_version=4))
        assert notebook.with_suffix(".jsonl").is_file()  # the transcript came back too

    async def no_map(app: Any, function: Any, requests: list[Any]) -> AsyncIterator[Any]:
        raise AssertionError("finished runs were sent again")
        yield

    events.clear()
    again = ModalBenchRunner(out, runs, jobs=2, on_event=events.append, mapper=no_map)
    assert await again.run() == []
    assert events[0] == {"type": "bench_started", "total": 2, "done": 2, "jobs": 2}


async def test_a_crashed_container_is_a_failed_row_and_the_bench_goes_on(tmp_path: Path) -> None:
    runs = expand(build_grid({}, [("seed", ["0", "1"])]), 1)
    good, crashed = runs
    notebook = f"runs/{good.run_id}/nb.ipynb"
    nb = nbformat.v4.new_notebook()

    async def canned_map(app: Any, function: Any, requests: list[Any]) -> AsyncIterator[Any]:
        yield RuntimeError("container ran out of memory\n(traceback)")
        row = {"run_id": good.run_id, "axes": good.to_dict(), "answer": "Violins"}
        row.update(exit="concluded", notebook=notebook, wall_s=3.0, error=None)
        files = {"nb.ipynb": nbformat.writes(nb).encode(), "../../escape.txt": b"x"}
        yield {"run_id": good.run_id, "row": row, "files": files, "model_loads": 1}

    out = tmp_path / "out"
    rows = await ModalBenchRunner(out, runs, jobs=2, mapper=canned_map).run()
    by_id = {row["run_id"]: row for row in load_results(out)}
    assert len(rows) == 2 and set(by_id) == {good.run_id, crashed.run_id}
    assert by_id[good.run_id]["correct"] is True and by_id[good.run_id]["notebook"] == notebook
    assert (out / notebook).is_file() and not (tmp_path / "escape.txt").exists()
    failed = by_id[crashed.run_id]
    assert failed["exit"] == "failed" and failed["correct"] is None
    assert failed["error"] == "Modal: RuntimeError: container ran out of memory"


def test_the_app_is_defined_offline_with_the_specs_gpu_and_no_answer_keys(
    tmp_path: Path, unreachable_modal: None
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('[grid]\norganism = ["taboo", "belief"]\n\n[run]\ngpu = "A100"\n')
    runs, options = cli._plan(cli.build_parser().parse_args([str(spec), "--backend", "modal"]))
    assert options["gpu"] == "A100" and options["jobs"] == DEFAULT_JOBS
    app, function = build_bench_app(runs, gpu=options["gpu"], jobs=options["jobs"])
    assert app.name == "scribe-bench" and function._spec_.gpus == "A100"

    contents = image_contents(runs, "A100")
    assert contents["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    for package in ("torch", "transformers", "cloudpickle", "ipykernel", "nbformat"):
        assert any(pin.startswith(f"{package}==") for pin in contents["pip"]), package
    assert "/root/prompts" in contents["local_dirs"].values()
    shipped = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and not package_ignore(path.relative_to(PACKAGE))
    }
    assert "bench/modal_backend.py" in shipped
    assert "organisms/bundled/taboo/model/model.safetensors" in shipped
    assert not [p for p in shipped if p.startswith("answer_keys") or "__pycache__" in p]
