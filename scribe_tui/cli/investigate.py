"""`investigate`, `resume` and `fork`: settings from flags and config, then the TUI or `--auto`.

Headless runs print progress on stderr (cell by cell, with timings) and the
conclusion on stdout; with ``--json`` stdout carries the event stream instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from scribe_tui.cli.common import UsageError, check_model, claim_lines
from scribe_tui.config import Config, ConfigError, load_config
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_FOR_REASON

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from scribe_tui.agent.launch import RunSettings
    from scribe_tui.agent.loop import Investigation
    from scribe_tui.agent.provider import Provider

INVESTIGATE_EXAMPLES = """examples:
  scribe-tui investigate "find the secret"                      # the TUI, bundled organism
  scribe-tui investigate "find the secret" --auto               # headless, prints the answer
  scribe-tui investigate "find the secret belief" --model organism:belief --name belief-1
  scribe-tui investigate "find the secret" --agent claude --max-cost 2 --device cuda
  scribe-tui investigate "find the secret" --investigators 3          # three at once, in the TUI
  scribe-tui investigate "find the secret" --auto --investigators 3   # one verdict from three
"""
RESUME_EXAMPLES = """examples:
  scribe-tui resume notebooks/2026-11-21-06-00_find-the-secret.ipynb
  scribe-tui resume notebooks/2026-11-21-06-00_find-the-secret.ipynb --auto --max-turns 20
  scribe-tui resume notebooks/2026-11-21-06-00_find-the-secret-x3          # an aggregate
