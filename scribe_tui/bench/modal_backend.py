"""``scribe-tui bench --backend modal``: the models on Modal GPUs, the agents on this machine.

Each organism's white-box runs share one model host in ``--mode modal``
(:mod:`scribe_tui.runtime.modal_host`): one GPU container per organism, as a local
bench shares one host per organism. The agent loop, its provider calls, the
notebook kernels and the scoring stay here.

Why here and not in the container: a Modal container has gVisor but no Landlock,
so nothing in it can be kept from code that runs there, and agent code does run
there (``client.run``). A container process the kernel cannot read would rest on
gVisor's ptrace checks alone; holding no secret at all rests on nothing. So the
Anthropic key is used only on this machine, the hub token only by the download
function (never where agent code runs), Modal's credentials never enter
(``restrict_modal_access``), answer keys never leave, and the kernels are sealed
here exactly as in a local bench. What the container runs is reported as
``sandbox: off (Modal gVisor)`` in the host line and in each row's
``host_sandbox``.

Black-box runs keep a host on this machine: such a host runs no agent code, and a
host launch has no black-box Modal mode yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scribe_tui.bench.grid import RunSpec, model_spec, organism_label
from scribe_tui.bench.runner import BenchEvent, BenchRunner

# Runs at once unless --jobs says otherwise: kernels here, their models on Modal.
DEFAULT_JOBS = 8


class ModalUnavailable(RuntimeError):
    """Modal could not serve the bench's models at all (unreachable, token, image build)."""


class ModalBenchRunner(BenchRunner):
    """A bench whose white-box models run on Modal GPUs, ``jobs`` runs at once, scored here."""

    def __init__(
        self,
        out: Path,
        runs: list[RunSpec],
        *,
        jobs: int,
        gpu: str | None = None,
        modal_timeout: float = 60.0,
        scored: bool = True,
        sandbox: bool = True,
        allow_network: bool = False,
        on_event: Callable[[BenchEvent], None] | None = None,
    ) -> None:
        from scribe_tui.runtime.modal_host import DEFAULT_GPU

        super().__init__(
            out,
            runs,
            jobs=jobs,
            scored=scored,
            sandbox=sandbox,
            allow_network=allow_network,
            on_event=on_event,
        )
        self.gpu = gpu or DEFAULT_GPU
        self.modal_timeout = modal_timeout

    def modal_host(self, run: RunSpec) -> Any:
        """The (not yet started) host serving ``run``'s organism from a Modal GPU."""
        from scribe_tui.runtime.host_process import HostProcess
        from scribe_tui.runtime.sealed import sandbox_state

        sandbox = sandbox_state(self.sandbox, self.allow_network)
        return HostProcess(
            model_spec(run["organism"]),
            mode="modal",
            gpu=self.gpu,
            modal_timeout=self.modal_timeout,
            # Seals the kernels here (a modal host itself runs no agent code on this machine).
            sealed=sandbox.sealed,
            allow_network=not sandbox.network_closed,
        )

    async def _execute(self, pending: list[RunSpec]) -> tuple[list[BenchEvent], int]:
        """Start every Modal host first: if Modal cannot serve, no run is worth starting."""
        from scribe_tui.runtime.host_protocol import HostStartError
        from scribe_tui.runtime.modal_host import CONTAINER_SANDBOX
        from scribe_tui.runtime.sealed import start_host

        for run in pending:
            key = (model_spec(run["organism"]), run["mode"])
            if run["mode"] == "whitebox" and key not in self._hosts:
                self._hosts[key] = self.modal_host(run)
                where = f"on Modal {self.gpu}; client.run there: {CONTAINER_SANDBOX}"
                self._emit(
                    {
                        "type": "host_starting",
                        "organism": f"{organism_label(run['organism'])} {where}",
                    }
                )
        try:
            # The first start builds the image and may download weights: minutes.
            await asyncio.gather(
                *(start_host(h) for h in self._hosts.values())  # Modal's own, longer limit
            )
        except (HostStartError, TimeoutError) as exc:
            await asyncio.to_thread(self._stop_hosts)
            raise ModalUnavailable(str(exc)) from exc
        return await super()._execute(pending)

    def _settings(self, run: RunSpec) -> Any:
        """A white-box run's settings say modal: its notebook and receipt record where it ran."""
        settings = super()._settings(run)
        if run["mode"] == "whitebox":
            settings = dataclasses.replace(settings, mode="modal")
        return settings

    def _record(self, row: BenchEvent) -> None:
        from scribe_tui.runtime.modal_host import CONTAINER_SANDBOX

        if row["axes"]["mode"] == "whitebox":
            row["host_sandbox"] = CONTAINER_SANDBOX
        super()._record(row)
