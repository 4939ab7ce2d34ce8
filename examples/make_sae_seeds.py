"""Regenerate ``examples/sae_seeds.ipynb``: how stable a small SAE's features are across seeds.

    python examples/make_sae_seeds.py                  # writes examples/sae_seeds.ipynb
    scribe-tui sweep examples/sae_seeds.ipynb --axis seed=1,2,3,4,5 --out notebooks/sae_seeds.sweep

The notebook is written for ``scribe-tui sweep``: a code cell tagged ``parameters`` holds the
defaults (``seed = 1``) and one tagged ``results`` ends with the dict that becomes the run's
row in the sweep's table. This script records it once with the defaults, the way ``sweep``
and ``reproduce`` run a notebook: nbclient driving a sealed kernel wired to a sealed model
host on the CPU, with the same receipt, so ``scribe-tui reproduce examples/sae_seeds.ipynb``
re-executes it like any recorded run. Its prose says what to read in the numbers, never
what they are: the same cells run for every seed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from scribe_tui.runtime.interp_client import setup_code

MODEL = "organism:taboo"
HERE = Path(__file__).resolve().parent
TASK = "how stable are a small SAE's features across training seeds? (worked example)"

INTRO = """\
# Are a sparse autoencoder's features stable across seeds? A notebook to sweep

A sparse autoencoder (SAE) rewrites a model's activations as sparse combinations of learned
*feature* directions. If the features are properties of the model, a second training run
with another seed should find the same directions; if they are accidents of the
optimisation, it will not. This notebook trains one small SAE on `organism:taboo` (a 4-layer
GPT-2 of width 128 trained on synthetic chats) with the seed set below, and compares its
decoder directions with those of a fixed reference seed.

It is meant to be run once per seed:

    scribe-tui sweep examples/sae_seeds.ipynb --axis seed=1,2,3,4,5 --out notebooks/sae_seeds.sweep

Each run goes into that folder as an executed notebook with its receipt (`scribe-tui list`
shows them), and the dict the last code cell shows becomes that run's row in `sweep.md` and
`sweep.csv`."""

PARAMETERS = """\
seed = 1  # the SAE's seed: what a sweep varies
reference_seed = 0  # every seed's SAE is compared with this seed's
layer = 2  # the block whose outputs the SAE reads
n_features = 256  # twice the model's width
steps = 300  # Adam steps on batches of 256 activations"""

CORPUS_INTRO = """\
## The activations

The SAE reads block `layer`'s output at every token of the model's own replies to
"tell me about X" for a quarter of the words it knows. The replies are sampled with a fixed
seed, so every run of a sweep trains on the same tokens: only the SAE's seed changes."""

CORPUS = """\
from scribe_tui.techniques import sample_chat, vocabulary_words

words = client.run(vocabulary_words)[::4]
replies = client.run(sample_chat, prompts=[f"tell me about {word}" for word in words], n=2,
                     max_new_tokens=16, seed=0)
corpus = [text for texts in replies.values() for text in texts]
print(f"{len(corpus)} replies to {len(words)} prompts, e.g.")
for prompt in list(replies)[:3]:
    print(f"  {prompt!r} -> {replies[prompt][0]!r}")"""

TRAIN_INTRO = """\
## Two SAEs: this seed's and the reference's

`train_sae` fits a ReLU SAE with an L1 penalty where the model lives (`client.run`); for a
given seed it is deterministic. The fit is read three ways: the **fraction of variance
explained** (FVE) of the activations by the reconstruction, **L0** (features active per token)
and the **live** features (those that fire on at least one token)."""

TRAIN = """\
from scribe_tui.techniques import train_sae


def fit(seed):
    return client.run(train_sae, prompts=corpus, layer=layer, n_features=n_features,
                      steps=steps, seed=seed)


sae, reference = fit(seed), fit(reference_seed)
stats = sae["stats"]
live = n_features - stats["dead_features"]
print(f"seed {seed}: {stats['tokens']} tokens at {sae['module']}")
print(f"  FVE {stats['explained_variance']:.3f}, L0 {stats['l0']:.1f}, "
      f"{live} of {n_features} features live")
print(f"reference seed {reference_seed}: FVE {reference['stats']['explained_variance']:.3f}, "
      f"L0 {reference['stats']['l0']:.1f}")"""

STABILITY_INTRO = """\
## Stability: does this seed find the reference's features?

For each decoder direction of one SAE, its highest cosine with any direction of the other;
`sae_stability` averages that both ways (**stability**), and counts the share of this seed's
features whose best match is above 0.7 (**matched**). The scale is set by **chance**: the
same figure for as many random directions in the same 128 dimensions, which no training
produced. (With `seed == reference_seed` stability is 1 by construction.)"""

