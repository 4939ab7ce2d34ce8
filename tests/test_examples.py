"""The worked examples in ``examples/``: recorded notebooks that ``scribe-tui reproduce`` passes on.

The committed notebook is copied into the test's folder first: ``reproduce`` notes its
outcome in the original's metadata, and the committed file must stay as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
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
VERDICTS = ("identical", "within tolerance", "changed", "new error", "not run")
CELL = re.compile(rf"^  \[(\d+)\] +({'|'.join(VERDICTS)}) *(.*)$", re.MULTILINE)


def generator() -> ModuleType:
    """``examples/make_induction.py``, the script that records the notebook."""
    spec = importlib.util.spec_from_file_location("make_induction", EXAMPLES / "make_induction.py")
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
    module = generator()
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
    cells = CELL.findall(report)
    assert len(cells) == 8, report
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
