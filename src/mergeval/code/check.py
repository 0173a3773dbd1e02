"""HumanEval in the results store and in plans: the `humaneval` check.

Three library calls, then the plan check type that uses them:

  run_humaneval(store, ref, config)              generate completions for the items the store lacks, run
                                                 each in the sandbox and store it as soon as it is scored
  import_samples(store, ref_or_name, path, config)  score an existing human-eval / FastChat samples.jsonl
                                                 and store it (the model may be given by name only)
  humaneval_scores(store, ref, config)           pass@k and per-problem scores, read from the store only

What is stored: one item per (problem, sample index), item id `HumanEval/0#0`, metrics `{"passed": 0|1}`,
data `{completion, status, detail, isolation, wall_time_s}`. The check's identity (its hash) is every
setting that can change an outcome: the problem set (a hash of its content), the generation settings (n,
temperature, top_p, seed, max_new_tokens, stop sequences, prompt style), the dtype, and the sandbox's CPU,
wall-clock and memory limits. `limit` (the first N problems) is not part of it: a run with a larger limit
computes only the problems a smaller one did not. docs/humaneval.md has the details.

The per-problem score used for the paired statistics is the fraction of the problem's samples that pass,
which is the unbiased pass@1 estimate for that problem; its mean over problems is pass@1.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import Field, model_validator

from mergeval.code.evaluate import pass_at_k
from mergeval.code.generate import generate_completions
from mergeval.code.problems import STOP_SEQUENCES, load_problems
from mergeval.code.samples import Sample, read_samples_jsonl, write_samples_jsonl
from mergeval.code.sandbox import ExecResult, SandboxLimits, run_sample, sandbox_isolation
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
from mergeval.models import ModelRef, fingerprint_text
from mergeval.plan import CheckConfig, Plan
from mergeval.store import CheckRow, ItemRow, Store

if TYPE_CHECKING:
    from mergeval.harness import TaskProgress

CHECK_KIND = "humaneval"
CHECK_VERSION = 1
# How the model is prompted (generate.py): the raw HumanEval prompt, continued with no chat template.
PROMPT_STYLE = "raw-prompt-continuation"
PASS_AT_K = (1, 10, 100)  # the k reported (and k = n), as far as every problem has at least k samples
_DETAIL_CHARS = 500  # the stored end of stderr; enough for the exception line
_WRITE_BATCH = 16  # items per store transaction while scoring
_WRITE_EVERY_S = 2.0  # ... or whatever is finished after this long


# -- configuration and identity ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HumanEvalConfig:
    """How to run HumanEval. Defaults: greedy pass@1 on the 164 bundled problems, the sandbox's defaults.

    `limit` takes the first N problems of the problem file. `problems` is a human-eval style .jsonl(.gz)
    (default: the file bundled with human-eval). `batch_size` and `workers` (parallel sandbox runs, default
    the CPU count) change speed only; `isolation` and `python` choose how the sandbox runs (recorded per
    sample, not part of the check's identity).
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 0
    limit: int | None = None
    problems: str | None = None
    batch_size: int = 8
    workers: int | None = None
    cpu_timeout_s: float = 3.0
    wall_timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    isolation: Literal["auto", "namespaces", "user-namespaces", "uid", "process"] = "auto"
    python: str | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UserError(f"n (samples per problem) must be at least 1, got {self.n}.")
        if self.temperature < 0:
            raise UserError(f"temperature must be 0 (greedy) or positive, got {self.temperature}.")
        if self.temperature == 0 and self.n > 1:
            raise UserError(
                f"n={self.n} greedy samples would all be the same; use n=1 for greedy pass@1, or a "
                "temperature > 0 (e.g. 0.8) to sample for pass@k."
            )
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit must be a number of problems (at least 1), got {self.limit}.")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise UserError("max_new_tokens and batch_size must be at least 1.")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"workers must be at least 1, got {self.workers}.")
        # The sandbox validates its own limits (positive, memory large enough for Python).
        self.sandbox_limits()

    def sandbox_limits(self, hidden_paths: Sequence[str] = ()) -> SandboxLimits:
        return SandboxLimits(
            wall_timeout_s=self.wall_timeout_s,
            cpu_timeout_s=self.cpu_timeout_s,
            memory_bytes=self.memory_bytes,
            isolation=self.isolation,
            hidden_paths=tuple(hidden_paths),
            python=self.python,
        )


@dataclass(frozen=True)
class CheckIdentity:
    """A HumanEval check as the store knows it: the config dict and its hash."""

    hash: str
    config: dict[str, Any]


def _stable_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]


