"""Benchmark suites as data.

A suite is a YAML file (see `leaderboard_v1.yaml`): a list of benchmarks, each one or more lm-eval tasks with
a few-shot count, the metric to read (`metric,filter` as lm-eval names it) and how the benchmark score is
aggregated over its tasks. Users' own lm-eval tasks become an ad-hoc suite (`Suite.from_task_names`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mergeval.core.check import Band
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
    aggregate: Literal["task_mean", "item_mean"] = "task_mean"  # unweighted mean of tasks | size-weighted
    # -- Open LLM Leaderboard v2 (see leaderboard_v2.yaml and mergeval.suites.normalization) --
    metrics: list[str] = Field(default_factory=list)  # the task score = mean of these metrics (IFEval)
    num_choices: int | dict[str, int] | None = None  # normalise: per benchmark, or per subject; 0 = generative
    normalize_per_task: bool = False  # normalise each task, then average (BBH, MuSR)
    requires: list[str] = Field(default_factory=list)  # pip requirements of the tasks' scoring code
    nltk_resources: list[str] = Field(default_factory=list)  # nltk data the scoring code needs
    gated_dataset: str | None = None  # hub dataset behind terms: missing data = "not evaluated", not an error

    @model_validator(mode="after")
    def _expand(self) -> Benchmark:
        if self.task_pattern and not self.tasks:
            self.tasks = [
                self.task_pattern.format(subject=s) for subjects in self.groups.values() for s in subjects
            ]
        if not self.tasks:
            raise ValueError(f"benchmark {self.name!r} lists no tasks")
        if isinstance(self.num_choices, dict):
            missing = [t for t in self.tasks if self.subject_of(t) not in self.num_choices]
            if missing:
                raise ValueError(f"benchmark {self.name!r} has no num_choices for {', '.join(missing)}")
        return self

    @property
    def normalized(self) -> bool:
        """Scored on the leaderboard-v2 scale (0 = random guessing), with the raw score kept beside it."""
        return self.num_choices is not None

    def num_choices_of(self, task: str) -> int:
        if isinstance(self.num_choices, dict):
            return self.num_choices[self.subject_of(task)]
        return int(self.num_choices or 0)

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


class AverageBand(BaseModel):
    """A quality label for the suite's Average: below `below` (the last band: everything above the others)."""

    model_config = ConfigDict(extra="forbid")

    below: float | None = None
    label: str


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
    normalized: bool = False  # the Average is over normalised scores (leaderboard v2)
    nltk_data: list[str] = Field(default_factory=list)  # nltk packages `mergeval data pull` fetches
    average_bands: list[AverageBand] = Field(default_factory=list)  # labels for the Average of all benchmarks
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

    def bands(self) -> tuple[Band, ...]:
        """`average_bands` as [low, high) bands: each from the previous band's bound to its own."""
        bands, low = [], float("-inf")
        for band in self.average_bands:
            high = float("inf") if band.below is None else band.below
            bands.append(Band(low, high, band.label))
            low = high
        return tuple(bands)

    def bundled_data_root(self) -> Path | None:
        if not self.data_root:
            return None
        base = self.source.parent if self.source else SUITES_DIR
        return base / self.data_root

    def selects(self, selector: str) -> bool:
        """Whether `selector` names a benchmark (by name or display name) or an lm-eval task of this suite."""
        return any(selector.lower() in (b.name.lower(), b.display.lower()) or selector in b.tasks
                   for b in self.benchmarks)

    def subset(self, selectors: list[str]) -> Suite:
        """Keep the benchmarks (by name or display name) or single tasks named in `selectors`.

        Pure data (no lm-eval import): unknown names fail at once, naming the bundled suite that has them."""
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
                                                 "display": sel if len(b.tasks) > 1 else b.display,
                                                 "num_choices": b.num_choices_of(sel) if b.normalized else None}))
                continue
            unknown.append(sel)
        if unknown:
            raise UserError(self._unknown_tasks_message(unknown))
        return self.model_copy(update={"benchmarks": keep})

    def _unknown_tasks_message(self, unknown: list[str]) -> str:
        quoted = ", ".join(map(repr, unknown))
        homes = set()
        for name, path in available_suites().items():
            if name != self.name and all(_load_file(path).selects(sel) for sel in unknown):
                homes.add(name)
        names = ", ".join(b.name for b in self.benchmarks)
        if homes:
            home = min(homes)
            verb = "is" if len(unknown) == 1 else "are"
            return f"{quoted} {verb} in the {home} suite, not in {self.name} ({names}): add --suite {home}."
        multi = [b for b in self.benchmarks if len(b.tasks) > 1]
        example = f", e.g. {multi[0].tasks[0]}" if multi else ""
        return (f"Unknown task {quoted} for suite {self.name}. Choose from: {names} (or a single lm-eval task of the "
                f"suite{example}).")

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


@cache
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
