"""The Open LLM Leaderboard v2 score normalisation, as pure functions over numbers.

The leaderboard rescales every raw score so that random guessing is 0 and a perfect score is 100
(huggingface/leaderboards, docs/source/en/open_llm_leaderboard/normalization.md):

    normalised = (raw - lower) / (1 - lower) x 100,   lower = 1 / num_choices  (0 for generative tasks),

and a raw score below `lower` is shown as 0. Benchmarks made of subtasks with different numbers of choices
(BBH, MuSR) are normalised per subtask first, then averaged; the others (GPQA, MMLU-Pro, MATH, IFEval) are
normalised once, on the benchmark's raw score. The per-subtask `num_choices` are data, in
`leaderboard_v2.yaml`, copied from the leaderboard's about.md.

Raw scores here are fractions (0-1, as lm-eval reports them); normalised scores are on 0-100.
Nothing here knows about lm-eval, stores or reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean


def lower_bound(num_choices: int) -> float:
    """The random-guess baseline: 1 / num_choices, or 0 for a generative task (num_choices 0)."""
    if num_choices < 0 or num_choices == 1:
        raise ValueError(f"num_choices must be 0 (generative) or at least 2, not {num_choices}")
    return 0.0 if num_choices == 0 else 1.0 / num_choices


def normalize(raw: float, num_choices: int) -> float:
    """A raw score (0-1) on the leaderboard's 0-100 scale: 0 = random guessing, below it clamped to 0."""
    lower = lower_bound(num_choices)
    if raw < lower:
        return 0.0
    return (raw - lower) / (1.0 - lower) * 100.0


def normalize_item(score: float, num_choices: int) -> float:
    """One item's score rescaled like `normalize` but NOT clamped (on 0-1 x 1/(1-lower)): the mean of the
    rescaled items of a task is its unclamped normalised score / 100. Paired comparisons use these, because
    the clamp is not linear and cannot be applied item by item."""
    lower = lower_bound(num_choices)
    return (score - lower) / (1.0 - lower)


def normalized_stderr(raw_stderr: float | None, num_choices: int) -> float | None:
    """The standard error (0-1 scale in, 0-100 out) of a normalised score, ignoring the clamp."""
    if raw_stderr is None:
        return None
    return raw_stderr / (1.0 - lower_bound(num_choices)) * 100.0


def mean_of_metrics(values: Sequence[float | None]) -> float | None:
    """A task's raw score read from several metrics (IFEval: the mean of prompt-level and instruction-level
    strict accuracy, the leaderboard's "IFEval" column); None if any is missing."""
    if not values or any(v is None for v in values):
        return None
    return fmean(values)  # type: ignore[arg-type]


def benchmark_normalized(
    raw_by_task: Mapping[str, float | None],
    num_choices: Mapping[str, int],
    *,
    per_task: bool,
    sizes: Mapping[str, int] | None = None,
) -> float | None:
    """A benchmark's normalised score (0-100) from its tasks' raw scores (0-1).

    per_task=True (BBH, MuSR): each task normalised with its own num_choices, then the plain mean.
    per_task=False (GPQA, MATH, MMLU-Pro, IFEval): the raw scores are pooled first (weighted by `sizes`
    when given: lm-eval's group score, weight_by_size; else the plain mean), then normalised once with the
    benchmark's num_choices (every task must have the same)."""
    if not raw_by_task or any(v is None for v in raw_by_task.values()):
        return None
    if per_task:
        return fmean(normalize(v, num_choices[t]) for t, v in raw_by_task.items())  # type: ignore[arg-type]
    counts = {num_choices[t] for t in raw_by_task}
    if len(counts) != 1:
        raise ValueError(f"tasks normalised together need one num_choices, got {sorted(counts)}")
    return normalize(pooled(raw_by_task, sizes), counts.pop())


def pooled(values: Mapping[str, float | None], sizes: Mapping[str, int] | None = None) -> float:
    """The size-weighted mean of task scores (the plain mean without sizes or when all sizes are 0)."""
    if sizes and sum(sizes.get(t, 0) for t in values) > 0:
        total = sum(sizes.get(t, 0) for t in values)
        return sum(v * sizes.get(t, 0) for t, v in values.items()) / total  # type: ignore[operator]
    return fmean(values.values())  # type: ignore[arg-type]


def benchmark_normalized_stderr(
    stderr_by_task: Mapping[str, float | None],
    num_choices: Mapping[str, int],
    *,
    per_task: bool,
    sizes: Mapping[str, int] | None = None,
) -> float | None:
    """The standard error (0-100) of `benchmark_normalized`, treating tasks as independent and ignoring
    the clamp; None when any task's standard error is unknown."""
    if not stderr_by_task or any(se is None for se in stderr_by_task.values()):
        return None
    scaled = {t: se / (1.0 - lower_bound(num_choices[t])) for t, se in stderr_by_task.items()}  # type: ignore
    if per_task or not sizes or sum(sizes.get(t, 0) for t in scaled) == 0:
        return math.sqrt(sum(se * se for se in scaled.values())) / len(scaled) * 100.0
    total = sum(sizes.get(t, 0) for t in scaled)
    return math.sqrt(sum((se * sizes.get(t, 0) / total) ** 2 for t, se in scaled.items())) * 100.0


def average(values: Iterable[float | None]) -> float | None:
    """The v2 Average: the plain mean of the benchmarks' normalised scores; None if any is missing."""
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return fmean(values)  # type: ignore[arg-type]
