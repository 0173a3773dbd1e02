"""The check registry: `@mergeval.check("name")` registers a Check class under the `type:` a plan writes.

Built-in types live in `mergeval.checks` (one module per type, imported on first use). Third-party packages
add types through the `mergeval.checks` entry-point group (loaded lazily, when a type is first looked up);
a plan can also load a plugin file with `plugins: [./my_check.py]` (`load_plugin_file`). Nothing else keeps a
list of check types or of the metrics they provide.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import pkgutil
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from mergeval.core.check import Check
from mergeval.errors import UserError

log = logging.getLogger("mergeval")

BUILTIN_PACKAGE = "mergeval.checks"
ENTRY_POINT_GROUP = "mergeval.checks"

_REGISTRY: dict[str, Check] = {}
_PLUGIN_FILES: list[str] = []  # plugin files loaded in this process (remote workers load them too)
_loaded = False

K = TypeVar("K", bound=type[Check])


def check(name: str) -> Callable[[K], K]:
    """Class decorator: register a Check subclass under `name` (re-registering a name replaces it)."""

    def register(cls: K) -> K:
        if not (isinstance(cls, type) and issubclass(cls, Check)):
            raise TypeError(f"@mergeval.check({name!r}) decorates a subclass of mergeval.Check, not {cls!r}")
        cls.type = name
        _REGISTRY[name] = cls()
        return cls

    return register


def _load_builtins_and_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001  a broken plugin must not break every plan
            log.warning("could not load check plugin %s (%s): %s", ep.name, ep.value, exc)


def check_types() -> dict[str, Check]:
    """Every registered check type, by name."""
    _load_builtins_and_plugins()
    return dict(_REGISTRY)


def get_check(name: str) -> Check:
    """The check type `name`: already registered, else from `mergeval.checks.<name>` (the convention for
    built-ins, so a worker evaluating one type imports only that one), else after loading every module."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    module = f"{BUILTIN_PACKAGE}.{name.replace('-', '_')}"
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)
        if name in _REGISTRY:
            return _REGISTRY[name]
    types = check_types()
    if name not in types:
        raise UserError(f"Unknown check type {name!r}. Known: {', '.join(sorted(types))}.")
    return types[name]


def known_metrics() -> dict[str, str]:
    """Metric names gates may use without a check providing them -> the check type that would."""
    out: dict[str, str] = {}
    for name, chk in check_types().items():
        for metric in chk.known_metrics:
            out.setdefault(metric, name)
    return out


def load_plugin_file(path: str | Path) -> None:
    """Import a Python file that registers check types (a plan's `plugins:` entry)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"Plugin file {path} does not exist. Fix the path in `plugins:`.")
    module_name = f"mergeval_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"Cannot import the plugin file {path}; it must be a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"The plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    _PLUGIN_FILES.append(str(path))


def loaded_plugin_files() -> tuple[str, ...]:
    return tuple(_PLUGIN_FILES)


__all__ = ["check", "check_types", "get_check", "known_metrics", "load_plugin_file", "loaded_plugin_files"]