"""


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that runs an investigation takes (investigate, resume, fork)."""
    parser.add_argument("--auto", action="store_true", help="run headless, without the TUI")
    parser.add_argument(
        "--json", action="store_true", help="with --auto: print the event stream as JSON lines"
    )
    parser.add_argument(
        "--agent",
        choices=["claude", "autopilot"],
        help="who investigates (default: claude with ANTHROPIC_API_KEY set, else the autopilot)",
    )
    parser.add_argument(
        "--claude-model", metavar="ID", help="Claude model id, e.g. claude-sonnet-4-6"
    )
    parser.add_argument(
        "--max-turns",
        type=int,
        metavar="N",
        help="stop after N agent turns (asked once to conclude)",
    )
    parser.add_argument(
        "--max-cost", type=float, metavar="USD", help="stop once the API cost reaches USD dollars"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        metavar="MIN",
        help="stop after MIN minutes of running time (paused time does not count)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="ask for an exploration checkpoint every N execute_code calls (default 10; 0: never)",
    )
    parser.add_argument(
        "--confirm-checkpoints",
        action="store_true",
        help="wait for a person to approve, pivot or continue at each checkpoint (TUI only)",
    )
    parser.add_argument(
        "--seed", type=int, help="the autopilot's seed for every sampling call (reproducible runs)"
    )
    parser.add_argument(
        "--device",
        metavar="DEV",
        help="where the subject model runs: auto (default), cpu, cuda, cuda:1",
    )
    parser.add_argument(
        "--gpu",
        metavar="TYPE",
        help="with --mode modal: the Modal GPU type, e.g. L4 (default), A100-80GB, H100",
    )
    parser.add_argument(
        "--modal-timeout",
        type=float,
        metavar="S",
        help="with --mode modal: seconds to wait for Modal to answer when connecting (default 60)",
    )
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
    parser.add_argument("--config", type=Path, metavar="FILE", help="the config TOML to use")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``investigate`` and ``resume`` to the main parser."""
    formatter = argparse.RawDescriptionHelpFormatter
    investigate = commands.add_parser(
        "investigate",
        help="start an investigation",
        description="Start an investigation: the agent works in a new notebook while you watch.",
        epilog=INVESTIGATE_EXAMPLES,
        formatter_class=formatter,
    )
    investigate.add_argument("task", help='what to find out, e.g. "find the secret"')
    investigate.add_argument(
        "--model",
        metavar="ID",
        help="subject model: organism:NAME (scribe-tui organisms list), a local folder, a hub id",
    )
    investigate.add_argument(
        "--mode",
        choices=["local", "modal", "blackbox"],
        help="local: the model on this machine (default); modal: on a Modal GPU; blackbox: the "
        "agent may only generate and chat, not run code on the model",
    )
    investigate.add_argument(
        "--notebooks-dir", type=Path, metavar="DIR", help="where notebooks go (default notebooks/)"
    )
    investigate.add_argument(
        "--name", metavar="NAME", help="the notebook's name (default: from the task)"
    )
    investigate.add_argument(
        "--investigators",
        type=int,
        default=1,
        metavar="N",
        help="run N diversified investigations in parallel on one model host, then aggregate "
        "their claims into one verdict (default 1)",
    )
    add_run_options(investigate)

    resume = commands.add_parser(
        "resume",
        help="continue an interrupted investigation",
        description="Continue an investigation from its notebook and transcript.",
        epilog=RESUME_EXAMPLES,
        formatter_class=formatter,
    )
    resume.add_argument(
        "notebook", type=Path, help="the notebook to continue (or an aggregate's folder)"
    )
    resume.add_argument(
        "--model", metavar="ID", help="the subject model, if the notebook's was a local path"
    )
    add_run_options(resume)


def run_command(args: argparse.Namespace) -> int:
    """Run ``investigate``, ``resume`` or ``fork``; returns the exit code."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if args.json and not args.auto:
        raise UsageError("--json needs --auto (the TUI renders events itself)")
    if args.auto and args.confirm_checkpoints:
        raise UsageError(
            "--confirm-checkpoints needs a person to approve each checkpoint, and --auto has "
            "none: drop --confirm-checkpoints, or run without --auto to approve them in the TUI"
        )
    if args.command != "fork":
        return _run(args, config)
    from scribe_tui.agent.parallel import find_manifest
    from scribe_tui.record.fork import discard_fork, prepare_fork
    from scribe_tui.record.source import RecordError

    manifest = find_manifest(args.notebook)
    if manifest is not None:
        from scribe_tui.agent.transcript import started_notebook

        first = started_notebook(manifest.parent / "i1")
        example = first if first is not None else manifest.parent / "i1" / "NOTEBOOK.ipynb"
        raise UsageError(
            f"{args.notebook} is an aggregate's verdict, drawn from its investigators' claims: "
            f"fork one of them instead (scribe-tui fork {example} --at N), "
            f"or resume the aggregate (scribe-tui resume {manifest.parent})"
        )
    try:
        fork = prepare_fork(args.notebook, args.at, args.message)
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    print(f"scribe-tui: forked {args.notebook} at cell [{args.at}] into {fork}", file=sys.stderr)
    args.notebook = fork  # running a fork is resuming it
    try:
        return _run(args, config)
    except UsageError:
        discard_fork(fork)  # it never started: leave nothing behind
        raise


def _run(args: argparse.Namespace, config: Config) -> int:
    from scribe_tui.agent.launch import LaunchError, make_provider, sandbox_state
    from scribe_tui.agent.parallel import find_manifest

    investigators = getattr(args, "investigators", 1)
    if investigators < 1:
        raise UsageError(f"--investigators must be at least 1, got {investigators}")
    manifest = find_manifest(args.notebook) if args.command == "resume" else None
    if investigators > 1 or manifest is not None:
        return _run_parallel(args, config, investigators, manifest)
    try:
        settings, reasons = build_settings(args, config)
    except LaunchError as exc:
        raise UsageError(str(exc)) from exc
    _check_mode(settings)
    from scribe_tui.paths import writable_folder

    unwritable = writable_folder(
        settings.notebooks_dir,
        "notebooks",
        "choose another folder with --notebooks-dir"
        if args.command == "investigate"
        else "copy the notebook and its .jsonl to a folder you can write, and resume it there",
    )
    if unwritable:
        raise UsageError(unwritable)
    check_model(settings.model)
    from scribe_tui.runtime.sandbox import set_non_dumpable

    set_non_dumpable()  # this process holds the API key: no same-user process may read it
    with _holding(settings.resume_from):
        if settings.resume_from is not None:
            if args.command == "resume":
                _check_unfinished(settings.resume_from)
            _check_resumable(settings.resume_from, headless=args.auto)
        try:
            provider = make_provider(settings)  # fail fast on a missing API key
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
        print(
            f"scribe-tui: agent {settings.agent} ({reasons['agent']}); "
            f"model {settings.model} ({reasons['model']}); mode {settings.mode}; "
            f"{sandbox_state(settings.sandbox, settings.allow_network).label}",
            file=sys.stderr,
        )
        if not args.auto:
            return run_interactive(settings, provider)
        try:
            return asyncio.run(run_headless(settings, provider, json_events=args.json))
        except LaunchError as exc:
            print(f"scribe-tui: {exc}", file=sys.stderr)
            return EXIT_FAILED


