"""`mergeval.evaluate(...)`: evaluate models on an lm-eval suite and read its table back.

`evaluate` runs the `suite` check type (`mergeval.checks.lmeval`) through the core runner, which computes only
the items the store lacks; the table is then read from the store. `read_results` reads a table from the store
alone (no model, no dataset). The CLI's `eval` and `show` are thin views over these.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mergeval.checks.lmeval import PreparedSuite, SuiteConfig, prepare_check, require_chat_template
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.executors import resolve_executor
from mergeval.core.progress import Progress, as_progress
from mergeval.core.registry import get_check
from mergeval.core.runner import Entry, run_entries
from mergeval.dtypes import resolved_dtype
from mergeval.engines.lmeval.harness import (
    CHECK_KIND,
    PreparedTask,
    TaskProgress,
    aggregate_items,
    lm_eval_version,
    parse_limit,
)
from mergeval.errors import UserError
from mergeval.models import ModelRef, check_run_settings, resolve
from mergeval.store import DEFAULT_STORE, CheckRow, ModelRow, Store
from mergeval.suites import Benchmark, Suite, load_suite
from mergeval.suites.leaderboard_v2 import average_note, score_parts


@dataclass
class BenchmarkScore:
    """A benchmark's score for one model (0-100 scale), with the per-task scores behind it."""

    benchmark: str
    display: str
    metric_key: str
    value: float | None  # x100; None when some task has no items
    stderr: float | None  # x100
    n: int  # items behind the score
    n_target: int
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> {value, stderr, n, group}
    weighted_value: float | None = None  # size-weighted mean over tasks (lm-eval's group number), x100
    raw: float | None = None  # normalised benchmarks (leaderboard v2): `value` is normalised, this is raw x100
    normalized: bool = False
    not_evaluated: str | None = None  # why the benchmark was left out (a gated dataset), never scored 0

    @property
    def complete(self) -> bool:
        return self.value is not None and self.n >= self.n_target


@dataclass
class ModelResult:
    name: str
    fingerprint: str
    reference: str
    scores: dict[str, BenchmarkScore]
    average: float | None  # plain mean of the benchmark scores, x100; None unless all are present
    average_of: list[str] = field(default_factory=list)  # the benchmarks the Average is over

    def score(self, benchmark: str) -> float | None:
        s = self.scores.get(benchmark)
        return s.value if s else None


@dataclass
class EvalResult:
    """What `evaluate` returns: the suite's table for every model, plus how it was produced."""

    suite: str
    label: str
    benchmarks: list[dict[str, str]]  # [{name, display, metric_key}]
    models: list[ModelResult]
    limit: int | float | None
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluated_items: int = 0  # items computed by this call (0: everything came from the store)
    not_evaluated: dict[str, str] = field(default_factory=dict)  # benchmark -> reason (gated data)
    normalized: bool = False  # scores are on the leaderboard-v2 scale (raw kept beside them)
    average_note: str = ""

    def model(self, name: str) -> ModelResult:
        for m in self.models:
            if name in (m.name, m.fingerprint, m.reference):
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the table from stored items ---------------------------------------------------------------------------


def _benchmark_score(bench: Benchmark, per_task: dict[str, Any]) -> BenchmarkScore:
    """Unweighted mean over the benchmark's tasks (MMLU: the mean of 57 subject accuracies)."""
    if bench.normalized:
        return _normalized_score(bench, per_task)
    values = [s.value for s in per_task.values()]
    n = sum(s.n for s in per_task.values())
    n_target = sum(s.n_target for s in per_task.values())
    tasks = {
        t: {"value": None if s.value is None else 100 * s.value,
            "stderr": None if s.stderr is None else 100 * s.stderr, "n": s.n, "group": bench.group_of(t)}
        for t, s in per_task.items()
    }
    if not values or any(v is None for v in values):
        return BenchmarkScore(bench.name, bench.display, bench.metric_key, None, None, n, n_target, tasks)
    value = statistics.fmean(values)
    ses = [s.stderr for s in per_task.values()]
    stderr = math.sqrt(sum(se * se for se in ses)) / len(ses) if all(se is not None for se in ses) else None
    weighted = sum(s.value * s.n for s in per_task.values()) / n if n and len(per_task) > 1 else None
    return BenchmarkScore(
        bench.name, bench.display, bench.metric_key, 100 * value, None if stderr is None else 100 * stderr,
        n, n_target, tasks, None if weighted is None else 100 * weighted,
    )


