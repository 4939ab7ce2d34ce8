"""Reproduction from scratch, end to end: the real CLI, kernels, model hosts and nbclient.

One autopilot investigation runs on a copy of the taboo organism (a local path, so
its weights can be changed afterwards); the notebook is then reproduced as it is
(identical), with a recorded output changed (reported as changed), and after a
tensor in the copy's weight file is perturbed (reported in the receipt first).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from test_investigate_e2e import scribe

from scribe_tui.organisms.registry import BUNDLED_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def investigated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(working dir, organism copy, notebook) of one autopilot run on a local organism."""
    root = tmp_path_factory.mktemp("reproduce")
    organism = root / "organisms" / "my-taboo"
    shutil.copytree(BUNDLED_DIR / "taboo", organism)
    run = scribe("investigate", "find the secret", "--auto", "--json", "--model", str(organism),
                 cwd=root)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    attach = [e for e in events if e["type"] == "kernel_started"]
    assert attach and attach[0]["connection_file"].endswith(".json")  # the --json stream has it
    (notebook,) = sorted((root / "notebooks").glob("*.ipynb"))
    yield root, organism, notebook


def fresh_copy(root: Path, notebook: Path, name: str) -> Path:
    """The notebook and its transcript under a new name (the model record follows by --model)."""
    target = notebook.with_name(f"{name}.ipynb")
    shutil.copy(notebook, target)
    shutil.copy(notebook.with_suffix(".jsonl"), target.with_suffix(".jsonl"))
    return target


def test_the_receipt_records_the_run(investigated: tuple[Path, Path, Path]) -> None:
    _, _, notebook = investigated
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    receipt = nb.metadata["scribe"]["receipt"]
    assert receipt["model"] == "local:taboo" and receipt["organism"] == "taboo"
    assert len(receipt["weights"]["sha256"]) == 64 and receipt["base_weights"]["sha256"]
    assert receipt["device"] == "cpu" and receipt["dtype"] and receipt["torch"]
    assert receipt["agent"] == "autopilot" and receipt["agent_model"] == "autopilot (seed 0)"
    assert set(receipt["prompts"]) >= {"system.md", "methodology.md", "checkpoint.md"}
    assert receipt["seeds"] == {"agent": 0} and receipt["sandbox"]["mechanism"]
    assert receipt["completed"]["outcome"] == "concluded"
    assert str(investigated[1]) not in json.dumps(nb.metadata)  # never the model's path


def test_a_same_machine_reproduction_is_identical(investigated: tuple[Path, Path, Path]) -> None:
    root, _, notebook = investigated
    run = scribe("reproduce", str(notebook), cwd=root)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    nb = nbformat.read(notebook, as_version=4)
    cells = sum(1 for cell in nb.cells if cell.cell_type == "code")
    lines = run.stdout.splitlines()
    assert lines[0] == "Receipt: same weights, versions and device"
    assert lines[1] == f"Cells: {cells} identical"
    assert len(lines) == 3  # each cell's verdict was shown live; none differs
    copy = notebook.with_name(f"{notebook.stem}.reproduced.ipynb")
    assert lines[-1].startswith(f"Reproduced: {notebook} → {copy} ({cells} code cells")
    reproduced = nbformat.read(copy, as_version=4)
    nbformat.validate(reproduced)
    assert reproduced.metadata["scribe"]["status"] == "reproduced"
    assert nb.metadata["scribe"]["reproduction"]["status"] == "reproduced"
    listing = scribe("list", "--json", cwd=root)
    rows = {Path(r["path"]).name: r for r in json.loads(listing.stdout)}
    assert rows[notebook.name]["status"] == "reproduced" and copy.name not in rows


