"""The lm-eval check types: `leaderboard` (Open LLM Leaderboard v1), `suite` (any suite) and `lm-eval`
(users' own lm-eval YAML tasks).

run():     `mergeval.evaluate` for the plan's local models (only items the store lacks are computed).
collect(): reads the stored items back without loading a model or a dataset. For each task it picks the
           stored check whose configuration matches the plan (task, few-shot count, dtype, no chat template)
           and that covers the most plan models, and reads the items the plan's `limit` covers.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mergeval.compare.registry import (
    BenchmarkInfo,
    CheckContext,
    CheckData,
    CheckType,
    Missing,
    PlanModel,
    Provides,
    ScoreData,
    register_check,
)
from mergeval.errors import UserError
from mergeval.plan import CheckConfig, Plan
from mergeval.store import CheckRow, ItemRow, Store
from mergeval.suites import Benchmark, Suite, load_suite

TASK_FACTS = "mergeval.task"  # store cache namespace: check hash -> {n_docs, metric_key}
LM_EVAL_KIND = "lm-eval"  # the store's check kind for lm-eval tasks (mergeval.harness.CHECK_KIND)


def _parse_limit(value: Any) -> int | float | None:
    from mergeval.harness import parse_limit

    try:
        return parse_limit(None if value is None else str(value))
    except UserError as exc:
        raise ValueError(str(exc).replace("--limit", "limit")) from exc


class _LmEvalOptions(CheckConfig):
    limit: int | float | str | None = Field(
        None, description="items per task: a count (100) or a fraction (0.1)"
    )
    data_dir: str | None = Field(None, description="local dataset mirror (default: settings.data_dir)")

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: Any) -> int | float | None:
        return _parse_limit(value)


def _base_dir(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base_dir", "."))


class LeaderboardCheck(_LmEvalOptions):
    """The Open LLM Leaderboard v1 suite (or some of its benchmarks, with `tasks:`)."""

    type: Literal["leaderboard"] = "leaderboard"
    tasks: list[str] | None = Field(
        None, description="benchmarks or lm-eval tasks of the suite (default: all)"
    )

    @property
    def suite_name(self) -> str:
        return "leaderboard-v1"

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _check_tasks("leaderboard-v1", tasks, info)


class SuiteCheck(_LmEvalOptions):
    """A bundled suite (`smoke`, `leaderboard-v1`) or a suite YAML file of the user's."""

    type: Literal["suite"] = "suite"
    suite: str = Field(description="suite name (smoke, leaderboard-v1) or path to a suite YAML")
    tasks: list[str] | None = Field(
        None, description="benchmarks or lm-eval tasks of the suite (default: all)"
    )

    @property
    def suite_name(self) -> str:
        return self.suite

    @field_validator("suite")
    @classmethod
    def _known_suite(cls, suite: str, info: ValidationInfo) -> str:
        try:
            _load(suite, _base_dir(info))
        except UserError as exc:
            raise ValueError(str(exc)) from exc
        return suite

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str] | None, info: ValidationInfo) -> list[str] | None:
        suite = info.data.get("suite")  # absent when the suite itself did not validate
        return _check_tasks(suite, tasks, info) if suite else tasks


