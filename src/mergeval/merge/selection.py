"""Honest selection: pick the winner of a sweep on some items, report it on others.

Choosing the best of N candidates on a benchmark and then quoting its score on that same benchmark overstates
it: with many candidates, one of them is lucky on those items. So every task's items are split, by a hash of
(seed, task, item id), into a *selection* part that ranks the candidates and a *report* part that the winner's
numbers, and the significance tests (winner vs runner-up, winner vs best parent), are computed on. The split
is deterministic and the same for every model, so all comparisons stay paired.

Scores here are on each benchmark's report scale (0-100 for accuracies, like `mergeval.evaluate`): a
benchmark's score is the mean over its tasks of the task's mean item score; an objective is the mean of the
chosen benchmarks' scores (which share a direction and a scale).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mergeval.analysis.stats import compare_many, paired_comparison
from mergeval.errors import UserError

# (benchmark, task, item id): one scored item of one task
ItemKey = tuple[str, str, str]
Split = str  # "selection" | "report" | "all"


def in_selection(task: str, item_id: str, *, fraction: float, seed: int = 0) -> bool:
    """Whether an item belongs to the selection part (deterministic; about `fraction` of each task)."""
    if fraction >= 1.0:
        return True
    digest = hashlib.sha256(f"mergeval-selection\0{seed}\0{task}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class SplitPlan:
    """Which items select and which report. `fraction` 1.0 means the same items do both (flagged)."""

    fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise UserError(
                f"selection fraction must be in (0, 1], got {self.fraction}. 0.5 is the usual choice."
            )

    @property
    def same_items(self) -> bool:
        return self.fraction >= 1.0

    def keep(self, key: ItemKey, split: Split) -> bool:
        if split == "all" or self.same_items:
            return True
        chosen = in_selection(key[1], key[2], fraction=self.fraction, seed=self.seed)
        return chosen if split == "selection" else not chosen

    def subset(self, scores: Mapping[ItemKey, float], split: Split) -> dict[ItemKey, float]:
        return {k: v for k, v in scores.items() if self.keep(k, split)}


def benchmark_scores(scores: Mapping[ItemKey, float], scales: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per benchmark: the mean over its tasks of the task's mean item score, times the benchmark's scale (its
    MetricSpec's: 100 for 0/1 accuracies, 1 for scores already on their report scale)."""
    by_task: dict[tuple[str, str], list[float]] = {}
    for (bench, task, _), value in scores.items():
        by_task.setdefault((bench, task), []).append(value)
    by_bench: dict[str, list[float]] = {}
    for (bench, _), values in by_task.items():
        by_bench.setdefault(bench, []).append(statistics.fmean(values))
    scales = scales or {}
    return {bench: scales.get(bench, 100.0) * statistics.fmean(means) for bench, means in by_bench.items()}


def objective_value(scores: Mapping[ItemKey, float], benchmarks: Sequence[str],
                    scales: Mapping[str, float] | None = None) -> float | None:
    per_bench = benchmark_scores(scores, scales)
    if any(b not in per_bench for b in benchmarks):
        return None
    return statistics.fmean(per_bench[b] for b in benchmarks)


def pareto_front(points: Mapping[str, Mapping[str, float]]) -> set[str]:
    """Names whose scores no other point matches or beats on every benchmark while beating on one."""
    front = set()
    for name, mine in points.items():
        dominated = False
        for other, theirs in points.items():
            if other == name:
                continue
            keys = mine.keys()
            if all(theirs[k] >= mine[k] for k in keys) and any(theirs[k] > mine[k] for k in keys):
                dominated = True
                break
        if not dominated:
            front.add(name)
    return front


def paired_objective(
    a: Mapping[ItemKey, float],
    b: Mapping[ItemKey, float],
    benchmarks: Sequence[str],
    *,
    alpha: float = 0.05,
    seed: int = 0,
):
    """Paired comparison of two models' objective (macro mean over benchmarks) on the same items.

    Items are stratified by benchmark with a macro mean, so the compared statistic is exactly the objective
    when every benchmark has one task (several tasks in one benchmark are pooled inside it)."""
    keep = set(benchmarks)
    a_items = {f"{k[1]}/{k[2]}": v for k, v in a.items() if k[0] in keep}
    b_items = {f"{k[1]}/{k[2]}": v for k, v in b.items() if k[0] in keep}
    strata = {f"{k[1]}/{k[2]}": k[0] for k in a if k[0] in keep}
    if not a_items or not b_items:
        return None
    strata_arg = strata if len(keep) > 1 else None
    return paired_comparison(a_items, b_items, strata=strata_arg, alpha=alpha, seed=seed)


def per_benchmark_comparison(
    a: Mapping[ItemKey, float], b: Mapping[ItemKey, float], *, alpha: float = 0.05, seed: int = 0
):
    """`compare_many` over benchmarks (Holm-adjusted): where is a better or worse than b?"""
    def by_bench(scores: Mapping[ItemKey, float]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for (bench, task, item), value in scores.items():
            out.setdefault(bench, {})[f"{task}/{item}"] = value
        return out

    return compare_many(by_bench(a), by_bench(b), alpha=alpha, seed=seed)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