def test_a_changed_recorded_output_is_reported(investigated: tuple[Path, Path, Path]) -> None:
    root, organism, notebook = investigated
    edited = fresh_copy(root, notebook, "edited")
    nb = nbformat.read(edited, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    number, stream = next(
        (n, output)
        for n, cell in enumerate(code, 1)
        if n > 1
        for output in cell.outputs
        if output.output_type == "stream"
    )
    stream.text += "a line nobody printed\n"
    nbformat.write(nb, edited)
    run = scribe("reproduce", str(edited), "--model", str(organism), cwd=root)
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    changed = rf"^  \[{number}\] +changed +stdout: line \d+ is gone: 'a line nobody printed'$"
    assert re.search(changed, run.stdout, re.MULTILINE), run.stdout
    assert f"Cells: {len(code) - 1} identical, 1 changed" in run.stdout
    assert run.stdout.splitlines()[-1].startswith(f"Drifted: {edited}")
    meta = nbformat.read(edited, as_version=4).metadata["scribe"]
    assert meta["reproduction"]["status"] == "drifted"


def test_a_changed_weight_file_is_reported_first(investigated: tuple[Path, Path, Path]) -> None:
    from safetensors.torch import load_file, save_file

    root, organism, notebook = investigated
    perturbed = root / "organisms" / "perturbed"
    shutil.copytree(organism, perturbed)
    weights = perturbed / "model" / "model.safetensors"
    tensors = load_file(weights)
    name = max(tensors, key=lambda n: tensors[n].numel())  # the largest: the embedding, say
    tensors[name] = tensors[name] + 0.5 * tensors[name].std()
    save_file(tensors, weights)
    run = scribe("reproduce", str(notebook), "--model", str(perturbed), cwd=root)
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "Receipt: 1 difference"
    assert lines[1].split()[:2] == ["weights", "sha256"]
    assert run.stdout.index("weights sha256") < run.stdout.index("Cells:")
    assert lines[-1].startswith(f"Drifted: {notebook}")


async def test_the_notebook_records_how_the_run_ended(tmp_path: Path) -> None:
    from scribe_tui.agent.launch import RunSettings, Workbench
    from scribe_tui.agent.loop import InvestigationConfig
    from scribe_tui.agent.scripted import SESSION, ScriptedProvider, tool
    from scribe_tui.record.index import read_entries

    cell = [tool("execute_code", code="print('one experiment')", session_id=SESSION)]
    turns = [[tool("start_new_session"), tool("init_session", session_id=SESSION)], cell, cell]
    settings = RunSettings(
        task="find the secret",
        agent="scripted",
        model="organism:taboo",
        notebooks_dir=tmp_path / "notebooks",
        config=InvestigationConfig(max_turns=1, checkpoint_every=0),
    )
    bench = await Workbench.open(settings, ScriptedProvider(turns))
    try:
        assert bench.investigation is not None
        outcome = await bench.investigation.run()
    finally:
        await bench.close()
    assert outcome.reason == "budget"
    nb = nbformat.read(outcome.notebook_path, as_version=4)
    nbformat.validate(nb)
    scribe = nb.metadata["scribe"]
    assert scribe["status"] == "budget-spent"
    completed = scribe["receipt"]["completed"]
    assert completed["outcome"] == "budget" and completed["turns"] == 2
    assert completed["code_cells"] == sum(1 for c in nb.cells if c.cell_type == "code")
    entries, _ = read_entries(tmp_path / "notebooks")
    assert [entry.status for entry in entries] == ["budget-spent"]


def test_a_new_error_and_a_dead_kernel_are_reported(investigated: tuple[Path, Path, Path]) -> None:
    root, organism, notebook = investigated
    broken = fresh_copy(root, notebook, "broken")
    nb = nbformat.read(broken, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    code[3].source = "raise KeyError('gone')"
    code[5].source = "import os\nos._exit(1)"
    nbformat.write(nb, broken)
    run = scribe("reproduce", str(broken), "--model", str(organism), cwd=root)
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    assert re.search(r"^  \[4\] +new error +KeyError: 'gone'$", run.stdout, re.MULTILINE)
    assert re.search(r"^  \[6\] +new error +the kernel died running it$", run.stdout, re.M)
    not_run = re.findall(r"^  \[(\d+)\] +not run +the kernel died before it$", run.stdout, re.M)
    assert [int(n) for n in not_run] == list(range(7, len(code) + 1))
    copy = nbformat.read(broken.with_name("broken.reproduced.ipynb"), as_version=4)
    nbformat.validate(copy)
    assert copy.metadata["scribe"]["status"] == "drifted"


def test_reproduced_cells_write_only_the_copy_s_files_folder(
    investigated: tuple[Path, Path, Path],
) -> None:
    """The copy works in a files folder of its own, seeded with the original's files: the
    folder of records (notebooks, transcripts) and the original's files are not its to write."""
    root, organism, notebook = investigated
    probe = fresh_copy(root, notebook, "writes")
    (root / "notebooks" / "writes.files").mkdir(exist_ok=True)
    (root / "notebooks" / "writes.files" / "data.txt").write_text("left by the run")
    nb = nbformat.read(probe, as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import os\n"
            "print('reads', open('data.txt').read())\n"
            "open('data.txt', 'w').write('changed')\n"
            "for target in ('../writes.ipynb', '../neighbour.ipynb'):\n"
            "    try:\n"
            "        open(target, 'a').write('forged')\n"
            "        print('WROTE', target)\n"
            "    except OSError as exc:\n"
            "        print('refused', type(exc).__name__)\n"
        )
    )
    nbformat.write(nb, probe)
    run = scribe("reproduce", str(probe), "--model", str(organism), cwd=root)
    copy = nbformat.read(probe.with_name("writes.reproduced.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for o in copy.cells[-1].get("outputs", []))
    assert "reads left by the run" in printed, run.stderr[-2000:]
    assert "WROTE" not in printed and printed.count("refused PermissionError") == 2, printed
    assert (root / "notebooks" / "writes.files" / "data.txt").read_text() == "left by the run"
    assert (root / "notebooks" / "writes.reproduced.files" / "data.txt").read_text() == "changed"
    assert not (root / "notebooks" / "neighbour.ipynb").exists()


def test_ctrl_c_stops_a_reproduction_and_leaves_the_original(
    investigated: tuple[Path, Path, Path],
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from test_investigate_e2e import cli_env

    root, organism, notebook = investigated
    slow = fresh_copy(root, notebook, "slow")
    nb = nbformat.read(slow, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import time\nprint('sleeping')\ntime.sleep(600)"))
    nbformat.write(nb, slow)
    before = slow.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scribe_tui", "reproduce", str(slow), "--model", str(organism)],
        cwd=root,
        env=cli_env(root),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    cells = len([c for c in nb.cells if c.cell_type == "code"])
    for line in proc.stderr:  # interrupt once the last (sleeping) cell runs
        if re.match(rf"^  cell \[{cells - 1}\]", line):
            time.sleep(1)
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    assert f"stopped; {slow} is unchanged" in rest
    assert slow.read_bytes() == before
    assert not slow.with_name("slow.reproduced.ipynb").exists()
