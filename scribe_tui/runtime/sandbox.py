"""Seal a process with Landlock: it reads what research needs and nothing that holds a secret.

The notebook kernel runs the agent's code, and the model host runs the functions
that code ships, so both are untrusted. On Linux (Landlock ABI 1+, kernel 5.13+)
each is started through :func:`main`, which restricts itself and then ``exec``s
the real program; the restriction is inherited by everything the program starts.

A :class:`SandboxPolicy` lists what stays reachable: the Python installation,
the packages it imports (without the organisms' weights and answer keys), a few
system files, the process's own ``/proc/<pid>`` (never another process's), and
the read-write directories it works in. Anything else, home dotfiles, config,
other processes' environments and memory, answer keys, weights, fails with
``PermissionError``. Where Landlock is missing the run goes on unsealed and says
so: :func:`probe` gives the reason that ends up in the status and the notebook.

TCP is closed too (ABI 4+, unless the policy allows the network): no ``connect``
to any address, loopback included, and ``bind`` only to the ports in the Jupyter
connection file, which the kernel listens on and its client (outside) connects to.
The model host is reached over a Unix socket, which these rules leave alone; so is
UDP, which Landlock does not cover. Below ABI 4 the network stays open, and the
state says so.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import select
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

__all__ = ["SandboxPolicy", "SandboxState", "apply", "probe", "sandboxed_argv"]

POLICY_ENV = "SCRIBE_SANDBOX_POLICY"

# Landlock's syscall numbers are the same on every architecture (added after unification).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE, _PR_SET_PDEATHSIG = 38, 4, 1
_CLONE_NEWUSER, _CLONE_NEWPID = 0x10000000, 0x20000000

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_ONLY = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV
_READ = _EXECUTE | _READ_FILE | _READ_DIR
# A device node is opened read-write and driven by ioctl (CUDA's /dev/nvidia*, /dev/null).
_DEVICE = _READ_FILE | _WRITE_FILE | _IOCTL_DEV | _READ_DIR
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
NETWORK_ABI = 4  # the first Landlock ABI with TCP rules
# Keys of a Jupyter connection file that name a port the kernel binds.
_KERNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")

# System files a Python process reads; /etc as a whole would include shadow and keys.
_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
    "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf", "ssl", "ca-certificates",
    "fonts", "mime.types", "os-release", "locale.alias", "alternatives", "matplotlibrc",
)  # fmt: skip
_SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/sys", "/proc/sys")
_PROC_FILES = ("cpuinfo", "meminfo", "stat", "loadavg", "uptime", "version", "filesystems")
_DEVICES = ("null", "zero", "full", "random", "urandom")
# Entries of a sealed process's own /proc/<pid> kept shut even so: net lists every Unix
# socket on the machine by path (other runs' hosts, watch sockets), and each thread under
# task has a net of its own.
HIDDEN_PROC = ("net", "task")
# Every NVIDIA node (nvidia0..N, nvidiactl, nvidia-uvm*, nvidia-modeset), MIG's nvidia-caps
# and the DRM nodes other GPUs use: which exist depends on the machine, so they are listed.
_GPU_DEVICE_PREFIXES = ("nvidia", "dri", "kfd")


@dataclass(frozen=True)
class SandboxState:
    """Whether runs are sealed here, by what, or why not."""

    sealed: bool
    mechanism: str  # "landlock" or "off"
    reason: str = ""  # why it is off, or the Landlock ABI when on
    network: str = "open"  # "closed", or "open" and why

    @property
    def network_closed(self) -> bool:
        """Whether sealed processes can open no TCP connection."""
        return self.sealed and self.network == "closed"

    @property
    def label(self) -> str:
        """What the status bar and the event stream say, e.g.
        ``sandbox: landlock ABI 7, network closed`` or ``sandbox: off (macOS has no Landlock)``."""
        if self.sealed:
            return f"sandbox: landlock {self.reason}, network {self.network}"
        return f"sandbox: off ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class SandboxPolicy:
    """What a sealed process may reach; paths are absolute."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)  # never granted through a read tree
    listable: list[str] = field(default_factory=list)  # names visible, contents not
    devices: list[str] = field(default_factory=list)  # opened read-write and driven by ioctl
    # Entries of the process's own /proc/<pid> it may read; None: all but HIDDEN_PROC. The
    # model host gets a few: its memory maps would show where the weights were loaded from.
    own_proc: list[str] | None = None
    allow_network: bool = False  # False: no TCP connect, bind only to bind_ports
    bind_ports: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxPolicy:
        data = json.loads(text)
        return cls(**data)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _abi() -> int:
    return int(_libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION))