def _run_parallel(
    args: argparse.Namespace, config: Config, investigators: int, manifest: Path | None
) -> int:
    """N investigators and an aggregator (``--investigators``), or an aggregate resumed."""
    from scribe_tui.agent.launch import LaunchError, sandbox_state
    from scribe_tui.agent.parallel import ParallelRun
    from scribe_tui.cli.investigators import run_parallel_headless, run_parallel_tui

    if args.confirm_checkpoints:
        raise UsageError(
            "--confirm-checkpoints is for one investigation: parallel investigators write "
            "their checkpoints without waiting; drop --confirm-checkpoints"
        )
    if manifest is not None:
        # The aggregate's task, model and agent come from its manifest; the flags give limits.
        fresh = argparse.Namespace(
            **{
                **vars(args),
                **{"command": "investigate", "task": "(aggregate)", "mode": None},
                **{"notebooks_dir": None, "name": None},
            }
        )
        settings = _unconfirmed(build_settings(fresh, config)[0])
        try:
            run = ParallelRun.reopen(manifest, settings, model=args.model)
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
        settings = run.settings
    else:
        try:
            settings = _unconfirmed(build_settings(args, config)[0])
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
    _check_mode(settings)
    from scribe_tui.paths import writable_folder

    unwritable = writable_folder(settings.notebooks_dir, "notebooks", "choose another folder")
    if unwritable:
        raise UsageError(unwritable)
    check_model(settings.model)
    if settings.agent == "claude":
        from scribe_tui.agent.launch import make_provider

        try:
            make_provider(settings)  # fail fast on a missing API key
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
    from scribe_tui.runtime.sandbox import set_non_dumpable

    set_non_dumpable()
    if manifest is None:
        run = ParallelRun.create(settings, investigators)
        manifest = run.folder / "aggregate.json"
    print(
        f"scribe-tui: {len(run.members)} investigators ({settings.agent}) on one host; "
        f"model {settings.model}; mode {settings.mode}; "
        f"{sandbox_state(settings.sandbox, settings.allow_network).label}; folder {run.folder}",
        file=sys.stderr,
    )
    with _holding(manifest):
        if not args.auto:
            return run_parallel_tui(run)
        try:
            return asyncio.run(run_parallel_headless(run, json_events=args.json))
        except LaunchError as exc:
            print(f"scribe-tui: {exc}", file=sys.stderr)
            return EXIT_FAILED


def _check_mode(settings: RunSettings) -> None:
    """UsageError when the run's mode cannot do its task (a mechanistic task, black-box)."""
    from scribe_tui.agent.launch import blackbox_refusal

    refused = blackbox_refusal(settings.task, settings.model, settings.mode)
    if refused:
        raise UsageError(refused)


def _unconfirmed(settings: RunSettings) -> RunSettings:
    """Nobody approves a parallel investigator's checkpoint (in the TUI either): no config
    default, nor a resumed aggregate's saved setting, may make one wait for a person."""
    settings.config.confirm_checkpoints = False
    settings.overrides["confirm_checkpoints"] = False
    return settings


@contextlib.contextmanager
def _holding(notebook: Path | None) -> Iterator[None]:
    """Keep other scribe-tui processes off the notebook to resume (UsageError if one has it)."""
    if notebook is None:
        yield
        return
    from scribe_tui.runtime.nblock import NotebookLock
    from scribe_tui.runtime.notebook import NotebookError

    hold = NotebookLock(notebook)
    try:
        hold.acquire()
    except NotebookError as exc:
        raise UsageError(str(exc)) from exc
    try:
        yield
    finally:
        hold.release()


