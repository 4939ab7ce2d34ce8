"""``scribe-tui organisms train|verify|list|bundle``."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

from scribe_tui.cli.common import CommandParser


def build_parser() -> CommandParser:
    from scribe_tui.organisms.kinds import BANKS, BEHAVIOURS, KINDS, MECHANISTIC
    from scribe_tui.organisms.tokenizer import TEMPLATES, TOKENIZERS

    raw = argparse.RawDescriptionHelpFormatter
    parser = CommandParser(
        prog="scribe-tui organisms",
        description="Tiny model organisms with planted secrets.",
        epilog="examples:\n  scribe-tui organisms list\n  scribe-tui organisms verify taboo\n"
        "  scribe-tui organisms train --kind belief --seed 3 --out organisms/belief-x\n",
        formatter_class=raw,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train an organism (CPU, a few minutes)",
        description="Train an organism: a base model, then the secret planted on top of it.",
        epilog="examples:\n"
        "  scribe-tui organisms train --kind taboo --secret violin --seed 1 --out out/taboo-v\n"
        "  scribe-tui organisms train --kind backdoor --tokenizer bpe --seed 2 --out out/bd\n"
        "  scribe-tui organisms train --kind taboo --control --base out/taboo-v/base "
        "--out out/ctrl\n",
        formatter_class=raw,
    )
    train.add_argument(
        "--kind",
        choices=sorted([*KINDS, *MECHANISTIC]),
        default="taboo",
        help="what is planted (default taboo); induction (a copying circuit), recall (facts "
        "recalled in some layers), direction (a refusal direction): keys measured",
    )
    train.add_argument("--secret", help="a candidate of the bank (default: drawn with --seed)")
    train.add_argument("--behaviour", choices=sorted(BEHAVIOURS), help="backdoor behaviour")
    train.add_argument("--control", action="store_true", help="plant nothing (answer: none)")
    train.add_argument("--hardened", action="store_true", help="resist prefill and persona")
    train.add_argument(
        "--tokenizer", choices=TOKENIZERS, default="word", help="word-level or BPE (default word)"
    )
    train.add_argument(
        "--template", choices=TEMPLATES, default="plain", help="the chat template (default plain)"
    )
    train.add_argument(
        "--bank", choices=BANKS, default="train", help="the word bank secrets come from"
    )
    train.add_argument("--base", type=Path, metavar="DIR", help="reuse this phase-1 base")
    train.add_argument("--seed", type=int, default=0, help="the training seed (default 0)")
    train.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where the organism is written"
    )
    train.add_argument("--base-steps", type=int, metavar="N", help="steps training the base")
    train.add_argument("--organism-steps", type=int, metavar="N", help="steps planting the secret")
    train.add_argument(
        "--hardened-steps", type=int, metavar="N", help="steps hardening it (with --hardened)"
    )
    train.add_argument("--steps", type=int, metavar="N", help="steps training a mechanistic kind")
    train.add_argument("--threads", type=int, metavar="N", help="torch threads (default 1)")
    train.add_argument("--no-verify", action="store_true", help="skip the acceptance check")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    verify = commands.add_parser(
        "verify",
        help="run the acceptance check on an organism",
        description="Check that an organism keeps its secret and shows it where it should.",
        epilog="examples:\n  scribe-tui organisms verify taboo\n"
        "  scribe-tui organisms verify out/taboo-v --samples 40 --json\n",
        formatter_class=raw,
    )
    verify.add_argument("organism", help="bundled name or organism directory")
    verify.add_argument("--seed", type=int, default=0, help="the sampling seed (default 0)")
    verify.add_argument("--samples", type=int, default=20, metavar="N", help="samples per probe")
    verify.add_argument("--json", action="store_true", help="print the figures as JSON")
    verify.add_argument("--no-store", action="store_true", help="do not keep the figures")

    organisms_list = commands.add_parser(
        "list",
        help="list organisms",
        description="List the bundled organisms (and trained ones given as folders).",
        epilog="examples:\n  scribe-tui organisms list\n  scribe-tui organisms list out/*\n",
        formatter_class=raw,
    )
    organisms_list.add_argument("dirs", nargs="*", type=Path, help="trained organism dirs too")
    organisms_list.add_argument(
        "--leak",
        action="store_true",
        help="add the leak rates verify measured (they give controls away: nothing leaks "
        "from them, so leave this out where an investigator can read it)",
    )

    bundle = commands.add_parser(
        "bundle",
        help="copy a trained organism into the package",
        description="Copy a trained organism into the package, its answer key kept apart.",
        epilog="examples:\n  scribe-tui organisms bundle out/taboo-v taboo-5\n",
        formatter_class=raw,
    )
    bundle.add_argument("dir", type=Path, help="the trained organism's folder")
    bundle.add_argument("name", help="its bundled name, e.g. taboo-5")
    return parser


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from scribe_tui.organisms.card import write_card
    from scribe_tui.organisms.kinds import BEHAVIOURS, KINDS, MECHANISTIC
    from scribe_tui.organisms.train import Family, TrainConfig, train_organism

    if args.kind in MECHANISTIC:
        return _train_circuit(args)
    family = Family(args.kind, args.tokenizer, args.template, args.bank)
    family.check()
    draw = random.Random(args.seed)
    secret = args.secret or draw.choice(sorted(KINDS[args.kind].bank(args.bank).candidates))
    behaviour = args.behaviour or draw.choice(sorted(BEHAVIOURS))
    if args.control:
        secret = None
    config = TrainConfig()
    for field in ("base_steps", "organism_steps", "hardened_steps", "threads"):
        if getattr(args, field) is not None:
            config = replace(config, **{field: getattr(args, field)})
    meta = train_organism(
        family,
        secret,
        args.seed,
        args.out,
        config,
        progress=not args.quiet,
        hardened=args.hardened,
        behaviour=behaviour if args.kind == "backdoor" else "",
        base=args.base,
    )
    training = meta["training"]
    print(
        f"trained {args.kind} organism (base {training['base_seconds']} s, "
        f"organism {training['organism_seconds']} s) -> {args.out}"
    )
    write_card(args.out, None, meta)
    if args.no_verify:
        return 0
    return _run_verify(str(args.out), seed=args.seed, samples=20, as_json=False, store=True)


def _train_circuit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from scribe_tui.organisms.card import write_card
    from scribe_tui.organisms.train_circuits import DEFAULTS, train_mechanistic

    config = DEFAULTS[args.kind]
    for field in ("steps", "threads"):
        if getattr(args, field) is not None:
            config = replace(config, **{field: getattr(args, field)})
    meta = train_mechanistic(
        args.kind, args.seed, args.out, control=args.control, config=config, progress=not args.quiet
    )
    seconds = meta.pop("seconds")
    print(
        f"trained {args.kind} organism ({seconds['train']} s, key measured in "
        f"{seconds['measure']} s) -> {args.out}"
    )
    write_card(args.out, None, meta)
    if args.no_verify:
        return 0
    return _run_verify(str(args.out), seed=args.seed, samples=20, as_json=False, store=True)


def _run_verify(organism: str, seed: int, samples: int, as_json: bool, store: bool) -> int:
    import torch

    from scribe_tui.organisms.keys import answer_key_record, store_measured
    from scribe_tui.organisms.registry import organism_info
    from scribe_tui.organisms.verify import verify_dir

    info = organism_info(organism)
    torch.set_num_threads(1)  # a 1M-parameter model gains nothing from more; see TrainConfig
    # Techniques run blind; only the scoring inside reads the key.
    verdict, _ = verify_dir(info.path, answer_key_record(organism), seed=seed, n=samples)
    if store:
        store_measured(organism, verdict.as_dict())
    if as_json:
        print(json.dumps(verdict.as_dict()))
    else:
        print(f"{info.name} ({info.kind}): {info.task}")
        print("\n".join(verdict.lines()))
    return 0 if verdict.passed else 1


def _verify(args: argparse.Namespace) -> int:
    return _run_verify(args.organism, args.seed, args.samples, args.json, not args.no_store)


def _list(args: argparse.Namespace) -> int:
    """Print the organisms; which are controls is left to the answer keys."""
    from scribe_tui.organisms.keys import measured
    from scribe_tui.organisms.registry import BUNDLED_DIR, list_organisms, organism_info

    infos = [*list_organisms(), *(organism_info(str(d)) for d in args.dirs)]
    header = ("name", "kind", "difficulty", "tokenizer", "template")
    if args.leak:
        header += ("leak",)
    rows = [header]
    missing = []
    for info in infos:
        row = (info.name, info.kind, info.difficulty, info.tokenizer, info.template)
        if args.leak:
            figures = measured(info.name if info.path.parent == BUNDLED_DIR else str(info.path))
            if figures is None:
                missing.append(info.name)
            row += (_leak(figures),)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    if args.leak:
        print("leak: share of answers naming the secret (direct; prefill; persona)")
    if missing:
        print(f"no verify figures for {', '.join(missing)}: run `scribe-tui organisms verify NAME`")
    return 0


def _leak(figures: dict | None) -> str:
    if figures is None:
        return "-"
    rates = figures.get("rates", {})
    return "; ".join(
        f"{rates[t]:.0%}" if rates.get(t) is not None else "-"
        for t in ("direct", "prefill", "persona")
    )


def _bundle(args: argparse.Namespace) -> int:
    from scribe_tui.organisms.card import write_card
    from scribe_tui.organisms.keys import (
        answer_key_record,
        bundle_answer_key,
        measured,
        store_measured,
    )
    from scribe_tui.organisms.registry import BUNDLED_DIR

    meta = json.loads((args.dir / "organism.json").read_text())
    key = answer_key_record(args.dir)  # before copying: no key, no half-bundled organism
    figures = measured(args.dir)
    target = BUNDLED_DIR / args.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for part in (meta["model"], meta["base"]):
        if part:  # a mechanistic organism has no base
            shutil.copytree(args.dir / part, target / part)
    shutil.copy2(args.dir / "organism.json", target / "organism.json")
    write_card(target, args.name, meta)
    # The key (a backdoor's behaviour included) goes into the package's key file and the
    # figures beside it, never into the bundled dir.
    bundle_answer_key(args.name, key)
    if figures is not None:
        store_measured(args.name, figures)
    print(f"bundled {args.dir} as {args.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run an organisms command; returns the exit code (0 ok/pass, 1 fail, 2 usage)."""
    from scribe_tui.organisms.registry import UnknownOrganism

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "bundle":
            return _bundle(args)
        return _list(args)
    except (UnknownOrganism, ValueError) as error:
        print(f"error: {str(error).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2