class LmEvalCheck(_LmEvalOptions):
    """Users' own lm-eval tasks (YAML in `include_path`), each its own benchmark."""

    type: Literal["lm-eval"] = "lm-eval"
    tasks: list[str] = Field(description="lm-eval task names", min_length=1)
    include_path: list[str] = Field(default_factory=list, description="folders with your task YAMLs")
    num_fewshot: int | None = Field(None, ge=0, description="few-shot count (default: each task's own)")
    metric: str | None = Field(
        None,
        description="metric to compare, e.g. acc or exact_match,strict-match "
        "(default: each task's first metric)",
    )

    @field_validator("include_path", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _folders_exist(self, info: ValidationInfo) -> LmEvalCheck:
        for folder in self.include_path:
            path = _resolve(folder, _base_dir(info))
            if not path.is_dir():
                raise ValueError(
                    f"include_path {folder} does not exist (looked in {path}); point it at the "
                    "folder holding your task YAML files"
                )
        return self


def _check_tasks(suite: str, tasks: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """Every task must be a benchmark or lm-eval task of the suite (the error names the valid ones)."""
    if tasks:
        try:
            _load(suite, _base_dir(info)).subset(list(tasks))
        except UserError as exc:
            raise ValueError(str(exc)) from exc
    return tasks


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def _load(suite: str, base_dir: Path) -> Suite:
    if suite.endswith((".yaml", ".yml")):
        return load_suite(str(_resolve(suite, base_dir)))
    return load_suite(suite)


def _suite_of(check: Any, base_dir: Path) -> Suite:
    """The Suite object a check evaluates (a subset when `tasks:` is given)."""
    if isinstance(check, LmEvalCheck):
        suite = Suite.from_task_names(
            list(check.tasks),
            include_paths=[str(_resolve(p, base_dir)) for p in check.include_path],
            num_fewshot=check.num_fewshot,
        )
        if check.metric:
            metric, _, filter_name = check.metric.partition(",")
            suite = suite.model_copy(
                update={
                    "benchmarks": [
                        b.model_copy(update={"metric": metric, "filter": filter_name or "none"})
                        for b in suite.benchmarks
                    ]
                }
            )
        return suite
    suite = _load(check.suite_name, base_dir)
    return suite.subset(list(check.tasks)) if check.tasks else suite


def _label(check: Any) -> str:
    if check.name:
        return check.name
    return check.suite_name if isinstance(check, (SuiteCheck, LeaderboardCheck)) else "lm-eval"


def _provides(check: Any, plan: Plan) -> Provides:
    return Provides(benchmarks=[b.name for b in _suite_of(check, plan.base_dir).benchmarks])


# -- run ---------------------------------------------------------------------------------------------------


def _data_dir(check: Any, ctx: CheckContext) -> Path | None:
    folder = check.data_dir or ctx.plan.settings.data_dir
    return ctx.resolve_path(folder) if folder else None


def _include_paths(check: Any, ctx: CheckContext) -> list[str]:
    return [str(ctx.resolve_path(p)) for p in getattr(check, "include_path", [])]


def _run(check: Any, ctx: CheckContext) -> None:
    from mergeval.evaluation import evaluate

    suite = _suite_of(check, ctx.plan.base_dir)
    settings = ctx.plan.settings
    by_dtype: dict[str, list[PlanModel]] = {}
    for m in ctx.models:
        if m.runnable:
            by_dtype.setdefault(ctx.plan.dtype_of(m.spec), []).append(m)
        elif m.ref.kind == "endpoint":
            ctx.say(f"{m.name} is an endpoint: lm-eval tasks need local weights, skipped for {_label(check)}")
    for dtype, models in by_dtype.items():
        result = evaluate(
            [m.ref for m in models],
            suite=suite,
            limit=check.limit,
            store=ctx.store,
            data_dir=_data_dir(check, ctx),
            include_paths=_include_paths(check, ctx),
            backend=settings.backend,
            dtype=dtype,
            batch_size=settings.batch_size,
            device=settings.device,
            progress=ctx.progress,
        )
        # Remember each check's document count and metric, so `compare` (which loads no dataset) knows how
        # many items a limit covers and which metric a custom task is read with.
        metric_of = {b["name"]: b["metric_key"] for b in result.benchmarks}
        for task, info in result.provenance.get("tasks", {}).items():
            bench = suite.benchmark_of(task)
            ctx.store.cache_put(
                TASK_FACTS, info["check"], {"n_docs": info["n_docs"], "metric_key": metric_of.get(bench.name)}
            )


# -- collect -----------------------------------------------------------------------------------------------


def _expected_fewshot(suite: Suite, bench: Benchmark, task: str, include_paths: list[str]) -> int | None:
    """The few-shot count a run of this suite uses for `task` (as mergeval.harness.TaskLoader sets it): the
    benchmark's count, except for tasks whose own YAML says 0. None: any stored count is accepted."""
    if bench.num_fewshot is None:
        return None
    yaml_fewshot = _task_yaml_fewshot(suite, task, tuple(include_paths))
    return 0 if yaml_fewshot == 0 else bench.num_fewshot


_YAML_FEWSHOT_CACHE: dict[tuple, dict[str, Any]] = {}


def _task_yaml_fewshot(suite: Suite, task: str, include_paths: tuple[str, ...]) -> int | None:
    key = (tuple(str(p) for p in suite.task_paths()), include_paths)
    if key not in _YAML_FEWSHOT_CACHE:
        _YAML_FEWSHOT_CACHE[key] = {}
        try:
            from lm_eval.tasks import TaskManager

            paths = [p for p in key[0] + include_paths if Path(p).exists()]
            _YAML_FEWSHOT_CACHE[key]["_manager"] = TaskManager(include_path=paths, include_defaults=False)
        except Exception:  # noqa: BLE001  no index: fall back to the benchmark's count
            _YAML_FEWSHOT_CACHE[key]["_manager"] = None
    cache = _YAML_FEWSHOT_CACHE[key]
    if task not in cache:
        manager = cache["_manager"]
        value = None
        if manager is not None:
            entry = manager.task_index.get(task)
            if entry is not None and entry.yaml_path is not None:
                from lm_eval.tasks._yaml_loader import load_yaml

                try:
                    value = load_yaml(entry.yaml_path, resolve_func=False).get("num_fewshot")
                except Exception:  # noqa: BLE001  an unreadable YAML: fall back to the benchmark's count
                    value = None
        cache[task] = value
    return cache[task]


def _targets(store: Store, check_hash: str, limit: float | None) -> tuple[set[str] | None, int | None]:
    """The item ids a limit covers (lm-eval's first-n) and how many that is; None where unknown.

    The document count comes from the run that stored the items (`TASK_FACTS`); results stored by other
    means lack it, and then the caller takes the most items any model has as the target."""
    facts = store.cache_get(TASK_FACTS, check_hash) or {}
    n_docs = facts.get("n_docs")
    if limit is None:
        return (set(map(str, range(n_docs))), n_docs) if n_docs else (None, None)
    if limit >= 1:
        if not n_docs:
            return set(map(str, range(int(limit)))), None
        n = min(int(limit), n_docs)
        return set(map(str, range(n))), n
    if n_docs:
        n = min(math.ceil(n_docs * limit), n_docs)
        return set(map(str, range(n))), n
    return None, None


def _metric_key(store: Store, check: CheckRow, bench: Benchmark, items: list[ItemRow]) -> str:
    if bench.metric != "*":
        return bench.metric_key
    facts = store.cache_get(TASK_FACTS, check.hash) or {}
    if facts.get("metric_key"):
        return facts["metric_key"]
    first_metric = next(iter(check.config.get("aggregations") or {"acc": "mean"}))
    keys = sorted({k for it in items for k in it.metrics if k.split(",")[0] == first_metric})
    return (
        f"{first_metric},none"
        if f"{first_metric},none" in keys
        else (keys[0] if keys else f"{first_metric},none")
    )


def _pick_checks(
    store: Store, rows: list[CheckRow], models: list[PlanModel], plan: Plan, fewshot: int | None
) -> dict[str, CheckRow]:
    """For each model, the stored check to read: right few-shot count and dtype, no chat template; among
    those the one covering the most plan models (so pairs share one configuration), then the newest."""
    usable = [
        c
        for c in rows
        if (fewshot is None or c.config.get("num_fewshot") == fewshot)
        and not c.config.get("apply_chat_template")
    ]
    has = {(m.name, c.hash): store.count_items(m.fingerprint, c.hash) > 0 for m in models for c in usable}
    coverage = {c.hash: sum(has[(m.name, c.hash)] for m in models) for c in usable}
    order = {c.hash: i for i, c in enumerate(usable)}
    picked: dict[str, CheckRow] = {}
    for m in models:
        dtype = plan.dtype_of(m.spec)
        mine = [c for c in usable if has[(m.name, c.hash)] and c.config.get("dtype", dtype) == dtype]
        if mine:
            picked[m.name] = max(mine, key=lambda c: (coverage[c.hash], order[c.hash]))
    return picked


def _task_score(items: list[ItemRow], check: CheckRow, metric_key: str, targets: set[str] | None):
    from mergeval.harness import aggregate_items

    return aggregate_items(items, check.config, metric_key, targets)


def _collect(check: Any, ctx: CheckContext) -> CheckData:
    plan = ctx.plan
    suite = _suite_of(check, plan.base_dir)
    label = _label(check)
    limit = check.limit
    include_paths = _include_paths(check, ctx)
    rows_by_task: dict[str, list[CheckRow]] = {}
    for row in ctx.store.checks(LM_EVAL_KIND):
        rows_by_task.setdefault(row.name, []).append(row)

    data = CheckData(check=label, type=check.type, limit=limit)
    if not isinstance(check, LmEvalCheck):
        from mergeval.harness import lm_eval_version

        data.suite = {
            "name": suite.name,
            "label": suite.label.format(lm_eval_version=lm_eval_version()),
            "note": suite.note,
        }
    provenance_tasks: dict[str, Any] = {}
    for bench in suite.benchmarks:
        per_model: dict[str, dict[str, Any]] = {m.name: {} for m in ctx.models}  # model -> task -> parts
        metric_key = bench.metric_key
        higher_is_better = True
        for task in bench.tasks:
            fewshot = _expected_fewshot(suite, bench, task, include_paths)
            picked = _pick_checks(ctx.store, rows_by_task.get(task, []), ctx.models, plan, fewshot)
            n_target_task = None
            for m in ctx.models:
                row = picked.get(m.name)
                if row is None:
                    continue
                targets, n_target_task = _targets(ctx.store, row.hash, limit)
                items = ctx.store.items(m.fingerprint, row.hash)
                metric_key = _metric_key(ctx.store, row, bench, items)
                higher_is_better = bool(
                    row.config.get("higher_is_better", {}).get(metric_key.split(",")[0], True)
                )
                score = _task_score(items, row, metric_key, targets)
                kept = [it for it in items if targets is None or it.item_id in targets]
                per_item = row.config.get("aggregations", {}).get(metric_key.split(",")[0], "mean") == "mean"
                values = {
                    it.item_id: float(it.metrics[metric_key])
                    for it in kept
                    if per_item and isinstance(it.metrics.get(metric_key), (int, float))
                }
                per_model[m.name][task] = {"score": score, "items": values, "n_target": n_target_task}
                runs = [r for r in ctx.store.runs(m.fingerprint, row.hash) if r.status == "done"]
                prov = runs[-1].provenance if runs else {}
                provenance_tasks.setdefault(
                    task,
                    {
                        "check": row.hash,
                        "num_fewshot": row.config.get("num_fewshot"),
                        "task_version": row.config.get("task_version"),
                        "dtype": row.config.get("dtype"),
                        "dataset": prov.get("dataset_source"),
                        "lm_eval_version": prov.get("lm_eval_version"),
                        "limit": limit,
                        "metric_key": metric_key,
                    },
                )
        data.benchmarks.append(
            BenchmarkInfo(
                name=bench.name,
                display=bench.display,
                metric_key=metric_key,
                higher_is_better=higher_is_better,
                kind="lm-eval",
                scale=100.0,
                in_average=not isinstance(check, LmEvalCheck),
                check=label,
            )
        )
        _fill_scores(data, bench, per_model, ctx)
    data.provenance = {
        "tasks": provenance_tasks,
        "suite": suite.name,
        "limit": limit,
        "config": check.model_dump(mode="json"),
    }
    return data


def _fill_scores(
    data: CheckData, bench: Benchmark, per_model: dict[str, dict[str, Any]], ctx: CheckContext
) -> None:
    """Per-model benchmark scores from per-task parts: the unweighted mean over tasks (MMLU: of subjects)."""
    # A task's target size: what the limit covers, or (unknown) the most items any model has.
    task_targets: dict[str, int] = {}
    for task in bench.tasks:
        known = [p[task]["n_target"] for p in per_model.values() if task in p and p[task]["n_target"]]
        counts = [p[task]["score"].n for p in per_model.values() if task in p]
        task_targets[task] = max(known) if known else max(counts, default=0)
    n_target = sum(task_targets.values())
    multi = len(bench.tasks) > 1
    for m in ctx.models:
        parts = per_model[m.name]
        scores = [parts[t]["score"] for t in bench.tasks if t in parts]
        n = sum(s.n for s in scores)
        complete_tasks = len(scores) == len(bench.tasks) and all(s.value is not None for s in scores)
        value = stderr = None
        if complete_tasks:
            value = 100 * statistics.fmean(s.value for s in scores)
            if all(s.stderr is not None for s in scores):
                stderr = 100 * math.sqrt(sum(s.stderr**2 for s in scores)) / len(scores)
        items: dict[str, float] = {}
        strata: dict[str, str] | None = {} if multi else None
        for t in bench.tasks:
            for item_id, v in parts.get(t, {}).get("items", {}).items():
                key = f"{t}/{item_id}" if multi else item_id
                items[key] = v
                if strata is not None:
                    strata[key] = t
        tasks = {
            t: {
                "value": None
                if parts.get(t) is None or parts[t]["score"].value is None
                else 100 * parts[t]["score"].value,
                "n": parts[t]["score"].n if t in parts else 0,
                "group": bench.group_of(t),
            }
            for t in bench.tasks
        }
        data.scores.setdefault(m.name, {})[bench.name] = ScoreData(
            value=value, stderr=stderr, n=n, n_target=n_target, items=items, strata=strata, tasks=tasks
        )
        if n == 0:
            why = "an endpoint cannot run lm-eval tasks" if m.ref.kind == "endpoint" else "not evaluated yet"
            data.missing.append(Missing(m.name, data.check, bench.name, why))
        elif not complete_tasks or n < n_target:
            done = sum(1 for t in bench.tasks if t in parts)
            detail = f"incomplete: {n} of {n_target} items" + (
                f" ({done} of {len(bench.tasks)} tasks)" if multi and done < len(bench.tasks) else ""
            )
            data.missing.append(Missing(m.name, data.check, bench.name, detail))


register_check(
    CheckType(
        name="leaderboard",
        config=LeaderboardCheck,
        run=_run,
        collect=_collect,
        provides=_provides,
        description="Open LLM Leaderboard v1 (ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K)",
    )
)
register_check(
    CheckType(
        name="suite",
        config=SuiteCheck,
        run=_run,
        collect=_collect,
        provides=_provides,
        description="a bundled suite (smoke, leaderboard-v1) or a suite YAML file",
    )
)
register_check(
    CheckType(
        name="lm-eval",
        config=LmEvalCheck,
        run=_run,
        collect=_collect,
        provides=_provides,
        description="your own lm-eval YAML tasks (include_path)",
    )
)
