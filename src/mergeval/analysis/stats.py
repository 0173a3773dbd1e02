"""Paired statistics on per-item scores: is model A really better than model B on this task?

All models answer the same items, so every comparison here is *paired*: it works on the per-item
differences ``a[i] - b[i]`` instead of two independent error bars (which would waste most of the
information, because items vary far more in difficulty than models do).

What is here, top to bottom:

* ``pair_scores``: align two models' per-item scores on their common item ids and count the rest.
* ``paired_bootstrap``: percentile CI and two-sided p-value of the mean difference, optionally
  stratified (resampling inside each stratum; macro or micro mean over strata).
* ``mcnemar_exact``: the exact McNemar test for 0/1 scores (a binomial test on the discordant pairs).
* ``paired_ttest``: the paired t-test the playbook asks for (``scipy.stats.ttest_rel`` semantics).
* ``minimum_detectable_difference``: the smallest true difference the current n detects with 80% power.
* ``holm``: Holm-Bonferroni adjustment across the tasks of one comparison.
* ``paired_comparison`` / ``compare_many``: everything above in one call per task / per task family.
* ``mean_ci_bootstrap`` / ``stderr``: one model's score with its uncertainty (report whiskers).

The methods, their assumptions and what "significant" means in mergeval are written up in
docs/statistics.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from mergeval.errors import UserError


def _scipy_stats():
    from scipy import stats

    return stats

ItemId = Hashable
StratifiedMean = Literal["macro", "micro"]
PrimaryTest = Literal["mcnemar", "bootstrap"]

DEFAULT_N_BOOT = 10_000
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8

# The bootstrap draws at most this many item indices at once (2**22 int64 indices = 32 MiB, plus as
# much again for the gathered scores), whatever the number of items or resamples.
_MAX_INDICES_PER_CHUNK = 1 << 22


# --------------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedScores:
    """Two models' scores on the items both of them have, in the same order.

    ``item_ids`` are sorted (by their string form) so that results depend only on the data, never on
    the order in which a store or a dict happened to return the rows.
    """

    item_ids: tuple[ItemId, ...]
    a: np.ndarray
    b: np.ndarray
    n_only_a: int  # items scored for a but not for b (excluded from the pairs)
    n_only_b: int  # items scored for b but not for a (excluded from the pairs)

    @property
    def n_paired(self) -> int:
        return len(self.item_ids)


def pair_scores(
    a: Mapping[ItemId, float] | ArrayLike,
    b: Mapping[ItemId, float] | ArrayLike,
    *,
    ids_a: Sequence[ItemId] | None = None,
    ids_b: Sequence[ItemId] | None = None,
) -> PairedScores:
    """Align two models' per-item scores on their common item ids.

    Each side is either a mapping ``item_id -> score`` or an array of scores with its ids given in
    ``ids_a`` / ``ids_b``. Items that only one model has are left out of the pairs and counted.
    """
    scores_a = _as_score_dict(a, ids_a, side="a")
    scores_b = _as_score_dict(b, ids_b, side="b")
    common = sorted(scores_a.keys() & scores_b.keys(), key=str)
    if not common:
        raise UserError(
            f"The two models have no scored item in common ({len(scores_a)} items for a, "
            f"{len(scores_b)} for b), so they cannot be compared. Check that both were evaluated on the "
            "same check (same task and configuration)."
        )
    return PairedScores(
        item_ids=tuple(common),
        a=np.array([scores_a[i] for i in common], dtype=np.float64),
        b=np.array([scores_b[i] for i in common], dtype=np.float64),
        n_only_a=len(scores_a) - len(common),
        n_only_b=len(scores_b) - len(common),
    )


def _as_score_dict(
    scores: Mapping[ItemId, float] | ArrayLike, ids: Sequence[ItemId] | None, *, side: str
) -> dict[ItemId, float]:
    if isinstance(scores, Mapping):
        if ids is not None:
            raise UserError(
                f"ids_{side} is only for array scores; scores for {side} are already keyed by id."
            )
        pairs = list(scores.items())
    else:
        values = np.asarray(scores, dtype=np.float64).ravel()
        if ids is None:
            raise UserError(f"Scores for {side} are an array: pass their item ids as ids_{side}=[...].")
        if len(ids) != len(values):
            raise UserError(f"ids_{side} has {len(ids)} ids but there are {len(values)} scores for {side}.")
        if len(set(ids)) != len(ids):
            raise UserError(f"ids_{side} contains duplicate item ids; each item must be scored once.")
        pairs = list(zip(ids, values.tolist()))
    result: dict[ItemId, float] = {}
    for item_id, score in pairs:
        value = float(score)
        if not math.isfinite(value):
            raise UserError(
                f"The score of item {item_id!r} for {side} is {value}; every score must be a finite number. "
                "Re-run the check for that item or drop it."
            )
        result[item_id] = value
    return result


# --------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic, its percentile bootstrap CI and (for differences) the two-sided bootstrap p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int


def paired_bootstrap(
    a: ArrayLike,
    b: ArrayLike,
    *,
    strata: Sequence[str] | None = None,
    stratified_mean: StratifiedMean = "macro",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> BootstrapResult:
    """Paired bootstrap of the mean difference ``a - b`` over aligned per-item scores.

    Items are resampled with replacement as pairs (one index picks both scores). With ``strata`` (one
    label per item, e.g. the MMLU subject) items are resampled inside their stratum, so every replicate
    keeps the stratum sizes, and the statistic is the unweighted mean of the per-stratum mean
    differences (``"macro"``, MMLU's headline) or the pooled mean over all items (``"micro"``).

    The CI is the percentile interval. The p-value inverts it: twice the smaller tail fraction of
    replicates on either side of 0, with the +1 correction so it is never 0, capped at 1. Hence
    ``p < alpha`` exactly when the ``1 - alpha`` percentile CI excludes 0 (up to quantile interpolation).
    """
    a_values = np.asarray(a, dtype=np.float64).ravel()
    b_values = np.asarray(b, dtype=np.float64).ravel()
    if a_values.shape != b_values.shape:
        raise UserError(f"Paired scores must have the same length (got {len(a_values)} and {len(b_values)}).")
    return _bootstrap(
        a_values - b_values,
        strata=strata,
        stratified_mean=stratified_mean,
        n_boot=n_boot,
        seed=seed,
        alpha=alpha,
    )


def _bootstrap(
    values: np.ndarray,
    *,
    strata: Sequence[str] | None,
    stratified_mean: StratifiedMean,
    n_boot: int,
    seed: int,
    alpha: float,
) -> BootstrapResult:
    _check_settings(n_boot=n_boot, alpha=alpha, stratified_mean=stratified_mean)
    if values.size == 0:
        raise UserError("There are no items to bootstrap; evaluate the models on at least one item.")
    groups = _stratum_groups(strata, len(values))
    macro = stratified_mean == "macro"
    estimate = _stratified_mean(values, groups, macro)
    replicates = _bootstrap_replicates(values, groups, macro, n_boot, np.random.default_rng(seed))
    ci_low, ci_high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    # A replicate that is 0 in exact arithmetic can come out as +-1e-17 after float sums; count
    # values within a relative hair of 0 as 0 (they then count on both sides, which is conservative).
    zero = 1e-12 * max(1.0, float(np.max(np.abs(values))))
    n_at_or_below = int(np.count_nonzero(replicates <= zero))
    n_at_or_above = int(np.count_nonzero(replicates >= -zero))
    p_value = min(1.0, 2 * (min(n_at_or_below, n_at_or_above) + 1) / (n_boot + 1))
    return BootstrapResult(
        estimate=estimate, ci_low=float(ci_low), ci_high=float(ci_high), p_value=p_value, n_boot=n_boot
    )


def _stratum_groups(strata: Sequence[str] | None, n_items: int) -> list[np.ndarray] | None:
    """Item indices of each stratum, strata in sorted label order (None when unstratified)."""
    if strata is None:
        return None
    labels = np.asarray([str(label) for label in strata])
    if len(labels) != n_items:
        raise UserError(f"strata has {len(labels)} labels but there are {n_items} items; give one per item.")
    _, stratum_of_item = np.unique(labels, return_inverse=True)
    return [np.flatnonzero(stratum_of_item == k) for k in range(stratum_of_item.max() + 1)]


def _stratified_mean(values: np.ndarray, groups: list[np.ndarray] | None, macro: bool) -> float:
    if groups is None or not macro:
        return float(np.mean(values))
    return float(np.mean([np.mean(values[g]) for g in groups]))


def _bootstrap_replicates(
    values: np.ndarray, groups: list[np.ndarray] | None, macro: bool, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the (stratified) mean of ``values``."""
    if groups is None:
        return _resampled_means(values, n_boot, rng)
    per_stratum = np.stack([_resampled_means(values[g], n_boot, rng) for g in groups])  # (strata, n_boot)
    if macro:
        return per_stratum.mean(axis=0)
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    return sizes @ per_stratum / sizes.sum()


def _resampled_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, same size) of ``values``."""
    n = len(values)
    distinct, counts = np.unique(values, return_counts=True)
    # A resample's mean depends only on how many times each distinct value was drawn, and those counts
    # are Multinomial(n, counts / n): the same distribution as drawing n indices, at a cost that grows
    # with the number of distinct values instead of n. For 0/1 metrics (3 distinct differences) this
    # is hundreds of times faster than index sampling; for continuous scores it would be slower, so index sampling
    # is used once there are many distinct values (a multinomial draw costs ~20 index draws per value).
    if len(distinct) * 20 <= n:
        draws = rng.multinomial(n, counts / n, size=n_boot)
        return draws @ distinct / n
    means = np.empty(n_boot)
    rows_per_chunk = max(1, _MAX_INDICES_PER_CHUNK // n)
    for start in range(0, n_boot, rows_per_chunk):
        stop = min(n_boot, start + rows_per_chunk)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[indices].mean(axis=1)
    return means


# --------------------------------------------------------------------------------------------------
# Tests with a closed form
# --------------------------------------------------------------------------------------------------


def mcnemar_exact(n_a_only: int, n_b_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs of two 0/1-scored models.

    ``n_a_only``: items a got right and b got wrong; ``n_b_only``: the reverse. Under H0 (the models
    are equally good) each discordant item is a fair coin, so the p-value is the two-sided binomial
    test of ``n_a_only`` successes in ``n_a_only + n_b_only`` trials at p = 1/2. Items both got right or
    both got wrong carry no information about which model is better. No discordant items: p = 1.
    """
    if n_a_only < 0 or n_b_only < 0 or int(n_a_only) != n_a_only or int(n_b_only) != n_b_only:
        raise UserError(f"Discordant counts must be non-negative integers (got {n_a_only}, {n_b_only}).")
    n_discordant = int(n_a_only) + int(n_b_only)
    if n_discordant == 0:
        return 1.0
    return float(_scipy_stats().binomtest(int(n_a_only), n_discordant, 0.5).pvalue)


