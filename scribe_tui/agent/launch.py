"""Assemble a runnable investigation: the agent, the model host and the notebook tools.

Both front ends (the TUI and ``--auto``) build their run here, so they differ only in
how they render events.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scribe_tui.agent.loop import Investigation, InvestigationConfig
from scribe_tui.agent.provider import Provider, ProviderError
from scribe_tui.agent.transcript import transcript_path_for
from scribe_tui.events import Event, Stopped
from scribe_tui.runtime.host_process import HostProcess
from scribe_tui.runtime.receipt import build_receipt, weights_digests
from scribe_tui.runtime.sandbox import SandboxState
from scribe_tui.runtime.sealed import kernel_options, sandbox_state, start_host_hashed
from scribe_tui.runtime.status import HostStatus

if TYPE_CHECKING:
    from scribe_tui.tools import NotebookTools

__all__ = [
    "LaunchError",
    "RunSettings",
    "Workbench",
    "blackbox_refusal",
    "choose_agent",
    "make_provider",
    "model_layout",
    "notebook_settings",
    "recall_model",
    "remember_model",
    "sandbox_state",
    "subject_briefing",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "organism:taboo"
# The notebook's status for each way a run ends (see `scribe-tui list`).
STATUS_FOR_REASON = {
    "concluded": "concluded",
    "budget": "budget-spent",
    "interrupted": "paused",
    "failed": "failed",
}


class LaunchError(RuntimeError):
    """The run cannot start; the message is one line that says what to do."""


@dataclass
class RunSettings:
    """Everything needed to start (or resume) one investigation."""

    task: str
    agent: str
    model: str
    mode: str = "local"
    claude_model: str | None = None
    thinking_budget: int | None = None
    notebooks_dir: Path = Path("notebooks")
    experiment_name: str | None = None
    cell_timeout: float = 600.0
    token_budget: int = 2000
    device: str = "auto"
    dtype: str = "auto"
    gpu: str | None = None
    """The Modal GPU type (``--mode modal``); None: Modal's default for scribe-tui, L4."""
    modal_timeout: float = 60.0
    """Seconds Modal may take to answer when connecting (``--mode modal``)."""
    seed: int = 0
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    config: InvestigationConfig = field(default_factory=InvestigationConfig)
    resume_from: Path | None = None
    sandbox: bool = True
    """Seal the kernel and the host where the platform allows (``--no-sandbox``: never)."""
    allow_network: bool = False
    """Keep TCP open for sealed processes (``--allow-network``); closed where Landlock can."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Limits given on the command line: a resumed run keeps its own config except these."""
    brief: str = ""
    """More for the agent after the task (an investigator's opening strategy, the
    aggregator's claims); the notebook's ``task`` stays the task."""
    notebook_meta: dict[str, Any] = field(default_factory=dict)
    """Extra ``metadata.scribe`` fields (an investigator's id, an aggregate's members)."""


def choose_agent(requested: str | None) -> tuple[str, str]:
    """The agent to use and why: Claude when a key is set, else the offline autopilot."""
    if requested:
        return requested, "as requested"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "claude", "ANTHROPIC_API_KEY is set"
    return "autopilot", "no ANTHROPIC_API_KEY set; the offline investigator"


def make_provider(settings: RunSettings) -> Provider:
    """Build the agent; raises :class:`LaunchError` (one line) when it cannot be used."""
    if settings.agent == "autopilot":
        from scribe_tui.autopilot.investigator import Autopilot

        return Autopilot(seed=settings.seed)
    if settings.agent == "claude":
        from scribe_tui.agent.claude import DEFAULT_MODEL as CLAUDE_DEFAULT
        from scribe_tui.agent.claude import ClaudeProvider

        try:
            return ClaudeProvider(
                settings.claude_model or CLAUDE_DEFAULT,
                thinking_budget=settings.thinking_budget,
                prices=settings.prices or None,
            )
        except ProviderError as exc:
            raise LaunchError(str(exc)) from exc
    raise LaunchError(f"unknown agent {settings.agent!r}: use claude or autopilot")


