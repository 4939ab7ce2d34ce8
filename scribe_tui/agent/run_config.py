"""The terms of one investigation run: what it may spend, and how it ended.

:class:`InvestigationConfig` holds a run's limits and habits (recorded in the
transcript's header, and read back from it on resume); :func:`over_budget` says
whether a limit is reached; :class:`Outcome` is what :meth:`Investigation.run
<scribe_tui.agent.loop.Investigation.run>` returns, and :class:`Stop` is how the loop
unwinds towards one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scribe_tui.agent.provider import Usage

__all__ = ["InvestigationConfig", "Outcome", "Stop", "StopReason", "over_budget"]

StopReason = Literal["concluded", "budget", "interrupted", "failed"]


@dataclass
class InvestigationConfig:
    """Limits and habits of one investigation; None means no limit."""

    max_turns: int | None = None
    max_cost_usd: float | None = None
    max_minutes: float | None = None
    """Minutes of running time (time spent paused does not count)."""
    checkpoint_every: int = 10
    """Ask for an exploration checkpoint every this many ``execute_code`` calls; 0: never."""
    confirm_checkpoints: bool = False
    """Wait for a person's ``decide_checkpoint`` after each checkpoint."""
    max_tokens: int = 8192
    context_budget: int | None = 120_000
    """Estimated tokens of conversation above which old cell outputs shrink to stubs."""
    keep_results: int = 6
    """The newest cell outputs that never shrink."""
    experiment: str | None = None
    """Notebook name used when the agent's ``start_new_session`` names none."""
    experiment_by_person: bool = False
    """``experiment`` came from the person (``--name``): it wins over the agent's own name."""
    methodology: bool = True
    """Give the agent the research methodology (``prompts/methodology.md``) in its prompt."""
    retry_delays: tuple[float, ...] = (5.0, 20.0, 60.0)
    """Waits before asking again after a retryable provider error; then the run fails."""

    @classmethod
    def from_header(cls, saved: dict[str, Any]) -> InvestigationConfig:
        """The config a transcript's header recorded (unknown keys ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in saved.items() if k in known})
        config.retry_delays = tuple(config.retry_delays)
        return config


def over_budget(
    config: InvestigationConfig, turns: int, usage: Usage, minutes: float
) -> str | None:
    """Which limit is reached, in words (None if none): turns, then cost, then minutes."""
    if config.max_turns is not None and turns >= config.max_turns:
        return f"{turns} of {config.max_turns} turns used"
    if config.max_cost_usd is not None and usage.cost_usd >= config.max_cost_usd:
        return f"${usage.cost_usd:.2f} of ${config.max_cost_usd:.2f} spent"
    if config.max_minutes is not None and minutes >= config.max_minutes:
        return f"{minutes:.1f} of {config.max_minutes:g} minutes used"
    return None


@dataclass
class Outcome:
    """How an investigation ended."""

    reason: StopReason
    answer: str | None = None
    confidence: float | None = None
    evidence: str | None = None
    notebook_path: Path | None = None
    transcript_path: Path | None = None
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    elapsed: float = 0.0
    detail: str = ""


class Stop(Exception):
    """Unwinds the loop with an outcome reason."""

    def __init__(self, reason: StopReason, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
