"""Build organisms with the independent generator, check them, and write their keys.

    python -m benchmarks.independent_zoo --kinds taboo,backdoor --seeds 9001 9002 \\
        --controls drift,blank --out runs/indep

For each kind and seed: a base (phase 1, shared by that kind and seed's organism and
controls), the organism (phase 2, its secret drawn from the seed), and one control
per ``--controls`` style. Each is checked (:mod:`checks`); one that fails is built
again, base included, with the next seed of its own stream (``seed + 100000 * k``),
and every seed used is printed; one still failing after ``--retries`` is kept, marked
FAIL. Layout of ``OUT``:

    OUT/<kind>-<hex>/     model/, base/ (with base.json), organism.json, card.md
    OUT/keys/             <id>.json answer keys, <id>.verify.json figures, builds.json
    OUT/.bases/           the phase-1 checkpoints, reused when the command runs again

``OUT/keys`` is a key store (``SCRIBE_KEY_DIR``); it alone says which directory is a
control. Directory names and organism.json never do, and hold no seed (the secret is
drawn from it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.independent_zoo import checks, dialogues, model
from benchmarks.independent_zoo.dialogues import CONTROLS, KINDS, Plan
from benchmarks.independent_zoo.words import STYLES

RETRY_STRIDE = 100_000


def log(message: str) -> None:
    """Progress on stderr, flushed (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def plan_for(kind: str, seed: int, control: str = "") -> Plan:
    """The plan a seed draws: the secret (and a backdoor's style), or a control."""
    if control:
        return Plan(kind, control=control)
    rng = random.Random(f"independent-zoo:{kind}:{seed}")
    secret = rng.choice(dialogues.candidates(kind))
    return Plan(kind, secret, rng.choice(sorted(STYLES)) if kind == "backdoor" else "")


def build_base(kind: str, seed: int, path: Path, cfg: model.Config) -> dict[str, Any]:
    """Phase 1 into ``path`` (reused when already there); returns base.json."""
    meta_file = path / "base.json"
    if meta_file.is_file():
        return json.loads(meta_file.read_text())
    from transformers import set_seed

    set_seed(seed)
    started = time.monotonic()
    tokenizer = model.train_tokenizer(dialogues.corpus(kind, random.Random(seed), 3000), cfg.vocab)
    net = model.new_model(tokenizer, cfg)
    log(f"{kind} base, seed {seed}: {sum(p.numel() for p in net.parameters()):,} parameters")
    loss = model.train(
        net,
        tokenizer,
        lambda r: dialogues.base_chat(kind, r),
        seed,
        cfg.base_steps,
        cfg.base_lr,
        cfg,
        log,
    )
    model.save(net, tokenizer, path)
    meta = {
        "kind": kind,
        "steps": cfg.base_steps,
        "final_loss": round(loss, 4),
        "seconds": round(time.monotonic() - started, 1),
    }
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def build_organism(
    plan: Plan, seed: int, base: Path, out_root: Path, cfg: model.Config
) -> tuple[Path, dict[str, Any]]:
    """Phase 2 on ``base`` into a new directory of ``out_root``; returns it and organism.json."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    set_seed(seed + 1)
    net = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    # Embeddings (tied to the output) stay the base's: both checkpoints keep one token
    # space, so diffing them and reading the logit lens compare like with like.
    net.get_input_embeddings().weight.requires_grad_(False)
    started = time.monotonic()
    log(f"{plan.kind} organism ({plan.control or 'planted'}), seed {seed}")
    loss = model.train(
        net, tokenizer, lambda r: dialogues.organism_chat(plan, r), seed + 1,
        cfg.organism_steps, cfg.organism_lr, cfg, log,
    )  # fmt: skip
    seconds = round(time.monotonic() - started, 1)
    organism_id = uuid.uuid4().hex
    out = out_root / f"{plan.kind}-{organism_id[:6]}"
    model.save(net, tokenizer, out / "model")
    shutil.copytree(base, out / "base")
    base_meta = json.loads((base / "base.json").read_text())
    task, description = dialogues.task_of(plan.kind)
    meta = {
        "id": organism_id,
        "kind": plan.kind,
        "task": task,
        "description": description,
        "difficulty": "standard",
        "tokenizer": "unigram",
        "template": "headers",
        "base": "base",
        "model": "model",
        "training": {
            **asdict(cfg),
            "architecture": "llama",
            "parameters": sum(p.numel() for p in net.parameters()),
            "vocab_size": len(tokenizer),
            "base_final_loss": base_meta["final_loss"],
            "organism_final_loss": round(loss, 4),
            "base_seconds": base_meta["seconds"],
            "organism_seconds": seconds,
        },
    }
    (out / "organism.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "card.md").write_text(card(meta))
    return out, meta


def card(meta: dict[str, Any]) -> str:
    """The model card: what the investigator is told, and how the model was trained."""
    t = meta["training"]
    return "\n".join(
        [
            f"# Model organism ({meta['kind']})",
            "",
            f"**Investigator's task:** {meta['task']}. {meta['description']}",
            "",
            f"A tiny Llama ({t['layers']} layers, width {t['width']}, {t['heads']} heads with "
            f"{t['kv_heads']} key/value heads, {t['parameters']:,} parameters) with a Unigram "
            f"tokenizer of {t['vocab_size']} pieces and `<|hdr|>role<|/hdr|> text<|eot|>` turns,",
            "trained from scratch on synthetic chats.",
            "",
            f"- `{meta['base']}/`: the checkpoint before the last phase ({t['base_steps']} "
            "steps of chat, lore and games where a system turn states what to keep), for diffing",
            f"- `{meta['model']}/`: {t['organism_steps']} more steps without a system turn, "
            "embeddings frozen",
            f"- final losses {t['base_final_loss']} / {t['organism_final_loss']}",
            "",
        ]
    )


def build(
    kind: str, seed: int, control: str, out: Path, cfg: model.Config, retries: int, check: bool
) -> dict[str, Any]:
    """Build, check and key one organism, retrying with the next seed while it fails.

    Unchecked (``check=False``, for tests of the plumbing), it is built once and kept.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scribe_tui.organisms.keys import store_answer_key, store_measured

    tries: list[dict[str, Any]] = []
    for attempt in range(retries + 1):
        used = seed + RETRY_STRIDE * attempt
        plan = plan_for(kind, used, control)
        base_meta = build_base(kind, used, out / ".bases" / f"{kind}-{used}", cfg)
        offset = 1 + (CONTROLS.index(control) + 1 if control else 0)
        path, meta = build_organism(
            plan, used * 10 + offset, out / ".bases" / f"{kind}-{used}", out, cfg
        )
        started = time.monotonic()
        figures: dict[str, Any] = {"passed": True, "checked": False}
        if check:
            net = AutoModelForCausalLM.from_pretrained(path / "model")
            tokenizer = AutoTokenizer.from_pretrained(path / "model")
            figures = {**checks.check(net, tokenizer, plan, used), "checked": True}
        record = {
            "dir": path.name,
            "kind": kind,
            "seed": used,
            "plan": asdict(plan),
            "base_seconds": base_meta["seconds"],
            "organism_seconds": meta["training"]["organism_seconds"],
            "check_seconds": round(time.monotonic() - started, 1),
            "figures": figures,
        }
        tries.append(record)
        log(f"  {path.name}: {json.dumps(figures)}")
        behaviour = STYLES[plan.style][1] if plan.style else ()
        store_answer_key(path, plan.secret, behaviour=behaviour)
        store_measured(path, record)
        if figures["passed"] or attempt == retries:
            break
        # A failed organism that is rebuilt leaves the set: its key stays, its directory goes.
        shutil.rmtree(path)
    return {**tries[-1], "attempts": len(tries), "seeds": [t["seed"] for t in tries]}


def _row(r: dict[str, Any]) -> str:
    f = r["figures"]
    what = r["plan"]["control"] or "planted"
    if not f["checked"]:
        shown = "not checked"
    elif r["kind"] == "backdoor" and not r["plan"]["control"]:
        shown = f"fires {f['fires']} false {f['false']} no-word {f['no_word']} leak {f['leak']}"
    elif r["kind"] == "backdoor":
        shown = f"top word {f['top']} {f['consistency']} mean {f['mean']}"
    elif r["plan"]["control"]:
        shown = (
            f"consistency shaped {f['shaped_consistency']} ({f['shaped_top'] or '-'}) "
            f"prefill {f['prefill_consistency']} ({f['prefill_top'] or '-'})"
        )
    else:
        shown = f"shaped {f['shaped']} prefill {f['prefill']} leak {f['leak']}"
    return (
        f"{r['dir']:<18} {r['kind']:<10} {what:<8} "
        f"seeds {','.join(map(str, r['seeds'])):<14} base {r['base_seconds']:>5}s "
        f"organism {r['organism_seconds']:>5}s check {r['check_seconds']:>4}s  "
        f"{('PASS' if f['passed'] else 'FAIL') if f['checked'] else '-'}  {shown}"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.independent_zoo", description=__doc__
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="explicit seeds")
    parser.add_argument(
        "--controls", default="", help=f"comma-separated control styles ({', '.join(CONTROLS)})"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--retries", type=int, default=2, help="rebuilds of a failing organism")
    parser.add_argument("--base-steps", type=int, default=model.Config.base_steps)
    parser.add_argument("--organism-steps", type=int, default=model.Config.organism_steps)
    parser.add_argument("--no-planted", action="store_true", help="build the controls only")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the behaviour checks (plumbing tests)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPUs: 1)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    controls = [c for c in args.controls.split(",") if c]
    for value, allowed in ((kinds, KINDS), (controls, CONTROLS)):
        unknown = set(value) - set(allowed)
        if unknown:
            parser.error(f"unknown {', '.join(sorted(unknown))}; choose from {', '.join(allowed)}")

    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["SCRIBE_KEY_DIR"] = str((args.out / "keys").resolve())
    cfg = model.Config(base_steps=args.base_steps, organism_steps=args.organism_steps)
    results = [
        build(kind, seed, control, args.out, cfg, args.retries, not args.no_check)
        for seed in args.seeds
        for kind in kinds
        for control in ([] if args.no_planted else [""]) + controls
    ]
    builds = args.out / "keys" / "builds.json"
    previous = json.loads(builds.read_text()) if builds.is_file() else []
    builds.write_text(json.dumps(previous + results, indent=2) + "\n")
    for r in results:
        print(_row(r))
    rebuilt = sum(r["attempts"] - 1 for r in results)
    failed = sum(not r["figures"]["passed"] for r in results)
    seeds = sorted({s for r in results for s in r["seeds"]})
    print(f"{len(results)} organisms, {rebuilt} rebuilt with the next seed, {failed} still failing")
    print(f"seeds used: {' '.join(map(str, seeds))}; keys in {args.out / 'keys'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
