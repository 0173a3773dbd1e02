"""Start one untrusted program inside the sandbox and report how it ended.

This file runs as its own short-lived process (`python -I -S _launcher.py`), started by `sandbox.py`. It
is a standalone script on purpose: it uses only the standard library, it never imports mergeval, and it
can do things a library must not do in a multi-threaded process (unshare namespaces, fork, drop
privileges). The protocol is one JSON object on stdin (the job, built by `sandbox._run`) and one JSON
object on stdout (the outcome, returned by `run`).

Three processes take part. The launcher sets up the namespaces and the program's folder, then forks a
supervisor (pid 1 of the new pid namespace, when there is one), which forks the program's process and
enforces the wall-clock limit. The program's process applies the resource limits, drops to an
unprivileged uid (or keeps the caller's, when we are not root) and execs the Python driver
(`_driver.py`) that runs the program. The isolation modes, strongest first:

- "namespaces" (we are root): private mount, network, pid, IPC and UTS namespaces; the whole filesystem
  is remounted read-only and nosuid, a small private tmpfs replaces /tmp, /var/tmp and /dev/shm, the
  user's home and the caller's hidden paths are covered by empty read-only tmpfs, a fresh /proc shows
  only the sandbox's processes, the network namespace has no interfaces (not even loopback up), and the
  program runs as a fresh unprivileged uid that owns nothing on the machine. When the supervisor (pid 1
  of the pid namespace) exits, the kernel kills everything the program started.
- "user-namespaces" (not root, unprivileged user namespaces allowed): the same namespaces inside a user
  namespace that maps only the caller's uid; the program keeps the caller's uid but has no capabilities
  after exec, and every path is read-only to it except the private tmpfs.
- "uid" (root, but namespaces are refused, e.g. a default Docker container): the program runs as a fresh
  unprivileged uid (so it can write only world-writable places and cannot signal anything but its own
  processes), sockets are refused by the Python driver only, and every process of that uid is killed at
  the end.
- "process" (neither): resource limits, a session of its own and Python-level socket refusal only.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time

# Linux constants (include/uapi/linux/sched.h, mount.h, prctl.h); the syscall number of mount_setattr is
# the same on every architecture because it was added after the syscall tables were unified.
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
SYS_MOUNT_SETATTR = 442
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

# Inside the namespaces the program's folder lives on the private tmpfs, so this path is the same for
# every run and exists nowhere on the host.
NAMESPACE_WORKDIR = "/tmp/sandbox"
# File descriptors the driver finds already open: the token on stdin, output files on 1 and 2, and the
# marker file on 3 (it writes the token there only after check() returned).
MARKER_FD = 3
# The program's process reports a failure before exec on this descriptor (close-on-exec).
STATUS_FD = 4

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The sandbox could not be set up as asked; nothing of the program ran."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what} failed: {os.strerror(err)} (errno {err})")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    result = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(result, f"mount {fstype or source or ''} on {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _make_filesystem_read_only() -> str:
    """Mark every mount of this (private) mount namespace read-only and nosuid; say how it was done."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/", ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result == 0:
        return "mount_setattr"
    # Kernels before 5.12 have no mount_setattr: remount each mount point read-only one by one, keeping
    # the flags it already has (the kernel refuses to clear flags locked by a more privileged namespace).
    for mount_point, flags in _mount_points():
        try:
            _mount(None, mount_point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | flags)
        except SetupError:
            if mount_point == "/":
                raise
    return "remount"


def _mount_points() -> list[tuple[str, int]]:
    known = {"nodev": MS_NODEV, "noexec": MS_NOEXEC, "nosuid": MS_NOSUID}
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4].encode().decode("unicode_escape")
            flags = 0
            for option in fields[5].split(","):
                flags |= known.get(option, 0)
            points.append((mount_point, flags))
    return points


