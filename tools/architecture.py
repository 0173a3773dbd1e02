"""The package's shape, measured from its source (nothing is imported): import cycles, function-local imports
of mergeval's own modules, and functions that are too long or too complex.

    python tools/architecture.py            # the numbers, with file:function of every offender

tests/test_architecture.py runs the same functions and fails on an import cycle or on more local imports
than the budget, so the layers (core <- engines <- checks <- analysis <- render <- cli) cannot tangle again.

Static on purpose: an import hidden in `if TYPE_CHECKING:` is no runtime edge; an import inside a function
is counted as local (it runs late, so it hides a dependency, and the only good reason for one is a heavy
optional third-party package such as torch or lm_eval).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "mergeval"
MAX_LINES = 60
MAX_COMPLEXITY = 15


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported mergeval module (or package)
    line: int
    local: bool  # inside a function (runs when called)
    function: str | None = None


def modules(src: Path = SRC) -> dict[str, Path]:
    """mergeval module name -> file."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The mergeval modules an import statement loads: the named module, the submodules `from x import y`
    names, and the packages above them (Python runs their __init__ first)."""
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names |= {alias.name for alias in node.names}
    else:
        base = _resolve(module, is_package, node)
        names.add(base)
        names |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    out = set()
    for name in names:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known:
                out.add(prefix)
    return out


def _module_imports(module: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    # importing a module of its own package tree runs the ancestors' __init__ first: no edge to them
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
    out: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, function)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in sorted(_targets(child, module, is_package, known) - own):
                    out.append(Import(module, target, child.lineno, function is not None, function))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name if function is None else f"{function}.{child.name}")
            else:
                visit(child, function)

    visit(tree, None)
    return out


def imports(src: Path = SRC) -> list[Import]:
    """Every import of a mergeval module by a mergeval module (TYPE_CHECKING blocks left out)."""
    mods = modules(src)
    return [imp for module, path in mods.items() for imp in _module_imports(module, path, set(mods))]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return sorted(found)


def module_cycles(all_imports: list[Import]) -> list[list[str]]:
    """Cycles among modules through module-level imports (what can break `import mergeval.x`)."""
    edges: dict[str, set[str]] = {}
    for imp in all_imports:
        if not imp.local:
            edges.setdefault(imp.source, set()).add(imp.target)
    return _cycles(edges)


def area(module: str) -> str:
    """The top-level part of mergeval a module belongs to: mergeval.core, mergeval.cli, mergeval.store, ..."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def area_cycles(all_imports: list[Import]) -> list[list[str]]:
    """Cycles among the package's parts (core, engines, checks, analysis, render, cli, merge, plan, store,
    demo, ...), counting every import, local ones too: the layers must point one way."""
    edges: dict[str, set[str]] = {}
    for imp in all_imports:
        a, b = area(imp.source), area(imp.target)
        if a != b and b != PACKAGE and a != PACKAGE:
            edges.setdefault(a, set()).add(b)
    return _cycles(edges)


def local_imports(all_imports: list[Import]) -> list[Import]:
    """Function-local import statements of mergeval modules (one per statement and target module)."""
    deepest: dict[tuple[str, int], Import] = {}
    for imp in all_imports:
        key = (imp.source, imp.line)
        if imp.local and (key not in deepest or len(imp.target) > len(deepest[key].target)):
            deepest[key] = imp
    return sorted(deepest.values(), key=lambda i: (i.source, i.line))


@dataclass(frozen=True)
class Function:
    file: str
    name: str
    line: int
    lines: int
    complexity: int | None = None


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.qualified = f"{prefix}{node.name}"  # type: ignore[attr-defined]
            yield node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def long_functions(src: Path = SRC, max_lines: int = MAX_LINES) -> list[Function]:
    out = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in _functions(tree):
            start = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
            n = (fn.end_lineno or fn.lineno) - start + 1
            if n > max_lines:
                out.append(Function(str(path.relative_to(ROOT)), fn.qualified, fn.lineno, n))  # type: ignore
    return out


def complex_functions(src: Path = SRC, max_complexity: int = MAX_COMPLEXITY) -> list[Function]:
    """Functions whose McCabe complexity is over `max_complexity` (ruff's C901)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "C901", "--output-format", "json",
         "--config", f"lint.mccabe.max-complexity={max_complexity}", str(src / PACKAGE)],
        capture_output=True, text=True, check=False,
    )
    out = []
    for row in json.loads(proc.stdout or "[]"):
        # "`name` is too complex (17 > 15)"
        message = row["message"]
        name = message.split("`")[1]
        value = int(message.rsplit("(", 1)[1].split(" ")[0])
        out.append(Function(str(Path(row["filename"]).relative_to(ROOT)), name, row["location"]["row"], 0, value))
    return sorted(out, key=lambda f: -(f.complexity or 0))


def report() -> str:
    all_imports = imports()
    lines = [f"modules: {len(modules())}"]
    cycles = module_cycles(all_imports)
    lines.append(f"module-level import cycles: {len(cycles)}")
    lines += [f"  {' <-> '.join(c)}" for c in cycles]
    parts = area_cycles(all_imports)
    lines.append(f"cycles between parts (local imports included): {len(parts)}")
    for cycle in parts:
        members = set(cycle)
        lines.append(f"  {' <-> '.join(cycle)}")
        for imp in all_imports:
            if area(imp.source) in members and area(imp.target) in members and area(imp.source) != area(imp.target):
                lines.append(f"      {imp.source}:{imp.line} -> {imp.target}{' (local)' if imp.local else ''}")
    local = local_imports(all_imports)
    lines.append(f"function-local imports of mergeval modules: {len(local)}")
    lines += [f"  {modules()[i.source].relative_to(ROOT)}:{i.line} {i.function} -> {i.target}" for i in local]
    long = long_functions()
    lines.append(f"functions over {MAX_LINES} lines: {len(long)}")
    lines += [f"  {f.file}:{f.line} {f.name} ({f.lines} lines)" for f in sorted(long, key=lambda f: -f.lines)]
    complex_ = complex_functions()
    lines.append(f"functions of complexity over {MAX_COMPLEXITY}: {len(complex_)}")
    lines += [f"  {f.file}:{f.line} {f.name} ({f.complexity})" for f in complex_]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