def problem_set_hash(problems: Mapping[str, dict]) -> str:
    """A hash of the problems' content (task ids, prompts, tests, entry points), not of the file's bytes, so
    the same problems in a .jsonl and a .jsonl.gz are the same problem set."""
    fields = ("prompt", "test", "entry_point")
    return _stable_hash([[task_id, *(problem[f] for f in fields)] for task_id, problem in problems.items()])


def _common_config(config: HumanEvalConfig, problems: Mapping[str, dict]) -> dict[str, Any]:
    return {
        "engine": CHECK_KIND,
        "version": CHECK_VERSION,
        "problems": {"sha256": problem_set_hash(problems), "count": len(problems)},
        "sandbox": {
            "cpu_timeout_s": config.cpu_timeout_s,
            "wall_timeout_s": config.wall_timeout_s,
            "memory_bytes": config.memory_bytes,
        },
    }


def generated_check(config: HumanEvalConfig, dtype: str, problems: Mapping[str, dict]) -> CheckIdentity:
    """The identity of HumanEval generated by the model itself with `config`.

    Greedy decoding ignores top_p and the seed, so they enter the hash only when sampling.
    """
    sampling = config.temperature > 0
    check = _common_config(config, problems) | {
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
    return CheckIdentity(_stable_hash(check), check)


def samples_hash(samples: Sequence[Sample]) -> str:
    """A hash of a samples file's content (task ids and completions, in order), not of its bytes."""
    return _stable_hash([[s.task_id, s.completion] for s in samples])


def imported_check(
    config: HumanEvalConfig, problems: Mapping[str, dict], samples: Sequence[Sample]
) -> CheckIdentity:
    """The identity of HumanEval scored from a samples file: the file's content replaces the generation
    settings (which the file does not record)."""
    counts = _sample_counts(samples)
    uniform = set(counts.values())
    check = _common_config(config, problems) | {
        "source": "samples-file",
        "samples": {
            "sha256": samples_hash(samples),
            # what "complete" means for each problem when the file is not at hand (compare from the store)
            "per_problem": uniform.pop() if len(uniform) == 1 else counts,
        },
    }
    return CheckIdentity(_stable_hash(check), check)


def _sample_counts(samples: Sequence[Sample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.task_id] = counts.get(s.task_id, 0) + 1
    return counts


def item_id(task_id: str, index: int) -> str:
    """`HumanEval/0`, 0 -> `HumanEval/0#0`."""
    return f"{task_id}#{index}"


def split_item_id(item: str) -> tuple[str, int]:
    task_id, _, index = item.rpartition("#")
    return task_id, int(index)


def selected_problems(config: HumanEvalConfig) -> tuple[dict[str, dict], list[str]]:
    """(every problem of the problem set, the task ids `limit` covers: the first N in file order)."""
    problems = load_problems(config.problems)
    task_ids = list(problems)
    return problems, task_ids[: config.limit] if config.limit else task_ids


def name_fingerprint(name: str, samples: Sequence[Sample]) -> str:
    """The fingerprint of a model known only by name (its samples came from elsewhere): derived from the name
    and the samples' content, so another file for the same name is another model entry."""
    return "samples-" + fingerprint_text("humaneval-samples", name, samples_hash(samples))


# -- running and storing -----------------------------------------------------------------------------------


class _SandboxWriter:
    """Scores samples on worker threads and stores each result shortly after it finishes.

    SQLite connections belong to the thread that opened them, so the workers only run the sandbox and hand
    finished futures back through a queue; the results are written from the calling thread, in small
    batches, whenever it calls `submit` or `finish`. A sample whose sandbox could not even start (status
    "error") is not stored, so a later run retries it.
    """

    def __init__(self, store: Store, fingerprint: str, check_hash: str, run_id: int, limits: SandboxLimits,
                 workers: int | None, progress: TaskProgress | None):
        self._store, self._fingerprint, self._check_hash, self._run_id = store, fingerprint, check_hash, run_id
        self._limits = limits
        self._progress = progress
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
        self._pending: dict[Future, tuple[str, str]] = {}  # future -> (item id, completion)
        self._done: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self._finished: list[tuple[str, str, ExecResult]] = []
        self._last_write = time.monotonic()
        self.stored = 0
        self.errors: list[str] = []

    def submit(self, item: str, problem: dict, completion: str) -> None:
        future = self._pool.submit(run_sample, problem, completion, self._limits)
        self._pending[future] = (item, completion)
        future.add_done_callback(self._done.put)
        self._collect(block=False)

    def finish(self) -> None:
        """Wait for every submitted sample and store it."""
        while self._pending:
            self._collect(block=True)
        self._write()

    def close(self) -> None:
        """Stop: drop samples not started yet, wait for the running ones, store what finished."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._collect(block=False, force_write=True)

    def _collect(self, *, block: bool, force_write: bool = False) -> None:
        """Move finished samples from the queue to the next batch; write the batch when it is due."""
        try:
            if block:
                self._take(self._done.get(timeout=_WRITE_EVERY_S))
            while True:
                self._take(self._done.get_nowait())
        except queue.Empty:
            pass
        due = time.monotonic() - self._last_write >= _WRITE_EVERY_S
        if len(self._finished) >= _WRITE_BATCH or ((due or force_write) and self._finished):
            self._write()

    def _take(self, future: Future) -> None:
        item, completion = self._pending.pop(future)
        if not future.cancelled():
            self._finished.append((item, completion, future.result()))  # re-raises a worker's exception

    def _write(self) -> None:
        batch, self._finished = self._finished, []
        self._last_write = time.monotonic()
        rows = []
        for item, completion, result in batch:
            if result.status == "error":
                self.errors.append(f"{item}: {result.detail}")
                continue
            rows.append(_item_row(item, completion, result))
        if rows:
            self.stored += self._store.add_items(self._fingerprint, self._check_hash, self._run_id, rows)
        if self._progress is not None and batch:
            self._progress.advance(len(batch))


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


def _hidden_paths(store: Store) -> tuple[str, ...]:
    # Under the namespace modes the sandboxed program then cannot see the results (or anything next to them).
    return (str(store.path.resolve().parent),)


def _provenance(config: HumanEvalConfig, isolation: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return {
        "human_eval_version": installed("human-eval") or installed("human_eval"),
        "isolation": isolation,
        "workers": config.workers,
        "limit": config.limit,
        "problems_file": config.problems or "human-eval bundled HumanEval.jsonl.gz",
        **extra,
    }


def _scored_run(store: Store, ref: ModelRef, identity: CheckIdentity, config: HumanEvalConfig, *,
                label: str, total: int, provenance: Mapping[str, Any], progress: TaskProgress | None,
                submit_all: Callable[[_SandboxWriter], None]) -> int:
    """What run and import share: start a run, let `submit_all` hand samples to the sandbox, store the
    results as they finish, finish the run (also when interrupted). Returns the number of items stored."""
    limits = config.sandbox_limits(_hidden_paths(store))
    isolation = sandbox_isolation(limits)  # fails with a clear message before any model is loaded
    run_id = store.start_run(ref.fingerprint, identity.hash, _provenance(config, isolation, provenance))
    writer = _SandboxWriter(store, ref.fingerprint, identity.hash, run_id, limits, config.workers, progress)
    if progress is not None:
        progress.start(ref.name, label, total)
    status = "failed"
    try:
        submit_all(writer)
        writer.finish()
        status = "done" if not writer.errors else "incomplete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            writer.close()  # a second Ctrl-C while it waits must not leave the run marked "running"
        finally:
            store.finish_run(run_id, status=status)
            if progress is not None:
                progress.done()
    if writer.errors:
        raise UserError(
            f"{len(writer.errors)} HumanEval samples could not be run because the sandbox failed (first: "
            f"{writer.errors[0]}); they were not stored. Fix the sandbox (see docs/humaneval.md) and run again "
            "to score just those."
        )
    return writer.stored


def run_humaneval(
    store: Store,
    ref: ModelRef,
    config: HumanEvalConfig | None = None,
    *,
    progress: TaskProgress | None = None,
) -> int:
    """Generate and score the HumanEval samples of `ref` that the store lacks; return how many were stored.

    Completions are generated problem by problem (batched) and each is handed to the sandbox as soon as it
    exists; results are stored as they finish, so an interrupted run keeps what it scored and the next run
    computes only the missing items. The model is loaded only when something is missing.
    """
    config = config or HumanEvalConfig()
    if ref.path is None and ref.model_object is None:
        raise UserError(f"{ref.name} has no local weights ({ref.kind}), so it cannot generate completions here. "
                        "Score its completions with import_samples (mergeval humaneval --import-samples).")
    problems, task_ids = selected_problems(config)
    identity = generated_check(config, ref.dtype, problems)
    _register(store, ref, identity)
    have = store.item_ids(ref.fingerprint, identity.hash)
    missing = [item_id(t, i) for t in task_ids for i in range(config.n) if item_id(t, i) not in have]
    if not missing:
        return 0
    import torch
    import transformers

    from mergeval.models import load_hf

    missing_tasks = {split_item_id(item)[0] for item in missing}
    to_generate = {t: problems[t] for t in task_ids if t in missing_tasks}

    def generate(writer: _SandboxWriter) -> None:
        def on_completion(task_id: str, index: int, completion: str) -> None:
            item = item_id(task_id, index)
            if item not in have:  # with sampling, a problem's stored samples are generated again (seeded)
                writer.submit(item, problems[task_id], completion)

        generate_completions(
            load_hf(ref), to_generate, n=config.n, temperature=config.temperature,
            max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, seed=config.seed,
            top_p=config.top_p, on_completion=on_completion,
        )

    provenance = {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "dtype": ref.dtype,
        "device": ref.device or "cpu",
        "batch_size": config.batch_size,
    }
    return _scored_run(store, ref, identity, config, label=CHECK_KIND, total=len(missing),
                       provenance=provenance, progress=progress, submit_all=generate)


class ImportedSamples(NamedTuple):
    ref: ModelRef  # the model the samples were stored under (for a name only: a name-derived fingerprint)
    stored: int  # items scored now (0 when the store had them all)


def import_samples(
    store: Store,
    ref_or_name: ModelRef | str,
    samples_jsonl: str | Path,
    config: HumanEvalConfig | None = None,
    *,
    progress: TaskProgress | None = None,
) -> ImportedSamples:
    """Score a human-eval / FastChat samples file (one JSON line per sample: task_id, completion) and store it.

    `ref_or_name` is the model the samples belong to: a resolved ModelRef (its fingerprint is used), or just a
    name (e.g. results from another machine): then a model entry of kind "samples" is created, named and
    referenced by that name, with the fingerprint `name_fingerprint(name, samples)`. The n-th sample of a task
    in the file is item `task#n`. The problems `config.limit` covers that the file lacks stay missing.
    """
    config = config or HumanEvalConfig()
    samples = read_samples_jsonl(samples_jsonl)
    if not samples:
        raise UserError(f"Samples file {samples_jsonl} holds no samples.")
    problems, task_ids = selected_problems(config)
    unknown = sorted({s.task_id for s in samples} - set(problems))
    if unknown:
        raise UserError(
            f"{len(unknown)} task ids in {samples_jsonl} are not problems of the problem set (first: "
            f"{unknown[0]!r}); were the samples made for another problem file? Pass it with --problems."
        )
    if isinstance(ref_or_name, ModelRef):
        ref = ref_or_name
    else:
        name = str(ref_or_name).strip()
        if not name:
            raise UserError("Give the model a name (--model-name NAME) to store its imported samples under.")
        ref = ModelRef(reference=name, kind="samples", name=name, fingerprint=name_fingerprint(name, samples),
                       metadata={"samples_file": Path(samples_jsonl).name, "samples_sha256": samples_hash(samples)})
    identity = imported_check(config, problems, samples)
    _register(store, ref, identity)
    have = store.item_ids(ref.fingerprint, identity.hash)
    selected = set(task_ids)
    todo: list[tuple[str, str]] = []  # (item id, completion)
    counts: dict[str, int] = {}
    for sample in samples:
        index = counts.get(sample.task_id, 0)
        counts[sample.task_id] = index + 1
        item = item_id(sample.task_id, index)
        if sample.task_id in selected and item not in have:
            todo.append((item, sample.completion))
    if not todo:
        return ImportedSamples(ref, 0)

    def submit_all(writer: _SandboxWriter) -> None:
        for item, completion in todo:
            writer.submit(item, problems[split_item_id(item)[0]], completion)

    provenance = {"samples_file": str(samples_jsonl), "samples_sha256": identity.config["samples"]["sha256"]}
    stored = _scored_run(store, ref, identity, config, label="humaneval (samples)", total=len(todo),
                         provenance=provenance, progress=progress, submit_all=submit_all)
    return ImportedSamples(ref, stored)


def _register(store: Store, ref: ModelRef, identity: CheckIdentity) -> None:
    store.upsert_model(ref.fingerprint, name=ref.name, reference=ref.reference, kind=ref.kind,
                       metadata=ref.describe())
    store.upsert_check(identity.hash, kind=CHECK_KIND, name=CHECK_KIND, config=identity.config)


# -- reading back ------------------------------------------------------------------------------------------


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
        import statistics

        return statistics.stdev(values) / len(values) ** 0.5

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "check": self.check_hash,
            "pass_at_k": {f"pass@{k}": v for k, v in self.pass_at_k.items()},
            "problems": self.n_problems,
            "problems_target": self.n_target,
            "samples": self.n_items,
            "isolation": self.isolation,
            "statuses": self.statuses,
            "per_problem": self.per_problem,
        }


def summarize(store: Store, fingerprint: str, model: str, check: CheckRow | CheckIdentity,
              task_ids: Sequence[str]) -> HumanEvalSummary:
    """Read the stored items of one (model, HumanEval check) over `task_ids` into a summary."""
    wanted = set(task_ids)
    by_task: dict[str, list[float]] = {}
    isolation: set[str] = set()
    statuses: dict[str, int] = {}
    for row in store.items(fingerprint, check.hash, with_data=True):
        task_id, _ = split_item_id(row.item_id)
        if task_id not in wanted:
            continue
        by_task.setdefault(task_id, []).append(float(row.metrics.get("passed", 0.0)))
        isolation.add(str(row.data.get("isolation", "")))
        status = str(row.data.get("status", ""))
        statuses[status] = statuses.get(status, 0) + 1
    complete = {
        t: outcomes for t in task_ids if (outcomes := by_task.get(t)) and len(outcomes) >= _expected(check, t)
    }
    per_problem = {t: sum(outcomes) / len(outcomes) for t, outcomes in complete.items()}
    scores: dict[int, float] = {}
    if complete:
        n = [len(outcomes) for outcomes in complete.values()]
        c = [int(sum(outcomes)) for outcomes in complete.values()]
        ks = sorted({*PASS_AT_K, min(n)})
        scores = {k: pass_at_k(n, c, k) for k in ks if min(n) >= k}
    return HumanEvalSummary(
        model=model,
        fingerprint=fingerprint,
        check_hash=check.hash,
        pass_at_k=scores,
        per_problem=per_problem,
        samples_per_problem={t: len(outcomes) for t, outcomes in complete.items()},
        n_target=len(task_ids),
        n_items=sum(len(outcomes) for outcomes in by_task.values()),
        isolation=sorted(isolation - {""}),
        statuses=statuses,
    )


def _expected(check: CheckRow | CheckIdentity, task_id: str) -> int:
    """How many samples a problem needs to count as done under this check."""
    config = check.config
    if config.get("source") == "samples-file":
        per_problem = config["samples"]["per_problem"]
        return per_problem if isinstance(per_problem, int) else per_problem.get(task_id, 1)
    return int(config["generation"]["n"])


def humaneval_scores(
    store: Store, ref: ModelRef, config: HumanEvalConfig | None = None, *, samples: str | Path | None = None
) -> HumanEvalSummary:
    """pass@k and per-problem scores of `ref` from the store (nothing is run). With `samples`, the results
    imported from that samples file; otherwise the ones `run_humaneval(store, ref, config)` stores."""
    config = config or HumanEvalConfig()
    problems, task_ids = selected_problems(config)
    if samples is not None:
        identity = imported_check(config, problems, read_samples_jsonl(samples))
    else:
        identity = generated_check(config, ref.dtype, problems)
    return summarize(store, ref.fingerprint, ref.name, identity, task_ids)


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


def write_stored_samples(store: Store, summary: HumanEvalSummary, path: str | Path,
                         config: HumanEvalConfig | None = None) -> Path:
    """Write a model's stored samples (with their results) as a human-eval samples file."""
    _, task_ids = selected_problems(config or HumanEvalConfig())
    samples, results = stored_samples(store, summary.fingerprint, summary.check_hash, task_ids)
    return write_samples_jsonl(path, samples, results)


# -- the plan check type -----------------------------------------------------------------------------------


class HumanEvalCheck(CheckConfig):
    """`- type: humaneval` in a plan: pass@1 (and pass@k) of every model, compared problem by problem."""

    type: Literal["humaneval"] = "humaneval"
    models: Literal["all", "candidates"] | list[str] = Field("all", description="which models to evaluate")
    n: int = Field(1, ge=1, description="samples per problem (n > 1 needs temperature > 0)")
    temperature: float = Field(0.0, ge=0, description="0 = greedy (pass@1)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling, when temperature > 0")
    max_new_tokens: int = Field(512, ge=1)
    seed: int = 0
    limit: int | None = Field(None, ge=1, description="only the first N problems")
    problems: str | None = Field(None, description="a human-eval .jsonl(.gz) (default: the bundled 164)")
    batch_size: int | None = Field(None, ge=1, description="generation batch (default: settings.batch_size)")
    workers: int | None = Field(None, ge=1, description="parallel sandbox runs (default: the CPU count)")
    timeout: float = Field(3.0, gt=0, description="CPU seconds per sample")
    wall_timeout: float = Field(10.0, gt=0, description="wall-clock seconds per sample")
    memory_mb: int = Field(1024, ge=64, description="memory cap per sandboxed process, MiB")
    samples: dict[str, str] = Field(
        default_factory=dict, description="model name -> samples.jsonl to score instead of generating"
    )

    @model_validator(mode="after")
    def _greedy_is_one_sample(self) -> HumanEvalCheck:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"n={self.n} greedy samples would all be the same; use n: 1 for greedy pass@1, or set "
                "temperature (e.g. 0.8) to sample for pass@k"
            )
        return self


def library_config(check: HumanEvalCheck, plan: Plan) -> HumanEvalConfig:
    """The plan entry as a HumanEvalConfig (plan-relative paths resolved)."""
    return HumanEvalConfig(
        n=check.n,
        temperature=check.temperature,
        top_p=check.top_p,
        max_new_tokens=check.max_new_tokens,
        seed=check.seed,
        limit=check.limit,
        problems=str(plan.resolve_path(check.problems)) if check.problems else None,
        batch_size=check.batch_size or plan.settings.batch_size,
        workers=check.workers,
        cpu_timeout_s=check.timeout,
        wall_timeout_s=check.wall_timeout,
        memory_bytes=check.memory_mb << 20,
    )


def _provides(check: HumanEvalCheck, plan: Plan) -> Provides:
    names = {m.name for m in plan.models}
    named = (check.models if isinstance(check.models, list) else []) + list(check.samples)
    unknown = [n for n in named if n not in names]
    if unknown:
        raise UserError(
            f"the humaneval check names unknown model(s) {', '.join(unknown)}; use names from `models:`"
        )
    return Provides(benchmarks=[CHECK_KIND])


def _run(check: HumanEvalCheck, ctx: CheckContext) -> None:
    config = library_config(check, ctx.plan)
    for m in ctx.select(check.models):
        if m.name in check.samples:
            path = ctx.resolve_path(check.samples[m.name])
            if not path.is_file():
                raise UserError(
                    f"humaneval: the samples file for {m.name}, {check.samples[m.name]}, does not exist "
                    f"(looked in {path}); fix the path in the plan's `samples:`."
                )
            imported = import_samples(ctx.store, m.ref, path, config, progress=ctx.progress)
            if imported.stored:
                ctx.say(f"humaneval: scored {imported.stored} imported samples of {m.name}")
        elif m.runnable:
            run_humaneval(ctx.store, m.ref, config, progress=ctx.progress)
        else:
            ctx.say(f"humaneval: {m.name} has no local weights, skipped (give its samples in `samples:`)")


def _stored_import(ctx: CheckContext, m: PlanModel, config: HumanEvalConfig,
                   problems: Mapping[str, dict]) -> CheckRow | None:
    """Without the samples file at hand: the newest imported check with this problem set and sandbox that
    holds items of the model (results imported earlier, possibly on another machine)."""
    common = _common_config(config, problems)
    rows = [
        row for row in ctx.store.checks(CHECK_KIND)
        if row.config.get("source") == "samples-file"
        and all(row.config.get(key) == value for key, value in common.items())
        and ctx.store.count_items(m.fingerprint, row.hash)
    ]
    return rows[-1] if rows else None


def _collect(check: HumanEvalCheck, ctx: CheckContext) -> CheckData:
    config = library_config(check, ctx.plan)
    problems, task_ids = selected_problems(config)
    label = check.label
    data = CheckData(check=label, type=CHECK_KIND, limit=check.limit)
    data.benchmarks.append(
        BenchmarkInfo(name=CHECK_KIND, display="HumanEval", metric_key="pass@1", kind=CHECK_KIND, scale=100.0,
                      in_average=False, check=label)
    )
    per_model: dict[str, Any] = {}
    for m in ctx.select(check.models):
        identity: CheckRow | CheckIdentity | None
        if m.name in check.samples:
            path = ctx.resolve_path(check.samples[m.name])
            if path.is_file():
                identity = imported_check(config, problems, read_samples_jsonl(path))
            else:
                identity = _stored_import(ctx, m, config, problems)
        elif m.ref.kind == "samples":  # known only by imported samples (e.g. from another machine)
            identity = _stored_import(ctx, m, config, problems)
        else:
            identity = generated_check(config, ctx.plan.dtype_of(m.spec), problems)
        summary = summarize(ctx.store, m.fingerprint, m.name, identity, task_ids) if identity else None
        value = summary.pass_at_1 if summary else None
        data.scores.setdefault(m.name, {})[CHECK_KIND] = ScoreData(
            value=None if value is None else 100 * value,
            stderr=None if summary is None or summary.stderr is None else 100 * summary.stderr,
            n=summary.n_problems if summary else 0,
            n_target=len(task_ids),
            items=dict(summary.per_problem) if summary else {},
        )
        if summary is None or summary.n_problems == 0:
            why = (
                "an endpoint cannot generate here; give its samples in `samples:`"
                if m.ref.kind == "endpoint" else "not evaluated yet"
            )
            data.missing.append(Missing(m.name, label, CHECK_KIND, why))
        elif not summary.complete:
            data.missing.append(Missing(
                m.name, label, CHECK_KIND, f"incomplete: {summary.n_problems} of {summary.n_target} problems"
            ))
        if summary is not None:
            per_model[m.name] = {
                "check": summary.check_hash,
                "pass_at_k": {f"pass@{k}": v for k, v in summary.pass_at_k.items()},
                "isolation": summary.isolation,
            }
    data.provenance = {
        "config": check.model_dump(mode="json"),
        "problems": {"sha256": problem_set_hash(problems), "count": len(problems), "limit": check.limit},
        "prompt_style": PROMPT_STYLE,
        "models": per_model,
    }
    return data


register_check(
    CheckType(
        name=CHECK_KIND,
        config=HumanEvalCheck,
        run=_run,
        collect=_collect,
        provides=_provides,
        description="HumanEval pass@1 / pass@k, completions run in a sandbox",
        metrics=(CHECK_KIND,),
    )
)

__all__ = [
    "CHECK_KIND",
    "CheckIdentity",
    "HumanEvalCheck",
    "HumanEvalConfig",
    "HumanEvalSummary",
    "ImportedSamples",
    "generated_check",
    "humaneval_scores",
    "import_samples",
    "imported_check",
    "item_id",
    "library_config",
    "name_fingerprint",
    "problem_set_hash",
    "run_humaneval",
    "samples_hash",
    "selected_problems",
    "split_item_id",
    "stored_samples",
    "summarize",
    "write_stored_samples",
]
