"""``client.run`` overhead over a direct call, and model-host cold start to ready.

    python benchmarks/bench_interp.py [--model organism:taboo] [--calls 500] [--starts 3]

Overhead: ``client.run(fn)`` from this process against ``fn(model, tokenizer)`` on a
copy of the model loaded here, interleaved call by call so machine noise hits both.
Two techniques: a trivial one (the pure round trip: pickling, socket, hook snapshot
and restore) and a next-token distribution (a forward pass plus a tensor result).

Cold start: ``HostProcess.start()`` until the host reports ready, with the time each
loading phase began, against the floor a bare ``python -c`` that imports torch and
transformers and loads the same model needs.

Without the bundled organisms (``scribe_tui.organisms.registry``) the tiny test model
is used instead. Goals: median overhead ≤ 2 ms; bundled organism ready ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Two processes take turns on the same cores here; OpenMP workers that spin after each op
# (the default) would steal the other's time and time each other's spinning, not calls.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

OVERHEAD_GOAL_MS = 2.0
READY_GOAL_S = 2.0


def trivial(model, tokenizer):
    return 1


def next_token(model, tokenizer, prompt):
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        return model(ids).logits[0, -1].softmax(-1)


def pick_model(spec: str, workdir: Path) -> tuple[str, str]:
    """``(spec to load, path on disk)``; falls back to the tiny test model."""
    from scribe_tui.runtime.loading import ModelLoadError, resolve_model

    try:
        return spec, resolve_model(spec).path
    except ModelLoadError as exc:
        print(f"({spec} unavailable: {exc}\n using the tiny test model instead)")
    # The tests' fixture builds it; share it rather than keep a second copy here.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from host_fixtures import build_tiny_model
    from transformers.utils import logging

    logging.disable_progress_bar()
    path = str(build_tiny_model(workdir / "tiny"))
    return path, path


def bench_overhead(spec: str, path: str, calls: int) -> dict[str, float]:
    import cloudpickle

    from scribe_tui.runtime.host_process import HostProcess
    from scribe_tui.runtime.interp_client import InterpClient
    from scribe_tui.runtime.loading import load_model, resolve_model

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as for notebook functions
    local = load_model(resolve_model(spec), device="cpu", dtype="float32", progress=lambda *a: None)
    host = HostProcess(spec, device="cpu", dtype="float32")
    host.start_sync()
    host.wait_ready_sync(timeout=300)
    client = InterpClient(host_file=host.host_file)
    results: dict[str, float] = {}
    try:
        for name, fn, kwargs in (
            ("trivial", trivial, {}),
            ("next-token", next_token, {"prompt": "the secret word is"}),
        ):
            for _ in range(20):  # warm up both paths
                client.run(fn, **kwargs)
                fn(local.model, local.tokenizer, **kwargs)
            direct, remote = [], []
            for _ in range(calls):
                start = time.perf_counter()
                fn(local.model, local.tokenizer, **kwargs)
                direct.append(time.perf_counter() - start)
                start = time.perf_counter()
                client.run(fn, **kwargs)
                remote.append(time.perf_counter() - start)
            d, r = statistics.median(direct) * 1e3, statistics.median(remote) * 1e3
            results[name] = r - d
            p90 = statistics.quantiles(remote, n=10)[-1] * 1e3
            print(
                f"  {name:<10} direct {d:7.3f} ms   client.run {r:7.3f} ms (p90 {p90:.3f})"
                f"   overhead {r - d:6.3f} ms"
            )
    finally:
        client.close()
        host.stop()
    return results


def bench_cold_start(spec: str, path: str, starts: int) -> tuple[float, float]:
    from scribe_tui.runtime.host_process import HostProcess

    floor_code = (
        "import torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
        f"AutoModelForCausalLM.from_pretrained({path!r}); AutoTokenizer.from_pretrained({path!r})"
    )
    readies, floors = [], []
    for _ in range(starts):
        phases: list[tuple[float, str]] = []
        start = time.perf_counter()

        def record(status, phases=phases, start=start):
            phases.append((time.perf_counter() - start, status.phase or status.state))

        host = HostProcess(spec, device="cpu")
        host.start_sync()
        host.wait_ready_sync(timeout=300, on_progress=record)
        readies.append(time.perf_counter() - start)
        host.stop()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", floor_code], check=True, capture_output=True)
        floors.append(time.perf_counter() - start)
        print("  " + " → ".join(f"{phase} {t:.2f}s" for t, phase in phases))
    ready, floor = statistics.median(readies), statistics.median(floors)
    print(
        f"  ready: median {ready:.2f} s over {starts} starts; "
        f"bare import+load floor {floor:.2f} s; host's own share {ready - floor:+.2f} s"
    )
    return ready, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="organism:taboo")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        spec, path = pick_model(args.model, Path(workdir))
        print(f"model: {spec}")
        print(f"client.run overhead ({args.calls} interleaved calls, medians):")
        overhead = bench_overhead(spec, path, args.calls)
        print("cold start to ready (HostProcess.start → status ready):")
        ready, _ = bench_cold_start(spec, path, args.starts)
    ok_overhead = overhead["trivial"] <= OVERHEAD_GOAL_MS
    ok_ready = ready <= READY_GOAL_S
    print(
        f"goals: overhead {overhead['trivial']:.3f} ms ≤ {OVERHEAD_GOAL_MS} ms "
        f"{'PASS' if ok_overhead else 'FAIL'}; ready {ready:.2f} s ≤ {READY_GOAL_S} s "
        f"{'PASS' if ok_ready else 'FAIL'}"
    )
    return 0 if ok_overhead and ok_ready else 1


if __name__ == "__main__":
    sys.exit(main())
