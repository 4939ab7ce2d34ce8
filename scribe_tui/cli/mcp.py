"""``scribe-tui mcp`` (serve the notebook tools over MCP) and ``scribe-tui watch`` (the TUI on it).

scribe-tui mcp [--model ID] [--mode local|modal|blackbox] [--device D] [--checkpoint-every N]
               [--notebooks-dir DIR] [--no-sandbox] [--allow-network] [--http PORT]
               [--config FILE]
scribe-tui mcp --print-prompt [TASK]
scribe-tui watch [NOTEBOOK]

In stdio mode stdout belongs to MCP: everything this command says goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scribe_tui.cli.common import CommandParser, UsageError, check_model
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from scribe_tui.agent.launch import RunSettings
    from scribe_tui.config import Config
    from scribe_tui.mcp_server.service import Service

TOKEN_ENV = "SCRIBE_MCP_TOKEN"
DEFAULT_TASK = "find the secret the subject model was trained to keep"


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="scribe-tui mcp",
        description="Serve the notebook tools over MCP (stdio by default) to Claude Code, Codex, "
        "Gemini CLI or any MCP client. One model host serves every session; "
        "`scribe-tui watch` shows and steers what the client does.",
        epilog=f"--http PORT serves streamable HTTP at http://127.0.0.1:PORT/mcp; requests must "
        f"carry 'Authorization: Bearer TOKEN', TOKEN from ${TOKEN_ENV} or printed on stderr.\n\n"
        "examples:\n"
        "  claude mcp add scribe -- scribe-tui mcp --model organism:taboo\n"
        "  claude \"$(scribe-tui mcp --print-prompt 'find the secret')\"\n"
        "  scribe-tui mcp --http 8765 --device cuda\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", metavar="ID", help="subject model: organism:NAME, a local path, or a hub id"
    )
    parser.add_argument(
        "--mode",
        choices=["local", "modal", "blackbox"],
        help="local (default), modal (a Modal GPU), blackbox (generate and chat only)",
    )
    parser.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:1")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="execute_code calls between checkpoints (default 10; 0: never)",
    )
    parser.add_argument(
        "--notebooks-dir", type=Path, metavar="DIR", help="where notebooks go (default notebooks/)"
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run kernels unsealed (they can then read your files and other processes)",
    )
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="let sealed kernels and the model host open TCP connections (closed by default)",
    )
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on PORT")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config TOML to use")
    parser.add_argument(
        "--print-prompt",
        nargs="?",
        const=DEFAULT_TASK,
        metavar="TASK",
        help="print the prompt to give the agent (for TASK) and exit",
    )
    return parser


def mcp_prompt(task: str) -> str:
    """``prompts/mcp.md`` with the task filled in, then the research methodology."""
    from scribe_tui.paths import prompts_dir

    folder = prompts_dir()
    parts = [(folder / n).read_text(encoding="utf-8").strip() for n in ("mcp.md", "methodology.md")]
    # A plain replace, not str.format: the prompts show code with braces.
    return "\n\n".join(parts).replace("{task}", task)


def main(argv: list[str]) -> int:
    """Run ``scribe-tui mcp``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.print_prompt is not None:
        print(mcp_prompt(args.print_prompt))
        return EXIT_OK
    from scribe_tui.config import ConfigError, load_config

    try:
        settings, every = _settings(args, load_config(args.config))
        check_model(settings.model)
    except (ConfigError, ValueError, UsageError) as exc:
        print(f"scribe-tui mcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.http is not None and not 0 <= args.http < 65536:
        print(f"scribe-tui mcp: --http {args.http} is not a port (0-65535)", file=sys.stderr)
        return EXIT_USAGE
    from scribe_tui.agent.launch import LaunchError
    from scribe_tui.runtime.sandbox import set_non_dumpable
    from scribe_tui.runtime.sealed import sandbox_state

    set_non_dumpable()  # holds the watch key and the HTTP token
    sandbox = sandbox_state(settings.sandbox, settings.allow_network)
    print(
        f"scribe-tui mcp: model {settings.model}; mode {settings.mode}; "
        f"{sandbox.label}; notebooks in {settings.notebooks_dir}",
        file=sys.stderr,
    )
    try:
        asyncio.run(_serve(settings, every, args.http))
    except (LaunchError, OSError) as exc:
        print(f"scribe-tui mcp: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _settings(args: argparse.Namespace, config: Config) -> tuple[RunSettings, int]:
    """The run settings from flags over the config file, and the checkpoint interval."""
    from scribe_tui.agent.launch import RunSettings

    every = config.checkpoint_every if args.checkpoint_every is None else args.checkpoint_every
    if every < 0:
        raise ValueError("--checkpoint-every must be 0 (off) or a positive number of cells")
    settings = RunSettings(
        task="MCP session",
        agent="mcp",
        model=args.model or config.model,
        mode=args.mode or config.mode,
        notebooks_dir=args.notebooks_dir or Path(config.notebooks_dir),
        cell_timeout=config.cell_timeout,
        token_budget=config.token_budget,
        device=args.device or config.device,
        dtype=config.dtype,
        sandbox=not args.no_sandbox,
        allow_network=args.allow_network,
    )
    return settings, every


async def _serve(settings: RunSettings, every: int, port: int | None) -> None:
    from scribe_tui.mcp_server.server import build_server, listen, serve_http, serve_stdio
    from scribe_tui.mcp_server.service import Service

    sock = listen(port) if port is not None else None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp" if sock is not None else None
    async with Service.open(settings, checkpoint_every=every, http=url) as service:
        service.ready.add_done_callback(lambda _: _report_host(service))
        server = build_server(service)
        if sock is None:
            await serve_stdio(server)
            return
        token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(32)
        said = f"${TOKEN_ENV}" if os.environ.get(TOKEN_ENV) else token
        print(f"scribe-tui mcp: serving {url} (bearer token: {said})", file=sys.stderr, flush=True)
        await serve_http(server, sock, token)


def _report_host(service: Service) -> None:
    """Say on stderr whether the model loaded (the MCP client shows it in its server log)."""
    if service.ready.cancelled():
        return
    failure = service.ready.exception()
    if failure is not None:
        print(f"scribe-tui mcp: the model could not be loaded: {failure}", file=sys.stderr)
    else:
        print(f"scribe-tui mcp: {service.host.status().summary()}", file=sys.stderr, flush=True)


def build_watch_parser() -> CommandParser:
    parser = CommandParser(
        prog="scribe-tui watch",
        description="Open the TUI on a session an MCP client drives through `scribe-tui mcp`: "
        "the notebook as it grows, the status bar, checkpoints; pause (holds the agent's next "
        "tool call), edit cells and send messages (they reach the agent in its next tool "
        "result). Quitting leaves the session running.",
        epilog="examples:\n  scribe-tui watch\n"
        "  scribe-tui watch notebooks/2026-11-21-06-00_find-the-secret.ipynb\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "notebook",
        nargs="?",
        type=Path,
        help="attach to the server that has this notebook open (default: the newest server)",
    )
    return parser


def watch_main(argv: list[str]) -> int:
    """Run ``scribe-tui watch``; returns the exit code."""
    args = build_watch_parser().parse_args(argv)
    from scribe_tui.mcp_server.watch_client import RemoteInvestigation
    from scribe_tui.mcp_server.watch_protocol import WatchError

    try:
        remote = RemoteInvestigation.attach(args.notebook)
    except WatchError as exc:
        print(f"scribe-tui watch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    from scribe_tui.ui.watch import run_watch

    return run_watch(remote)