@functools.cache
def probe() -> SandboxState:
    """Whether this machine can seal a kernel (cached; cheap: one syscall)."""
    if not sys.platform.startswith("linux"):
        name = "macOS" if sys.platform == "darwin" else sys.platform
        return SandboxState(False, "off", f"{name} has no Landlock")
    if os.environ.get("MODAL_TASK_ID"):  # set in every Modal container
        return SandboxState(False, "off", "Modal gVisor has no Landlock")
    try:
        abi = _abi()
    except (OSError, AttributeError) as exc:
        return SandboxState(False, "off", f"Landlock unavailable: {exc}")
    if abi < 1:
        errno = ctypes.get_errno()
        why = {38: "kernel older than 5.13", 95: "Landlock disabled at boot"}.get(
            errno, os.strerror(errno)
        )
        return SandboxState(False, "off", f"no Landlock: {why}")
    network = "closed" if abi >= NETWORK_ABI else f"open (Landlock ABI {abi} has no network rules)"
    return SandboxState(True, "landlock", f"ABI {abi}", network)


def off(reason: str) -> SandboxState:
    """The state of a run that is deliberately not sealed."""
    return SandboxState(False, "off", reason)


def network_opened(state: SandboxState) -> SandboxState:
    """``state`` for a run that keeps the network open (``--allow-network``)."""
    return replace(state, network="open (--allow-network)") if state.sealed else state


# --- policies ------------------------------------------------------------------------------------


def python_paths() -> tuple[list[str], list[str]]:
    """(trees to read whole, directories to list only) that imports of this interpreter need.

    Installation prefixes are read whole. Any other ``sys.path`` entry (an editable
    checkout, say) is listed, and only its Python packages and modules are readable:
    its ``.git`` and data directories may hold what the sandbox is for.
    """
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    trees, listed = set(prefixes), set()
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if any(_within(real, p) for p in prefixes):
            continue
        listed.add(real)
        for child in os.scandir(real):
            if (child.is_dir() and os.path.isfile(os.path.join(child.path, "__init__.py"))) or (
                child.is_file() and child.name.endswith((".py", ".pth"))
            ):
                trees.add(os.path.realpath(child.path))
    return sorted(trees), sorted(listed)


def base_policy(
    *, read: Sequence[str] = (), write: Sequence[str] = (), exclude: Sequence[str] = ()
) -> SandboxPolicy:
    """The system and Python reads every sealed process needs, plus the given paths."""
    trees, listed = python_paths()
    system = [*_SYSTEM_READ, *(f"/etc/{n}" for n in _ETC), *(f"/proc/{n}" for n in _PROC_FILES)]
    system += ["/dev/tty", "/proc/driver"]
    return SandboxPolicy(
        read=[p for p in (*system, *trees, *read) if os.path.exists(p)],
        write=[p for p in ("/dev/shm", *write) if os.path.exists(p)],
        exclude=[os.path.realpath(p) for p in exclude],
        listable=[*listed, "/dev"],  # device names: choose_device looks for GPUs
        # /dev/null for subprocess.DEVNULL, which opens it read-write; the GPU for CUDA.
        devices=[*(p for n in _DEVICES if os.path.exists(p := f"/dev/{n}")), *gpu_devices()],
    )


def gpu_devices(dev: str = "/dev") -> list[str]:
    """The GPU device nodes (and folders of them) under ``dev`` that this machine has."""
    try:
        names = sorted(os.listdir(dev))
    except OSError:
        return []
    return [os.path.join(dev, n) for n in names if n.startswith(_GPU_DEVICE_PREFIXES)]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# --- applying ------------------------------------------------------------------------------------


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


def _handled_fs(abi: int) -> int:
    handled = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        handled |= _REFER
    if abi >= 3:
        handled |= _TRUNCATE
    if abi >= 5:
        handled |= _IOCTL_DEV
    return handled


