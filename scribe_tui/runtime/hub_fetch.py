"""Bring a hub model into the local cache before its model host starts.

A model host runs the agent's code (``client.run``), so it is as untrusted as the
kernel: sealed, it has no network, and in local and black-box modes it never gets the
hub token. Whoever starts a host runs this step first, as a short process of its own:

    python -I -m scribe_tui.runtime.hub_fetch    # the request on stdin, progress on stdout

It reads ``{"launch": ..., "token": ...}`` from stdin, downloads what loading needs with
``huggingface_hub`` and writes one JSON object a line: ``{"state", "phase", "progress"}``
while it works, ``{"error": ONE_LINE}`` if it cannot. The host then loads offline.

A process rather than a thread of the caller: stopping a run kills it at once (a thread
blocked in a socket read cannot be stopped), a crash inside the library cannot take the
TUI down, and its stdout is a clean progress channel. :class:`HubFetch` follows one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scribe_tui.runtime.host_protocol import LaunchSpec
from scribe_tui.runtime.loading import (
    ModelLoadError,
    hub_reachable,
    hub_repo_dir,
    hub_repos,
    in_hub_cache,
    offline_message,
    resolve_model,
)
from scribe_tui.runtime.status import State

__all__ = ["HubFetch", "fetch", "main", "needs_fetch"]

Report = Callable[[State, str, float], None]
CHECKING = "checking the Hugging Face hub"

# What from_pretrained reads from a repo's top level: config, tokenizer, chat template and
# weights. Subfolders (Llama's original/), other frameworks' weights, docs and code are not.
_SUPPORT_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")


def needs_fetch(launch: LaunchSpec) -> bool:
    """Whether starting ``launch`` reads a hub repository (no network used to tell)."""
    if launch.mode == "modal":
        return False  # the container downloads for itself
    try:
        resolved = resolve_model(
            launch.model, adapter=launch.adapter, base_model=launch.base_model, probe_hub=False
        )
    except ModelLoadError:
        return False  # the host reports it, as for any model it cannot load
    return bool(hub_repos(resolved))


# --- the fetch process ---------------------------------------------------------------------------


def fetch(launch: LaunchSpec, *, token: str | None, report: Report) -> None:
    """Download the hub repositories ``launch`` loads, unless the cache already has them.

    Raises :class:`ModelLoadError` with one line saying what to do. Offline, a cached
    snapshot is used as it is; online, a cached snapshot is completed if files are missing.
    """
    resolved = resolve_model(
        launch.model, adapter=launch.adapter, base_model=launch.base_model, probe_hub=False
    )
    repos = hub_repos(resolved)
    report("starting", CHECKING, 0.0)
    if not hub_reachable():
        missing = [repo for repo in repos if not in_hub_cache(repo)]
        if missing:
            raise ModelLoadError(offline_message(missing[0]))
        return
    for repo in repos:
        shown = launch.display_name if launch.hide_model_name or repo == launch.model else repo
        _fetch_repo(repo, shown, token, report)


def _fetch_repo(repo: str, shown: str, token: str | None, report: Report) -> None:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi(token=token).model_info(repo, files_metadata=True)
    except HfHubHTTPError as exc:
        if not in_hub_cache(repo):
            raise ModelLoadError(_hub_error(repo, exc)) from None
        print(f"hub_fetch: using the cached {repo}: {_one_line(exc)}", file=sys.stderr)
        return
    except ValueError as exc:  # a name the hub's rules refuse
        raise ModelLoadError(_hub_error(repo, exc)) from None
    except Exception as exc:  # the transport's own errors: the hub is out of reach
        if not in_hub_cache(repo):
            raise ModelLoadError(offline_message(repo)) from None
        print(f"hub_fetch: using the cached {repo}: {_one_line(exc)}", file=sys.stderr)
        return
    files = wanted_files({s.rfilename: s.size for s in info.siblings or []})
    snapshot = hub_repo_dir(repo) / "snapshots" / str(info.sha)
    todo = {name: size for name, size in files.items() if not (snapshot / name).exists()}
    tally = _Tally(report, shown, sum(todo.values()), len(todo))
    try:
        snapshot_download(
            repo,
            # Exact names: a name may hold the pattern characters * ? [.
            allow_patterns=[glob.escape(name) for name in files],
            token=token,
            tqdm_class=tally.bar_class(),  # type: ignore[arg-type]
        )
    except Exception as exc:
        raise ModelLoadError(_hub_error(repo, exc)) from None


def wanted_files(sizes: Mapping[str, int | None]) -> dict[str, int]:
    """Of a repo's files (name: size), the ones loading reads; safetensors over pickles."""
    top = {name: size or 0 for name, size in sizes.items() if "/" not in name}
    weights = {n: s for n, s in top.items() if n.endswith(".safetensors")}
    if any(not n.startswith("consolidated") for n in weights):
        # Mistral's repos add their original format as consolidated.safetensors: a second copy.
        weights = {n: s for n, s in weights.items() if not n.startswith("consolidated")}
    if not weights:
        weights = {n: s for n, s in top.items() if n.endswith(".bin")}
    support = {n: s for n, s in top.items() if n.endswith(_SUPPORT_SUFFIXES)}
    return {**support, **weights}


