"""The sandbox works wherever mergeval is installed: from a venv in a private folder (mode 700, under /tmp or the
home folder), and with an interpreter that itself lives in a private folder under /tmp, in every isolation mode
this machine offers. Real HumanEval programs, real venvs, real interpreters; both passing and failing outcomes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import mergeval
from mergeval.engines.code import SandboxLimits, load_problems, run_sample
from mergeval.engines.code import sandbox as sandbox_module

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS


def _kernel_allows(flags: int) -> bool:
    """Whether unshare(flags) works for us here, asked of the kernel directly (not through mergeval)."""
    code = (
        "import ctypes, sys\n"
        f"sys.exit(0 if ctypes.CDLL(None, use_errno=True).unshare(ctypes.c_int({flags})) == 0 else 1)\n"
    )
    return subprocess.run([sys.executable, "-I", "-c", code], check=False).returncode == 0


def _modes() -> dict[str, bool]:
    """Every isolation mode, and whether this machine can offer it (the process mode always can; "uid" when
    we are root; the namespace modes when the kernel lets us unshare)."""
    root = os.geteuid() == 0
    return {
        "namespaces": root and _kernel_allows(NAMESPACES),
        "user-namespaces": _kernel_allows(NAMESPACES | CLONE_NEWUSER),
        "uid": root,
        "process": True,
    }


MODES = _modes()
# HumanEval's own problems (harmless programs, so the weak "process" mode is exercised too).
PROBLEMS = load_problems()
PROGRAMS = {
    # (task, completion, expected status)
    "reference-0": ("HumanEval/0", PROBLEMS["HumanEval/0"]["canonical_solution"], "passed"),
    "reference-2": ("HumanEval/2", PROBLEMS["HumanEval/2"]["canonical_solution"], "passed"),
    "wrong": ("HumanEval/0", "    return True\n", "failed"),
    "exits-early": ("HumanEval/0", "    import os\n    os._exit(0)\n", "exited_early"),
}


def _private_folder(parent: str) -> Path:
    folder = Path(tempfile.mkdtemp(dir=parent))
    assert folder.stat().st_mode & 0o777 == 0o700  # the case that failed: nobody but root may enter
    return folder


def _check_outcomes(outcomes: dict, mode: str) -> None:
    for name, (_, _, expected) in PROGRAMS.items():
        assert outcomes[name]["status"] == expected, (mode, name, outcomes[name])
        assert outcomes[name]["isolation"] == mode
    assert "AssertionError" in outcomes["wrong"]["detail"]


# --- a venv (with mergeval itself in it) inside a private folder ---------------------------------------------

_CHILD = r"""
import json, sys
import mergeval
from mergeval.engines.code import SandboxLimits, load_problems, run_sample
from mergeval.engines.code.sandbox import sandbox_python

here, modes, programs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
# This really is the private venv, with mergeval (and its launcher and driver) inside it.
assert sys.executable.startswith(here + "/") and sys.prefix != sys.base_prefix, (sys.executable, sys.prefix)
assert mergeval.__file__.startswith(here + "/"), mergeval.__file__
problems = load_problems()
out = {}
for mode in modes:
    limits = SandboxLimits(isolation=mode)
    try:
        python = sandbox_python(limits)
    except Exception as exc:
        out[mode] = {"unavailable": f"{type(exc).__name__}: {exc}"}
        continue
    out[mode] = {"python": python}
    for name, (task, completion, _) in programs.items():
        out[mode][name] = run_sample(problems[task], completion, limits).to_dict()
print(json.dumps(out))
"""


def _make_private_venv(folder: Path) -> Path:
    """A real venv in `folder` (no pip), holding a copy of the mergeval package; its other dependencies come
    from this test's environment through a .pth file."""
    venv = folder / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    shutil.copytree(Path(mergeval.__file__).parent, site / "mergeval",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.parametrize("parent", [tempfile.gettempdir(), str(Path.home())], ids=["tmp", "home"])
def test_mergeval_in_a_venv_in_a_private_folder_runs_humaneval_in_every_mode(parent):
    folder = _private_folder(parent)
    try:
        python = _make_private_venv(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MERGEVAL_", "PYTHON"))}
        child = subprocess.run(
            [str(python), "-c", _CHILD, str(folder), json.dumps(list(MODES)), json.dumps(PROGRAMS)],
            capture_output=True, text=True, env=env, cwd=folder, timeout=900, check=False,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        results = json.loads(child.stdout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for mode, available in MODES.items():
        if not available:
            assert "unavailable" in results[mode], (mode, results[mode])
            continue
        assert "unavailable" not in results[mode], (mode, results[mode])
        # The programs never run from the private venv: the base interpreter (or a reachable copy of it) does.
        assert not results[mode]["python"].startswith(str(folder) + "/"), results[mode]["python"]
        _check_outcomes(results[mode], mode)
    assert sum(MODES.values()) >= 2  # at least one strong mode and the process mode were exercised


# --- an interpreter that itself lives in a private folder under /tmp -------------------------------------------


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture(scope="module")
def private_interpreter():
    """A copy of the running base interpreter (executable and standard library) in a mode-700 folder under
    /tmp: under the namespace modes /tmp is replaced, and a fresh uid cannot enter the folder."""
    folder = _private_folder(tempfile.gettempdir())
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    root = folder / "python"
    (root / "bin").mkdir(parents=True)
    _link_or_copy(base, str(root / "bin" / f"python{version}"))
    shutil.copytree(Path(os.__file__).resolve().parent, root / sys.platlibdir / f"python{version}",
                    ignore=shutil.ignore_patterns("site-packages", "dist-packages", "test", "idlelib", "tkinter"),
                    copy_function=_link_or_copy)
    python = root / "bin" / f"python{version}"
    prefix = subprocess.run([str(python), "-I", "-c", "import sys; print(sys.prefix)"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert prefix == str(root)  # it really runs from the private folder
    yield str(python)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("mode", [m for m, available in MODES.items() if available])
def test_an_interpreter_in_a_private_tmp_folder_runs_programs(private_interpreter, mode):
    limits = SandboxLimits(isolation=mode, python=private_interpreter)
    outcomes = {name: run_sample(PROBLEMS[task], completion, limits).to_dict()
                for name, (task, completion, _) in PROGRAMS.items()}
    _check_outcomes(outcomes, mode)


def test_uid_mode_runs_a_copy_only_when_the_interpreter_is_out_of_reach(private_interpreter):
    if not MODES["uid"]:
        assert os.geteuid() != 0  # the uid mode exists for root only
        return
    used = sandbox_module.sandbox_python(SandboxLimits(isolation="uid", python=private_interpreter))
    assert used != private_interpreter  # the private folder is closed to the fresh uid: a copy runs
    assert sandbox_module._others_can_reach(used)
    copy_root = Path(used).parents[1]
    assert copy_root.stat().st_uid == os.geteuid() and copy_root.stat().st_mode & 0o777 == 0o755
    # A copy no one but its owner may write to: the program's uid cannot change the interpreter it runs.
    for folder, dirs, files in os.walk(copy_root):
        for name in dirs + files:
            assert not os.lstat(os.path.join(folder, name)).st_mode & 0o022, os.path.join(folder, name)
    # An interpreter every user can run is used where it is.
    reachable = "/usr/bin/python3"
    if os.path.exists(reachable) and sandbox_module._others_can_reach(os.path.realpath(reachable)):
        assert sandbox_module.sandbox_python(SandboxLimits(isolation="uid", python=reachable)) == reachable