def _cover(path: str, keep_visible: list[str], data: str, read_only: bool) -> None:
    """Cover a directory with an empty tmpfs so the program sees nothing of what was in it.

    Folders in `keep_visible` that lie inside it (the Python installation may live in the user's home, e.g.
    pyenv, or under /tmp) are bind-mounted back, read-only, at their place; the folders above them are
    recreated in the tmpfs, owned by root and searchable by everyone, so a fresh uid can reach them.
    """
    inside = [k for k in keep_visible if k.startswith(path.rstrip("/") + "/")]
    # Grab the folders before they are covered; after the tmpfs is mounted they are reachable only
    # through these descriptors.
    handles = [(k, os.open(k, os.O_PATH | os.O_DIRECTORY)) for k in inside]
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, data)
    old_umask = os.umask(0o022)
    try:
        for folder, handle in handles:
            os.makedirs(folder, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{handle}", folder, None, MS_BIND | MS_REC)
            _mount(None, folder, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
            os.close(handle)
    finally:
        os.umask(old_umask)
    if read_only:
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _setup_namespaces(job: dict, user_namespace: bool) -> list[str]:
    """Enter new namespaces and lay out the sandbox's filesystem; return notes about what was done."""
    notes = []
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if user_namespace:
        uid, gid = os.getuid(), os.getgid()
        _unshare(flags | CLONE_NEWUSER)
        # Map only ourselves: inside, the program has the caller's uid and no other identity to take.
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    else:
        _unshare(flags)
    # Nothing we mount below may propagate back to the host's mount table.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    notes.append("read-only filesystem via " + _make_filesystem_read_only())
    keep_visible = [os.path.realpath(p) for p in job["keep_visible"] if os.path.isdir(p)]
    # Only the outermost of nested folders needs a bind mount; it brings the inner ones along.
    keep_visible = [k for k in keep_visible if not any(k.startswith(o + "/") for o in keep_visible)]
    # The interpreter may live under /var/tmp or /dev/shm, which become views of the private /tmp: bind those
    # back from the private /tmp, where they are recreated.
    shared_tmps = [t for t in ("/var/tmp", "/dev/shm") if os.path.isdir(t) and os.path.realpath(t) != "/tmp"]
    handles = [(k, os.open(k, os.O_PATH | os.O_DIRECTORY)) for k in keep_visible
               if any(k.startswith(t + "/") for t in shared_tmps)]
    size = int(job["tmpfs_bytes"])
    _cover("/tmp", keep_visible, f"size={size},mode=1777", read_only=False)
    for shared_tmp in shared_tmps:
        _mount("/tmp", shared_tmp, None, MS_BIND)
    for folder, handle in handles:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{handle}", folder, None, MS_BIND | MS_REC)
        _mount(None, folder, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        os.close(handle)
    for path in job["hidden_paths"]:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real != "/" and real not in keep_visible:
            _cover(real, keep_visible, "size=64k,mode=755", read_only=True)
    os.mkdir(NAMESPACE_WORKDIR, 0o700)
    return notes


def _write_program(workdir: str, source: str, uid: int | None, gid: int | None) -> str:
    path = os.path.join(workdir, "program.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    if uid is not None:
        os.chown(workdir, uid, gid)
        os.chown(path, uid, gid)
    return path


def _processes_of(uid: int, include_zombies: bool = True) -> list[int]:
    """Pids of the processes whose owner is `uid` (zombies are dead and only wait to be reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            if not include_zombies:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue
        except (OSError, IndexError):
            continue
        found.append(int(entry))
    return found


def _set_limits(job: dict, mode: str) -> None:
    if job.get("cpu_seconds") is not None:  # the CPU-time rule; the wall-clock rule has no CPU limit
        cpu = int(job["cpu_seconds"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = int(job["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(job["max_file_bytes"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # RLIMIT_NPROC counts every process and thread of the real uid. With a fresh uid the count starts at
    # zero; when the program keeps the caller's uid, the caller's other processes may count too.
    processes = int(job["max_processes"]) + int(job.get("existing_processes", 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def _exec_program(job: dict, mode: str, workdir: str, program_path: str, fds: dict, driver: str) -> None:
    """In the program's own process: apply the limits, become unprivileged, exec the driver.

    Never returns. A failure here is written to the status pipe (`fds["status_w"]`), which is close-on-exec:
    once the driver runs, the program holds no descriptor of it, so it cannot report a setup failure of its
    own making (writing "sandbox setup failed" to stderr and exiting 125 is just a failing program).
    """
    status_fd = fds["status_w"]
    try:
        # Out of the way of the descriptors about to be set up (0-3), and closed by exec.
        status_fd = fcntl.fcntl(status_fd, fcntl.F_DUPFD_CLOEXEC, 100)
        os.setsid()
        for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGXCPU, signal.SIGINT, signal.SIGTERM,
                       signal.SIGALRM):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.dup2(fds["token_r"], 0)
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stderr"], 2)
        os.dup2(fds["marker"], MARKER_FD)
        for fd in range(MARKER_FD + 1):
            os.set_inheritable(fd, True)
        status_fd = os.dup2(status_fd, STATUS_FD, inheritable=False)
        os.closerange(STATUS_FD + 1, os.sysconf("SC_OPEN_MAX"))
        _set_limits(job, mode)
        uid = job.get("uid")
        if uid is not None and mode in ("namespaces", "uid"):
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        # No setuid binary (su, mount, ...) may give back what we just dropped.
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        # If the supervisor dies, so does the program. Dropping the uid cleared this setting, so it is set
        # here, after the drop.
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        os.chdir(workdir)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir,
            "TMPDIR": workdir,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            **job.get("env", {}),
        }
        argv = [job["python"], "-I", "-c", driver, program_path]
        if mode in ("uid", "process"):
            argv.append("--block-network")
        if job.get("alarm_seconds") is not None:
            argv.append(f"--alarm={float(job['alarm_seconds'])!r}")
        os.execve(job["python"], argv, env)
    except BaseException as exc:  # noqa: BLE001 - anything here is a setup failure
        try:
            os.write(status_fd, f"{type(exc).__name__}: {exc}".encode(errors="replace")[:2000])
        finally:
            os._exit(125)


def _wait(pid: int, timeout: float) -> tuple[int, bool, float]:
    """Wait for a child; kill it at the timeout. Return (wait status, timed out, CPU seconds it used)."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        if pidfd is not None:
            select.select([pidfd], [], [], remaining)
        else:
            time.sleep(min(remaining, 0.01))
    if pidfd is not None:
        os.close(pidfd)
    return status, timed_out, usage.ru_utime + usage.ru_stime


def _supervise(job: dict, mode: str, workdir: str, program_path: str, fds: dict, driver: str) -> dict:
    """In the supervisor process: start the program, hand it the token, time it, and report.

    Under the namespace modes the supervisor is pid 1 of the new pid namespace. It stays root and
    without limits, and when it exits the kernel kills whatever the program left behind. (The program
    itself must not be pid 1: the kernel shields pid 1 from signals it has no handler for, including
    the SIGXCPU of its CPU limit.)
    """
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if mode in ("namespaces", "user-namespaces"):
        # A /proc of our own pid namespace: the program sees its own processes only. Containers may
        # refuse it when the host's /proc is partly masked; the read-only host /proc then stays.
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except SetupError:
            pass
    token_r, token_w = os.pipe()
    # The program's process reports a setup failure here; the pipe closes at its exec (close-on-exec).
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    fds = dict(fds, token_r=token_r, status_w=status_w)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(token_w)
        os.close(status_r)
        _exec_program(job, mode, workdir, program_path, fds, driver)
    os.close(token_r)
    os.close(status_w)
    try:
        os.write(token_w, job["token"].encode())
    except BrokenPipeError:  # the program's process failed before exec
        pass
    os.close(token_w)
    status, timed_out, cpu_time = _wait(pid, float(job["wall_timeout"]))
    # The write end is closed in every process by now (exec or exit), so this read ends.
    setup_error = b""
    while chunk := os.read(status_r, 4096):
        setup_error += chunk
    os.close(status_r)
    if mode == "process":
        try:
            os.killpg(pid, signal.SIGKILL)  # the program's session; a program that left it escapes this
        except ProcessLookupError:
            pass
    return {
        "setup_error": setup_error.decode(errors="replace") or None,
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
        "wall_time": time.monotonic() - started,
        "cpu_time": cpu_time,
    }


def _kill_all_processes_of(uid: int, hunter_uid: int) -> bool:
    """Kill every process of `uid` from a helper whose effective uid is `uid` and whose real and saved
    uid is `hunter_uid` (fresh, owned by nothing). kill(-1) then reaches only the processes of those two
    uids, while the program's processes, whose uids are all `uid`, cannot signal the helper: the kernel
    lets a sender signal a process only when the sender's real or effective uid equals the target's real
    or saved uid. Repeat until none is alive, for processes that were being forked while the previous
    round was sent."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(hunter_uid, uid, hunter_uid)
            os.setresuid(hunter_uid, uid, hunter_uid)
            for _ in range(5000):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if not [p for p in _processes_of(uid, include_zombies=False) if p != os.getpid()]:
                    os._exit(0)
                time.sleep(0.001)
            os._exit(1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _driver_source() -> str:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_driver.py"), encoding="utf-8") as f:
        return f.read()


def _open_capture_files(capture_dir: str) -> dict:
    """Opened before any mount changes: once /tmp is replaced the capture folder is out of sight, and the
    program can write to it only through these descriptors (with RLIMIT_FSIZE capping their size)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    return {name: os.open(os.path.join(capture_dir, name), flags, 0o600) for name in ("stdout", "stderr", "marker")}


def run(job: dict) -> dict:
    mode = job["mode"]
    notes: list[str] = []
    fds = _open_capture_files(job["capture_dir"])
    driver = _driver_source()
    uid = job.get("uid")
    host_workdir = None
    if mode in ("user-namespaces", "process"):
        # Counted now, while /proc still shows the whole machine.
        job = dict(job, existing_processes=len(_processes_of(os.getuid())))
    try:
        if mode in ("namespaces", "user-namespaces"):
            notes += _setup_namespaces(job, user_namespace=mode == "user-namespaces")
            workdir = NAMESPACE_WORKDIR
        elif mode in ("uid", "process"):
            host_workdir = workdir = tempfile.mkdtemp(prefix="mergeval-sandbox-")
        else:
            raise SetupError(f"unknown isolation mode {mode!r}")
        owner = uid if mode in ("namespaces", "uid") else None
        program_path = _write_program(workdir, job["program"], owner, owner)
    except (SetupError, OSError) as exc:
        return {"mode": mode, "error": f"{type(exc).__name__}: {exc}", "notes": notes}

    report_r, report_w = os.pipe()
    supervisor = os.fork()
    if supervisor == 0:
        try:
            os.close(report_r)
            report = _supervise(job, mode, workdir, program_path, fds, driver)
        except BaseException as exc:  # noqa: BLE001
            report = {"error": f"supervisor: {type(exc).__name__}: {exc}"}
        os.write(report_w, json.dumps(report).encode())
        os._exit(0)
    os.close(report_w)
    # The supervisor enforces the wall-clock limit; this longer one only catches a supervisor that hangs.
    _, backup_timed_out, _ = _wait(supervisor, float(job["wall_timeout"]) + 10)
    with os.fdopen(report_r, "rb") as f:
        raw = f.read()
    # A pid namespace has died with its supervisor; under "uid" the program's leftovers are hunted down
    # by uid (under "process" the supervisor killed the program's session).
    if mode == "uid" and uid is not None:
        hunter_uid = job.get("hunter_uid") or uid
        for _ in range(50):
            if _kill_all_processes_of(uid, hunter_uid):
                break
    if host_workdir is not None:
        shutil.rmtree(host_workdir, ignore_errors=True)
    if backup_timed_out or not raw:
        return {"mode": mode, "error": "the sandbox supervisor did not report", "notes": notes}
    return {"mode": mode, "notes": notes, **json.loads(raw)}


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    try:
        outcome = run(job)
    except BaseException as exc:  # noqa: BLE001 - report every failure to the parent as JSON
        outcome = {"mode": job.get("mode"), "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(outcome))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