def _normalized_score(bench: Benchmark, per_task: dict[str, Any]) -> BenchmarkScore:
    """The leaderboard-v2 score (mergeval.suites.leaderboard_v2): value normalised, raw beside it."""
    parts = score_parts(bench, per_task)
    tasks = {t: {**info, "group": bench.group_of(t)} for t, info in parts["tasks"].items()}
    return BenchmarkScore(
        bench.name, bench.display, bench.metric_key, parts["normalized"], parts["stderr"],
        sum(s.n for s in per_task.values()), sum(s.n_target for s in per_task.values()), tasks,
        raw=parts["raw"], normalized=True,
    )


@dataclass(frozen=True)
class TaskRef:
    """Where a task's items live in the store and how to read them (no dataset needed)."""

    name: str
    check_hash: str
    check_config: dict[str, Any]
    metric_key: str
    targets: frozenset[str] | None  # the item ids a score covers; None: every stored item


def _task_refs(prepared: dict[str, PreparedTask], limit: float | None, dtype: str) -> dict[str, TaskRef]:
    """Where a model loaded in `dtype` (resolved: `mergeval.dtypes.resolved_dtype`) has its items."""
    return {t: TaskRef(t, p.check_hash_for(dtype), p.check_config_for(dtype), p.metric_key,
                       frozenset(str(i) for i in p.target_ids(limit))) for t, p in prepared.items()}


def _model_result(store: Store, ref_fp: str, name: str, reference: str, suite: Suite,
                  task_refs: dict[str, TaskRef], not_evaluated: dict[str, str] | None = None) -> ModelResult:
    scores: dict[str, BenchmarkScore] = {}
    skipped = not_evaluated or {}
    for bench in suite.benchmarks:
        if bench.name in skipped:
            scores[bench.name] = BenchmarkScore(bench.name, bench.display, bench.metric_key, None, None, 0, 0,
                                                normalized=bench.normalized, not_evaluated=skipped[bench.name])
            continue
        per_task = {}
        for t in bench.tasks:
            tr = task_refs.get(t)
            if tr is None:
                continue
            per_task[t] = aggregate_items(store.items(ref_fp, tr.check_hash), tr.check_config, tr.metric_key,
                                          set(tr.targets) if tr.targets is not None else None)
        scores[bench.name] = _benchmark_score(bench, per_task)
    # A benchmark left out for a stated reason (GPQA's gated data) is left out of the Average too, and the
    # Average says so (EvalResult.average_note); any other gap leaves no Average.
    counted = [s for s in scores.values() if s.not_evaluated is None]
    values = [s.value for s in counted]
    average = statistics.fmean(values) if values and all(v is not None for v in values) else None
    return ModelResult(name=name, fingerprint=ref_fp, reference=reference, scores=scores, average=average,
                       average_of=[s.benchmark for s in counted])


def _metric_label(bench: Benchmark) -> dict[str, str]:
    """A benchmark read from several metrics (IFEval) names them all in the table header."""
    return {"metric_label": " + ".join(m.replace("_acc", "") for m in bench.metrics)} if bench.metrics else {}


def _average_note(suite: Suite, not_evaluated: dict[str, str]) -> str:
    if not suite.normalized:
        return ""
    return average_note([b.name for b in suite.benchmarks],
                        [b.display for b in suite.benchmarks if b.name in not_evaluated])


# -- evaluate ---------------------------------------------------------------------------------------------------


