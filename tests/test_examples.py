"""The worked examples in ``examples/``: recorded notebooks that ``scribe-tui reproduce`` passes
on, and one that ``scribe-tui sweep`` runs once per seed.

The committed notebook is copied into the test's folder first: ``reproduce`` notes its
outcome in the original's metadata, and the committed file must stay as it is.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
import shutil
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from test_investigate_e2e import scribe

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "induction.ipynb"
SAE_NOTEBOOK = EXAMPLES / "sae_seeds.ipynb"
SEEDS = (1, 2, 3, 4, 5)
VERDICTS = ("identical", "within tolerance", "changed", "new error", "not run")
CELL = re.compile(rf"^  \[(\d+)\] +({'|'.join(VERDICTS)}) *(.*)$", re.MULTILINE)


def generator(name: str) -> ModuleType:
    """``examples/<name>.py``, the script that records an example notebook."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def renderers_pinned() -> bool:
    """Whether matplotlib and Pillow are the versions constraints.txt pins (the ones that drew
    the committed figures): other releases may draw or compress a PNG differently."""
    pins = (EXAMPLES.parent / "constraints.txt").read_text(encoding="utf-8")
    return all(f"{name}=={version(name)}" in pins for name in ("matplotlib", "pillow"))


def test_the_induction_notebook_is_a_small_valid_record() -> None:
    assert NOTEBOOK.stat().st_size < 300_000
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    scribe_meta = nb.metadata["scribe"]
    assert scribe_meta["model"] == "organism:induction-1" and scribe_meta["status"] == "concluded"
    receipt = scribe_meta["receipt"]
    assert receipt["requested"]["device"] == "cpu"  # reproduced on the CPU wherever it runs
    assert len(receipt["weights"]["sha256"]) == 64 and "reproduction" not in scribe_meta
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in code:
        kinds = {output.output_type for output in cell.outputs}
        assert cell.outputs and "error" not in kinds, cell.source[:80]
        # A warning names the machine's paths: no reproduction elsewhere would match it.
        assert not [o for o in cell.outputs if o.get("name") == "stderr"], cell.source[:80]
    figures = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 4
    conclusion = scribe_meta["conclusion"]
    assert conclusion["components"] and set(conclusion["components"]) <= {
        f"L{layer}H{head}" for layer in range(2) for head in range(4)
    }


def test_the_notebook_holds_the_generator_s_cells() -> None:
    """The committed notebook is what ``make_induction.py`` records: the same code cells,
    in order, after the setup cell (edit the script and regenerate, never the notebook)."""
    module = generator("make_induction")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    expected = [
        module.INFO,
        module.PROBE,
        module.SCORES,
        module.ABLATION,
        module.ATTRIBUTION,
        module.PATH,
        module.FAITH,
    ]
    assert code[1:] == expected
    assert "InterpClient(model='organism:induction-1'" in code[0]


def test_scribe_tui_reproduce_passes_on_the_induction_notebook(tmp_path: Path) -> None:
    committed = hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest()
    work = tmp_path / "induction.ipynb"
    shutil.copyfile(NOTEBOOK, work)
    out = tmp_path / "reproduced" / "induction.ipynb"
    run = scribe("reproduce", str(work), "--out", str(out), cwd=tmp_path)
    report = run.stdout
    assert hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest() == committed
    assert "weights sha256" not in report and "Cells:" in report, report + run.stderr[-3000:]
    totals = re.search(r"^Cells: (.+)$", report, re.MULTILINE)
    assert totals, report
    counted = {verdict: int(n) for n, verdict in (t.split(" ", 1) for t in totals[1].split(", "))}
    assert sum(counted.values()) == 8, report
    cells = CELL.findall(report)  # the cells that are not identical
    assert len(cells) == 8 - counted.get("identical", 0), report
    if renderers_pinned():
        assert run.returncode == 0, report + run.stderr[-3000:]
        assert all(verdict in ("identical", "within tolerance") for _, verdict, _ in cells)
        assert report.splitlines()[-1].startswith(f"Reproduced: {work} → {out}")
    else:  # another matplotlib or Pillow: every number must still match, figures may not
        for number, verdict, detail in cells:
            assert verdict in ("identical", "within tolerance") or (
                verdict == "changed" and detail == "the image/png image differs"
            ), f"[{number}] {verdict} {detail}\n{report}"
    copy = nbformat.read(out, as_version=4)
    nbformat.validate(copy)
    assert copy.metadata["scribe"]["reproduction_of"] == str(work)


