"""``investigate --investigators N`` and resuming an aggregate, headless or in the TUI.

Headless, progress goes to stderr with each line prefixed by its investigator
(``[i2]``, ``[aggregate]``); ``--json`` puts every event on stdout with an
``investigator`` field. At the end (the TUI's too): a line per investigator (state,
claim, cost), then the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING, TextIO

from scribe_tui.cli.common import claim_lines
from scribe_tui.exit_codes import EXIT_FAILED, EXIT_FOR_REASON

if TYPE_CHECKING:
    from scribe_tui.agent.aggregate import InvestigatorClaim
    from scribe_tui.agent.parallel import AggregateOutcome, ParallelRun
    from scribe_tui.events import Event

__all__ = ["claim_line", "run_parallel_headless", "run_parallel_tui"]


def claim_line(claim: InvestigatorClaim) -> str:
    """One line for one investigator: id, strategy, state, claim, cost."""
    said = (
        f"{claim.answer} ({claim.confidence:.2f})"
        if claim.claim and claim.confidence is not None
        else "no conclusion"
    )
    return f"  {claim.id:<4} {claim.strategy:<20} {claim.state:<13} {said}  ${claim.cost_usd:.2f}"


async def run_parallel_headless(
    run: ParallelRun, *, json_events: bool = False, out: TextIO | None = None
) -> int:
    """Run an aggregate without a TUI; returns the exit code (the aggregator's)."""
    from scribe_tui.cli.progress import ProgressPrinter

    out = out or sys.stdout
    json_out = out if json_events else None
    host = ProgressPrinter(sys.stderr, investigator="host")
    printers: dict[str, ProgressPrinter] = {}

    def on_event(who: str, event: Event) -> None:
        printer = printers.get(who)
        if printer is None:
            printer = ProgressPrinter(sys.stderr, json_out, investigator=who, host_from=host)
            printers[who] = printer
        printer.event(event)

    run.on_event = on_event
    run.on_host = host.host
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            run.interrupt()
            print(
                "\nscribe-tui: pausing every investigator (each is saved). Resume later with: "
                f"scribe-tui resume {run.folder}\nscribe-tui: press Ctrl-C again to exit.",
                file=sys.stderr,
            )
        else:
            run.stop()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        outcome = await run.run()
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
    _report(outcome, json_out, out)
    return EXIT_FOR_REASON.get(outcome.reason, EXIT_FAILED)


def run_parallel_tui(run: ParallelRun) -> int:
    """Run an aggregate in the investigators' TUI; print the summary when the person quits."""
    import shlex

    from scribe_tui.ui.parallel import InvestigatorsApp

    app = InvestigatorsApp(run, title=run.settings.task, subject=run.settings.model)
    code = app.run()
    if code is None:
        code = app.return_code if app.return_code is not None else EXIT_FAILED
    if app.outcome is not None:
        _report(app.outcome, None, sys.stdout)
    elif app.failure is not None:
        print(f"The investigators failed: {app.failure}. Folder: {run.folder}", file=sys.stderr)
    else:
        print(f"Stopped before the end; everything so far is saved. Folder: {run.folder}")
        print(f"Resume with: scribe-tui resume {shlex.quote(str(run.folder))}")
    return code


def _report(outcome: AggregateOutcome, json_out: TextIO | None, out: TextIO) -> None:
    err = sys.stderr
    print(
        f"scribe-tui: {len(outcome.claims)} investigators, {outcome.reason} after "
        f"{outcome.wall_s:.1f} s, ${outcome.cost_usd:.2f}, model loads {outcome.model_loads}; "
        f"folder {outcome.folder}",
        file=err,
    )
    for claim in outcome.claims:
        print(claim_line(claim), file=err)
    if json_out is not None:
        summary = {
            "type": "aggregate_finished",
            "investigator": "aggregate",
            "reason": outcome.reason,
            "answer": outcome.answer,
            "confidence": outcome.confidence,
            "notebook": str(outcome.notebook) if outcome.notebook else None,
            "cost_usd": outcome.cost_usd,
            "model_loads": outcome.model_loads,
            "investigators": [
                {
                    "investigator": c.id,
                    "strategy": c.strategy,
                    "state": c.state,
                    "answer": c.answer,
                    "confidence": c.confidence,
                    "cost_usd": c.cost_usd,
                    "notebook": str(c.notebook) if c.notebook else None,
                }
                for c in outcome.claims
            ],
        }
        print(json.dumps(summary, ensure_ascii=False), file=json_out, flush=True)
        return
    if outcome.reason == "interrupted" or outcome.verdict is None:
        print(f"Paused: scribe-tui resume {outcome.folder}", file=out)
        return
    verdict = outcome.verdict
    if verdict.reason == "concluded":
        print(f"Answer: {verdict.answer}", file=out)
        for line in claim_lines(verdict.notebook_path):
            print(line, file=out)
        print(f"Confidence: {verdict.confidence:.2f}", file=out)
        print(f"Evidence: {verdict.evidence}", file=out)
    else:
        print(f"Answer: none reached ({verdict.reason})", file=out)
    print(f"Notebook: {verdict.notebook_path}", file=out)