def _as_refs(models: str | ModelRef | Sequence[str | ModelRef], **opts: Any) -> list[ModelRef]:
    if isinstance(models, (str, os.PathLike, ModelRef)):
        models = [models]
    refs = [m if isinstance(m, ModelRef) else resolve(m, **opts) for m in models]
    names = [r.name for r in refs]
    for r in refs:  # two folders both called "merged": disambiguate by fingerprint
        if names.count(r.name) > 1:
            r.name = f"{r.name}@{r.fingerprint[:8]}"
    return refs


def _suite_for(suite: str | Suite, tasks: Sequence[str] | None, include_paths: Sequence[str]) -> Suite:
    """The suite an `evaluate` call runs: a preset or suite file (a subset with `tasks`), `custom` tasks from
    `include_paths`, or a preset plus custom tasks (each its own benchmark). Pure data: a wrong name fails at
    once, before any model or heavy library is loaded."""
    if isinstance(suite, Suite):
        base = suite
    elif suite == "custom" or (include_paths and suite is None):
        if not tasks:
            raise UserError("A custom suite needs task names: pass --tasks NAME[,NAME] with --include-path DIR.")
        return Suite.from_task_names(list(tasks), include_paths=list(include_paths))
    else:
        base = load_suite(suite)
    if tasks:
        known = {b.name for b in base.benchmarks} | {b.display.lower() for b in base.benchmarks} | set(base.task_names)
        extra = [t for t in tasks if t not in known and t.lower() not in known]
        if extra and include_paths:  # user tasks next to a preset: evaluate them as their own benchmarks
            own = Suite.from_task_names(extra, include_paths=list(include_paths))
            kept = base.subset([t for t in tasks if t not in extra]).benchmarks if len(extra) < len(tasks) else []
            return base.model_copy(update={"benchmarks": kept + own.benchmarks,
                                           "task_dirs": [*base.task_dirs, *own.task_dirs],
                                           "name": f"{base.name}+custom"})
        return base.subset(list(tasks))
    return base


def _with_include_paths(suite: Suite, include_paths: Sequence[str]) -> Suite:
    """The suite with the user's task folders indexed after its own (absolute, so they travel as data)."""
    extra = [str(Path(p).resolve()) for p in include_paths]
    extra = [p for p in extra if p not in suite.task_dirs]
    return suite.model_copy(update={"task_dirs": [*suite.task_dirs, *extra]}) if extra else suite


def _check_models(refs: list[ModelRef], chat_template: bool) -> None:
    for ref in refs:
        if ref.path is None and ref.model_object is None:
            raise UserError(f"{ref.name} is an endpoint; lm-eval tasks need local weights. Pass a model folder.")
        if chat_template:
            require_chat_template(ref)


@dataclass(frozen=True)
class _EvalModel:
    """A model of an `evaluate` call as a check context names it (there is no plan, so no role)."""

    name: str
    role: str = "model"


@contextmanager
def _opened(store: str | Path | Store, *, readonly: bool = False) -> Iterator[Store]:
    if isinstance(store, Store):
        yield store
        return
    db = Store(store, readonly=readonly)
    try:
        yield db
    finally:
        db.close()


def _remember_where_models_are(store: Store, refs: list[ModelRef]) -> None:
    """The name and reference a model was last seen under (its folder may have moved since it was stored)."""
    for ref in refs:
        row = store.model(ref.fingerprint)
        if row is not None and (row.name, row.reference) != (ref.name, ref.reference):
            store.upsert_model(ref.fingerprint, name=ref.name, reference=ref.reference, kind=ref.kind,
                               metadata=ref.describe())