def _hub_error(repo: str, exc: BaseException) -> str:
    """One line for a failed download: what went wrong and what to do about it."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    page = f"{constants.ENDPOINT}/{repo}"
    if isinstance(exc, GatedRepoError):
        return (
            f"'{repo}' is a gated model: accept its licence at {page} with your Hugging Face "
            "account, then set HF_TOKEN to a token of that account (or run `hf auth login`)."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"Model '{repo}' not found on the Hugging Face hub: no such repository (a private "
            "one needs HF_TOKEN or `hf auth login`)."
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return (
            f"The Hugging Face hub refused '{repo}' ({status}): set HF_TOKEN (or run "
            f"`hf auth login`) to a valid token; a gated model also needs its licence "
            f"accepted at {page}."
        )
    if isinstance(exc, LocalEntryNotFoundError):  # the connection went away mid-way
        return offline_message(repo)
    return f"Could not download '{repo}' from the Hugging Face hub: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class _Tally:
    """Sums what ``snapshot_download``'s progress bars count into reports (prints nothing).

    Its byte bars count the same bytes (received and written): the larger is what is done,
    the fraction. Its file bar counts the files in place: the phase names them, so the
    phase, and with it a headless progress line, changes as each file lands.
    """

    def __init__(self, report: Report, shown: str, total: int, files: int) -> None:
        self._report, self._shown, self._total, self._files = report, shown, total, files
        self._bars: list[Any] = []
        self._lock = threading.Lock()
        self._sent: tuple[str, float] | None = None
        self.update()

    def update(self) -> None:
        if not self._files:
            return  # all cached: snapshot_download only checks, and this is not a download
        with self._lock:
            done = max((b.n for b in self._bars if b.unit == "B"), default=0)
            counted = [b for b in self._bars if b.unit != "B"]
            files, of = (counted[0].n, counted[0].total) if counted else (0, self._files)
            # Sizes come from the hub's listing; without them, count files.
            fraction = min(done / self._total if self._total else files / (of or 1), 1.0)
            size = f" ({_size(self._total)})" if self._total else ""
            phase = f"downloading {self._shown}{size}: {files:.0f} of {of} files"
            sent = (phase, round(fraction, 2))
            if sent != self._sent:
                self._sent = sent
                self._report("loading", *sent)

    def bar_class(self) -> type:
        """A tqdm whose bars feed this tally and draw nothing.

        A real tqdm subclass, so whatever huggingface_hub version calls on its bar class
        (locks, context managers, refresh) is there.
        """
        from tqdm.auto import tqdm

        tally = self

        class Bar(tqdm):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**kwargs, "disable": True})
                self.unit = kwargs.get("unit", "it")
                with tally._lock:
                    tally._bars.append(self)

            def update(self, n: float | None = 1) -> None:
                self.n += n or 0
                tally.update()

        return Bar


def _size(n: float) -> str:
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def main() -> int:
    """The fetch process: one request on stdin, JSON lines on stdout; exit 2 on failure."""
    request = json.loads(sys.stdin.readline())
    launch = LaunchSpec.from_dict(request["launch"])

    def report(state: State, phase: str, progress: float) -> None:
        print(json.dumps({"state": state, "phase": phase, "progress": progress}), flush=True)

    try:
        fetch(launch, token=request.get("token"), report=report)
    except ModelLoadError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 2
    except Exception as exc:  # anything else still ends as one line; the log keeps the rest
        traceback.print_exc()
        print(json.dumps({"error": f"Could not download {launch.model}: {_one_line(exc)}"}))
        return 2
    return 0


# --- the caller's side ---------------------------------------------------------------------------


class HubFetch:
    """One fetch process, started at once and followed by a thread.

    ``state``, ``phase`` and ``progress`` are its latest report; ``error`` its one-line
    failure, set once it has ended without success.
    """

    def __init__(
        self, launch: LaunchSpec, *, env: Mapping[str, str], token: str | None, log_file: Path
    ) -> None:
        self.state: State = "starting"
        self.phase, self.progress = CHECKING, 0.0
        self.error: str | None = None
        self._done = threading.Event()
        with open(log_file, "ab") as log:
            # Isolated, as every launcher: nothing imported from a folder a kernel can write.
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "scribe_tui.runtime.hub_fetch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=dict(env),
                close_fds=True,
            )
        assert self._proc.stdin is not None
        # The token goes on stdin: an environment stays readable in /proc for life.
        with contextlib.suppress(BrokenPipeError):
            request = {"launch": launch.to_dict(), "token": token}
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        self._proc.stdin.close()
        threading.Thread(target=self._follow, name="hub-fetch", daemon=True).start()

    @property
    def done(self) -> bool:
        """Whether the process has ended (see ``error``)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it ends (True) or ``timeout`` seconds pass (False)."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """End it now, if it still runs (a later run resumes the partial download)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5.0)
        self._done.wait(5.0)

    def _follow(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing to stdout)
            if "error" in message:
                self.error = str(message["error"])
            else:
                self.state = message["state"]
                self.phase, self.progress = message["phase"], float(message["progress"])
        code = self._proc.wait()
        if code != 0 and self.error is None:
            self.error = f"the model download stopped (exit code {code})"
        self._done.set()


if __name__ == "__main__":
    sys.exit(main())