def build_settings(args: argparse.Namespace, config: Config) -> tuple[RunSettings, dict[str, str]]:
    """Merge config defaults and flags into run settings, with the reason for each choice."""
    from scribe_tui.agent.launch import RunSettings, choose_agent, notebook_settings, recall_model
    from scribe_tui.agent.loop import InvestigationConfig

    for flag in ("max_turns", "max_cost", "max_minutes"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise UsageError("--checkpoint-every must be 0 (off) or a positive number of cells")
    if args.device is not None and not re.fullmatch(r"auto|cpu|cuda(:\d+)?", args.device):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, not {args.device!r}")
    if args.modal_timeout is not None and args.modal_timeout <= 0:
        raise UsageError(f"--modal-timeout must be positive, got {args.modal_timeout}")

    resume_from: Path | None = None
    if args.command in ("resume", "fork"):
        resume_from = args.notebook
        meta = notebook_settings(args.notebook)
        task, mode = meta.get("task", ""), meta.get("mode", "local")
        model = args.model or recall_model(args.notebook, meta.get("model", ""))
        agent, agent_reason = choose_agent(args.agent or meta.get("agent"))
        model_reason = "from the notebook"
        notebooks_dir = args.notebook.parent
        name = None
    else:
        task = args.task.strip()
        if not task:
            raise UsageError('the task is empty: say what to find out, e.g. "find the secret"')
        agent, agent_reason = choose_agent(args.agent or config.agent)
        model = args.model or config.model
        model_reason = "--model" if args.model else "default" if not config.source else "config"
        mode = args.mode or config.mode
        notebooks_dir = args.notebooks_dir or Path(config.notebooks_dir)
        name = args.name
    if mode != "modal" and (args.gpu or args.modal_timeout is not None):
        flag = "--gpu" if args.gpu else "--modal-timeout"
        raise UsageError(f"{flag} is for --mode modal; this run's mode is {mode}")
    flags = {
        "max_turns": args.max_turns,
        "max_cost_usd": args.max_cost,
        "max_minutes": args.max_minutes,
        "checkpoint_every": args.checkpoint_every,
        # Nobody could approve a checkpoint headless: neither a config default nor a
        # resumed run's own setting may make --auto wait for one.
        "confirm_checkpoints": False if args.auto else args.confirm_checkpoints or None,
    }
    overrides = {key: value for key, value in flags.items() if value is not None}
    defaults = {
        "max_turns": config.max_turns,
        "max_cost_usd": config.max_cost,
        "max_minutes": config.max_minutes,
        "checkpoint_every": config.checkpoint_every,
        "confirm_checkpoints": config.confirm_checkpoints,
    }
    investigation = InvestigationConfig(**{**defaults, **overrides}, experiment=name)
    settings = RunSettings(
        task=task,
        agent=agent,
        model=model,
        mode=mode,
        claude_model=args.claude_model or config.claude_model,
        thinking_budget=config.thinking_budget,
        notebooks_dir=notebooks_dir,
        experiment_name=name,
        cell_timeout=config.cell_timeout,
        token_budget=config.token_budget,
        device=args.device or config.device,
        gpu=args.gpu,
        modal_timeout=args.modal_timeout or RunSettings.modal_timeout,
        dtype=config.dtype,
        seed=args.seed if args.seed is not None else config.seed,
        prices=config.prices,
        config=investigation,
        resume_from=resume_from,
        sandbox=not args.no_sandbox,
        allow_network=args.allow_network,
        overrides=overrides,
    )
    return settings, {"agent": agent_reason, "model": model_reason}


def _check_unfinished(notebook: Path) -> None:
    """UsageError for a run that concluded: a second conclusion would muddle its record."""
    from scribe_tui.agent.launch import notebook_settings

    if notebook_settings(notebook).get("conclusion"):
        raise UsageError(
            f"{notebook} has concluded; to go on from it, fork it: scribe-tui fork {notebook} "
            '--message "what to look at next"'
        )


def _check_resumable(notebook: Path, *, headless: bool) -> None:
    """Read the run's transcript before anything loads: UsageError if it cannot go on here."""
    from scribe_tui.agent.checkpoints import CheckpointState
    from scribe_tui.agent.transcript import Transcript, TranscriptError, transcript_path_for

    try:
        data = Transcript.load(transcript_path_for(notebook))
        data.check_integrity()
        point = data.resume_point()
    except TranscriptError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(
            f"{first}; the run cannot resume from it: read its notebook as it is, or fork it "
            "from an earlier cell (scribe-tui fork), or start again"
        ) from None
    waiting = CheckpointState.from_dict(point.state.get("checkpoints", {}), 0).awaiting
    if headless and waiting is not None:
        raise UsageError(
            f"checkpoint {waiting} of {notebook} waits for a person's decision, and --auto has "
            "none: resume it without --auto to approve, pivot or continue it"
        )


def run_interactive(settings: RunSettings, provider: Provider) -> int:
    """Run one investigation in the TUI; returns the exit code."""
    from scribe_tui.agent.launch import Workbench
    from scribe_tui.agent.status_board import StatusBoard
    from scribe_tui.app import run_app

    board = StatusBoard()
    opened_benches: list[Workbench] = []

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Investigation]:
        # Runs in the app's worker, after the first frame: loading shows in the status bar.
        bench = await Workbench.open(settings, provider, on_host=board.host_update)
        opened_benches.append(bench)
        assert bench.investigation is not None
        bench.investigation.subscribe(board.event)
        board.poll(bench.host)
        try:
            yield bench.investigation
        finally:
            board.close()
            await bench.close()
            board.host_update(bench.host.status())  # stopped, and what it ran on

    code = run_app(
        opened,
        title=settings.task,
        subject=settings.model,
        status=board.snapshot,
        notebook=settings.resume_from,
        on_fork=lambda fork: _open_fork(settings, fork),
    )
    if code == EXIT_FAILED:
        # The front end failed around a run that may have stopped as "interrupted":
        # the record must not offer it as a paused run to resume.
        for bench in opened_benches:
            bench.record_failure()
    return code