def evaluate(
    models: str | ModelRef | Sequence[str | ModelRef],
    *,
    suite: str | Suite = "smoke",
    tasks: Sequence[str] | None = None,
    limit: float | str | None = None,
    store: str | Path | Store = DEFAULT_STORE,
    data_dir: str | Path | None = None,
    include_paths: Sequence[str] = (),
    backend: str | None = None,
    dtype: str = "auto",
    batch_size: int = 8,
    device: str | None = None,
    trust_remote_code: bool = False,
    progress: Progress | TaskProgress | None = None,
    chat_template: bool = False,
    executor: Any = None,
) -> EvalResult:
    """Evaluate each model on the suite, computing only what the store does not already hold.

    Returns the table (per-benchmark scores on 0-100, Average = plain mean of the benchmarks) for the items the
    `limit` covers. A second call with the same models and tasks never loads a model.

    chat_template: build prompts with each model's chat template, few-shot examples as turns (lm-eval's
    --apply_chat_template --fewshot_as_multiturn, the Open LLM Leaderboard v2 setting for chat models); part
    of each check's identity.

    executor: "local" (default) | "ray" or an executor object (mergeval.core.executors).
    """
    limit = parse_limit(limit) if not isinstance(limit, (int, float)) or isinstance(limit, bool) else parse_limit(
        str(limit))
    check_run_settings(dtype=dtype, device=device, backend=backend)
    executor = resolve_executor(executor)
    if not isinstance(store, Store):
        Store(store).close()  # a wrong --store fails now, not after the tasks loaded (opening writes nothing)
    # Task names first: the suite is YAML data, so a wrong name fails in a moment, before any model is read.
    suite_obj = _with_include_paths(_suite_for(suite, tasks, include_paths), include_paths)
    refs = _as_refs(models, dtype=dtype, batch_size=batch_size, device=device, trust_remote_code=trust_remote_code)
    # Everything that can fail on user input (models, tasks, data) fails before the store is opened, and
    # nothing is written to the store before the model that needs it has loaded.
    config = SuiteConfig(suite=suite_obj, limit=limit, data_dir=None if data_dir is None else str(data_dir),
                         chat_template=chat_template)
    env = RunEnv(backend=backend, device=device, batch_size=batch_size)
    prepared = prepare_check(config, env)
    _check_models(refs, chat_template)
    with _opened(store) as db:
        ctx = CheckContext(plan=None, store=db, models=[PlanModel(_EvalModel(r.name), r) for r in refs], env=env,
                           progress=as_progress(progress))
        summary = run_entries([Entry(get_check("suite"), config)], ctx, executor)
        _remember_where_models_are(db, refs)
        settings = {"dtype": dtype, "batch_size": batch_size, "backend": backend, "chat_template": chat_template}
        return _eval_result(db, refs, prepared, limit, summary.evaluated, settings)


def _eval_result(store: Store, refs: list[ModelRef], prepared: PreparedSuite, limit: float | None,
                 evaluated: int, settings: dict[str, Any]) -> EvalResult:
    suite = prepared.suite
    dtypes = {r.fingerprint: resolved_dtype(r) for r in refs}
    results = [_model_result(store, r.fingerprint, r.name, r.reference, suite,
                             _task_refs(prepared.tasks, limit, dtypes[r.fingerprint]), prepared.not_evaluated)
               for r in refs]
    return EvalResult(
        suite=suite.name, label=suite.label.format(lm_eval_version=lm_eval_version()),
        benchmarks=[{"name": b.name, "display": b.display, "metric_key": prepared.metric_key(b), **_metric_label(b)}
                    for b in suite.benchmarks],
        models=results, limit=limit, evaluated_items=evaluated, not_evaluated=prepared.not_evaluated,
        normalized=suite.normalized, average_note=_average_note(suite, prepared.not_evaluated),
        provenance={"lm_eval_version": lm_eval_version(), "suite_note": suite.note,
                    "tasks": _task_provenance(prepared, refs, dtypes), "dtype": settings["dtype"], "dtypes": dtypes,
                    "batch_size": settings["batch_size"], "backend": settings["backend"],
                    "chat_template": settings["chat_template"], "not_evaluated": prepared.not_evaluated},
    )