def paired_ttest(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided p-value of the paired t-test of mean(a - b) = 0 (``scipy.stats.ttest_rel``).

    Where scipy returns NaN the answer is still known, and NaN would poison a report:
    * all differences 0 (identical models): no evidence of a difference, p = 1;
    * all differences equal and non-zero (n >= 2): the limit of the t-test as the spread goes to 0, p = 0;
    * fewer than 2 pairs: the variance cannot be estimated, so nothing can be rejected, p = 1.
    """
    a_values = np.asarray(a, dtype=np.float64).ravel()
    b_values = np.asarray(b, dtype=np.float64).ravel()
    if a_values.shape != b_values.shape:
        raise UserError(f"Paired scores must have the same length (got {len(a_values)} and {len(b_values)}).")
    differences = a_values - b_values
    if len(differences) < 2:
        return 1.0
    scale = max(1.0, float(np.max(np.abs(differences))))
    if float(np.ptp(differences)) <= 1e-12 * scale:  # zero variance: decide by the (common) difference
        return 1.0 if abs(float(differences[0])) <= 1e-12 * scale else 0.0
    return float(_scipy_stats().ttest_rel(a_values, b_values).pvalue)


def minimum_detectable_difference(
    sd_diff: float, n: int, *, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER
) -> float:
    """Smallest true mean difference a two-sided level-``alpha`` paired test detects with ``power``.

    MDD = (z_{1 - alpha/2} + z_{power}) * sd_diff / sqrt(n), the normal-approximation power formula for
    a paired (one-sample) test of the differences; at alpha = 0.05 and power = 0.8 the factor is 2.80.
    For 0/1 scores pass sd_diff = sqrt(discordance rate): under H0 that is the sd of a difference in
    {-1, 0, 1} (McNemar's sample-size approximation). Fewer than 2 items: nothing is detectable (inf).
    """
    _check_settings(alpha=alpha, power=power)
    if n < 2 or not math.isfinite(sd_diff):
        return math.inf
    return _z_sum(alpha, power) * sd_diff / math.sqrt(n)


def _z_sum(alpha: float, power: float) -> float:
    return float(_scipy_stats().norm.ppf(1 - alpha / 2) + _scipy_stats().norm.ppf(power))


def _standard_error_of_mean(
    values: np.ndarray, groups: list[np.ndarray] | None, macro: bool, binary_differences: bool
) -> float:
    """Analytic standard error of the (stratified) mean of ``values``; NaN below 2 items.

    The variance of one value is its sample variance; for differences of 0/1 scores it is instead the
    variance of a difference under H0, i.e. the discordance rate mean(d**2) (McNemar's, for the MDD).
    For a macro mean over strata the variances add per stratum: SE = sqrt(sum_s var_s / n_s) / n_strata.
    A single-item stratum has no variance estimate of its own and borrows the pooled one.
    """

    def variance(x: np.ndarray) -> float:
        if binary_differences:
            return float(np.mean(x**2))
        return float(np.var(x, ddof=1)) if len(x) >= 2 else math.nan

    pooled = variance(values)
    if len(values) < 2 or not math.isfinite(pooled):
        return math.nan
    if groups is None or not macro:
        return math.sqrt(pooled / len(values))
    total = 0.0
    for g in groups:
        stratum_variance = variance(values[g]) if len(g) >= 2 else pooled
        total += stratum_variance / len(g)
    return math.sqrt(total) / len(groups)


# --------------------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------------------


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (same keys), controlling the family-wise error rate.

    Sorted ascending, the i-th smallest of m p-values is multiplied by (m - i + 1); adjusted values are
    made non-decreasing in that order and capped at 1. Rejecting where adjusted < alpha is Holm's
    step-down procedure. In mergeval the family is the tasks of one candidate-vs-reference comparison.
    """
    names = list(pvalues)
    raw = np.array([float(pvalues[name]) for name in names], dtype=np.float64)
    if np.any(~np.isfinite(raw)) or np.any((raw < 0) | (raw > 1)):
        bad = [name for name, p in zip(names, raw) if not (0.0 <= p <= 1.0)]
        raise UserError(f"p-values must be numbers in [0, 1]; these are not: {', '.join(map(str, bad))}.")
    m = len(raw)
    if m == 0:
        return {}
    order = np.argsort(raw, kind="stable")
    stepped = raw[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(stepped))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return {name: float(p) for name, p in zip(names, adjusted)}


# --------------------------------------------------------------------------------------------------
# The high-level comparison
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedComparison:
    """Candidate ``a`` vs reference ``b`` on one task, from their paired per-item scores.

    ``diff = mean_a - mean_b`` (positive: the candidate is better on a higher-is-better metric). With
    strata and ``stratified_mean="macro"``, ``mean_a``, ``mean_b`` and ``diff`` are unweighted means over
    strata. ``p_value`` is the primary test's (``test_used``): the exact McNemar test for 0/1 scores
    without strata, the paired bootstrap otherwise. ``significant`` is ``p_adjusted < alpha`` once a
    Holm adjustment was applied (``compare_many``), else ``p_value < alpha``.
    """

    n_paired: int
    n_missing_a: int  # items the reference b has and the candidate a lacks
    n_missing_b: int  # items the candidate a has and the reference b lacks
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_bootstrap: float
    p_ttest: float
    p_mcnemar: float | None  # None unless the scores are 0/1
    mdd: float
    test_used: PrimaryTest
    p_value: float
    significant: bool
    n_a_better: int  # items where a scored higher than b (for 0/1: a right, b wrong)
    n_b_better: int
    binary: bool
    stratified_mean: StratifiedMean | None  # None when unstratified
    n_strata: int  # 1 when unstratified
    alpha: float
    n_boot: int
    seed: int
    p_adjusted: float | None = None  # Holm-adjusted primary p-value, set by compare_many


def _binary_scores(paired: PairedScores, binary: bool | None) -> bool:
    """Whether the paired scores are 0/1 (detected when `binary` is None; `True` insists on it)."""
    is_binary = _is_binary(paired.a) and _is_binary(paired.b)
    if binary and not is_binary:
        raise UserError(
            "binary=True but the scores are not all 0 or 1; pass binary=None to detect the kind of metric."
        )
    return is_binary if binary is None else binary


def paired_comparison(
    a: Mapping[ItemId, float],
    b: Mapping[ItemId, float],
    *,
    strata: Mapping[ItemId, str] | None = None,
    stratified_mean: StratifiedMean = "macro",
    binary: bool | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> PairedComparison:
    """Compare candidate ``a`` with reference ``b`` on one task (per-item scores keyed by item id).

    ``strata`` maps item ids to a group label (e.g. MMLU subject); every paired item needs one.
    ``binary=None`` detects 0/1 scores (both models only 0s and 1s); ``True`` insists on them.
    """
    _check_settings(n_boot=n_boot, alpha=alpha, power=power, stratified_mean=stratified_mean)
    paired = pair_scores(a, b)
    labels = _labels_for(paired.item_ids, strata) if strata is not None else None
    groups = _stratum_groups(labels, paired.n_paired)
    macro = stratified_mean == "macro"
    use_binary = _binary_scores(paired, binary)
    differences = paired.a - paired.b
    boot = _bootstrap(
        differences, strata=labels, stratified_mean=stratified_mean, n_boot=n_boot, seed=seed, alpha=alpha
    )
    if paired.n_paired < 2:
        # One item is an anecdote: the bootstrap of a single value is degenerate and would call any
        # non-zero difference significant. No test can reject anything here.
        boot = dataclasses.replace(boot, p_value=1.0)
    n_a_better, n_b_better = int(np.count_nonzero(differences > 0)), int(np.count_nonzero(differences < 0))
    p_mcnemar = mcnemar_exact(n_a_better, n_b_better) if use_binary else None
    test_used: PrimaryTest = "mcnemar" if use_binary and groups is None else "bootstrap"
    p_value = p_mcnemar if test_used == "mcnemar" else boot.p_value
    assert p_value is not None
    return PairedComparison(
        n_paired=paired.n_paired,
        n_missing_a=paired.n_only_b,
        n_missing_b=paired.n_only_a,
        mean_a=_stratified_mean(paired.a, groups, macro),
        mean_b=_stratified_mean(paired.b, groups, macro),
        diff=boot.estimate,
        ci_low=boot.ci_low,
        ci_high=boot.ci_high,
        p_bootstrap=boot.p_value,
        p_ttest=paired_ttest(paired.a, paired.b),
        p_mcnemar=p_mcnemar,
        mdd=_mdd(_standard_error_of_mean(differences, groups, macro, use_binary), alpha, power),
        test_used=test_used,
        p_value=p_value,
        significant=p_value < alpha,
        n_a_better=n_a_better,
        n_b_better=n_b_better,
        binary=use_binary,
        stratified_mean=stratified_mean if groups is not None else None,
        n_strata=len(groups) if groups is not None else 1,
        alpha=alpha, n_boot=n_boot, seed=seed,
    )


def _mdd(standard_error: float, alpha: float, power: float) -> float:
    """The minimal detectable difference; below 2 items the spread is unknown and no difference is detectable."""
    return _z_sum(alpha, power) * standard_error if math.isfinite(standard_error) else math.inf


def compare_many(
    a: Mapping[str, Mapping[ItemId, float]],
    b: Mapping[str, Mapping[ItemId, float]],
    *,
    strata: Mapping[str, Mapping[ItemId, str]] | None = None,
    stratified_mean: StratifiedMean = "macro",
    binary: bool | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> dict[str, PairedComparison]:
    """``paired_comparison`` per task, then Holm across the tasks: one family per a-vs-b comparison.

    ``a`` and ``b`` map task name -> (item id -> score) and must cover the same tasks. ``strata`` maps
    task name -> (item id -> label) for the tasks that are stratified. Each result carries
    ``p_adjusted`` and ``significant = p_adjusted < alpha``. Every task uses the same ``seed``, so a
    task's result does not depend on which other tasks are in the family.
    """
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        problems = []
        if only_a:
            problems.append(f"only the candidate has {', '.join(only_a)}")
        if only_b:
            problems.append(f"only the reference has {', '.join(only_b)}")
        raise UserError(
            f"Both models must be scored on the same tasks to be compared ({'; '.join(problems)}). "
            "Evaluate the missing tasks or leave them out of the comparison."
        )
    unknown_strata = sorted(set(strata or {}) - set(a))
    if unknown_strata:
        raise UserError(f"strata are given for tasks that are not compared: {', '.join(unknown_strata)}.")
    results = {
        task: paired_comparison(
            a[task],
            b[task],
            strata=(strata or {}).get(task),
            stratified_mean=stratified_mean,
            binary=binary,
            n_boot=n_boot,
            seed=seed,
            alpha=alpha,
            power=power,
        )
        for task in a
    }
    adjusted = holm({task: result.p_value for task, result in results.items()})
    return {
        task: dataclasses.replace(result, p_adjusted=adjusted[task], significant=adjusted[task] < alpha)
        for task, result in results.items()
    }


def _labels_for(item_ids: Sequence[ItemId], strata: Mapping[ItemId, str]) -> list[str]:
    missing = [item_id for item_id in item_ids if item_id not in strata]
    if missing:
        shown = ", ".join(repr(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise UserError(
            f"{len(missing)} compared items have no stratum label ({shown}); give every item a label in "
            "strata, or compare without strata."
        )
    return [str(strata[item_id]) for item_id in item_ids]


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


# --------------------------------------------------------------------------------------------------
# One model's score
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanCI:
    """One model's (stratified) mean score with a percentile bootstrap CI and an analytic stderr."""

    mean: float
    ci_low: float
    ci_high: float
    stderr: float
    n: int


def mean_ci_bootstrap(
    values: Mapping[ItemId, float] | ArrayLike,
    *,
    strata: Mapping[ItemId, str] | Sequence[str] | None = None,
    stratified_mean: StratifiedMean = "macro",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> MeanCI:
    """Bootstrap CI of one model's mean score (for report whiskers).

    ``values`` is a mapping item id -> score (then ``strata``, if given, is a mapping too) or an array
    (then ``strata`` is a sequence of labels aligned with it). Strata work as in ``paired_bootstrap``.
    ``stderr`` is the analytic standard error of the same statistic (for a macro mean, the per-stratum
    variances combined).
    """
    if isinstance(values, Mapping):
        scores = _as_score_dict(values, None, side="the model")
        item_ids = sorted(scores, key=str)
        array = np.array([scores[i] for i in item_ids], dtype=np.float64)
        if strata is not None:
            if not isinstance(strata, Mapping):
                raise UserError("Scores are keyed by item id, so strata must map item id -> label as well.")
            labels: Sequence[str] | None = _labels_for(item_ids, strata)
        else:
            labels = None
    else:
        array = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(array)):
            raise UserError("Every score must be a finite number; found NaN or infinity.")
        if isinstance(strata, Mapping):
            raise UserError("Scores are an array, so strata must be a sequence of labels aligned with it.")
        labels = strata
    boot = _bootstrap(
        array, strata=labels, stratified_mean=stratified_mean, n_boot=n_boot, seed=seed, alpha=alpha
    )
    groups = _stratum_groups(labels, len(array))
    return MeanCI(
        mean=boot.estimate,
        ci_low=boot.ci_low,
        ci_high=boot.ci_high,
        stderr=_standard_error_of_mean(array, groups, stratified_mean == "macro", binary_differences=False),
        n=len(array),
    )


def stderr(values: ArrayLike) -> float:
    """Standard error of the mean: sample sd (n - 1) / sqrt(n), as lm-eval reports it. NaN below 2 values."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if len(array) < 2:
        return math.nan
    return float(np.std(array, ddof=1) / math.sqrt(len(array)))


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def _check_settings(
    *,
    n_boot: int | None = None,
    alpha: float | None = None,
    power: float | None = None,
    stratified_mean: str | None = None,
) -> None:
    if n_boot is not None and (int(n_boot) != n_boot or n_boot < 1):
        raise UserError(f"n_boot must be a positive integer (got {n_boot!r}); 10000 is the usual choice.")
    if alpha is not None and not 0 < alpha < 1:
        raise UserError(f"alpha must be between 0 and 1 (got {alpha!r}); 0.05 is the usual choice.")
    if power is not None and not 0 < power < 1:
        raise UserError(f"power must be between 0 and 1 (got {power!r}); 0.8 is the usual choice.")
    if stratified_mean is not None and stratified_mean not in ("macro", "micro"):
        raise UserError(
            f"stratified_mean must be 'macro' (unweighted mean over strata) or 'micro' (pooled mean over "
            f"items), not {stratified_mean!r}."
        )
