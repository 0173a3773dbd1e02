"""Check types: what a plan's `checks:` entries can be, and what each one hands to the comparison.

A check type is registered once, by name (the `type:` a plan writes), with
  - `config`: a pydantic model (subclass of `mergeval.plan.CheckConfig`) validating the plan entry;
  - `provides(config, plan) -> Provides`: the benchmark and fact names it will produce, computed from the
    config alone (no model, no dataset), so the plan's gates can be validated up front;
  - `run(config, ctx)`: evaluate whatever the store does not hold yet for `ctx.models`;
  - `collect(config, ctx) -> CheckData`: read the results back from the store (never loads a model), as
    per-model benchmark scores, per-item scores for the paired statistics, facts, sanity results, and
    what is missing.

Built-in types: `leaderboard`, `suite`, `lm-eval` (mergeval.compare.suite_checks) and `sanity`
(mergeval.sanity). Another package adds a type by calling `register_check(CheckType(...))` at import time
and listing its module in `CHECK_MODULES` below (or in the `mergeval.checks` entry-point group of its
distribution); plan.py never changes for a new type.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergeval.plan import CheckConfig

if TYPE_CHECKING:
    from mergeval.harness import TaskProgress
    from mergeval.models import ModelRef
    from mergeval.plan import ModelSpec, Plan
    from mergeval.store import Store

log = logging.getLogger("mergeval")

# Modules that register check types when imported. A module that does not exist (yet) is skipped, so a
# type can be listed here before its package lands.
CHECK_MODULES: list[str] = [
    "mergeval.compare.suite_checks",
    "mergeval.sanity",
    "mergeval.code.check",
    "mergeval.textmetrics.check",
    "mergeval.chat.check",
]

# Metric names gates may use even when no check in the plan measures them (the gate then shows "not
# evaluated"), with the check type that measures each. Registered check types add their own.
_KNOWN_METRICS: dict[str, str] = {
    "mtbench": "mtbench",
    "mtbench_turn1": "mtbench",
    "mtbench_turn2": "mtbench",
    "humaneval": "humaneval",
    "win_rate": "pairwise",
    "tie_rate": "pairwise",
    "conflict_rate": "consistency",
    "perplexity": "perplexity",
    "bleu": "bleu",
    "chrf": "bleu",
    "size_gb": "sanity",
    "params_b": "sanity",
    "tokens_per_second": "sanity",
}


# -- what a check hands to the comparison ------------------------------------------------------------------


@dataclass
class Provides:
    """Names a check produces: benchmarks (per-item scored columns) and facts (single numbers per model)."""

    benchmarks: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


@dataclass
class BenchmarkInfo:
    """One column of the comparison: how to read and display it."""

    name: str
    display: str
    metric_key: str
    higher_is_better: bool = True
    kind: str = "lm-eval"
    scale: float = 100.0  # report value = mean item score x scale (0/1 accuracy -> 0-100)
    in_average: bool = False  # part of the headline Average (the primary suite's benchmarks)
    check: str = ""  # the check it comes from (label)


@dataclass
class ScoreData:
    """One model's result on one benchmark, with the per-item scores behind it."""

    value: float | None  # on the report scale; None when nothing is stored
    stderr: float | None
    n: int  # items behind the value
    n_target: int  # items the check asks for
    items: dict[str, float] = field(default_factory=dict)  # item id -> raw score (unscaled); {} = no per-item
    strata: dict[str, str] | None = None  # item id -> stratum (e.g. MMLU subject)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # sub-task -> {value, group, n}

    @property
    def complete(self) -> bool:
        return self.value is not None and self.n >= self.n_target


@dataclass
class Missing:
    """An evaluation the comparison needs and the store does not (fully) hold."""

    model: str
    check: str
    benchmark: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "check": self.check, "benchmark": self.benchmark, "detail": self.detail}


@dataclass
class CheckData:
    """Everything one check contributes to the report, read from the store."""

    check: str  # label
    type: str
    benchmarks: list[BenchmarkInfo] = field(default_factory=list)
    scores: dict[str, dict[str, ScoreData]] = field(default_factory=dict)  # model -> benchmark -> score
    facts: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> fact -> value
    sanity: list[dict[str, Any]] = field(default_factory=list)  # {model, check, status, detail}
    missing: list[Missing] = field(default_factory=list)
    suite: dict[str, str] | None = None  # {name, label, note} for suite checks
    provenance: dict[str, Any] = field(default_factory=dict)
    limit: int | float | None = None


# -- contexts ----------------------------------------------------------------------------------------------


@dataclass
class PlanModel:
    """A plan model with its resolved reference (fingerprint known)."""

    spec: ModelSpec
    ref: ModelRef
    from_store: bool = False  # the files are gone; identity came from the results store

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def fingerprint(self) -> str:
        return self.ref.fingerprint

    @property
    def runnable(self) -> bool:
        """Local weights that can be loaded (not an endpoint, not known from the store only)."""
        return self.ref.path is not None and not self.from_store


@dataclass
class CheckContext:
    """What run() and collect() get: the plan, the store, the resolved models, progress callbacks."""

    plan: Plan
    store: Store
    models: list[PlanModel]
    progress: TaskProgress | None = None
    say: Callable[[str], None] = lambda message: None  # one-line status messages for the user

    def resolve_path(self, path: str) -> Path:
        return self.plan.resolve_path(path)

    def model(self, name: str) -> PlanModel:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def by_role(self, role: str) -> list[PlanModel]:
        return [m for m in self.models if m.role == role]

    def select(self, models: str | list[str]) -> list[PlanModel]:
        """The models a check's `models:` field names: "all", "candidates" or a list of names."""
        if models == "all":
            return list(self.models)
        if models == "candidates":
            return self.by_role("candidate")
        wanted = set(models)
        return [m for m in self.models if m.name in wanted]


def metric_prefix(check: Any, plan: Plan) -> str:
    """'' for the first check of its type in the plan, '<label>.' for later ones, so a second check of a type
    (say perplexity on wikitext, or a second pairwise opponent) gets `wikitext.perplexity` instead of
    overwriting the first check's numbers (the comparison renames a repeated benchmark the same way)."""
    for other in plan.checks:
        if other is check:
            return ""
        if other.type == check.type:
            return f"{check.label}."
    return ""


# -- the registry ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckType:
    name: str
    config: type[CheckConfig]
    run: Callable[[Any, CheckContext], None]
    collect: Callable[[Any, CheckContext], CheckData]
    provides: Callable[[Any, Plan], Provides] = lambda config, plan: Provides()
    description: str = ""
    metrics: tuple[str, ...] = ()  # fact/benchmark names gates may use before the check is in a plan


_REGISTRY: dict[str, CheckType] = {}
_loaded = False


def register_check(check_type: CheckType) -> CheckType:
    """Make a check type available to plans under `check_type.name` (re-registering replaces it)."""
    _REGISTRY[check_type.name] = check_type
    for metric in check_type.metrics:
        _KNOWN_METRICS.setdefault(metric, check_type.name)
    return check_type


def _load_modules() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in CHECK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but something it imports is missing: a real error
                raise
            log.debug("check module %s is not installed", module)
    for ep in entry_points(group="mergeval.checks"):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001  a broken plugin must not break every plan
            log.warning("could not load check plugin %s: %s", ep.name, exc)


def check_types() -> dict[str, CheckType]:
    """Every registered check type, by name."""
    _load_modules()
    return dict(_REGISTRY)


def known_metrics() -> dict[str, str]:
    """Metric names gates may use without a check providing them -> the check type that would."""
    _load_modules()
    return dict(_KNOWN_METRICS)
