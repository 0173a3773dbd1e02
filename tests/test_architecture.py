"""The package's shape: no import cycles (modules, and the parts core / engines / checks / analysis / render /
cli / merge / ...), few function-local imports of mergeval's own modules. Measured from the source by
tools/architecture.py (`python tools/architecture.py` prints the numbers with every offender)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL_IMPORT_BUDGET = 15


def _tool():
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "tools" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["architecture"] = module
    spec.loader.exec_module(module)
    return module


def test_the_walker_sees_imports_and_cycles(tmp_path):
    """The walker itself: module-level, relative, local and TYPE_CHECKING imports, and a cycle."""
    tool = _tool()
    pkg = tmp_path / "mergeval"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import x\n")
    (pkg / "sub" / "a.py").write_text("from mergeval.b import y\nx = 1\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mergeval.c\n"
                              "y = 2\ndef f():\n    from mergeval.sub import a\n")
    (pkg / "c.py").write_text("import mergeval.sub.a\n")
    found = tool.imports(tmp_path)
    edges = {(i.source, i.target, i.local) for i in found}
    assert ("mergeval.sub.a", "mergeval.b", False) in edges
    assert ("mergeval.b", "mergeval.sub.a", True) in edges and ("mergeval.b", "mergeval.c", False) not in edges
    assert ("mergeval.c", "mergeval.sub", False) in edges  # the package's __init__ runs first
    assert tool.module_cycles(found) == []
    assert tool.area_cycles(found) == [["mergeval.b", "mergeval.sub"]]
    (pkg / "b.py").write_text("from mergeval.sub.a import x\ny = 2\n")
    assert tool.module_cycles(tool.imports(tmp_path)) == [["mergeval.b", "mergeval.sub", "mergeval.sub.a"]]


def test_no_import_cycle():
    tool = _tool()
    found = tool.imports()
    assert tool.module_cycles(found) == []
    assert tool.area_cycles(found) == [], "parts of mergeval import each other: python tools/architecture.py"


def test_function_local_imports_of_mergeval_modules_are_few():
    tool = _tool()
    local = tool.local_imports(tool.imports())
    where = [f"{i.source}:{i.line} -> {i.target}" for i in local]
    assert len(local) <= LOCAL_IMPORT_BUDGET, "\n".join(where)


def test_import_mergeval_loads_no_heavy_library():
    code = "import mergeval, sys; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
