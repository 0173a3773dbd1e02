"""The lm-eval check types: `leaderboard` (the Open LLM Leaderboard, v1 or v2), `suite` (a bundled suite, a
suite YAML file, or in library calls a `Suite`) and `lm-eval` (users' own lm-eval YAML tasks).

tasks():    one Task per lm-eval task and model. Its identity is the task as defined, the few-shot count,
            the chat-template setting and the dtype the model really loads in (`PreparedTask.check_config_for`);
            its items are the document ids the `limit` covers (lm-eval's first n). Rows an earlier version
            stored under another identity of the same check are adopted first (never recomputed).
evaluate(): the missing documents through lm-eval, in chunks (`engines.lmeval.harness.evaluate_docs`: few-shot
            contexts of documents 0..max rebuilt in document order, as a full run builds them). Each chunk
            carries the task's facts (document count, metric) for `compare`, which loads no dataset.
collect():  the stored items read back without a model or a dataset. For each task it picks the stored check
            whose configuration matches (task, few-shot count, dtype, chat template) and that covers the most
            models, and reads the items the `limit` covers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mergeval.core.check import Batch, Check, CheckConfig, MetricSpec, Task, config_base_dir, resolve_in
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.registry import check
from mergeval.core.results import CheckData, Missing, ScoreData
from mergeval.dtypes import adopt_legacy_dtype_rows, resolved_dtype
from mergeval.engines.lmeval.harness import (
    CHECK_KIND,
    PreparedTask,
    TaskScore,
    TaskSource,
    aggregate_items,
    ascii_json_hash,
    backend_stats,
    check_hash_of,
    chunk_size_for,
    data_dir_setting,
    declared_fewshot,
    evaluate_docs,
    expected_items,
    lm_eval_version,
    loader_for,
    make_lm,
    parse_limit,
    prepare_suite,
    resolve_data_dir,
)
from mergeval.errors import UserError
from mergeval.models import ModelRef, chat_template_hash
from mergeval.store import CheckRow, ItemRow, Store
from mergeval.suites import Benchmark, Suite, load_suite
from mergeval.suites.leaderboard_v2 import average_note, gated_reason, item_scores, score_parts, use_nltk_data

TASK_FACTS = "mergeval.task"  # store cache namespace: check hash -> {n_docs, metric_key}
NOT_EVALUATED = "mergeval.not_evaluated"  # store cache namespace (written by earlier versions): "suite/bench"
LEGACY_NAMESPACE = "lm-eval-legacy"  # store cache: "<model>:<old check>:<new check>" -> items left unadopted


# -- configuration: the only declaration of each type's options --------------------------------------------


def _parse_limit(value: Any) -> int | float | None:
    try:
        return parse_limit(None if value is None else str(value))
    except UserError as exc:
        raise ValueError(str(exc).replace("--limit", "limit")) from exc


def _base_dir(info: ValidationInfo) -> Path:
    return config_base_dir(info) or Path(".")


def _load(suite: str | Suite, base_dir: Path) -> Suite:
    if isinstance(suite, Suite):
        return suite
    if suite.endswith((".yaml", ".yml")):
        return load_suite(str(resolve_in(suite, base_dir)))
    return load_suite(suite)


def _check_tasks(suite: str | Suite, tasks: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """Every task must be a benchmark or lm-eval task of the suite (the error names the valid ones)."""
    if tasks:
        try:
            _load(suite, _base_dir(info)).subset(list(tasks))
        except UserError as exc:
            raise ValueError(str(exc)) from exc
    return tasks


class LmEvalOptions(CheckConfig):
    """Options every lm-eval check type has."""

    limit: int | float | str | None = Field(None, description="items per task: a count (100) or a fraction (0.1)")
    data_dir: str | None = Field(None, description="local dataset mirror (default: settings.data_dir)")
    chat_template: bool = Field(
        False,
        description="prompts through each model's chat template, few-shot examples as turns (lm-eval "
        "--apply_chat_template --fewshot_as_multiturn; the Open LLM Leaderboard v2 setting for chat models)",
    )

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: Any) -> int | float | None:
        return _parse_limit(value)


class LeaderboardConfig(LmEvalOptions):
    """The Open LLM Leaderboard v1 suite, or v2 with `version: 2` (or some benchmarks, with `tasks:`)."""

    type: Literal["leaderboard"] = "leaderboard"
    version: Literal[1, 2] = Field(1, description="1: the 2023 leaderboard; 2: the 2024 one (normalised scores)")
    tasks: list[str] | None = Field(None, description="benchmarks or lm-eval tasks of the suite (default: all)")

    @property
    def suite_name(self) -> str:
        return f"leaderboard-v{self.version}"

    @property
    def label(self) -> str:
        return self.name or self.suite_name

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _check_tasks(f"leaderboard-v{info.data.get('version', 1)}", tasks, info)


class SuiteConfig(LmEvalOptions):
    """A bundled suite (`smoke`, `leaderboard-v1`), a suite YAML file of the user's, or (library calls) a
    `mergeval.suites.Suite`."""

    type: Literal["suite"] = "suite"
    suite: str | Suite = Field(description="suite name (smoke, leaderboard-v1) or path to a suite YAML")
    tasks: list[str] | None = Field(None, description="benchmarks or lm-eval tasks of the suite (default: all)")

    @property
    def suite_name(self) -> str:
        return self.suite if isinstance(self.suite, str) else self.suite.name

    @property
    def label(self) -> str:
        return self.name or self.suite_name

    @field_validator("suite")
    @classmethod
    def _known_suite(cls, suite: str | Suite, info: ValidationInfo) -> str | Suite:
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


class LmEvalConfig(LmEvalOptions):
    """Users' own lm-eval tasks (YAML in `include_path`), each its own benchmark."""

    type: Literal["lm-eval"] = "lm-eval"
    tasks: list[str] = Field(description="lm-eval task names", min_length=1)
    include_path: list[str] = Field(default_factory=list, description="folders with your task YAMLs")
    num_fewshot: int | None = Field(None, ge=0, description="few-shot count (default: each task's own)")
    metric: str | None = Field(
        None,
        description="metric to compare, e.g. acc or exact_match,strict-match (default: each task's first metric)",
    )

    @field_validator("include_path", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _folders_exist(self, info: ValidationInfo) -> LmEvalConfig:
        for folder in self.include_path:
            path = resolve_in(folder, _base_dir(info))
            if not path.is_dir():
                raise ValueError(
                    f"include_path {folder} does not exist (looked in {path}); point it at the "
                    "folder holding your task YAML files"
                )
        return self


LmEvalCheckConfig = LeaderboardConfig | SuiteConfig | LmEvalConfig


def suite_of(config: LmEvalCheckConfig, base_dir: Path, *, subset: bool = True) -> Suite:
    """The Suite a check evaluates (with `subset`: only the benchmarks its `tasks:` name)."""
    if isinstance(config, LmEvalConfig):
        suite = Suite.from_task_names(list(config.tasks), include_paths=[str(resolve_in(p, base_dir))
                                                                         for p in config.include_path],
                                      num_fewshot=config.num_fewshot)
        if config.metric:
            metric, _, filter_name = config.metric.partition(",")
            benchmarks = [b.model_copy(update={"metric": metric, "filter": filter_name or "none"})
                          for b in suite.benchmarks]
            suite = suite.model_copy(update={"benchmarks": benchmarks})
        return suite
    suite = _load(config.suite if isinstance(config, SuiteConfig) else config.suite_name, base_dir)
    return suite.subset(list(config.tasks)) if subset and config.tasks else suite


# -- what a check measures ----------------------------------------------------------------------------------


def benchmark_spec(bench: Benchmark, config: LmEvalCheckConfig, *, metric_key: str | None = None,
                   higher_is_better: bool = True, in_average: bool | None = None) -> MetricSpec:
    """One benchmark as a metric: a 0-100 score (mean item score x 100), part of the headline Average for
    suites (not for a user's own tasks)."""
    return MetricSpec(
        name=bench.name, display=bench.display, kind="benchmark", scale=100.0, range=(0.0, 100.0),
        higher_is_better=higher_is_better, unit="%", metric_key=metric_key or bench.metric_key,
        in_average=not isinstance(config, LmEvalConfig) if in_average is None else in_average,
        check=config.label, family=CHECK_KIND, normalized=bench.normalized,
    )


def average_spec(config: LmEvalCheckConfig, base_dir: Path) -> MetricSpec | None:
    """The suite's Average with the suite's quality bands (`average_bands:` in its YAML), when the check
    covers every benchmark of the suite (a band describes the whole suite's Average, not a part of it)."""
    if isinstance(config, LmEvalConfig):
        return None
    full = suite_of(config, base_dir, subset=False)
    if not full.average_bands or len(suite_of(config, base_dir).benchmarks) != len(full.benchmarks):
        return None
    return MetricSpec(
        name="average", display="Average", kind="fact", scale=1.0, range=(0.0, 100.0), unit="%",
        bands=full.bands(), check=config.label, family=CHECK_KIND,
        description=f"plain mean of the {full.title or full.name} benchmarks; the bands are the methodology's "
        "quality labels for it (labels, never verdicts)",
    )


# -- tasks: what each model needs -----------------------------------------------------------------------------


@dataclass
class PreparedSuite:
    """A check's suite with its tasks loaded (data included): what Tasks are made from."""

    suite: Suite
    source: TaskSource
    tasks: dict[str, PreparedTask]  # lm-eval task -> loaded task (gated benchmarks without data are absent)
    not_evaluated: dict[str, str]  # benchmark -> why it is not evaluated (a gated dataset the mirror lacks)

    def metric_key(self, bench: Benchmark) -> str:
        """The metric a benchmark is read with (a user's own task: the first metric it defines)."""
        first = self.tasks.get(bench.tasks[0])
        return first.metric_key if bench.metric == "*" and first is not None else bench.metric_key


def check_data_dir(config: LmEvalCheckConfig, env: RunEnv) -> Path | None:
    """The dataset mirror of a check: its `data_dir`, else the settings' (relative to the plan), else
    $MERGEVAL_DATA_DIR; not checked for existence."""
    folder = config.data_dir or env.data_dir
    return data_dir_setting(env.resolve_path(folder) if folder else None)


def prepare_check(config: LmEvalCheckConfig, env: RunEnv) -> PreparedSuite:
    """Load the check's tasks (data included). Everything that can fail on user input fails here: a missing
    data dir, packages or nltk data of a task's scoring code, a dataset that cannot be loaded."""
    suite = suite_of(config, Path(env.base_dir))
    folder = config.data_dir or env.data_dir
    data_dir = resolve_data_dir(env.resolve_path(folder) if folder else None)
    not_evaluated: dict[str, str] = {}
    tasks = prepare_suite(suite, data_dir=data_dir, chat_template=config.chat_template, not_evaluated=not_evaluated)
    return PreparedSuite(suite, TaskSource.of(suite, data_dir=data_dir), tasks, not_evaluated)


def require_chat_template(ref: ModelRef) -> None:
    if ref.path is not None and chat_template_hash(ref.path) is None:
        raise UserError(f"Model {ref.name} has no chat template, so it cannot be evaluated with the chat template "
                        "setting; run without --chat-template (chat_template: false).")


def lm_eval_task(prepared: PreparedSuite, bench: Benchmark, task: PreparedTask, ref: ModelRef,
                 limit: float | None) -> Task:
    """The core Task of one lm-eval task for one model: identity with the model's resolved dtype, the
    document ids the limit covers, and (as plain data) where a worker loads the task from."""
    dtype = resolved_dtype(ref)
    return Task(
        kind=CHECK_KIND,
        name=task.name,
        config=task.check_config_for(dtype),
        item_ids=tuple(str(i) for i in task.target_ids(limit)),
        inputs={"source": prepared.source.to_json(), "benchmark": bench.model_dump(mode="json"),
                "metric_key": prepared.metric_key(bench)},
        provenance={
            "task": task.name, "task_version": task.identity.get("task_version"),
            "num_fewshot": task.identity["num_fewshot"], "dtype": dtype, "dtype_requested": ref.dtype,
            "batch_size": ref.batch_size, "device": str(ref.device), "chat_template_hash": chat_template_hash(ref.path),
            "dataset_source": task.dataset_source, "limit": limit,
        },
        batch_size=chunk_size_for(task.task, ref.batch_size),
    )


def _task_facts(task: Task, n_docs: int) -> tuple[str, str, dict[str, Any]]:
    """The store cache entry that lets `compare` read a task without loading its dataset."""
    return (TASK_FACTS, task.hash, {"n_docs": n_docs, "metric_key": task.inputs["metric_key"]})


def _keep_task_facts(store: Store, ref: ModelRef, task: Task, n_docs: int) -> None:
    """Items stored by a run that did not record the task's facts (`mergeval eval` before they were written
    with every chunk): record them now."""
    if store.cache_get(TASK_FACTS, task.hash) is None and store.count_items(ref.fingerprint, task.hash):
        store.cache_put(*_task_facts(task, n_docs))


# -- rows stored under an earlier identity of the same check ---------------------------------------------------


def adopt_legacy_items(store: Store, ref: ModelRef, prepared: PreparedTask, dtype: str) -> int:
    """Move this model's items of `prepared` stored under an earlier identity of the same check to the current
    one (`prepared.check_hash_for(dtype)`); returns how many moved. Earlier identities recognised:

    - the dtype as written (`auto`, `fp32`) instead of the dtype it loads this model in, and identities hashed
      with ASCII-escaped JSON (mergeval before the core; differs only for non-ASCII text): exact, the old hash
      is recomputed (`mergeval.dtypes.adopt_legacy_dtype_rows`);
    - a `task_config_hash` with a memory address in it (tasks with functions in `fewshot_config`, such as
      HellaSwag and Winogrande: a new hash in every process). Such an old check row is a candidate when every
      other field of its config equals the current one (task, task_version, num_fewshot, fewshot_seed,
      apply_chat_template, aggregations, higher_is_better; its dtype loads this model in `dtype`). Its items
      are then adopted one by one, only where the stored document hash, prompt hash (few-shot context
      included) and target equal what the task builds for that document now; the others stay where they are.

    Duplicates (the same document stored under several old hashes, one per process) are kept once."""
    config = prepared.check_config_for(dtype)
    new_hash = check_hash_of(config)
    moved = adopt_legacy_dtype_rows(store, ref, kind=CHECK_KIND, name=prepared.name, config=config,
                                    hash_of=ascii_json_hash, requested=ref.dtype)
    escaped = ascii_json_hash(config)
    if escaped != new_hash and store.count_items(ref.fingerprint, escaped):
        moved += store.adopt_items(ref.fingerprint, escaped, new_hash, kind=CHECK_KIND, name=prepared.name,
                                   config=config)
    if prepared.legacy_address_hash:
        moved += _adopt_address_rows(store, ref, prepared, config, dtype)
    return moved


def _address_candidates(store: Store, ref: ModelRef, prepared: PreparedTask, config: dict[str, Any],
                        dtype: str) -> list[tuple[CheckRow, str]]:
    """Old check rows of this task whose config equals `config` but for an address-polluted task hash."""
    new_hash = check_hash_of(config)
    ignored = ("task_config_hash", "dtype")
    wanted = json.loads(json.dumps({k: v for k, v in config.items() if k not in ignored}))  # as stored
    candidates = []
    for row in store.checks(CHECK_KIND):
        if row.name != prepared.name or row.hash == new_hash:
            continue
        if {k: v for k, v in row.config.items() if k not in ignored} != wanted:
            continue
        if resolved_dtype(ref, str(row.config.get("dtype", "auto"))) != dtype:
            continue
        marker = f"{ref.fingerprint}:{row.hash}:{new_hash}"
        if store.cache_get(LEGACY_NAMESPACE, marker) is None and store.count_items(ref.fingerprint, row.hash):
            candidates.append((row, marker))
    return candidates


def _adopt_address_rows(store: Store, ref: ModelRef, prepared: PreparedTask, config: dict[str, Any],
                        dtype: str) -> int:
    candidates = _address_candidates(store, ref, prepared, config, dtype)
    if not candidates:
        return 0
    new_hash = check_hash_of(config)
    stored = {row.hash: store.items(ref.fingerprint, row.hash, with_data=True) for row, _ in candidates}
    ids = [int(it.item_id) for items in stored.values() for it in items if it.item_id.isdigit()]
    expected = expected_items(prepared, min(max(ids), prepared.n_docs - 1)) if ids else {}
    moved = 0
    for row, marker in candidates:
        same = [it.item_id for it in stored[row.hash]
                if it.item_id in expected
                and (it.data.get("doc_hash"), it.data.get("prompt_hash"), it.data.get("target")) == expected[it.item_id]]
        moved += store.adopt_items(ref.fingerprint, row.hash, new_hash, kind=CHECK_KIND, name=prepared.name,
                                   config=config, item_ids=same)
        left = len(stored[row.hash]) - len(same)
        if left:  # different prompts: a different task definition; looked at once, kept as they are
            store.cache_put(LEGACY_NAMESPACE, marker, {"kept": left})
    return moved


# -- the engine side ---------------------------------------------------------------------------------------


@dataclass
class LmEngine:
    """A loaded lm-eval LM (`release` drops it, so its weights are freed before the next model loads)."""

    lm: Any


def prepared_task(task: Task) -> PreparedTask:
    """The loaded lm-eval task a Task names (the driver's, in this process; loaded again in another one)."""
    source = TaskSource.from_json(task.inputs["source"])
    bench = Benchmark.model_validate(task.inputs["benchmark"])
    if bench.nltk_resources and source.data_dir:  # a worker process: IFEval's nltk data from the mirror
        use_nltk_data(Path(source.data_dir))
    chat = bool(task.config.get("apply_chat_template"))
    prepared = loader_for(source).load(task.name, bench, apply_chat_template=chat)
    if prepared.check_hash_for(str(task.config.get("dtype"))) != task.hash:
        raise UserError(f"The definition of lm-eval task {task.name} changed during the run; run again.")
    return prepared


class _LmEvalCheck(Check):
    """What the three lm-eval check types share (they differ in their Config only)."""

    def metrics(self, config: LmEvalCheckConfig, plan: Any) -> list[MetricSpec]:
        base_dir = Path(getattr(plan, "base_dir", None) or ".")
        specs = [benchmark_spec(b, config) for b in suite_of(config, base_dir).benchmarks]
        average = average_spec(config, base_dir)
        return [*specs, average] if average else specs

    def plan_models(self, config: LmEvalCheckConfig, ctx: CheckContext) -> list[PlanModel]:
        """Models with local weights (an endpoint cannot run lm-eval tasks: said, and skipped)."""
        models = []
        for m in ctx.models:
            if m.runnable:
                if config.chat_template:
                    require_chat_template(m.ref)
                models.append(m)
            elif m.ref.kind == "endpoint":
                ctx.say(f"{m.name} is an endpoint: lm-eval tasks need local weights, skipped for {config.label}")
        return models

    def tasks(self, config: LmEvalCheckConfig, ctx: CheckContext, model: PlanModel, stage: str) -> list[Task]:
        prepared = prepare_check(config, ctx.env)
        if model.name == next((m.name for m in ctx.models if m.runnable), None):
            for reason in prepared.not_evaluated.values():  # a gated dataset (GPQA) the mirror lacks
                ctx.say(reason)
        dtype = resolved_dtype(model.ref)
        out = []
        for bench in prepared.suite.benchmarks:
            for name in bench.tasks:
                loaded = prepared.tasks.get(name)
                if loaded is None:
                    continue
                adopt_legacy_items(ctx.store, model.ref, loaded, dtype)
                task = lm_eval_task(prepared, bench, loaded, model.ref, config.limit)
                _keep_task_facts(ctx.store, model.ref, task, loaded.n_docs)
                out.append(task)
        return out

    def load(self, config: LmEvalCheckConfig, model: ModelRef, stage: str, env: RunEnv) -> LmEngine:
        return LmEngine(make_lm(model, env.backend))

    def evaluate(self, engine: LmEngine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        prepared = prepared_task(task)
        facts = [_task_facts(task, prepared.n_docs)]
        chat = bool(task.config.get("apply_chat_template"))
        for docs in evaluate_docs(engine.lm, prepared, [int(i) for i in item_ids], chunk_size=task.batch_size,
                                  chat=chat):
            stats = backend_stats(engine.lm)
            yield Batch(items=[ItemRow(str(d.doc_id), d.metrics, d.data) for d in docs], cache=facts,
                        stats={"backend_stats": stats} if stats else {})

    def provenance(self, engine: LmEngine, task: Task) -> dict[str, Any]:
        return {"lm_eval_version": lm_eval_version(), "backend": type(engine.lm).__name__,
                "device": str(getattr(engine.lm, "device", task.provenance.get("device")))}

    def release(self, engine: LmEngine) -> None:
        engine.lm = None

    def collect(self, config: LmEvalCheckConfig, ctx: CheckContext) -> CheckData:
        return collect_suite(config, ctx)


@check("leaderboard")
class LeaderboardCheck(_LmEvalCheck):
    Config = LeaderboardConfig
    description = "Open LLM Leaderboard v1 (ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K), or v2"


@check("suite")
class SuiteCheck(_LmEvalCheck):
    Config = SuiteConfig
    description = "a bundled suite (smoke, leaderboard-v1) or a suite YAML file"


@check("lm-eval")
class LmEvalCheck(_LmEvalCheck):
    Config = LmEvalConfig
    description = "your own lm-eval YAML tasks (include_path)"


# -- collect: the stored results, without a model or a dataset ---------------------------------------------------


@dataclass
class _TaskPart:
    """One model's stored results of one task."""

    score: TaskScore
    items: dict[str, float]  # item id -> the item's score for the paired statistics
    n_target: int | None  # items the limit covers (None: unknown)
    metric_key: str
    higher_is_better: bool


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


def _metric_key(store: Store, row: CheckRow, bench: Benchmark, items: list[ItemRow]) -> str:
    if bench.metric != "*":
        return bench.metric_key
    facts = store.cache_get(TASK_FACTS, row.hash) or {}
    if facts.get("metric_key"):
        return facts["metric_key"]
    first_metric = next(iter(row.config.get("aggregations") or {"acc": "mean"}))
    keys = sorted({k for it in items for k in it.metrics if k.split(",")[0] == first_metric})
    return f"{first_metric},none" if f"{first_metric},none" in keys else (keys[0] if keys else f"{first_metric},none")


def _expected_fewshot(suite: Suite, bench: Benchmark, task: str) -> int | None:
    """The few-shot count a run of this suite uses for `task` (as `harness.TaskLoader` sets it): the
    benchmark's count, except for tasks whose own YAML says 0. None: any stored count is accepted."""
    if bench.num_fewshot is None:
        return None
    return 0 if declared_fewshot(tuple(str(p) for p in suite.task_paths()), task) == 0 else bench.num_fewshot


def _pick_checks(store: Store, rows: list[CheckRow], models: list[PlanModel], plan: Any, fewshot: int | None,
                 chat_template: bool = False) -> dict[str, CheckRow]:
    """For each model, the stored check to read: right few-shot count, dtype and chat-template setting; among
    those the one covering the most plan models (so pairs share one configuration), then the newest."""
    usable = [c for c in rows
              if (fewshot is None or c.config.get("num_fewshot") == fewshot)
              and bool(c.config.get("apply_chat_template")) == chat_template]
    has = {(m.name, c.hash): store.count_items(m.fingerprint, c.hash) > 0 for m in models for c in usable}
    coverage = {c.hash: sum(has[(m.name, c.hash)] for m in models) for c in usable}
    order = {c.hash: i for i, c in enumerate(usable)}
    picked: dict[str, CheckRow] = {}
    for m in models:
        # The dtype the model is loaded in, and stored checks whose dtype loads it in that (an earlier
        # version stored `auto` as written): mergeval.dtypes.resolved_dtype.
        dtype = resolved_dtype(m.ref, plan.dtype_of(m.spec))
        mine = [c for c in usable
                if has[(m.name, c.hash)] and resolved_dtype(m.ref, str(c.config.get("dtype", dtype))) == dtype]
        if mine:
            picked[m.name] = max(mine, key=lambda c: (coverage[c.hash], order[c.hash]))
    return picked


def _read_part(store: Store, model: PlanModel, row: CheckRow, bench: Benchmark, task: str,
               limit: float | None) -> _TaskPart:
    targets, n_target = _targets(store, row.hash, limit)
    items = store.items(model.fingerprint, row.hash)
    metric_key = _metric_key(store, row, bench, items)
    metric = metric_key.split(",")[0]
    score = aggregate_items(items, row.config, metric_key, targets)
    kept = [it for it in items if targets is None or it.item_id in targets]
    if bench.normalized:  # leaderboard v2: per-item scores on the normalised scale
        values = item_scores(bench, task, kept)
    elif row.config.get("aggregations", {}).get(metric, "mean") == "mean":
        values = {it.item_id: float(it.metrics[metric_key]) for it in kept
                  if isinstance(it.metrics.get(metric_key), (int, float))}
    else:  # an aggregation that is not a mean of item scores: no per-item pairs
        values = {}
    higher = bool(row.config.get("higher_is_better", {}).get(metric, True))
    return _TaskPart(score, values, n_target, metric_key, higher)


def _task_provenance(store: Store, model: PlanModel, row: CheckRow, limit: Any, metric_key: str) -> dict[str, Any]:
    runs = [r for r in store.runs(model.fingerprint, row.hash) if r.status == "done"]
    prov = runs[-1].provenance if runs else {}
    return {"check": row.hash, "num_fewshot": row.config.get("num_fewshot"),
            "task_version": row.config.get("task_version"), "dtype": row.config.get("dtype"),
            "dataset": prov.get("dataset_source"), "lm_eval_version": prov.get("lm_eval_version"),
            "limit": limit, "metric_key": metric_key}


@dataclass
class _BenchmarkRead:
    per_model: dict[str, dict[str, _TaskPart]]  # model -> task -> its stored results
    metric_key: str
    higher_is_better: bool = True


def _read_benchmark(config: LmEvalCheckConfig, ctx: CheckContext, suite: Suite, bench: Benchmark,
                    rows: dict[str, list[CheckRow]], provenance: dict[str, Any]) -> _BenchmarkRead:
    read = _BenchmarkRead({m.name: {} for m in ctx.models}, bench.metric_key)
    for task in bench.tasks:
        fewshot = _expected_fewshot(suite, bench, task)
        picked = _pick_checks(ctx.store, rows.get(task, []), ctx.models, ctx.plan, fewshot, config.chat_template)
        for m in ctx.models:
            row = picked.get(m.name)
            if row is None:
                continue
            part = _read_part(ctx.store, m, row, bench, task, config.limit)
            read.per_model[m.name][task] = part
            read.metric_key, read.higher_is_better = part.metric_key, part.higher_is_better
            if task not in provenance:
                provenance[task] = _task_provenance(ctx.store, m, row, config.limit, part.metric_key)
    return read


def _gated_reason(config: LmEvalCheckConfig, ctx: CheckContext, suite: Suite, bench: Benchmark,
                  per_model: dict[str, dict[str, _TaskPart]]) -> str | None:
    """Why a gated benchmark (GPQA) has no results for any model (None when some model has some)."""
    if not bench.gated_dataset or any(parts for parts in per_model.values()):
        return None
    stored = ctx.store.cache_get(NOT_EVALUATED, f"{suite.name}/{bench.name}") or {}
    return stored.get("reason") or gated_reason(bench, check_data_dir(config, ctx.env))


def _task_mean(scores: list[TaskScore]) -> tuple[float, float | None]:
    """The unweighted mean over tasks (MMLU: of subjects) x100, and its stderr."""
    value = 100 * statistics.fmean(s.value for s in scores)
    if not all(s.stderr is not None for s in scores):
        return value, None
    return value, 100 * math.sqrt(sum(s.stderr**2 for s in scores)) / len(scores)


def _complete(bench: Benchmark, parts: dict[str, _TaskPart]) -> bool:
    return all(t in parts and parts[t].score.value is not None for t in bench.tasks)


def _model_score(bench: Benchmark, parts: dict[str, _TaskPart], n_target: int, reason: str | None) -> ScoreData:
    """One model's benchmark score from its task parts: the mean over tasks; for a normalised benchmark
    (leaderboard v2) the leaderboard's normalised score, with the raw beside it."""
    scores = [parts[t].score for t in bench.tasks if t in parts]
    value = stderr = raw = None
    v2_tasks: dict[str, Any] = {}
    if _complete(bench, parts) and bench.normalized:
        v2 = score_parts(bench, {t: parts[t].score for t in bench.tasks})
        value, stderr, raw, v2_tasks = v2["normalized"], v2["stderr"], v2["raw"], v2["tasks"]
    elif _complete(bench, parts):
        value, stderr = _task_mean(scores)
    multi = len(bench.tasks) > 1
    items: dict[str, float] = {}
    strata: dict[str, str] | None = {} if multi else None
    for t in bench.tasks:
        for item_id, v in (parts[t].items if t in parts else {}).items():
            key = f"{t}/{item_id}" if multi else item_id
            items[key] = v
            if strata is not None:
                strata[key] = t
    tasks = {t: {"value": 100 * parts[t].score.value if t in parts and parts[t].score.value is not None else None,
                 "n": parts[t].score.n if t in parts else 0, "group": bench.group_of(t)} for t in bench.tasks}
    for t, info in v2_tasks.items():  # normalised per-task values, the raw ones beside them
        tasks[t].update(value=info["value"], raw=info["raw"])
    return ScoreData(value=value, stderr=stderr, n=sum(s.n for s in scores), n_target=n_target, items=items,
                     strata=strata, tasks=tasks, raw=raw, reason=reason)


def _missing(model: PlanModel, label: str, bench: Benchmark, parts: dict[str, _TaskPart], score: ScoreData,
             reason: str | None) -> Missing | None:
    if score.n == 0:
        why = "an endpoint cannot run lm-eval tasks" if model.ref.kind == "endpoint" else "not evaluated yet"
        return Missing(model.name, label, bench.name, reason or why)
    if _complete(bench, parts) and score.n >= score.n_target:
        return None
    done = sum(1 for t in bench.tasks if t in parts)
    multi = len(bench.tasks) > 1
    detail = f"incomplete: {score.n} of {score.n_target} items" + (
        f" ({done} of {len(bench.tasks)} tasks)" if multi and done < len(bench.tasks) else "")
    return Missing(model.name, label, bench.name, detail)


def _fill_scores(data: CheckData, bench: Benchmark, per_model: dict[str, dict[str, _TaskPart]],
                 ctx: CheckContext, reason: str | None = None) -> None:
    """Per-model benchmark scores and what is missing. A task's target size: what the limit covers, or
    (unknown) the most items any model has."""
    n_target = 0
    for task in bench.tasks:
        known = [p[task].n_target for p in per_model.values() if task in p and p[task].n_target]
        counts = [p[task].score.n for p in per_model.values() if task in p]
        n_target += max(known) if known else max(counts, default=0)
    for m in ctx.models:
        score = _model_score(bench, per_model[m.name], n_target, reason)
        data.scores.setdefault(m.name, {})[bench.name] = score
        missing = _missing(m, data.check, bench, per_model[m.name], score, reason)
        if missing is not None:
            data.missing.append(missing)


def collect_suite(config: LmEvalCheckConfig, ctx: CheckContext) -> CheckData:
    suite = suite_of(config, Path(ctx.plan.base_dir))
    data = CheckData(check=config.label, type=config.type, limit=config.limit)
    if not isinstance(config, LmEvalConfig):
        data.suite = {"name": suite.name, "label": suite.label.format(lm_eval_version=lm_eval_version()),
                      "note": suite.note}
    rows: dict[str, list[CheckRow]] = {}
    for row in ctx.store.checks(CHECK_KIND):
        rows.setdefault(row.name, []).append(row)
    provenance: dict[str, Any] = {}
    for bench in suite.benchmarks:
        read = _read_benchmark(config, ctx, suite, bench, rows, provenance)
        reason = _gated_reason(config, ctx, suite, bench, read.per_model)
        # a gated benchmark (GPQA) no model has is left out of the Average, which says so
        data.benchmarks.append(benchmark_spec(
            bench, config, metric_key=read.metric_key, higher_is_better=read.higher_is_better,
            in_average=not isinstance(config, LmEvalConfig) and reason is None))
        _fill_scores(data, bench, read.per_model, ctx, reason)
    average = average_spec(config, Path(ctx.plan.base_dir))
    if average is not None:  # the Average's quality bands, when the check covers the whole suite
        data.fact_specs.append(average)
    if suite.normalized and data.suite is not None:
        skipped = [b.display for b, spec in zip(suite.benchmarks, data.benchmarks, strict=True) if not spec.in_average]
        data.suite["average_note"] = average_note([b.name for b in suite.benchmarks], skipped)
    data.provenance = {"tasks": provenance, "suite": suite.name, "limit": config.limit,
                       "config": config.model_dump(mode="json")}
    return data


__all__ = [
    "LEGACY_NAMESPACE",
    "NOT_EVALUATED",
    "TASK_FACTS",
    "LeaderboardCheck",
    "LeaderboardConfig",
    "LmEngine",
    "LmEvalCheck",
    "LmEvalConfig",
    "LmEvalOptions",
    "PreparedSuite",
    "SuiteCheck",
    "SuiteConfig",
    "adopt_legacy_items",
    "average_spec",
    "benchmark_spec",
    "check_data_dir",
    "collect_suite",
    "lm_eval_task",
    "prepare_check",
    "prepared_task",
    "require_chat_template",
    "suite_of",
]