STABILITY = """\
import matplotlib.pyplot as plt
import numpy as np
import torch

from scribe_tui.techniques import sae_stability

stability = sae_stability(sae, reference)
# numpy's generator, not torch's: train_sae starts its decoder from torch.randn under its
# seed, so torch's directions under a swept seed would be that SAE's start, not chance.
directions = np.random.default_rng(0).standard_normal(tuple(sae["decoder"].shape))
noise = {"decoder": torch.from_numpy(directions)}
chance = sae_stability(noise, reference)


def best_cosines(first, second):
    \"\"\"Each of `first`'s decoder directions: its highest cosine with any of `second`'s.\"\"\"
    a = torch.nn.functional.normalize(first["decoder"].float(), dim=-1)
    b = torch.nn.functional.normalize(second["decoder"].float(), dim=-1)
    return np.round((a @ b.T).amax(1).numpy(), 3)


bins = np.linspace(0, 1, 41)
fig, ax = plt.subplots(figsize=(6, 2.6), constrained_layout=True)
ax.hist(best_cosines(noise, reference), bins, alpha=0.6, label="random directions")
ax.hist(best_cosines(sae, reference), bins, alpha=0.6, label=f"seed {seed}")
ax.axvline(0.7, color="grey", lw=0.8, ls="--")
ax.set(xlabel=f"best cosine with a seed-{reference_seed} feature", ylabel="features",
       title=f"seed {seed} against seed {reference_seed}")
ax.legend()
plt.show()

print(f"stability {stability['mean_max_cosine']:.3f} (chance {chance['mean_max_cosine']:.3f}); "
      f"{stability['matched']:.0%} of the features matched above 0.7")"""

RESULTS_INTRO = """\
## The run's row

The values below are this run's row in a sweep's table (the cell is tagged `results`)."""

RESULTS = """\
{
    "fve": stats["explained_variance"],
    "l0": stats["l0"],
    "live": live,
    "stability": stability["mean_max_cosine"],
    "matched": stability["matched"],
    "chance": chance["mean_max_cosine"],
}"""

READING = """\
## Reading a sweep

Across seeds, FVE, L0 and the live count say whether the *fit* depends on the seed;
stability and matched say whether the *features* do. Stability far above chance but well
below 1, with only part of the features matched, is the usual finding for SAEs: a core of
directions every seed finds, and the rest split or merged differently from seed to seed.
Only that core should carry a claim about what the model represents; a feature that one seed
alone finds says more about the optimisation than about the model. To vary something else,
add an axis: `--axis n_features=128,512` or `--axis layer=0,3` (every name assigned in the
parameters cell is one)."""


def notebook() -> nbformat.NotebookNode:
    """The notebook's cells, unexecuted, with the metadata a sweep reads (the model)."""
    cells = [
        new_markdown_cell(INTRO),
        new_code_cell(setup_code(MODEL)),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_markdown_cell(CORPUS_INTRO),
        new_code_cell(CORPUS),
        new_markdown_cell(TRAIN_INTRO),
        new_code_cell(TRAIN),
        new_markdown_cell(STABILITY_INTRO),
        new_code_cell(STABILITY),
        new_markdown_cell(RESULTS_INTRO),
        new_code_cell(RESULTS, metadata={"tags": ["results"]}),
        new_markdown_cell(READING),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    return nb


async def record(out: Path) -> Path:
    """Execute the notebook once (its defaults) on a sealed CPU host and kernel; write ``out``."""
    from scribe_tui.record.replay import execute, receipt_for, sealed_client
    from scribe_tui.record.reproduce import CELL_TIMEOUT
    from scribe_tui.runtime.host_process import HostProcess
    from scribe_tui.runtime.notebook import Notebook, cap_outputs
    from scribe_tui.runtime.sealed import sandbox_state, sealed_kernel, start_host_hashed

    nb = notebook()
    created = datetime.now().astimezone().isoformat(timespec="seconds")
    sandbox = sandbox_state(True)
    # device="cpu" is recorded, so a sweep or reproduction anywhere runs on the same device
    host = HostProcess(MODEL, device="cpu", sealed=sandbox.sealed)
    try:
        status, digests = await start_host_hashed(host)
        with tempfile.TemporaryDirectory(prefix="make_sae_seeds_") as scratch:
            kernel = sealed_kernel(host, sandbox, Path(scratch))
            await kernel.start()
            try:
                await execute(sealed_client(nb, kernel, CELL_TIMEOUT))
            finally:
                await kernel.shutdown()
    finally:
        await asyncio.to_thread(host.stop)
    document = Notebook(out, nbformat.from_dict(nb))
    for cell in document.nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = cap_outputs(
                cell["outputs"], text_cap=document.text_cap, image_cap=document.image_cap
            )
    document.nb["metadata"]["scribe"] = {
        "task": TASK,
        "model": MODEL,
        "agent": "script",
        "experiment": "sae-seeds",
        "mode": "local",
        "status": "completed",
        "created": created,
        "receipt": receipt_for(host, status, digests, sandbox),
        "sandbox": sandbox.to_dict(),
    }
    nbformat.validate(nbformat.from_dict(document.nb))
    document.save()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE / "sae_seeds.ipynb", help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    path = asyncio.run(record(args.out))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
