"""``scribe-tui organisms train|verify|list|bundle`` (also ``python -m scribe_tui.organisms``)."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from scribe_tui.organisms.kinds import KINDS

    parser = argparse.ArgumentParser(
        prog="scribe-tui organisms", description="Tiny model organisms with planted secrets."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train an organism (CPU, a few minutes)")
    train.add_argument("--kind", choices=sorted(KINDS), default="taboo")
    train.add_argument("--secret", help="a candidate word (default: drawn with --seed)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, metavar="DIR")
    train.add_argument("--base-steps", type=int, metavar="N")
    train.add_argument("--organism-steps", type=int, metavar="N")
    train.add_argument("--threads", type=int, metavar="N", help="torch threads (default 1)")
    train.add_argument("--no-verify", action="store_true", help="skip the acceptance check")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    verify = commands.add_parser("verify", help="run the acceptance check on an organism")
    verify.add_argument("organism", help="bundled name or organism directory")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--json", action="store_true", help="print the figures as JSON")

    commands.add_parser("list", help="list the bundled organisms")

    bundle = commands.add_parser("bundle", help="copy a trained organism into the package")
    bundle.add_argument("dir", type=Path)
    bundle.add_argument("name")
    return parser


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from scribe_tui.organisms.card import write_card
    from scribe_tui.organisms.kinds import KINDS
    from scribe_tui.organisms.train import TrainConfig, train_organism
    from scribe_tui.organisms.verify import verify_dir

    secret = args.secret or random.Random(args.seed).choice(sorted(KINDS[args.kind].candidates))
    config = TrainConfig()
    if args.base_steps is not None:
        config = replace(config, base_steps=args.base_steps)
    if args.organism_steps is not None:
        config = replace(config, organism_steps=args.organism_steps)
    if args.threads is not None:
        config = replace(config, threads=args.threads)
    meta = train_organism(args.kind, secret, args.seed, args.out, config, progress=not args.quiet)
    print(f"trained {args.kind} organism in {meta['training']['seconds']} s -> {args.out}")
    verdict = None
    if not args.no_verify:
        verdict, _ = verify_dir(args.out, secret)
        print("\n".join(verdict.lines()))
    write_card(args.out, args.out.name, meta, verdict)
    return 0 if verdict is None or verdict.passed else 1


def _verify(args: argparse.Namespace) -> int:
    import torch

    from scribe_tui.organisms.keys import answer_key
    from scribe_tui.organisms.registry import organism_info
    from scribe_tui.organisms.verify import verify_dir

    info = organism_info(args.organism)
    torch.set_num_threads(1)  # a 1M-parameter model gains nothing from more; see TrainConfig
    # Techniques run blind; only the scoring below reads the key.
    verdict, _ = verify_dir(info.path, answer_key(args.organism), seed=args.seed)
    if args.json:
        print(json.dumps(verdict.as_dict()))
    else:
        print(f"{info.name} ({info.kind}): {info.task}")
        print("\n".join(verdict.lines()))
    return 0 if verdict.passed else 1


def _list() -> int:
    from scribe_tui.organisms.registry import list_organisms

    for info in list_organisms():
        print(f"{info.name:12} {info.kind:8} {info.task}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from scribe_tui.organisms.keys import answer_key, bundle_answer_key
    from scribe_tui.organisms.registry import BUNDLED_DIR

    meta = json.loads((args.dir / "organism.json").read_text())
    secret = answer_key(args.dir)  # before copying: no key, no half-bundled organism
    target = BUNDLED_DIR / args.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for part in (meta["model"], meta["base"]):
        shutil.copytree(args.dir / part, target / part)
    for name in ("organism.json", "card.md"):
        if (args.dir / name).is_file():
            shutil.copy2(args.dir / name, target / name)
    # The secret goes into the package's key file, never into the bundled dir.
    bundle_answer_key(args.name, secret)
    print(f"bundled {args.dir} as {args.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run an organisms command; returns the exit code (0 ok/pass, 1 fail, 2 usage)."""
    from scribe_tui.organisms.registry import UnknownOrganism

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "bundle":
            return _bundle(args)
        return _list()
    except (UnknownOrganism, ValueError) as error:
        print(f"error: {str(error).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2
