"""Command-line entry point: the top-level parser and dispatch to one module per command family
(investigate/resume/fork, record, sweep, bench, organisms, mcp/watch).

Start-up stays fast: torch, transformers, anthropic and textual are imported only
inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scribe_tui import __version__
from scribe_tui.cli.common import CommandParser, UsageError, quiet_on_closed_pipe
from scribe_tui.exit_codes import EXIT_OK, EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    from scribe_tui.paths import config_file

    parser = CommandParser(
        prog="scribe-tui",
        description="An AI agent does interpretability research in a real Jupyter notebook "
        "while you watch and steer.",
        epilog=f"Defaults come from {config_file()} (TOML, a [defaults] table); flags override "
        "them. Without ANTHROPIC_API_KEY the agent is the offline autopilot.",
    )
    parser.add_argument("--version", action="version", version=f"scribe-tui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from scribe_tui.cli import investigate, record, sweep

    investigate.add_commands(commands)  # investigate, resume
    record.add_commands(commands, investigate.add_run_options)  # list … export, fork
    sweep.add_command(commands)

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
    return quiet_on_closed_pipe(lambda: _dispatch(argv))


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["organisms"]:
        # Its own parser owns every option, --help included (REMAINDER would drop it).
        from scribe_tui.cli.organisms import main as organisms_main

        return organisms_main(argv[1:])
    if argv[:1] == ["bench"]:
        from scribe_tui.cli.bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] in (["mcp"], ["watch"]):
        from scribe_tui.cli import mcp as mcp_cli

        return (mcp_cli.main if argv[0] == "mcp" else mcp_cli.watch_main)(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        if args.command in ("list", "index", "reproduce", "export"):
            from scribe_tui.cli.record import run

            return run(args)
        if args.command == "sweep":
            from scribe_tui.cli.sweep import run as sweep

            return sweep(args)
        from scribe_tui.cli.investigate import run_command

        return run_command(args)
    except UsageError as exc:
        print(f"scribe-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