def test_the_sae_seeds_notebook_is_the_generator_s_record_for_a_sweep() -> None:
    """``make_sae_seeds.py`` recorded it with its defaults: every code cell ran, the
    parameters and results cells are tagged, and the results cell shows a row."""
    from scribe_tui.record.parameters import parameter_names, read_results

    module = generator("make_sae_seeds")
    assert SAE_NOTEBOOK.stat().st_size < 100_000
    nb = nbformat.read(SAE_NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    expected = [module.PARAMETERS, module.CORPUS, module.TRAIN, module.STABILITY, module.RESULTS]
    assert [cell.source for cell in code[1:]] == expected
    assert "InterpClient(model='organism:taboo')" in code[0].source
    assert [cell.metadata.get("tags") for cell in code] == [
        None, ["parameters"], None, None, None, ["results"]
    ]  # fmt: skip
    assert parameter_names(nb, SAE_NOTEBOOK.name)[0] == "seed"
    for cell in code:
        assert cell.execution_count, cell.source[:80]
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:80]
        assert not [o for o in cell.outputs if o.get("name") == "stderr"], cell.source[:80]
    assert sum("image/png" in o.get("data", {}) for cell in code for o in cell.outputs) == 1
    values, problem = read_results(nb.cells)
    assert not problem and set(values) == {"fve", "l0", "live", "stability", "matched", "chance"}
    scribe_meta = nb.metadata["scribe"]
    assert scribe_meta["model"] == "organism:taboo" and scribe_meta["status"] == "completed"
    assert scribe_meta["receipt"]["requested"]["device"] == "cpu"  # swept on the CPU anywhere


@pytest.fixture(scope="module")
def sae_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(working dir, sweep folder, the CLI's stdout) of the README's five-seed sweep."""
    root = tmp_path_factory.mktemp("sae_sweep")
    committed = hashlib.sha256(SAE_NOTEBOOK.read_bytes()).hexdigest()
    folder = root / "notebooks" / "sae_seeds.sweep"
    seeds = ",".join(map(str, SEEDS))
    run = scribe(
        "sweep", str(SAE_NOTEBOOK), "--axis", f"seed={seeds}", "--out", str(folder), "--jobs", "2",
        cwd=root, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert hashlib.sha256(SAE_NOTEBOOK.read_bytes()).hexdigest() == committed
    return root, folder, run.stdout


def test_the_sae_sweep_writes_one_executed_indexed_notebook_per_seed(
    sae_sweep: tuple[Path, Path, str],
) -> None:
    root, folder, _ = sae_sweep
    runs = sorted(folder.glob("*.ipynb"))
    assert [path.name for path in runs] == [f"{seed}_seed-{seed}.ipynb" for seed in SEEDS]
    for seed, path in zip(SEEDS, runs, strict=True):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and f"seed = {seed}\n" in injected[0].source
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(cell.execution_count for cell in code)
        assert not any(o.output_type == "error" for cell in code for o in cell.outputs)
        assert nb.metadata.scribe["status"] == "completed"
        assert nb.metadata.scribe["receipt"]["parameters"] == {"seed": seed}
    listing = scribe("list", str(folder), "--json", cwd=root)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert sorted(Path(row["path"]).name for row in rows) == [path.name for path in runs]
    assert {row["status"] for row in rows} == {"completed"}


def test_the_sae_sweep_table_compares_the_seeds(sae_sweep: tuple[Path, Path, str]) -> None:
    _, folder, stdout = sae_sweep
    with open(folder / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["seed"]) for row in rows] == list(SEEDS)
    assert {row["status"] for row in rows} == {"completed"}
    for row in rows:
        assert 0.5 < float(row["fve"]) < 1, row
        assert 0 < float(row["l0"]) < 256 and 0 < int(row["live"]) <= 256, row
        # chance: random directions against the same reference, the same in every run
        assert float(row["chance"]) < float(row["stability"]) < 1, row
        assert 0 <= float(row["matched"]) <= 1, row
    assert len({row["chance"] for row in rows}) == 1
    assert len({row["stability"] for row in rows}) == len(SEEDS)  # each seed its own SAE
    assert len({(row["fve"], row["l0"]) for row in rows}) == len(SEEDS)
    markdown = (folder / "sweep.md").read_text()
    assert stdout.startswith(markdown)
    assert "| run | seed | status | fve | l0 | live | stability | matched | chance |" in markdown
    assert len([line for line in markdown.splitlines() if line.startswith("| [")]) == len(SEEDS)
