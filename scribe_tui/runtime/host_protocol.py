"""What the model host and its clients share: errors, the host file, and message encoding.

The transport is :mod:`multiprocessing.connection` over a Unix socket in a
private (0700) directory, authenticated by the HMAC challenge with a random
key. The kernel finds the socket and key in the *host file* (mode 0600, in a
0700 directory) named by ``SCRIBE_HOST_FILE``; the file also records how the
host was launched, so a client can start a new one after a crash.

Messages are pickled dicts. The host decodes requests with :func:`decode_plain`,
which refuses every class reference, so only built-in data reaches it; the one
exception is ``client.run``'s function, which travels as an opaque cloudpickle
blob that a black-box host never opens.

This module is imported in the kernel: it must stay free of torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import pickle
import sys
import traceback
from dataclasses import asdict, dataclass, fields, replace
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
BLACKBOX_REFUSAL = (
    "This task is black-box: client.run is disabled. Use client.generate(...) or client.chat(...)."
)


class HostStartError(RuntimeError):
    """The model host could not start or load its model; the message is one line."""


class HostConnectionError(ConnectionError):
    """The model host went away (or never answered) while a call was in progress."""


class BlackBoxError(PermissionError):
    """``client.run`` was called on a black-box host."""


class UnsendableResult(TypeError):
    """A technique returned something that cannot cross back to the kernel."""


class RemoteError(Exception):
    """An exception from the model host whose type could not be rebuilt in the kernel."""

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.remote_traceback = remote_traceback


LOCAL_PREFIX = "local:"


def _is_local_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or Path(spec).expanduser().exists()


def _local_kind(path: Path) -> str:
    for name, key in (("organism.json", "kind"), ("config.json", "model_type")):
        try:
            return str(json.loads((path / name).read_text(encoding="utf-8"))[key])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return "model"


@dataclass(frozen=True)
class LaunchSpec:
    """How a host is started; recorded in the host file so a client can start it again."""

    model: str
    mode: str = "local"  # local | blackbox | modal
    device: str = "auto"
    dtype: str = "auto"
    adapter: str | None = None
    base_model: str | None = None
    hide_model_name: bool = False
    gpu: str | None = None  # Modal GPU type
    modal_timeout: float = 60.0
    # Processes serving calls side by side; taken up only for a small model on CPU
    # (runtime.host_workers), where one process serves one call at a time.
    workers: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("local", "blackbox", "modal"):
            raise ValueError(f"mode must be local, blackbox or modal, not {self.mode!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number from 1, not {self.workers!r}")

    @property
    def display_name(self) -> str:
        """What the kernel and the notebook see: never a local path, which can name the secret.

        ``organism:NAME`` and hub ids are shown as given; a local directory becomes
        ``local:KIND`` (an organism's kind, or the config's model type).
        """
        if self.hide_model_name:
            return "the subject model"
        if self.model.startswith((LOCAL_PREFIX, "organism:")) or not _is_local_path(self.model):
            return self.model
        return f"{LOCAL_PREFIX}{_local_kind(Path(self.model).expanduser())}"

    def public(self) -> LaunchSpec:
        """This spec as a sealed kernel may see it: the display name, no paths."""
        return replace(self, model=self.display_name, adapter=None, base_model=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- the host file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRecord:
    """The host file's contents: where the host listens and how it was launched."""

    pid: int
    address: str
    authkey: bytes
    launch: LaunchSpec
    owner_pid: int | None = None
    failed: str | None = None  # the one-line reason, when the host gave up loading