def _task_provenance(prepared: PreparedSuite, refs: list[ModelRef], dtypes: dict[str, str]) -> dict[str, Any]:
    """Per task: "checks", each model's check of the task (its hash has the model's resolved dtype);
    "identity", the check config without its dtype (`harness.check_hash_of` of it plus a dtype gives the check
    of a model loaded in that dtype); "check", the first model's."""
    return {t: {"check": p.check_hash_for(dtypes[refs[0].fingerprint]) if refs else p.check_hash,
                "checks": {fp: p.check_hash_for(d) for fp, d in dtypes.items()},
                "identity": p.identity,
                "num_fewshot": p.identity["num_fewshot"],
                "task_version": p.identity["task_version"], "dataset": p.dataset_source,
                "n_docs": p.n_docs} for t, p in prepared.tasks.items()}


# -- read_results ------------------------------------------------------------------------------------------------


def _stored_models(store: Store, models: Sequence[str] | None) -> list[ModelRow]:
    rows = store.models()
    if not models:
        return rows
    wanted: list[str] = []
    for key in models:
        found = store.find_models(key)
        if not found:
            raise UserError(f"No model {key!r} in the store {store.path}. `mergeval show` lists what it holds.")
        wanted += [m.fingerprint for m in found if m.fingerprint not in wanted]
    return [m for fp in wanted for m in rows if m.fingerprint == fp]


def _stored_task_refs(store: Store, suite: Suite, model: ModelRow, checks: dict[str, list[CheckRow]]
                      ) -> dict[str, TaskRef]:
    """Each task's stored check for the model: the suite's few-shot count, the most recently created."""
    refs: dict[str, TaskRef] = {}
    for bench in suite.benchmarks:
        for t in bench.tasks:
            candidates = [c for c in checks.get(t, [])
                          if bench.num_fewshot is None or c.config.get("num_fewshot") == bench.num_fewshot]
            candidates = [c for c in candidates if store.count_items(model.fingerprint, c.hash)]
            if candidates:
                c = candidates[-1]
                refs[t] = TaskRef(t, c.hash, c.config, bench.metric_key, None)
    return refs


def read_results(
    store: str | Path | Store = DEFAULT_STORE,
    *,
    suite: str | Suite = "leaderboard-v1",
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
) -> EvalResult:
    """The suite's table from what the store holds, without loading any model or dataset.

    Each task's score covers every item stored for it (its `n` says how many). Where a task was run with
    several configurations (dtype, few-shot), the one matching the suite's few-shot count and most recently
    created is shown."""
    with _opened(store, readonly=True) as db:
        suite_obj = load_suite(suite) if isinstance(suite, str) else suite
        if tasks:
            suite_obj = suite_obj.subset(list(tasks))
        model_rows = _stored_models(db, models)
        checks_by_task: dict[str, list[CheckRow]] = {}
        for chk in db.checks(CHECK_KIND):
            checks_by_task.setdefault(chk.name, []).append(chk)
        refs_by_model = {m.fingerprint: refs for m in model_rows
                         if (refs := _stored_task_refs(db, suite_obj, m, checks_by_task))}
        # A gated benchmark (GPQA) that no model has results for was not evaluated, not failed.
        skipped = {b.name: f"{b.display} not evaluated: nothing is stored for it (its dataset {b.gated_dataset} "
                           "is gated on the Hugging Face hub)"
                   for b in suite_obj.benchmarks
                   if b.gated_dataset and not any(t in refs for refs in refs_by_model.values() for t in b.tasks)}
        results = [_model_result(db, m.fingerprint, m.name, m.reference, suite_obj, refs_by_model[m.fingerprint],
                                 skipped) for m in model_rows if m.fingerprint in refs_by_model]
        return EvalResult(
            suite=suite_obj.name, label=suite_obj.label.format(lm_eval_version=lm_eval_version()),
            benchmarks=[{"name": b.name, "display": b.display, "metric_key": b.metric_key, **_metric_label(b)}
                        for b in suite_obj.benchmarks],
            models=results, limit=None, provenance={"source": f"store {db.path}"},
            not_evaluated=skipped, normalized=suite_obj.normalized,
            average_note=_average_note(suite_obj, skipped),
        )
