"""``scribe-tui bench --backend modal``: every run in a Modal GPU container of its own.

A container runs one investigation through the local backend's code (a one-run,
unscored :class:`BenchRunner` in a scratch directory) and returns plain data: the
row and the run folder's files. This side writes the files into
``DIR/runs/<run-id>/``, scores the row and appends it to ``results.jsonl``, so a
modal bench leaves what a local one does, and a second invocation skips finished
runs the same way. Answer keys never leave this machine: the image ships the
package without them, and only this side scores.

:func:`run_in_container` is the container's whole body as a plain function; the
Modal function :func:`build_bench_app` defines only wraps it, so tests run the
same code offline through that function's ``.local()`` (the ``mapper`` seam of
:class:`ModalBenchRunner`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from scribe_tui.bench.grid import RunSpec, model_spec
from scribe_tui.bench.runner import BenchEvent, BenchRunner, score_row

# GPU containers at once unless --jobs says otherwise: a large grid must not start a GPU per run.
DEFAULT_JOBS = 8
_DEFAULT_TIMEOUT_S = 2 * 3600  # per run when the grid sets no max_minutes
_LOAD_MARGIN_S = 900  # container start, model load and kernel start on top of a run's budget
_MAX_TIMEOUT_S = 24 * 3600  # the longest call Modal allows
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What an investigation imports beyond the model host's packages: kernel, notebook, agent, plots.
_INVESTIGATION_PACKAGES = (
    "anthropic", "ipykernel", "jupyter_client", "matplotlib", "nbformat", "pillow", "platformdirs",
)  # fmt: skip

# A mapper runs the Modal function over the requests and yields each result (or the
# exception a run raised) as it arrives, in any order: ``(app, function, requests)``.
Mapper = Callable[[Any, Any, list[dict[str, Any]]], AsyncIterator[Any]]


# --- container side ------------------------------------------------------------------------------


def run_request(run: RunSpec, *, sandbox: bool, allow_network: bool = False) -> dict[str, Any]:
    """What a container is sent for one run: plain data only."""
    return {
        "axes": dict(run.axes),
        "repeat": run.repeat,
        "sandbox": sandbox,
        "allow_network": allow_network,
    }


def run_in_container(request: dict[str, Any]) -> dict[str, Any]:
    """One run, unscored, as the local backend runs it; plain data back.

    Returns ``run_id``, ``row`` (None if the run was interrupted), ``files`` (the run
    folder's, ``{path relative to it: bytes}``) and ``model_loads``.
    """
    # expand() orders axes by name; the run id does not depend on the order anyway.
    run = RunSpec(tuple(sorted(request["axes"].items())), int(request["repeat"]))
    events: list[BenchEvent] = []
    with tempfile.TemporaryDirectory(prefix="scribe-bench-") as tmp:
        out = Path(tmp)
        # scored=False: the image holds no answer keys, and nothing here looks for them.
        runner = BenchRunner(
            out,
            [run],
            jobs=1,
            scored=False,
            sandbox=bool(request["sandbox"]),
            allow_network=bool(request.get("allow_network")),
            on_event=events.append,
        )
        rows = asyncio.run(runner.run())
        files = _read_folder(out / "runs" / run.run_id)
    loads = sum(e["model_loads"] for e in events if e["type"] == "bench_finished")
    return {
        "run_id": run.run_id,
        "row": rows[0] if rows else None,
        "files": files,
        "model_loads": loads,
    }


def _read_folder(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``; symlinks are not followed (the kernel can make them)."""
    files: dict[str, bytes] = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


# --- the Modal app -------------------------------------------------------------------------------


def package_ignore(path: Path) -> bool:
    """Which files of the package (paths relative to it) the image leaves out.

    The answer keys above all; the bundled organisms' weights and other data files
    go in, unlike ``add_local_python_source``'s default of ``.py`` files only.
    """
    from scribe_tui.organisms.keys import BUNDLED_KEYS_DIR

    keys = BUNDLED_KEYS_DIR.relative_to(_PACKAGE_DIR).parts
    return (
        path.parts[: len(keys)] == keys
        or path.suffix == ".pyc"
        or any(part == "__pycache__" or part.startswith(".") for part in path.parts)
    )


def image_contents(runs: list[RunSpec], gpu: str) -> dict[str, Any]:
    """What the image for ``runs`` (at least one) holds, as plain data: Python, pins, local dirs.

    The model host's pins for each organism (Python, torch, transformers,
    cloudpickle…, as :func:`~scribe_tui.runtime.modal_host.image_spec` makes them),
    then what the rest of an investigation imports, at the local versions. Organism
    directories outside the package are mounted at their own paths, so the run's
    axes name them unchanged in the container.
    """
    from scribe_tui.paths import prompts_dir
    from scribe_tui.runtime.host_protocol import LaunchSpec
    from scribe_tui.runtime.loading import resolve_model
    from scribe_tui.runtime.modal_host import image_spec

    packages = list(_INVESTIGATION_PACKAGES) + (["tomli"] if sys.version_info < (3, 11) else [])
    pins = {name: f"{name}=={metadata.version(name).split('+')[0]}" for name in packages}
    dirs = {str(prompts_dir()): "/root/prompts"}  # where paths.prompts_dir() looks in a checkout
    hosts = []
    for organism in sorted({run["organism"] for run in runs}):
        spec = model_spec(organism)
        resolved = resolve_model(spec)
        hosts.append(image_spec(LaunchSpec(model=spec, mode="modal", gpu=gpu), resolved))
        for value in (resolved.organism, resolved.path, resolved.base, resolved.adapter):
            local = Path(value).resolve() if value else None
            if local and local.is_dir() and not local.is_relative_to(_PACKAGE_DIR):
                dirs[str(local)] = str(local)
    for host in hosts:
        pins.update({pin.partition("==")[0]: pin for pin in host["pip"]})
    return {
        "python_version": hosts[0]["python_version"],  # this interpreter's, for every organism
        "pip": sorted(pins.values()),
        "local_dirs": dirs,
    }


def _timeout(runs: list[RunSpec]) -> int:
    budgets = [run["max_minutes"] for run in runs]
    if None in budgets:
        return _DEFAULT_TIMEOUT_S
    return min(_MAX_TIMEOUT_S, int(max(budgets) * 60) + _LOAD_MARGIN_S)


def _secrets(runs: list[RunSpec]) -> dict[str, str]:
    """The environment a container needs: the Claude key when a run uses Claude, a hub token."""
    env = {}
    if any(run["agent"].startswith("claude") for run in runs):
        env["ANTHROPIC_API_KEY"] = os.environ["ANTHROPIC_API_KEY"]  # the CLI checked it is set
    if os.environ.get("HF_TOKEN"):
        env["HF_TOKEN"] = os.environ["HF_TOKEN"]
    return env


def build_bench_app(runs: list[RunSpec], *, gpu: str, jobs: int) -> tuple[Any, Any]:
    """The ephemeral Modal app and its function running one run per call: ``(app, function)``.

    Defining them needs no network; Modal is contacted only when the app runs.
    """
    import modal

    contents = image_contents(runs, gpu)
    image = modal.Image.debian_slim(python_version=contents["python_version"]).pip_install(
        *contents["pip"]
    )
    for local, remote in contents["local_dirs"].items():
        image = image.add_local_dir(local, remote)
    image = image.add_local_python_source("scribe_tui", ignore=package_ignore)
    env = _secrets(runs)
    app = modal.App("scribe-bench")
    # serialized=True: the function is defined per bench (its image and GPU depend on the
    # grid), so it is cloudpickled, which the image's pinned Python version makes safe.
    function = app.function(
        image=image,
        gpu=gpu,
        max_containers=jobs,
        timeout=_timeout(runs),
        serialized=True,
        secrets=[modal.Secret.from_dict(env)] if env else [],
    )(run_in_container)
    return app, function


class ModalUnavailable(RuntimeError):
    """Modal could not run the bench at all (unreachable, token refused, image build failed)."""


async def modal_map(app: Any, function: Any, requests: list[dict[str, Any]]) -> AsyncIterator[Any]:
    """Modal's ``map`` inside the running app: results as they finish, exceptions as results."""
    import modal

    try:
        async with app.run():
            async for result in function.map.aio(
                requests, order_outputs=False, return_exceptions=True
            ):
                yield result
    except modal.exception.Error as exc:  # a run's own failure is a result, not raised
        raise ModalUnavailable(f"Modal: {_first_line(exc)}") from exc


# --- this side -----------------------------------------------------------------------------------


class ModalBenchRunner(BenchRunner):
    """A bench whose runs execute in Modal containers, ``jobs`` at once, scored here."""

    def __init__(
        self,
        out: Path,
        runs: list[RunSpec],
        *,
        jobs: int,
        gpu: str | None = None,
        scored: bool = True,
        sandbox: bool = True,
        allow_network: bool = False,
        on_event: Callable[[BenchEvent], None] | None = None,
        mapper: Mapper | None = None,
    ) -> None:
        from scribe_tui.runtime.modal_host import DEFAULT_GPU

        super().__init__(
            out,
            runs,
            jobs=jobs,
            scored=scored,
            sandbox=sandbox,
            allow_network=allow_network,
            on_event=on_event,
        )
        self.gpu = gpu or DEFAULT_GPU
        self._map = mapper or modal_map

    async def _execute(self, pending: list[RunSpec]) -> tuple[list[BenchEvent], int]:
        """Fan ``pending`` out to containers; record each run as its result arrives."""
        if not pending:
            return [], 0
        app, function = build_bench_app(pending, gpu=self.gpu, jobs=self.jobs)
        left = {run.run_id: run for run in pending}
        for run in pending:
            self._emit({"type": "run_started", "run_id": run.run_id, "axes": run.to_dict()})
        requests = [
            run_request(run, sandbox=self.sandbox, allow_network=self.allow_network)
            for run in pending
        ]
        started = time.monotonic()
        rows: list[BenchEvent] = []
        loads = 0
        errors: list[str] = []
        async for result in self._map(app, function, requests):
            if isinstance(result, BaseException):
                errors.append(f"{type(result).__name__}: {_first_line(result)}")
                continue
            run = left.pop(result["run_id"])
            loads += result["model_loads"]
            row = self._receive(run, result)
            if row is None:  # interrupted: its files are kept, like a local interrupted run
                self._emit({"type": "run_interrupted", "run_id": run.run_id})
                continue
            self._record(row)
            rows.append(row)
        # Unordered results do not say which input an exception came from: the runs
        # that returned nothing are the ones that raised.
        error = "; ".join(dict.fromkeys(errors)) or "no result came back"
        for run in left.values():
            row = {"run_id": run.run_id, "axes": run.to_dict(), "exit": "failed"}
            row.update(error=f"Modal: {error}", wall_s=round(time.monotonic() - started, 2))
            row = score_row(run, row, scored=self.scored)
            self._record(row)
            rows.append(row)
        return rows, loads

    def _receive(self, run: RunSpec, result: dict[str, Any]) -> BenchEvent | None:
        """Write a returned run folder under DIR/runs/; its row, scored here (None: interrupted)."""
        folder = self.out / "runs" / run.run_id
        for name, data in result["files"].items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                continue  # never written outside the run's folder, whatever a container says
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        row = result["row"]
        if row is None:
            return None
        if row.get("notebook"):
            # Relative to the container's scratch bench; here it lies in DIR's run folder.
            name = PurePosixPath(row["notebook"]).name
            row["notebook"] = (folder / name).relative_to(self.out).as_posix()
        return score_row(run, row, scored=self.scored)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
