"""What the text check types (perplexity, bleu, consistency) and sanity share: the `models:` and `dtype`
options, data paths checked against the plan's folder, the dtype in the identity, skipping models without
local weights, and reading back what is stored."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from mergeval.core.check import (
    Check,
    CheckConfig,
    MetricSpec,
    Task,
    config_base_dir,
    metric_prefix,
    resolve_in,
)
from mergeval.core.check import must_exist as check_path
from mergeval.core.context import CheckContext, PlanModel
from mergeval.core.identity import content_hash
from mergeval.core.progress import NullProgress, Progress
from mergeval.core.results import CheckData, Missing
from mergeval.core.runner import Entry, run_entries
from mergeval.dtypes import adopt_legacy_dtype_rows, resolved_dtype
from mergeval.engines.text._common import require_local, with_dtype
from mergeval.engines.text._generate import Generator
from mergeval.errors import UserError
from mergeval.models import ModelRef, dtype_problem
from mergeval.store import Store

ModelSelection = Literal["all", "candidates"] | list[str]
C = TypeVar("C", bound=CheckConfig)


base_dir = config_base_dir
resolve = resolve_in


def must_exist(path: str | None, info: ValidationInfo, key: str, what: str) -> str | None:
    """A data path of a check must exist (relative paths start at the plan's folder)."""
    return check_path(path, info, key, f"point it at {what}, or leave `{key}` out to use the bundled example")


class TextCheckConfig(CheckConfig):
    """Options every text check has: which models, and (rarely) a dtype of its own."""

    models: ModelSelection = Field(
        "all", description="which models to evaluate: all (default), candidates, or a list of names"
    )
    dtype: str | None = Field(
        None, description="load the models in this dtype for this check (default: each model's own dtype)"
    )

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, dtype: str | None) -> str | None:
        problem = dtype_problem(dtype)
        if problem:
            raise ValueError(problem)
        return dtype


def identity_dtype(dtype: str | None, model: ModelRef | str | None) -> str:
    """The dtype in a check's identity: what `model`'s weights are really loaded in when the check asks for
    `dtype` (None: the model's own), `auto` resolved. Without a ModelRef (a bare fingerprint): as asked."""
    if isinstance(model, ModelRef):
        return resolved_dtype(model, dtype)
    return dtype or "auto"


def check_model_names(config: CheckConfig, plan: Any) -> None:
    """A `models:` list may only name models of the plan."""
    selection = getattr(config, "models", "all")
    if plan is None or not isinstance(selection, list):
        return
    names = {m.name for m in plan.models}
    unknown = [n for n in selection if n not in names]
    if unknown:
        raise UserError(
            f"the {config.type} check names unknown model(s) {', '.join(unknown)}; use names from `models:`, "
            "`all` or `candidates`"
        )


def runnable(config: CheckConfig, ctx: CheckContext, model: PlanModel) -> bool:
    """Whether the check can load `model`; says why not when it cannot (an endpoint, files gone)."""
    if model.runnable:
        return True
    why = "is an endpoint" if model.ref.kind == "endpoint" else "has no local weights"
    ctx.say(f"{config.label}: {model.name} {why}, skipped (the {config.type} check needs local weights)")
    return False