def _open_fork(settings: RunSettings, fork: Path) -> int:
    """The person forked the run in the TUI: open the fork there, as `resume` would."""
    from scribe_tui.agent.launch import LaunchError, make_provider

    forked = dataclasses.replace(
        settings, resume_from=fork, notebooks_dir=fork.parent, experiment_name=None
    )
    with _holding(fork):
        try:
            provider = make_provider(forked)
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
        return run_interactive(forked, provider)


async def run_headless(
    settings: RunSettings,
    provider: Provider,
    *,
    json_events: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run one investigation without a TUI; returns the exit code."""
    from scribe_tui.agent.launch import Workbench
    from scribe_tui.cli.progress import ProgressPrinter

    out = out or sys.stdout
    progress = ProgressPrinter(sys.stderr, json_out=out if json_events else None)
    started = time.monotonic()
    bench = await Workbench.open(settings, provider, on_host=progress.host)
    investigation = bench.investigation
    assert investigation is not None
    investigation.subscribe(progress.event)
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            investigation.interrupt()
            where = investigation.notebook_path or "the notebook"
            print(
                f"\nscribe-tui: paused and saved. Resume later with: scribe-tui resume {where}\n"
                "scribe-tui: press Ctrl-C again to exit.",
                file=sys.stderr,
            )
        else:
            investigation.stop()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        outcome = await investigation.run()
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
        await bench.close()
    progress.finish(outcome, time.monotonic() - started)
    if outcome.reason == "concluded" and not json_events:
        print(f"Answer: {outcome.answer}", file=out)
        for line in claim_lines(outcome.notebook_path):
            print(line, file=out)
        print(f"Confidence: {outcome.confidence:.2f}", file=out)
        print(f"Evidence: {outcome.evidence}", file=out)
        print(f"Notebook: {outcome.notebook_path}", file=out)
    return EXIT_FOR_REASON.get(outcome.reason, EXIT_FAILED)
