"""`mergeval.evaluate(...)`: evaluate models on a suite, item by item into the store, and read scores back.

The CLI's `eval` and `show` are thin views over `evaluate` and `read_results`.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.harness import (
    CHECK_KIND,
    PreparedTask,
    TaskLoader,
    TaskProgress,
    aggregate_items,
    lm_eval_version,
    make_lm,
    parse_limit,
    resolve_data_dir,
    run_task,
)
from mergeval.models import ModelRef, resolve
from mergeval.store import DEFAULT_STORE, Store
from mergeval.suites import Benchmark, Suite, load_suite


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

    def model(self, name: str) -> ModelResult:
        for m in self.models:
            if name in (m.name, m.fingerprint, m.reference):
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _benchmark_score(bench: Benchmark, per_task: dict[str, Any]) -> BenchmarkScore:
    """Unweighted mean over the benchmark's tasks (MMLU: the mean of 57 subject accuracies)."""
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


@dataclass(frozen=True)
class TaskRef:
    """Where a task's items live in the store and how to read them (no dataset needed)."""

    name: str
    check_hash: str
    check_config: dict[str, Any]
    metric_key: str
    targets: frozenset[str] | None  # the item ids a score covers; None: every stored item


def _task_refs(prepared: dict[str, PreparedTask], limit: int | float | None) -> dict[str, TaskRef]:
    return {t: TaskRef(t, p.check_hash, p.check_config, p.metric_key,
                       frozenset(str(i) for i in p.target_ids(limit))) for t, p in prepared.items()}


def _model_result(store: Store, ref_fp: str, name: str, reference: str, suite: Suite,
                  task_refs: dict[str, TaskRef]) -> ModelResult:
    scores: dict[str, BenchmarkScore] = {}
    for bench in suite.benchmarks:
        per_task = {}
        for t in bench.tasks:
            tr = task_refs.get(t)
            if tr is None:
                continue
            per_task[t] = aggregate_items(store.items(ref_fp, tr.check_hash), tr.check_config, tr.metric_key,
                                          set(tr.targets) if tr.targets is not None else None)
        scores[bench.name] = _benchmark_score(bench, per_task)
    values = [s.value for s in scores.values()]
    average = statistics.fmean(values) if values and all(v is not None for v in values) else None
    return ModelResult(name=name, fingerprint=ref_fp, reference=reference, scores=scores, average=average)


def _as_refs(models: str | ModelRef | Sequence[str | ModelRef], **opts: Any) -> list[ModelRef]:
    if isinstance(models, (str, os.PathLike, ModelRef)):
        models = [models]
    refs = []
    for m in models:
        refs.append(m if isinstance(m, ModelRef) else resolve(m, **opts))
    names = [r.name for r in refs]
    for r in refs:  # two folders both called "merged": disambiguate by fingerprint
        if names.count(r.name) > 1:
            r.name = f"{r.name}@{r.fingerprint[:8]}"
    return refs


def prepare_suite(suite: Suite, *, data_dir: Path | None, include_paths: Iterable[str] = (),
                  dtype: str = "auto") -> dict[str, PreparedTask]:
    loader = TaskLoader(suite, data_dir=data_dir, include_paths=include_paths)
    return {t: loader.load(t, b, dtype=dtype) for b in suite.benchmarks for t in b.tasks}


def _suite_for(suite: str | Suite, tasks: Sequence[str] | None, include_paths: Sequence[str]) -> Suite:
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
            return base.model_copy(update={"benchmarks": kept + own.benchmarks, "task_dirs": own.task_dirs,
                                           "name": f"{base.name}+custom"})
        return base.subset(list(tasks))
    return base


