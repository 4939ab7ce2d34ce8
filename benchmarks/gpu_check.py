"""The GPU path end to end, for the day a GPU is lent: one line per check, under 8 minutes.

    python benchmarks/gpu_check.py                         # one CUDA GPU: a ~1.3B Llama, bf16
    python benchmarks/gpu_check.py --device cpu --size tiny   # the same checks, here, in seconds

Checks, each printed as ``ok|FAIL  name  detail  (seconds)``:

1. build: a Llama-style model with random weights (``--size``), saved in bf16 with the
   bundled organism's tokenizer; nothing is downloaded.
2. sealed load: a sealed model host loads it once, on the GPU, in bf16 (``--device auto``
   must not fall back to the CPU).
3. techniques: the technique library through ``client.run`` on that host.
4. memory: the status bar's device memory against ``torch.cuda.memory_allocated`` in the
   host (the status shows the allocator's reserve: what is allocated plus its cache, never less).
5. one load: after every check the host has loaded the model exactly once.
6. investigate: ``scribe-tui investigate --auto`` end to end on the model (sealed).

Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = {
    # hidden, layers, heads, intermediate: ~1.3B parameters with the organism's vocabulary
    "1b": (2048, 24, 16, 8192),
    "tiny": (64, 2, 4, 128),
}
failures = 0


def check(name: str, run: Callable[[], str]) -> None:
    """Run one check and print its line; a failure is counted, never raised."""
    global failures
    started = time.monotonic()
    try:
        detail, mark = run(), "ok  "
    except Exception as exc:  # a check's failure is its line, not the end of the script
        detail, mark = f"{type(exc).__name__}: {exc}".splitlines()[0], "FAIL"
        failures += 1
    print(f"{mark}  {name:<12} {detail}  ({time.monotonic() - started:.1f} s)", flush=True)


def build(folder: Path, size: str) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from scribe_tui.organisms.registry import resolve_model_spec

    organism, _base = resolve_model_spec("organism:taboo")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(organism)
    hidden, layers, heads, intermediate = SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    parameters = sum(p.numel() for p in model.parameters())
    return f"{parameters / 1e9:.2f}B parameters, bf16, in {folder}"


def techniques(client: Any) -> str:
    from scribe_tui import techniques as t

    calls = {
        "get_model_info": (t.get_model_info, {}),
        "next_token_probs": (t.next_token_probs, {"prompt": "What is your secret?"}),
        "logit_lens": (t.logit_lens, {"prompt": "The secret word is"}),
        "attention_patterns": (t.attention_patterns, {"prompt": "one two three", "layers": 0}),
        "capture_activations": (t.capture_activations, {"prompt": "hello", "layers": 1}),
        "activation_patching": (
            t.activation_patching,
            {"clean_prompt": "the cat", "corrupted_prompt": "the dog", "target": "cat"},
        ),
        "sample_chat": (t.sample_chat, {"prompts": "Hi", "n": 2, "max_new_tokens": 8}),
    }
    for name, (fn, kwargs) in calls.items():
        result = client.run(fn, **kwargs)
        if result is None:
            raise RuntimeError(f"{name} returned nothing")
    return f"{len(calls)} techniques ran: {', '.join(calls)}"


def allocated(model: Any, tokenizer: Any) -> int:
    import torch

    return int(torch.cuda.memory_allocated()) if torch.cuda.is_available() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (default), cuda, cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="1b", help="default 1b")
    args = parser.parse_args()
    from scribe_tui.runtime.host_process import HostProcess
    from scribe_tui.runtime.interp_client import InterpClient
    from scribe_tui.runtime.sandbox import probe

    print(f"scribe-tui GPU check: --device {args.device}, --size {args.size}, {probe().label}")
    with tempfile.TemporaryDirectory(prefix="scribe-gpu-check-") as tmp:
        folder = Path(tmp) / "random-llama"
        check("build", lambda: build(folder, args.size))
        host = HostProcess(str(folder), device=args.device, sealed=probe().sealed)
        try:

            def load() -> str:
                host.start_sync()
                status = host.wait_ready_sync(timeout=420)
                if args.device != "cpu" and not status.device.startswith("cuda"):
                    raise RuntimeError(f"loaded on {status.device}, not the GPU")
                if args.device != "cpu" and status.dtype != "bfloat16":
                    raise RuntimeError(f"dtype {status.dtype}, not bfloat16")
                return f"{status.device} {status.device_name} {status.dtype}, sealed={host.sealed}"

            check("sealed load", load)
            client = InterpClient(host_file=host.host_file)
            check("techniques", lambda: techniques(client))

            def memory() -> str:
                status, in_host = host.status(), client.run(allocated)
                used = status.memory_used or 0
                if in_host and not in_host <= used <= in_host + 4 * 2**30:
                    raise RuntimeError(f"status says {used / 2**30:.2f} GiB, torch {in_host}")
                return f"status {used / 2**30:.2f} GiB, torch.cuda allocated {in_host / 2**30:.2f}"

            check("memory", memory)

            def one_load() -> str:
                loads = host.status().loads
                if loads != 1:
                    raise RuntimeError(f"{loads} loads")
                return "the model loaded once for every call"

            check("one load", one_load)
        finally:
            host.stop()

        def investigate() -> str:
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "scribe_tui",
                    "investigate",
                    "find the secret",
                    "--auto",
                    "--json",
                    "--model",
                    str(folder),
                    "--device",
                    args.device,
                    "--notebooks-dir",
                    str(Path(tmp) / "notebooks"),
                ],
                capture_output=True,
                text=True,
                timeout=420,
                env={k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")},
            )
            if run.returncode not in (0, 3):
                raise RuntimeError(f"exit {run.returncode}: {run.stderr.strip()[-300:]}")
            events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
            concluded = [e for e in events if e["type"] == "concluded"]
            claim = concluded[0]["answer"] if concluded else "no conclusion"
            return f"exit {run.returncode}, {len(events)} events, conclusion {claim!r}"

        check("investigate", investigate)
    print(f"{'all checks passed' if not failures else f'{failures} check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