class TextCheck(Check[C]):
    """The shape the text check types share: their metrics from `metric_specs` (the first check of a type
    keeps plain names, a later one's are prefixed with its label), and one task per model that has local
    weights, from `task_for`, with rows an earlier version stored under another dtype spelling adopted
    first."""

    # Each type's own functions: its MetricSpecs (config, prefix) and its model's Task (config, ref, base_dir).
    metric_specs: ClassVar[Callable[[Any, str], list[MetricSpec]]]
    make_task: ClassVar[Callable[[Any, ModelRef, str], Task]]

    def task_for(self, config: C, ctx: CheckContext, model: PlanModel) -> Task:
        return self.make_task(config, model.ref, ctx.env.base_dir)

    def provenance(self, engine: Any, task: Task) -> dict[str, Any]:
        return engine.provenance()  # an AnswersEngine's (perplexity has its own)

    def metrics(self, config: C, plan: Any) -> list[MetricSpec]:
        check_model_names(config, plan)
        return self.metric_specs(config, metric_prefix(config, plan))

    def tasks(self, config: C, ctx: CheckContext, model: PlanModel, stage: str) -> list[Task]:
        if not runnable(config, ctx, model):
            return []
        return [adopt_legacy_rows(ctx.store, model.ref, self.task_for(config, ctx, model))]

    def check_data(self, config: C, ctx: CheckContext) -> CheckData:
        """An empty CheckData for `collect`: benchmarks by their plain names (the comparison renames a
        repeated one), facts by the names gates use."""
        plain = self.metric_specs(config, "")
        facts = self.metric_specs(config, metric_prefix(config, ctx.plan))
        return CheckData(
            check=config.label,
            type=self.type,
            benchmarks=[m for m in plain if m.kind == "benchmark"],
            fact_specs=[m for m in facts if m.kind == "fact"],
        )


@dataclass
class AnswersEngine:
    """What the checks that generate answers (bleu, consistency) load: the model as a greedy generator."""

    generator: Generator
    config: Any  # the check's config (generation settings, thresholds)
    batch_size: int  # prompts per generation batch (the model's batch size)
    embedder: Any = None  # consistency: the sentence-embedding model

    def chunks(self, item_ids: Sequence[str]) -> Iterator[Sequence[str]]:
        for start in range(0, len(item_ids), self.batch_size):
            yield item_ids[start : start + self.batch_size]

    def provenance(self) -> dict[str, Any]:
        return self.generator.provenance(self.config.chat)


def load_answers_engine(kind: str, config: Any, model: ModelRef, embedder: Any = None) -> AnswersEngine:
    """The model loaded for greedy answers, in the check's dtype when it has one."""
    require_local(model, kind)
    return AnswersEngine(Generator(with_dtype(model, config.dtype)), config, model.batch_size, embedder)


@dataclass(frozen=True)
class NamedModel:
    """What a check reads of a plan's model entry, for a library call about models without a plan."""

    name: str
    role: str = "candidate"


def run_on_models(
    check: Check,
    config: CheckConfig,
    store: Store,
    models: Sequence[tuple[ModelRef, str]],
    progress: Progress | None = None,
) -> int:
    """Evaluate what `models` ((reference, role) pairs) lack of `config` through the core runner, as a plan of
    them would; the number of items stored now."""
    ctx = CheckContext(
        plan=None,
        store=store,
        models=[PlanModel(NamedModel(ref.name, role), ref) for ref, role in models],
        progress=progress or NullProgress(),
    )
    return run_entries([Entry(check, config)], ctx).evaluated


def adopt_legacy_rows(store: Store, model: ModelRef, task: Task) -> Task:
    """Rows an earlier version stored under the dtype as written (`auto`): the same check, moved (never
    recomputed)."""
    adopt_legacy_dtype_rows(
        store, model, kind=task.kind, name=task.name, config=dict(task.config), hash_of=content_hash
    )
    return task


def last_provenance(store: Store, fingerprint: str, check_hash: str) -> dict[str, Any]:
    """The provenance of the latest finished run of this (model, check), or {}."""
    runs = [r for r in store.runs(fingerprint, check_hash) if r.status == "done"]
    return dict(runs[-1].provenance) if runs else {}


def not_there(m: PlanModel) -> str:
    if m.ref.kind == "endpoint":
        return "an endpoint cannot run this check (it needs local weights)"
    return "not evaluated yet"


def note_missing(data: CheckData, m: PlanModel, benchmarks: list[str], n: int, n_target: int) -> None:
    """Missing entries for a model with no results, or fewer than the data has."""
    if n == 0:
        data.missing += [Missing(m.name, data.check, b, not_there(m)) for b in benchmarks]
    elif n < n_target:
        data.missing += [
            Missing(m.name, data.check, b, f"incomplete: {n} of {n_target} items") for b in benchmarks
        ]


def stderr_of(items: dict[str, float]) -> float | None:
    return statistics.stdev(items.values()) / math.sqrt(len(items)) if len(items) >= 2 else None