def evaluate(
    models: str | ModelRef | Sequence[str | ModelRef],
    *,
    suite: str | Suite = "smoke",
    tasks: Sequence[str] | None = None,
    limit: int | float | str | None = None,
    store: str | Path | Store = DEFAULT_STORE,
    data_dir: str | Path | None = None,
    include_paths: Sequence[str] = (),
    backend: str | None = None,
    dtype: str = "auto",
    batch_size: int = 8,
    device: str | None = None,
    trust_remote_code: bool = False,
    progress: TaskProgress | None = None,
) -> EvalResult:
    """Evaluate each model on the suite, computing only what the store does not already hold.

    Returns the table (per-benchmark scores on 0-100, Average = plain mean of the benchmarks) for the items the
    `limit` covers. A second call with the same models and tasks never loads a model.
    """
    limit = parse_limit(limit) if not isinstance(limit, (int, float)) or isinstance(limit, bool) else parse_limit(
        str(limit))
    refs = _as_refs(models, dtype=dtype, batch_size=batch_size, device=device, trust_remote_code=trust_remote_code)
    suite_obj = _suite_for(suite, tasks, include_paths)
    # Everything that can fail on user input (models, tasks, data) fails before the store is opened.
    prepared = prepare_suite(suite_obj, data_dir=resolve_data_dir(data_dir), include_paths=include_paths,
                             dtype=dtype)
    own_store = not isinstance(store, Store)
    db = Store(store) if own_store else store
    try:
        evaluated = 0
        for ref in refs:
            db.upsert_model(ref.fingerprint, name=ref.name, reference=ref.reference, kind=ref.kind,
                            metadata=ref.describe())
            lm_holder: dict[str, Any] = {}

            def get_lm(_ref=ref, _holder=lm_holder):
                if "lm" not in _holder:
                    _holder["lm"] = make_lm(_ref, backend)
                return _holder["lm"]

            for pt in prepared.values():
                evaluated += run_task(db, ref, pt, limit=limit, get_lm=get_lm, progress=progress)
            lm_holder.clear()  # free the model before loading the next one
        refs_by_task = _task_refs(prepared, limit)
        results = [_model_result(db, r.fingerprint, r.name, r.reference, suite_obj, refs_by_task) for r in refs]
        label = suite_obj.label.format(lm_eval_version=lm_eval_version())
        return EvalResult(
            suite=suite_obj.name, label=label,
            benchmarks=[{"name": b.name, "display": b.display, "metric_key": b.metric_key if b.metric != "*" else
                         prepared[b.tasks[0]].metric_key} for b in suite_obj.benchmarks],
            models=results, limit=limit, evaluated_items=evaluated,
            provenance={
                "lm_eval_version": lm_eval_version(),
                "suite_note": suite_obj.note,
                "tasks": {t: {"check": p.check_hash, "num_fewshot": p.check_config["num_fewshot"],
                              "task_version": p.check_config["task_version"], "dataset": p.dataset_source,
                              "n_docs": p.n_docs} for t, p in prepared.items()},
                "dtype": dtype, "batch_size": batch_size, "backend": backend,
            },
        )
    finally:
        if own_store:
            db.close()


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
    own = not isinstance(store, Store)
    db = Store(store, create=False) if own else store
    try:
        suite_obj = load_suite(suite) if isinstance(suite, str) else suite
        if tasks:
            suite_obj = suite_obj.subset(list(tasks))
        model_rows = db.models()
        if models:
            wanted: list[str] = []
            for key in models:
                found = db.find_models(key)
                if not found:
                    raise UserError(f"No model {key!r} in the store {db.path}. `mergeval show` lists what it holds.")
                wanted += [m.fingerprint for m in found if m.fingerprint not in wanted]
            model_rows = [m for fp in wanted for m in model_rows if m.fingerprint == fp]
        checks_by_task: dict[str, list] = {}
        for chk in db.checks(CHECK_KIND):
            checks_by_task.setdefault(chk.name, []).append(chk)
        results = []
        for m in model_rows:
            refs: dict[str, TaskRef] = {}
            for bench in suite_obj.benchmarks:
                for t in bench.tasks:
                    candidates = [c for c in checks_by_task.get(t, [])
                                  if bench.num_fewshot is None or c.config.get("num_fewshot") == bench.num_fewshot]
                    candidates = [c for c in candidates if db.count_items(m.fingerprint, c.hash)]
                    if candidates:
                        c = candidates[-1]
                        refs[t] = TaskRef(t, c.hash, c.config, bench.metric_key, None)
            if refs:
                results.append(_model_result(db, m.fingerprint, m.name, m.reference, suite_obj, refs))
        return EvalResult(
            suite=suite_obj.name, label=suite_obj.label.format(lm_eval_version=lm_eval_version()),
            benchmarks=[{"name": b.name, "display": b.display, "metric_key": b.metric_key}
                        for b in suite_obj.benchmarks],
            models=results, limit=None, provenance={"source": f"store {db.path}"},
        )
    finally:
        if own:
            db.close()