class _Ruleset:
    def __init__(self, abi: int, *, close_network: bool) -> None:
        self.libc = _libc()
        self.handled = _handled_fs(abi)
        net = _NET_BIND_TCP | _NET_CONNECT_TCP if close_network and abi >= NETWORK_ABI else 0
        scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
        attr = _RulesetAttr(self.handled, net, scoped)
        # Older ABIs know a shorter struct; the kernel rejects unknown trailing fields.
        size = ctypes.sizeof(attr) if abi >= 6 else 16 if abi >= NETWORK_ABI else 8
        self.fd = self._check(
            self.libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
            "create a Landlock ruleset",
        )

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"cannot {what}: {os.strerror(errno)}")
        return result

    def allow(self, path: str, access: int, *, follow: bool = True) -> None:
        flags = os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = os.open(path, flags)
        except OSError:
            return  # gone since the policy was made, or a dangling link: nothing to grant
        try:
            if not os.path.isdir(f"/proc/self/fd/{fd}") and not os.path.isdir(path):
                access &= _FILE_ONLY
            rule = _PathBeneathAttr(access & self.handled, fd)
            self._check(
                self.libc.syscall(_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0),
                f"allow {path}",
            )
        finally:
            os.close(fd)

    def allow_bind(self, port: int) -> None:
        rule = _NetPortAttr(_NET_BIND_TCP, port)
        self._check(
            self.libc.syscall(_ADD_RULE, self.fd, _RULE_NET_PORT, ctypes.byref(rule), 0),
            f"allow binding TCP port {port}",
        )

    def restrict(self) -> None:
        self._check(self.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
        self._check(self.libc.syscall(_RESTRICT_SELF, self.fd, 0), "restrict this process")
        os.close(self.fd)


def _grant(rules: _Ruleset, path: str, access: int, exclude: Sequence[str]) -> None:
    """Allow ``path`` except the excluded subtrees inside it (Landlock only adds rights).

    A path that is itself inside an excluded tree is granted: it was asked for by name.
    """
    real = os.path.realpath(path)
    inner = [e for e in exclude if _within(e, real) and e != real]
    if not inner or not os.path.isdir(real):
        rules.allow(real, access)
        return
    rules.allow(real, _READ_DIR)  # listing shows names only; the excluded contents stay shut
    for child in os.scandir(real):
        if not any(_within(os.path.realpath(child.path), e) for e in inner):
            _grant(rules, child.path, access, inner)


def apply(policy: SandboxPolicy) -> None:
    """Restrict this process (and its future children) to ``policy``; raises OSError."""
    abi = _abi()
    if abi < 1:
        raise OSError(ctypes.get_errno(), "Landlock is not available")
    close_network = not policy.allow_network and abi >= NETWORK_ABI
    rules = _Ruleset(abi, close_network=close_network)
    if close_network:
        for port in policy.bind_ports:
            rules.allow_bind(port)
    for path in policy.read:
        _grant(rules, path, _READ, policy.exclude)
    for path in policy.listable:
        rules.allow(path, _READ_DIR)
    for path in policy.write:
        _grant(rules, path, rules.handled, policy.exclude)
    for path in policy.devices:
        rules.allow(path, _DEVICE)
    # Our own /proc/<pid> only: other processes' environ, cmdline and maps stay shut. The
    # descriptors stay open (and are inherited through exec) so the rules' dentries stay
    # cached: /proc makes new inodes for entries it has dropped.
    if policy.own_proc is None:
        rules.allow("/proc/self/", _READ_DIR)  # the names; each entry's contents below
        # Never the magic links (root, cwd, exe): opened, they are "/", the working folder
        # and the interpreter, and a rule on one would grant everything beneath it.
        names = [
            n
            for n in os.listdir("/proc/self")
            if n not in HIDDEN_PROC and not os.path.islink(f"/proc/self/{n}")
        ]
    else:
        names = policy.own_proc
    for name in names:
        # /proc/self, not /proc/<getpid()>: in a PID namespace of its own getpid() is 1,
        # which in this /proc is another process.
        own = os.open(f"/proc/self/{name}".rstrip("/"), os.O_PATH | os.O_NOFOLLOW)
        os.set_inheritable(own, True)
        rules.allow(f"/proc/self/fd/{own}", _READ | _WRITE_FILE)
    rules.restrict()


def die_with_parent(parent: int) -> bool:
    """Ask for SIGKILL when the thread that forked this process exits; False if ``parent``
    is already gone (it died before the request took hold)."""
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getppid() == parent


def writer_gone(read_end: int) -> bool:
    """Whether every write end of the pipe ``read_end`` reads has closed (its holder died):
    nothing is ever written, so a readable end is one at end of file."""
    readable, _, _ = select.select([read_end], [], [], 0)
    return bool(readable)


def set_non_dumpable() -> None:
    """Keep this process's memory and environment out of reach of same-user processes."""
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def kernel_ports(connection_file: str) -> list[int]:
    """The TCP ports a Jupyter kernel binds, from its connection file (none over IPC)."""
    try:
        with open(connection_file, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return []  # the kernel reports the unreadable file itself
    if info.get("transport", "tcp") != "tcp":
        return []
    return [int(info[key]) for key in _KERNEL_PORTS if info.get(key)]


def sandboxed_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` started through the sandbox launcher (the policy travels in the environment).

    Isolated (``-I``): ``-m`` would otherwise put the working folder, which the kernel can
    write, first on ``sys.path``, and a planted ``scribe_tui`` there would run unsealed.
    """
    # The spawner's pid: if it dies while the launcher is still starting, the launcher
    # (reparented by then) must notice rather than take its new parent for the spawner.
    spawner = ["--parent", str(os.getpid())]
    return [sys.executable, "-I", "-m", "scribe_tui.runtime.sandbox", *spawner, "--", *argv]


def main(argv: Sequence[str] | None = None) -> None:
    """Launcher: apply the policy in ``SCRIBE_SANDBOX_POLICY``, then exec the command after ``--``.

    A ``-f FILE`` in the command (Jupyter's connection file) is made readable too, and
    the ports it names may be bound.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        sys.exit("usage: python -m scribe_tui.runtime.sandbox [--parent PID] -- COMMAND [ARGS...]")
    command, options = args[args.index("--") + 1 :], args[: args.index("--")]
    text = os.environ.pop(POLICY_ENV, None)
    if not command or text is None:
        sys.exit(f"scribe-tui sandbox: no command or no {POLICY_ENV}; refusing to run unsealed")
    policy = SandboxPolicy.from_json(text)
    if "-f" in command[:-1]:
        connection_file = command[command.index("-f") + 1]
        policy.read.append(connection_file)
        policy.bind_ports += kernel_ports(connection_file)
    parent = int(options[1]) if options[:1] == ["--parent"] and len(options) == 2 else os.getppid()
    # The launcher dies with whoever started it (a closed terminal takes scribe-tui with
    # it, and no shutdown comes), and the kernel dies with the launcher.
    if not die_with_parent(parent):
        sys.exit("scribe-tui sandbox: the process that started the kernel is gone")
    if _own_pid_namespace():
        # The launcher holds the write end for as long as it lives: its first process has
        # no parent pid to compare (the launcher is outside its namespace), so it learns
        # from this pipe whether the launcher died before its death signal took hold.
        launcher_alive, held = os.pipe()
        child = os.fork()
        if child:
            os.close(launcher_alive)
            sys.exit(_stand_by(child))
        os.close(held)
        # PID 1 of the new namespace: when it exits, the kernel kills every process left in
        # it, sessions of their own and double forks included. It dies with the launcher.
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if writer_gone(launcher_alive):
            sys.exit("scribe-tui sandbox: the launcher died while the kernel started")
        os.close(launcher_alive)
    else:
        print("scribe-tui sandbox: no PID namespace here; processes a cell starts in a "
              "session of their own may outlive the kernel", file=sys.stderr)  # fmt: skip
    try:
        apply(policy)
    except OSError as exc:
        sys.exit(f"scribe-tui sandbox: {exc}; use --no-sandbox to run unsealed")
    os.execvpe(command[0], command, dict(os.environ))


def _own_pid_namespace() -> bool:
    """Put this process's next child in a PID namespace of its own: as root, else inside a
    user namespace that maps only this user (where unprivileged namespaces are allowed)."""
    libc = _libc()
    if libc.unshare(_CLONE_NEWPID) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWPID) != 0:
        return False
    maps = {"setgroups": "deny", "uid_map": f"{uid} {uid} 1", "gid_map": f"{gid} {gid} 1"}
    for name, text in maps.items():
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    return True


def _stand_by(child: int) -> int:
    """The launcher waits for the namespace's first process, the kernel, and exits as it did.

    Jupyter interrupts the whole process group (the kernel gets it directly), and kills it
    the same way. A TERM or HUP ends the kernel with KILL: as the first process of its
    namespace it ignores any signal it has no handler for, and the agent's code may have
    installed handlers of its own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for ending in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(ending, lambda signum, frame: os.kill(child, signal.SIGKILL))
    while True:
        try:
            _pid, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status) % 256


if __name__ == "__main__":
    main()
