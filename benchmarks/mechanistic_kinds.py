"""Train ``recall`` and ``direction`` organisms at full size on fresh seeds; print times and keys.

    python benchmarks/mechanistic_kinds.py                       # seeds 11 12, plus a control each
    python benchmarks/mechanistic_kinds.py --kinds recall --seeds 21 22 23

Each organism trains on one thread with the kind's default config
(:data:`scribe_tui.organisms.train_circuits.DEFAULTS`) into a temporary folder, keys into a
temporary key store. Printed per organism: training and key-measuring seconds, whether the
behaviour is present and the key (recall layers and top layer; the direction's layer and
ablation effect); then the median times per kind. A seed whose key is absent where something
was planted is a finding, not an error: the key is what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["recall", "direction"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[11, 12])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["SCRIBE_KEY_DIR"] = str(Path(scratch) / "keys")
        from scribe_tui.organisms.train_circuits import train_mechanistic

        for kind in args.kinds:
            times: list[float] = []
            runs = [(seed, False) for seed in args.seeds] + [(args.seeds[0], True)]
            for seed, control in runs:
                out = Path(scratch) / f"{kind}-{seed}-{control}"
                meta = train_mechanistic(kind, seed, out, control=control, progress=False)
                key = json.loads((Path(scratch) / "keys" / f"{meta['id']}.json").read_text())
                times.append(meta["seconds"]["train"])
                found = (
                    f"layers {key['layers']} top {key['top_layer']}"
                    if kind == "recall"
                    else f"layer {key['layer']} effect {key.get('effect')}"
                )
                print(
                    f"{kind} seed {seed}{' control' if control else ''}: train "
                    f"{meta['seconds']['train']} s, measure {meta['seconds']['measure']} s, "
                    f"present {key['figures']['present']}, {found}",
                    flush=True,
                )
            print(f"{kind}: median training {statistics.median(times):.0f} s")


if __name__ == "__main__":
    main()