def write_host_file(path: Path, record: HostRecord) -> None:
    """Atomically (re)write the host file with mode 0600."""
    data = {
        "version": PROTOCOL_VERSION,
        "pid": record.pid,
        "address": record.address,
        "authkey": record.authkey.hex(),
        "owner_pid": record.owner_pid,
        "launch": record.launch.to_dict(),
        "failed": record.failed,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_host_file(path: Path) -> HostRecord | None:
    """The record in ``path``, or None if the file is missing or half-written."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return HostRecord(
            pid=int(data["pid"]),
            address=str(data["address"]),
            authkey=bytes.fromhex(data["authkey"]),
            launch=LaunchSpec.from_dict(data["launch"]),
            owner_pid=data.get("owner_pid"),
            failed=data.get("failed"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class ExitNote:
    """Why a host stopped itself; ``stuck_call`` names the cancelled call that made it."""

    reason: str
    stuck_call: str | None = None


def write_exit_note(host_file: Path, reason: str, stuck_call: str | None = None) -> None:
    """Leave why this host is stopping itself beside the host file, where kernels can read it.

    Its log may be out of a sealed kernel's reach; the note names no path.
    """
    from scribe_tui.runtime.nbfiles import atomic_write

    note = {"pid": os.getpid(), "reason": reason, "stuck_call": stuck_call}
    with contextlib.suppress(OSError):  # atomic: a client reads it the moment the host is gone
        atomic_write(host_file.with_suffix(".exit"), json.dumps(note).encode())


def read_exit_note(host_file: Path, pid: int) -> ExitNote | None:
    """Why host ``pid`` stopped itself (see :func:`write_exit_note`), if it said."""
    try:
        note = json.loads(host_file.with_suffix(".exit").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or note.get("pid") != pid:
        return None
    stuck = note.get("stuck_call")
    return ExitNote(str(note.get("reason", "")), str(stuck) if stuck else None)


# What connect() raises when the host is gone, is closing, or was replaced (a new key).
CONNECT_ERRORS = (OSError, EOFError, AuthenticationError)


def connect(record: HostRecord) -> Connection:
    """Open an authenticated connection to the host in ``record`` (raises CONNECT_ERRORS)."""
    return Client(record.address, family="AF_UNIX", authkey=record.authkey)


# --- message encoding ----------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: requests carry built-in data only")


def decode_plain(data: bytes) -> Any:
    """Unpickle built-in data only (dict, list, str, bytes, numbers...); refuses any class."""
    return _PlainUnpickler(io.BytesIO(data)).load()


# --- exceptions across the socket ----------------------------------------------------------------


class RemoteCallError(Exception):
    """A call that raised in a host's worker process, already packed there: ``reply`` is the
    error reply to send on (see runtime.host_workers)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(str(reply.get("error", {}).get("message", "the call failed")))
        self.reply = reply


def pack_exception(exc: BaseException, skip_frames: int = 0) -> dict[str, Any]:
    """Plain-data description of ``exc`` (plus its pickle when it has one) for the client."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    kind = type(exc)
    name = (
        kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )
    packed: dict[str, Any] = {
        "type": name,
        "message": str(exc),
        "frames": frames,
        "pickled": None,
    }
    try:
        import cloudpickle

        blob = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        # An exception whose __init__ cannot be replayed fails to load: find out here.
        pickle.loads(blob)
        packed["pickled"] = blob
    except Exception:
        pass  # the client raises RemoteError with the type name instead
    return packed


# Where the functions a client shipped were compiled: name -> [(filename, first line, last line)].
CodeOrigins = dict[str, list[tuple[str, int, int]]]


def code_origins(*roots: Any) -> CodeOrigins:
    """Where the functions in ``roots`` (and the notebook helpers they call) were compiled.

    cloudpickle may rename a shipped function's file (3.1 writes ``<dynamic-code>``), so
    the host's frames are mapped back to their source here, by function name and line.
    """
    origins: CodeOrigins = {}
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            pending.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            pending.extend(obj)
        code = getattr(obj, "__code__", None)
        if code is None:
            continue
        module_globals = getattr(obj, "__globals__", {})
        codes = [code]
        while codes:
            current = codes.pop()
            lines = [n for _, _, n in current.co_lines() if n is not None] or [0]
            origins.setdefault(current.co_name, []).append(
                (current.co_filename, current.co_firstlineno, max(lines))
            )
            codes.extend(c for c in current.co_consts if hasattr(c, "co_lines"))
            # Helpers the function calls by global name travel with it by value.
            pending.extend(
                module_globals[n]
                for n in current.co_names
                if callable(module_globals.get(n)) and hasattr(module_globals[n], "__code__")
            )
    return origins


def _source_file(filename: str, lineno: int, name: str, origins: CodeOrigins) -> str:
    for origin, first, last in origins.get(name, ()):
        if first <= lineno <= last:
            return origin
    return filename


def format_remote_traceback(packed: dict[str, Any], origins: CodeOrigins | None = None) -> str:
    """The host-side traceback, with source lines filled in from this process's linecache.

    Notebook functions were compiled in the kernel, so only the kernel knows their
    source lines; the host sends file names and line numbers, and ``origins`` maps
    frames of shipped functions back to the files they were compiled from.
    """
    entries = []
    for filename, lineno, name, line in packed.get("frames", []):
        if not line and lineno:
            if origins and not linecache.getline(filename, lineno):
                filename = _source_file(filename, lineno, name, origins)
            line = linecache.getline(filename, lineno).strip()
        entries.append(traceback.FrameSummary(filename, lineno, name, line=line or None))
    body = "".join(traceback.StackSummary.from_list(entries).format())
    message = packed.get("message", "")
    last = f"{packed['type']}: {message}" if message else packed["type"]
    return f"Traceback in the model host (most recent call last):\n{body}{last}"


def unpack_exception(packed: dict[str, Any], origins: CodeOrigins | None = None) -> BaseException:
    """The original exception if it unpickles here, else :class:`RemoteError`, traceback noted."""
    text = format_remote_traceback(packed, origins)
    exc: BaseException | None = None
    if packed.get("pickled"):
        try:
            exc = pickle.loads(packed["pickled"])
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(packed["type"], packed.get("message", ""), text)
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    else:  # Python 3.10: no exception notes; show the remote traceback before the local one
        print(text, file=sys.stderr)
    return exc
