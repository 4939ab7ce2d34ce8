"""``scribe-tui sweep`` end to end: the real CLI, sealed kernels, one model host, nbclient.

A small notebook trains a tiny SAE on the bundled taboo organism with the seed from its
parameters cell; sweeping five seeds gives five executed, receipted, indexed notebooks
and a table whose values differ by seed. A second sweep fails one run and is stopped
by Ctrl-C in the next: the finished runs and their table stay, the host goes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from test_investigate_e2e import cli_env, scribe

from scribe_tui.runtime.host_process import pid_alive
from scribe_tui.runtime.interp_client import setup_code

pytestmark = pytest.mark.slow

MODEL = "organism:taboo"
Swept = tuple[Path, Path, "subprocess.CompletedProcess[str]"]
SAE_CELL = """\
from scribe_tui.techniques import train_sae

prompts = ["the cat sat on the mat", "a dog ran in the park", "hello there, my friend"]
sae = client.run(train_sae, prompts=prompts, layer=0, n_features=32, steps=steps, seed=seed)
host = client.status().pid  # which model host served this run (its workers have their own)
"""


def write_notebook(
    path: Path, cells: list[nbformat.NotebookNode], scribe: dict | None = None
) -> Path:
    nb = new_notebook(cells=cells)
    if scribe is not None:
        nb.metadata["scribe"] = scribe
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def parameters(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def results(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": ["results"]})


def sae_notebook(path: Path) -> Path:
    return write_notebook(
        path,
        [
            new_markdown_cell("# SAE seed stability"),
            new_code_cell(setup_code(MODEL)),
            parameters("seed = 0\nsteps = 40"),
            new_code_cell(SAE_CELL),
            results('{"mse": float(sae["stats"]["mse"]), "host": host}'),
        ],
        scribe={"model": MODEL, "task": "SAE seed stability"},
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    """(working dir, sweep folder, the CLI's run) of a five-seed sweep, two runs at a time."""
    root = tmp_path_factory.mktemp("sweep")
    notebook = sae_notebook(root / "notebooks" / "sae.ipynb")
    run = scribe(
        "sweep", str(notebook.relative_to(root)), "--axis", "seed=1,2,3,4,5", "--jobs", "2",
        cwd=root,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    return root, root / "notebooks" / "sae.sweep", run


def test_each_run_is_an_executed_valid_notebook_with_its_parameters(swept: Swept) -> None:
    _, folder, _ = swept
    runs = sorted(folder.glob("*.ipynb"))
    assert [p.name for p in runs] == [f"{n}_seed-{n}.ipynb" for n in range(1, 6)]
    for seed, path in enumerate(runs, 1):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        tags = [cell.metadata.get("tags", []) for cell in nb.cells]
        injected = tags.index(["injected-parameters"])
        assert tags[injected - 1] == ["parameters"]  # papermill's place for it
        assert f"seed = {seed}\n" in nb.cells[injected].source
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(cell.execution_count for cell in code)
        assert not any(o.output_type == "error" for cell in code for o in cell.outputs)
        scribe_meta = nb.metadata.scribe
        assert scribe_meta["status"] == "completed" and scribe_meta["agent"] == "sweep"
        receipt = scribe_meta["receipt"]
        assert receipt["parameters"] == {"seed": seed} and receipt["organism"] == "taboo"
        assert len(receipt["weights"]["sha256"]) == 64 and receipt["sandbox"]["mechanism"]
        assert (folder / f"{path.stem}.files").is_dir()  # where its kernel worked


def test_the_runs_are_in_the_index(swept: Swept) -> None:
    root, folder, _ = swept
    listing = scribe("list", "--json", cwd=root)
    assert listing.returncode == 0, listing.stderr
    rows = [r for r in json.loads(listing.stdout) if Path(r["path"]).parent.name == "sae.sweep"]
    assert len(rows) == 5
    assert {r["status"] for r in rows} == {"completed"} and {r["agent"] for r in rows} == {"sweep"}
    assert "sae.ipynb" in {Path(r["path"]).name for r in json.loads(listing.stdout)}
    assert scribe("index", str(folder), cwd=root).returncode == 0
    assert (folder / "INDEX.md").read_text().count("completed, 5 code cells") == 5


def test_one_model_host_serves_every_run(swept: Swept) -> None:
    _, folder, run = swept
    with open(folder / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["host"] for row in rows}) == 1
    assert run.stderr.count("loading weights") == 1 and run.stderr.count("host    ready") == 1
    # --jobs 2: two workers of that host serve the runs side by side (where there are two cores).
    assert ("2 workers" in run.stderr) == ((os.cpu_count() or 1) >= 2)


def test_the_table_has_a_row_per_run_with_values_that_differ_by_seed(swept: Swept) -> None:
    _, folder, run = swept
    with open(folder / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["seed"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert {row["status"] for row in rows} == {"completed"}
    assert len({row["mse"] for row in rows}) == 5
    markdown = (folder / "sweep.md").read_text()
    assert run.stdout.startswith(markdown)  # the table is printed too
    lines = [line for line in markdown.splitlines() if line.startswith("| [")]
    assert len(lines) == 5 and lines[0].startswith("| [1](1_seed-1.ipynb) | 1 | completed | ")
    assert "5 runs finished · seed = 1, 2, 3, 4, 5 · model organism:taboo" in markdown


def test_a_failed_run_is_tabled_and_ctrl_c_keeps_the_finished_runs(tmp_path: Path) -> None:
    """Seed 2 raises; seed 3 is still running when Ctrl-C comes. A plain Jupyter notebook
    (no scribe metadata) names its model with --model."""
    notebook = write_notebook(
        tmp_path / "plain.ipynb",
        [
            new_code_cell(setup_code(MODEL)),
            parameters("seed = 0"),
            new_code_cell(
                "import time\n"
                "host = client.status().pid\n"
                "if seed == 2:\n    raise ValueError('no good seed')\n"
                "if seed == 3:\n    print('waiting', flush=True)\n    time.sleep(120)\n"
            ),
            results('{"host": host, "twice": 2 * seed}'),
        ],
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "sweep", notebook.name, "--axis", "seed=1,2,3",
         "--model", MODEL],
        cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    folder = tmp_path / "plain.sweep"
    try:
        deadline = time.monotonic() + 120
        while not (folder / "3_seed-3.files").is_dir():  # runs 1 and 2 are written first
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(2)  # the interrupt lands mid-run, while run 3's kernel starts or runs
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert err.splitlines()[-1] == (
        f"scribe-tui sweep: interrupted; finished runs are in {Path('plain.sweep', 'sweep.md')}"
    )
    assert sorted(p.name for p in folder.glob("*.ipynb")) == ["1_seed-1.ipynb", "2_seed-2.ipynb"]
    with open(folder / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["seed"], r["status"], r["twice"]) for r in rows] == [
        ("1", "completed", "2"),
        ("2", "failed", ""),
    ]
    # [4] in the run's notebook, where the injected parameters are cell [3]
    assert rows[1]["note"] == "cell [4] raised ValueError: no good seed"
    assert "2 of 3 runs finished" in (folder / "sweep.md").read_text()
    failed = nbformat.read(folder / "2_seed-2.ipynb", as_version=4)
    nbformat.validate(failed)
    assert failed.metadata.scribe["status"] == "failed"
    assert failed.metadata.scribe["model"] == MODEL
    host = int(rows[0]["host"])
    deadline = time.monotonic() + 10
    while pid_alive(host) and time.monotonic() < deadline:  # the host went with the sweep
        time.sleep(0.1)
    assert not pid_alive(host)


@pytest.fixture()
def plain(tmp_path: Path) -> Path:
    return write_notebook(
        tmp_path / "plain.ipynb", [parameters("seed = 0\nlr: float = 0.1"), new_code_cell("1")]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["plain.ipynb", "--axis", "steps=1,2", "--model", MODEL],
            "--axis steps: not a parameter of plain.ipynb (its parameters cell sets seed, lr)",
        ),
        (
            ["bare.ipynb", "--axis", "seed=1,2", "--model", MODEL],
            "bare.ipynb has no parameters cell: tag the code cell that sets the defaults "
            "(e.g. `seed = 0`) with 'parameters'",
        ),
        (
            ["missing.ipynb", "--axis", "seed=1"],
            "missing.ipynb: no such notebook; check the path (scribe-tui list)",
        ),
        (["plain.ipynb", "--axis", "seed", "--model", MODEL], "--axis 'seed': write NAME=V1,V2"),
        (["plain.ipynb", "--model", MODEL], "name at least one --axis NAME=V1,V2"),
        (["plain.ipynb", "--axis", "seed=1"], "plain.ipynb records no subject model: pass --model"),
        (
            ["plain.ipynb", "--axis", "seed=1", "--model", MODEL, "--out", "full"],
            "--out full: not an empty folder; name a new one for this sweep",
        ),
        (["plain.ipynb", "--axis", "seed=1", "--jobs", "0"], "--jobs must be 1 or more, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    plain: Path, args: list[str], message: str, tmp_path: Path
) -> None:
    write_notebook(tmp_path / "bare.ipynb", [new_code_cell("seed = 0")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.ipynb").write_text("{}")
    run = scribe("sweep", *args, cwd=tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"scribe-tui sweep: {message}")
    assert not list(tmp_path.glob("*.sweep"))  # nothing started, nothing written


def test_values_are_python_literals_and_the_grid_is_every_combination() -> None:
    from scribe_tui.record.parameters import combinations, inject, parse_axis, read_results

    assert parse_axis("lr=0.01, 1e-3") == ("lr", [0.01, 0.001])
    assert parse_axis("name=gpt2,'a b',True,None") == ("name", ["gpt2", "a b", True, None])
    grid = combinations({"seed": [1, 2], "lr": [0.1, 0.2]})
    assert grid == [
        {"seed": 1, "lr": 0.1}, {"seed": 1, "lr": 0.2},
        {"seed": 2, "lr": 0.1}, {"seed": 2, "lr": 0.2},
    ]  # fmt: skip
    nb = new_notebook(cells=[parameters("seed = 0"), new_code_cell("x = seed")])
    once = inject(nb, {"seed": 1})
    twice = inject(once, {"seed": 2, "name": "a'b"})  # an earlier injection is replaced
    assert [c["source"] for c in twice["cells"]] == [
        "seed = 0",
        '# Parameters\nseed = 2\nname = "a\'b"\n',
        "x = seed",
    ]
    shown = {"output_type": "execute_result", "data": {"text/plain": "np.float64(0.5)"}}
    cell = {**results("x"), "outputs": [shown]}
    assert read_results([cell])[1].startswith("a results cell's value is not a dict")
