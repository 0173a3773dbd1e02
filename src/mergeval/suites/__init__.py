"""Benchmark suites as data.

A suite is a YAML file (see `leaderboard_v1.yaml`): a list of benchmarks, each one or more lm-eval tasks with
a few-shot count, the metric to read (`metric,filter` as lm-eval names it) and how the benchmark score is
aggregated over its tasks. Users' own lm-eval tasks become an ad-hoc suite (`Suite.from_task_names`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mergeval.errors import UserError

SUITES_DIR = Path(__file__).parent


class Benchmark(BaseModel):
    """One column of the results table: one or more lm-eval tasks read with one metric."""

    model_config = ConfigDict(extra="forbid")

    name: str
    display: str
    tasks: list[str] = Field(default_factory=list)
    task_pattern: str | None = None  # with `groups`: e.g. "mmlu_{subject}"
    groups: dict[str, list[str]] = Field(default_factory=dict)  # category -> subjects
    num_fewshot: int | None = None  # None: the task's own default
    metric: str = "acc"
    filter: str = "none"
    aggregate: str = "task_mean"  # the benchmark score = unweighted mean of its tasks' scores

    @model_validator(mode="after")
    def _expand(self) -> Benchmark:
        if self.task_pattern and not self.tasks:
            self.tasks = [
                self.task_pattern.format(subject=s) for subjects in self.groups.values() for s in subjects
            ]
        if not self.tasks:
            raise ValueError(f"benchmark {self.name!r} lists no tasks")
        return self

    @property
    def metric_key(self) -> str:
        return f"{self.metric},{self.filter}"

    def group_of(self, task: str) -> str | None:
        """The category (e.g. MMLU's stem / humanities / ...) a task belongs to, if the benchmark has groups."""
        for category, subjects in self.groups.items():
            if self.task_pattern and task in {self.task_pattern.format(subject=s) for s in subjects}:
                return category
        return None

    def subject_of(self, task: str) -> str:
        if self.task_pattern and "{subject}" in self.task_pattern:
            prefix, _, suffix = self.task_pattern.partition("{subject}")
            if task.startswith(prefix) and task.endswith(suffix):
                return task[len(prefix): len(task) - len(suffix) if suffix else None]
        return task


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    label: str = ""
    note: str = ""
    lm_eval_task_dirs: list[str] = Field(default_factory=list)  # relative to lm_eval/tasks
    task_dirs: list[str] = Field(default_factory=list)  # relative to the suite file (bundled tasks)
    data_root: str | None = None  # bundled hub-layout data, relative to the suite file
    benchmarks: list[Benchmark]
    datasets: list[str] = Field(default_factory=list)
    source: Path | None = None

    @property
    def task_names(self) -> list[str]:
        return [t for b in self.benchmarks for t in b.tasks]

    def benchmark_of(self, task: str) -> Benchmark:
        for b in self.benchmarks:
            if task in b.tasks:
                return b
        raise KeyError(task)

    def task_paths(self) -> list[Path]:
        """Every folder lm-eval's TaskManager must index for this suite."""
        import lm_eval

        lm_root = Path(lm_eval.__file__).parent / "tasks"
        paths = [lm_root / d for d in self.lm_eval_task_dirs]
        base = self.source.parent if self.source else SUITES_DIR
        paths += [base / d for d in self.task_dirs]
        return paths

    def bundled_data_root(self) -> Path | None:
        if not self.data_root:
            return None
        base = self.source.parent if self.source else SUITES_DIR
        return base / self.data_root

    def subset(self, selectors: list[str]) -> Suite:
        """Keep the benchmarks (by name or display name) or single tasks named in `selectors`."""
        keep: list[Benchmark] = []
        unknown = []
        for sel in selectors:
            match = [b for b in self.benchmarks if sel.lower() in (b.name.lower(), b.display.lower())]
            if match:
                keep += [b for b in match if b not in keep]
                continue
            owners = [b for b in self.benchmarks if sel in b.tasks]
            if owners:
                b = owners[0]
                keep.append(b.model_copy(update={"tasks": [sel], "task_pattern": None, "name": sel,
                                                 "display": sel if len(b.tasks) > 1 else b.display}))
                continue
            unknown.append(sel)
        if unknown:
            names = ", ".join(b.name for b in self.benchmarks)
            raise UserError(
                f"Unknown task {', '.join(map(repr, unknown))} for suite {self.name}. Choose from: {names} "
                "(or a single lm-eval task of the suite, e.g. mmlu_anatomy)."
            )
        return self.model_copy(update={"benchmarks": keep})

    @classmethod
    def from_task_names(cls, names: list[str], *, include_paths: list[str] | None = None,
                        num_fewshot: int | None = None) -> Suite:
        """An ad-hoc suite of users' own (or any lm-eval) tasks; each task is its own benchmark.

        The metric read for the table is the task's first metric; all metrics are stored per item."""
        return cls(
            name="custom",
            title="Custom lm-eval tasks",
            label="lm-eval {lm_eval_version} tasks",
            task_dirs=[str(Path(p).resolve()) for p in include_paths or []],
            benchmarks=[Benchmark(name=n, display=n, tasks=[n], num_fewshot=num_fewshot, metric="*")
                        for n in names],
        )


@lru_cache(maxsize=None)
def _load_file(path: Path) -> Suite:
    data = yaml.safe_load(path.read_text())
    return Suite(**data, source=path)


def available_suites() -> dict[str, Path]:
    return {p.stem.replace("_", "-"): p for p in sorted(SUITES_DIR.glob("*.yaml"))}


def load_suite(name_or_path: str) -> Suite:
    """A bundled suite by name (`leaderboard-v1`, `smoke`) or a suite YAML file of the user's."""
    suites = available_suites()
    if name_or_path in suites:
        return _load_file(suites[name_or_path])
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        try:
            return _load_file(path.resolve())
        except Exception as exc:
            raise UserError(f"Suite file {path} is not valid: {exc}") from exc
    raise UserError(f"Unknown suite {name_or_path!r}. Available: {', '.join(suites)} (or a path to a suite YAML).")