def notebook_settings(notebook: Path) -> dict[str, Any]:
    """The ``metadata.scribe`` of a notebook to resume; :class:`LaunchError` if unusable."""
    if not notebook.exists():
        raise LaunchError(f"{notebook}: no such notebook; `scribe-tui list` shows the runs")
    if not transcript_path_for(notebook).exists():
        raise LaunchError(
            f"{notebook}: no transcript beside it ({transcript_path_for(notebook).name}); "
            "only notebooks written by `scribe-tui investigate` can be resumed"
        )
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]["scribe"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise LaunchError(f"{notebook}: not a scribe-tui notebook ({exc})") from exc
    return meta


def _model_record(notebook: Path) -> Path:
    from scribe_tui.paths import private_data_dir

    digest = hashlib.sha256(str(notebook.resolve()).encode()).hexdigest()[:24]
    return private_data_dir() / "models" / f"{digest}.json"


def remember_model(notebook: Path, model_spec: str) -> None:
    """Keep a notebook's real model path where only we look (the notebook shows a display name)."""
    record = _model_record(notebook)
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record.write_text(json.dumps({"model": model_spec}), encoding="utf-8")


def recall_model(notebook: Path, shown: str) -> str:
    """The model a notebook ran on: its metadata's, or the path :func:`remember_model` kept."""
    from scribe_tui.runtime.host_protocol import LOCAL_PREFIX

    if not shown.startswith(LOCAL_PREFIX):
        return shown
    try:
        return str(json.loads(_model_record(notebook).read_text(encoding="utf-8"))["model"])
    except (OSError, ValueError, KeyError) as exc:
        raise LaunchError(
            f"{notebook} ran on a local model ({shown}) whose path is kept out of the notebook "
            "and is not recorded on this machine: pass --model PATH"
        ) from exc


def subject_briefing(model_spec: str) -> str | None:
    """The public description of a model organism (what an investigator is told), if any."""
    from scribe_tui.organisms.registry import UnknownOrganism, organism_info

    try:
        return organism_info(model_spec).description
    except (UnknownOrganism, OSError, ValueError, KeyError):
        return None


def blackbox_refusal(task: str, model: str, mode: str) -> str | None:
    """Why ``task`` cannot be done on ``model`` in ``mode``, or None: a mechanistic task
    (which heads, layers or direction do something, told from the task and the model's
    description as the autopilot tells it) needs ``client.run``, which a black-box host
    refuses."""
    if mode != "blackbox":
        return None
    from scribe_tui.autopilot.kinds import mechanistic

    kind = mechanistic(f"{task}\n{subject_briefing(model) or ''}")
    if kind is None:
        return None
    return (
        f"this is a mechanistic task ({kind}: which parts of the model do it), measured "
        "inside the model with client.run, which --mode blackbox closes: run it without "
        "--mode blackbox"
    )


def new_host(settings: RunSettings, sandbox: SandboxState, workers: int = 1) -> HostProcess:
    """The model host a run on ``settings`` needs (not started yet); ``workers`` processes
    serve calls side by side when the model is small and on CPU (runtime.host_workers)."""
    return HostProcess(
        settings.model,
        mode=settings.mode,
        device=settings.device,
        dtype=settings.dtype,
        gpu=settings.gpu,
        modal_timeout=settings.modal_timeout,
        sealed=sandbox.sealed,
        allow_network=not sandbox.network_closed,
        workers=workers,
    )


def model_layout(host: HostProcess) -> dict[str, int] | None:
    """The subject model's ``{"layers", "heads"}`` as its host reports them (what
    ``conclude`` checks a claimed component or layer against); None where the host
    cannot say. Call it once the model is loaded."""
    try:
        info = host.model_info()
    except (OSError, EOFError, TimeoutError, RuntimeError, ValueError) as exc:
        # Claims then go unchecked here; the bench's scorer still scores them as wrong.
        log.warning("the model host did not report its layout: %s", exc)
        return None
    layout = {
        key: value
        for key in ("layers", "heads")
        if isinstance(value := info.get(key), int) and not isinstance(value, bool) and value > 0
    }
    return layout or None


def notebook_tools(
    settings: RunSettings,
    host: HostProcess,
    sandbox: SandboxState,
    receipt: dict[str, Any] | None = None,
    layout: dict[str, int] | None = None,
) -> NotebookTools:
    """Notebook tools whose kernels reach ``host`` and are sealed like every run's;
    ``layout`` (:func:`model_layout`) checks structured claims against the model.

    The kernel and the notebook see the model's display name: a local path can name
    the secret.
    """
    from scribe_tui.runtime.interp_client import setup_code
    from scribe_tui.tools import NotebookTools

    s = settings
    shown = host.launch.display_name
    metadata: dict[str, Any] = {
        "task": s.task,
        "model": shown,
        "mode": s.mode,
        "agent": s.agent,
        "sandbox": sandbox.to_dict(),
        **s.notebook_meta,
    }
    if receipt is not None:
        metadata["receipt"] = receipt
    if layout is not None:
        metadata["layout"] = layout
    kernel = kernel_options(host, sandbox)
    return NotebookTools(
        s.notebooks_dir,
        setup_code=setup_code(shown, mode=s.mode, device=s.device, dtype=s.dtype),
        cell_timeout=s.cell_timeout,
        token_budget=s.token_budget,
        metadata=metadata,
        kernel_env=kernel["extra_env"],
        kernel_sandbox=kernel["sandbox"],
    )


class Workbench:
    """One investigation with the processes it needs: the model host and the kernels.

    ``await Workbench.open(settings)`` starts the host and waits until the model is
    loaded (``on_host`` sees each loading snapshot); ``close()`` stops everything.
    """

    def __init__(
        self, settings: RunSettings, provider: Provider, host: HostProcess, owns_host: bool = True
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.host = host
        self.owns_host = owns_host
        self.investigation: Investigation | None = None
        self.sandbox: SandboxState | None = None
        self.receipt: dict[str, Any] = {}
        self.layout: dict[str, int] | None = None
        self._tools: Any = None
        self._ended: str | None = None  # how the run stopped, until the notebook records it

    @classmethod
    async def open(
        cls,
        settings: RunSettings,
        provider: Provider | None = None,
        on_host: Callable[[HostStatus], None] | None = None,
        host: HostProcess | None = None,
    ) -> Workbench:
        """``host``: a running host shared with other runs (a bench); it is left running."""
        provider = provider or make_provider(settings)
        sandbox = sandbox_state(settings.sandbox, settings.allow_network)
        bench = cls(
            settings,
            provider,
            host or new_host(settings, sandbox),
            owns_host=host is None,
        )
        bench.sandbox = sandbox
        try:
            if host is None:
                status, digests = await bench._start_host(on_host)
            else:  # a shared host, started already
                status, digests = await asyncio.gather(
                    asyncio.to_thread(host.status),
                    asyncio.to_thread(weights_digests, settings.model),
                )
            bench.receipt = bench._receipt(status, digests)
            bench.layout = await asyncio.to_thread(model_layout, bench.host)
            bench._build()
        except BaseException:
            await bench.close()
            raise
        return bench

    async def _start_host(
        self, on_host: Callable[[HostStatus], None] | None
    ) -> tuple[HostStatus, dict[str, Any]]:
        from scribe_tui.runtime.host_protocol import HostStartError

        try:
            return await start_host_hashed(self.host, on_host)
        except (HostStartError, TimeoutError) as exc:
            raise LaunchError(str(exc)) from exc

    def _receipt(self, host: HostStatus, digests: dict[str, Any]) -> dict[str, Any]:
        """What this run stands on, for the notebook's ``metadata.scribe.receipt``."""
        s = self.settings
        assert self.sandbox is not None
        return build_receipt(
            display_name=self.host.launch.display_name,
            host=host,
            digests=digests,
            requested={"mode": s.mode, "device": s.device, "dtype": s.dtype},
            agent=s.agent,
            agent_model=self.provider.model,
            methodology=s.config.methodology,
            seeds={"agent": s.seed} if s.agent == "autopilot" else {},
            sandbox=self.sandbox.to_dict(),
        )

    def _build(self) -> None:
        s = self.settings
        assert self.sandbox is not None
        sandbox = self.sandbox
        self._tools = notebook_tools(
            s, self.host, sandbox, receipt=self.receipt, layout=self.layout
        )
        if s.resume_from is not None:
            self._receipt_for(s.resume_from)
            self.investigation = Investigation.resume(
                transcript_path_for(s.resume_from), self.provider, self._tools
            )
            config = self.investigation.config
            for key, value in s.overrides.items():
                setattr(config, key, value)
        else:
            config = s.config
            config.experiment_by_person = bool(config.experiment or s.experiment_name)
            config.experiment = config.experiment or s.experiment_name or s.task
            task = s.task
            about = subject_briefing(s.model)
            if about:
                task = f"{task}\n\nWhat you are told about the subject model: {about}"
            if s.brief:
                task = f"{task}\n\n{s.brief}"
            self.investigation = Investigation(task, self.provider, self._tools, config=config)
        self.investigation.sandbox = sandbox.label
        self.investigation.subscribe(self._note_stop)
        if s.agent == "autopilot":
            # The autopilot re-reads its evidence from earlier cell outputs in the
            # conversation, so they must not shrink to stubs; its turns cost nothing.
            config.context_budget = None

    def _receipt_for(self, notebook: Path) -> None:
        """A resumed notebook without a receipt (a fork's first start) gets this run's."""
        from scribe_tui.runtime.notebook import Notebook, NotebookError

        try:
            opened = Notebook.load(notebook)
            if not isinstance(opened.scribe.get("receipt"), dict):
                opened.update_scribe(receipt=self.receipt)
        except NotebookError as exc:
            raise LaunchError(str(exc)) from exc

    def _note_stop(self, event: Event) -> None:
        if isinstance(event, Stopped):
            self._ended = event.reason

    def _complete(self, path: Path, reason: str) -> None:
        """Record how the run ended: the notebook's status, and the receipt's ``completed``."""
        from scribe_tui.runtime.notebook import Notebook, NotebookError

        investigation = self.investigation
        assert investigation is not None
        try:
            notebook = Notebook.load(path)
            recorded = notebook.scribe.get("receipt")
            receipt = dict(recorded if isinstance(recorded, dict) else self.receipt)
            usage = investigation.usage
            receipt["completed"] = {
                "at": datetime.now().astimezone().isoformat(timespec="seconds"),
                "outcome": reason,
                "turns": investigation.turns,
                "input_tokens": usage.total_input_tokens,
                "output_tokens": usage.output_tokens,
                "cost_usd": round(usage.cost_usd, 6),
                "elapsed_s": round(investigation.elapsed, 1),
                "code_cells": len(notebook.code_indices()),
            }
            notebook.update_scribe(status=STATUS_FOR_REASON.get(reason, "paused"), receipt=receipt)
        except NotebookError as exc:  # the run's outcome stands; only its record is short
            log.warning("could not complete the receipt of %s: %s", path, exc)

    def record_failure(self) -> None:
        """Mark the run failed when its front end failed (the loop may have seen a cancel);
        a run that had already concluded or spent its budget keeps that outcome."""
        from scribe_tui.runtime.notebook import Notebook, NotebookError

        notebook = self.investigation.notebook_path if self.investigation else None
        if notebook is None:
            return
        try:
            status = Notebook.load(notebook).scribe.get("status")
        except NotebookError:
            return
        if status in ("running", "paused"):
            self._complete(notebook, "failed")

    def host_status(self) -> HostStatus:
        """A fresh snapshot of the model host (never blocks on a running call for long)."""
        return self.host.status()

    async def close(self) -> None:
        """Shut down kernels and the host; safe to call more than once."""
        notebook = self.investigation.notebook_path if self.investigation else None
        if notebook is not None and self.host.launch.display_name != self.settings.model:
            remember_model(notebook, self.settings.model)
        if self._tools is not None:
            await self._tools.aclose()
            self._tools = None
        if notebook is not None and self._ended is not None:
            ended, self._ended = self._ended, None
            await asyncio.to_thread(self._complete, notebook, ended)
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()
        if self.owns_host:
            self.host.stop()
