"""The sweep file: a mergekit config, the grid to try, and the checks to rank on (plan check entries).

```yaml
name: arithmetic-and-capitals
config:                          # a mergekit config inline (or a path to one); paths relative to this file
  models: [{model: ./parent-a}, {model: ./parent-b}]
  base_model: ./base
  dtype: float32
grid:                            # a grid, or a list of grids; each is the product of its lists
  - merge_method: linear
    weight: [{parent-a: 0.7, parent-b: 0.3}, {parent-a: 0.5, parent-b: 0.5}]   # per model: a mapping
  - merge_method: [ties, dare_ties]
    weight: 1.0                  # one value for every model
    density: [0.3, 0.6]
    seed: [0, 1]                 # only methods that drop weights at random depend on it
checks:                          # the same entries as a plan's `checks:` (any check type, plugins too)
  - {type: suite, suite: smoke, limit: 50}
settings: {batch_size: 8}        # how models run: batch_size, device, backend, data_dir
objective: mean                  # mean of all benchmarks, one benchmark, or a list of benchmarks
selection: {fraction: 0.5, seed: 0}    # items that pick the winner; the rest report it
keep: best                       # none | best | all: which candidates' weights stay on disk
in_memory: auto                  # merge small models in memory (no weights written); true | false
```

Earlier sweep files wrote `checks: {suite: smoke, tasks: [...], limit: 50, batch_size: 4, ...}` (the
arguments of `mergeval.evaluate`); that form still works: it is read as the suite (or lm-eval) check entry it
means, and its run options become `settings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mergeval.errors import UserError
from mergeval.merge.recipe import read_yaml_mapping
from mergeval.suites import load_suite

# keys of the earlier `checks:` mapping that are run settings, not part of the check
_LEGACY_SETTINGS = ("backend", "batch_size", "device")


class SelectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float = 0.5
    seed: int = 0


class SweepSettings(BaseModel):
    """How the sweep's models run (the plan's settings of the same names)."""

    model_config = ConfigDict(extra="forbid")

    backend: str | None = None
    device: str | None = None
    batch_size: int = Field(8, ge=1)
    data_dir: str | None = None
    executor: Literal["local", "ray"] | None = None  # where candidates are evaluated (docs/cluster.md)
    ray_address: str | None = None


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    config: dict[str, Any] | str
    grid: list[dict[str, Any]] = Field(default_factory=lambda: [{}])
    checks: list[Any] = Field(default_factory=lambda: [{"type": "suite", "suite": "smoke"}])
    settings: SweepSettings = Field(default_factory=SweepSettings)
    objective: str | list[str] = "mean"
    selection: SelectionSpec = Field(default_factory=SelectionSpec)
    alpha: float = 0.05
    keep: Literal["none", "best", "all"] = "best"
    out_dir: str | None = None
    in_memory: Literal["auto"] | bool = "auto"
    seed: int = 0  # the seed of candidates whose grid gives none
    source: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_checks_form(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("checks"), Mapping):
            data = dict(data)
            checks = dict(data["checks"])
            settings = dict(data.get("settings") or {})
            for key in _LEGACY_SETTINGS:
                if key in checks:
                    settings.setdefault(key, checks.pop(key))
            data["checks"] = legacy_check_entries(checks)
            data["settings"] = settings
        return data

    @field_validator("grid", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("checks")
    @classmethod
    def _some_checks(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("a sweep needs at least one check to rank the candidates on")
        return value

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def display_name(self) -> str:
        return self.name or (self.source.stem if self.source else "sweep")


def legacy_check_entries(checks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`{suite, tasks, include_paths, limit, data_dir}` (what `mergeval.evaluate` took) as check entries: the
    suite (its tasks among `tasks`), and the user's own lm-eval tasks of `include_paths`."""
    unknown = set(checks) - {"suite", "tasks", "include_paths", "limit", "data_dir"}
    if unknown:
        raise ValueError(f"checks: unknown key(s) {', '.join(sorted(unknown))}; write `checks:` as a list of "
                         "check entries, as in a plan (see docs/merge-lab.md)")
    suite = checks.get("suite", "smoke")
    tasks = list(checks.get("tasks") or [])
    include = list(checks.get("include_paths") or [])
    common = {k: checks[k] for k in ("limit", "data_dir") if checks.get(k) is not None}
    own: list[str] = []
    if include and suite == "custom":
        own, tasks = tasks, []
    elif include and tasks:
        try:
            known = set(load_suite(suite).task_names) | {b.name for b in load_suite(suite).benchmarks}
        except UserError:
            known = set(tasks)  # the suite entry reports the problem when it is validated
        own = [t for t in tasks if t not in known]
        tasks = [t for t in tasks if t in known]
    entries: list[dict[str, Any]] = []
    if suite != "custom" and (tasks or not own):
        entries.append({"type": "suite", "suite": suite, **({"tasks": tasks} if tasks else {}), **common})
    if own:
        entries.append({"type": "lm-eval", "tasks": own, "include_path": include, **common})
    return entries


def load_sweep(source: str | Path | dict[str, Any]) -> SweepSpec:
    """A sweep spec from a YAML file (or a dict), validated, with clear errors."""
    if isinstance(source, dict):
        data, path = dict(source), None
    else:
        path = Path(source)
        data = read_yaml_mapping(path, missing=f"Sweep file {path} does not exist. Pass the path of a sweep YAML "
                                 "(see docs/merge-lab.md).", fix="",
                                 mapping="a mapping with `config:` and `grid:` (see docs/merge-lab.md)")
    try:
        return SweepSpec(**data, source=path.resolve() if path else None)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise UserError(f"{path or 'The sweep spec'} is not valid ({problems}). See docs/merge-lab.md.") from exc


__all__ = ["SelectionSpec", "SweepSettings", "SweepSpec", "legacy_check_entries", "load_sweep"]
