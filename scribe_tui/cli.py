"""Command-line entry point: argument parsing and the headless front end.

Start-up stays fast: torch, transformers, anthropic and textual are imported only
inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scribe_tui import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit code 2."""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auto", action="store_true", help="run headless, no TUI")
    parser.add_argument("--json", action="store_true", help="with --auto: print events as JSON")
    parser.add_argument("--agent", choices=["claude", "autopilot"], help="who investigates")
    parser.add_argument("--claude-model", metavar="ID", help="Claude model name")
    parser.add_argument("--max-turns", type=int, metavar="N")
    parser.add_argument("--max-cost", type=float, metavar="USD")
    parser.add_argument("--max-minutes", type=float, metavar="MIN")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="0 disables")
    parser.add_argument(
        "--confirm-checkpoints", action="store_true", help="wait for a person at checkpoints"
    )
    parser.add_argument("--seed", type=int, help="autopilot seed")
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run the kernel unsealed (it can then read your files and other processes)",
    )
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="let the sealed kernel and model host open TCP connections (closed by default)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="config TOML to use")


def build_parser() -> argparse.ArgumentParser:
    from scribe_tui.paths import config_file

    parser = argparse.ArgumentParser(
        prog="scribe-tui",
        description="An AI agent does interpretability research in a real Jupyter notebook "
        "while you watch and steer.",
        epilog=f"Defaults come from {config_file()} (TOML, a [defaults] table); flags override "
        "them. Without ANTHROPIC_API_KEY the agent is the offline autopilot.",
    )
    parser.add_argument("--version", action="version", version=f"scribe-tui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    investigate = commands.add_parser("investigate", help="start an investigation")
    investigate.add_argument("task", help='what to find out, e.g. "find the secret"')
    investigate.add_argument(
        "--model", metavar="ID", help="subject model: organism:NAME, a local path, or a hub id"
    )
    investigate.add_argument("--mode", choices=["local", "modal", "blackbox"])
    investigate.add_argument("--notebooks-dir", type=Path, metavar="DIR")
    investigate.add_argument("--name", metavar="NAME", help="experiment name (notebook slug)")
    _add_run_options(investigate)

    resume = commands.add_parser("resume", help="continue an interrupted investigation")
    resume.add_argument("notebook", type=Path)
    resume.add_argument(
        "--model", metavar="ID", help="the subject model, if the notebook's was a local path"
    )
    _add_run_options(resume)

    from scribe_tui.record.cli import add_commands

    add_commands(commands, _add_run_options)  # list, index, reproduce, export, fork

    organisms = commands.add_parser(
        "organisms", help="train, verify and list the bundled model organisms", add_help=False
    )
    organisms.add_argument("args", nargs=argparse.REMAINDER)
    bench = commands.add_parser(
        "bench", help="score agents on model organisms over a grid of runs", add_help=False
    )
    bench.add_argument("args", nargs=argparse.REMAINDER)
    for name, about in (
        ("mcp", "serve the notebook tools over MCP to Claude Code, Codex or Gemini CLI"),
        ("watch", "the TUI on a session an MCP client drives"),
    ):
        commands.add_parser(name, help=about, add_help=False).add_argument(
            "args", nargs=argparse.REMAINDER
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["organisms"]:
        # Its own parser owns every option, --help included (REMAINDER would drop it).
        from scribe_tui.organisms.cli import main as organisms_main

        return organisms_main(argv[1:])
    if argv[:1] == ["bench"]:
        from scribe_tui.bench.cli import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] in (["mcp"], ["watch"]):
        from scribe_tui.mcp_server import cli as mcp_cli

        return (mcp_cli.main if argv[0] == "mcp" else mcp_cli.watch_main)(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        if args.command in ("list", "index", "reproduce", "export"):
            from scribe_tui.record.cli import run

            return run(args)
        from scribe_tui.headless import run_command

        return run_command(args)
    except UsageError as exc:
        print(f"scribe-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
