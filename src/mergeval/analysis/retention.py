"""Capability retention and regressions: the merged model's scores against its parents'.

Pure functions over numbers (no store, no models), so the rules are easy to read and to test:

* Retention (the methodology): merged / mean(parents), passing at >= 95%. Beyond: merged / each parent
  and / the best parent per benchmark, so "kept 98% of A's GSM8K but 71% of B's MMLU" is visible, and the
  expected range [min parent, max parent] with where the merge landed.
* Regression (the methodology's point rule): merged < min(parents) x (1 - tolerance). Beyond: the
  significance-aware verdict also asks the paired test (candidate vs the weakest parent) whether the drop
  is real: "regression" when both say so, "possible regression" when only the point rule does.
  Improvements mirror it above max(parents) x (1 + tolerance), tested against the best parent.

For a lower-is-better metric (perplexity) every rule is mirrored: retention = reference / merged, the
regression threshold is max(parents) x (1 + tolerance), and so on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean

from mergeval.report import RegressionRow, RetentionRow


def _ratio(merged: float, reference: float, higher_is_better: bool) -> float | None:
    """How much of `reference` the merge kept: > 1 means better than the reference."""
    if higher_is_better:
        return merged / reference if reference > 0 else None
    return reference / merged if merged > 0 else None


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def best_parent(parents: Mapping[str, float], higher_is_better: bool = True) -> str:
    pick = max if higher_is_better else min
    return pick(parents, key=lambda name: parents[name])


def worst_parent(parents: Mapping[str, float], higher_is_better: bool = True) -> str:
    pick = min if higher_is_better else max
    return pick(parents, key=lambda name: parents[name])


def retention_row(
    candidate: str,
    benchmark: str,
    merged: float,
    parents: Mapping[str, float],
    *,
    display: str | None = None,
    higher_is_better: bool = True,
    threshold: float = 0.95,
) -> RetentionRow:
    """One row of the report's `retention` list (ratios: 1.0 = 100%)."""
    display = display or benchmark
    mean_parents = fmean(parents.values())
    best = best_parent(parents, higher_is_better)
    lo, hi = min(parents.values()), max(parents.values())
    vs_mean = _ratio(merged, mean_parents, higher_is_better)
    vs_best = _ratio(merged, parents[best], higher_is_better)
    per_parent = {name: _ratio(merged, value, higher_is_better) for name, value in parents.items()}
    within = lo <= merged <= hi
    if within:
        where = f"inside the expected range [{lo:.2f}, {hi:.2f}]"
    else:
        better = (merged > hi) == higher_is_better
        where = f"{'above' if merged > hi else 'below'} the expected range [{lo:.2f}, {hi:.2f}]" + (
            " (better than every parent)" if better else " (worse than every parent)"
        )
    summary = (
        f"{display}: {merged:.2f}, kept {_pct(vs_best)} of {best}'s {parents[best]:.2f} (best parent) and "
        f"{_pct(vs_mean)} of the parents' mean {mean_parents:.2f}; {where}"
    )
    if vs_mean is not None and vs_mean < threshold:
        summary += f"; below the {threshold:.0%} retention mark"
    return RetentionRow(
        candidate=candidate,
        benchmark=benchmark,
        vs_mean_parents=vs_mean,
        vs_best_parent=vs_best,
        per_parent=per_parent,
        expected_range=[lo, hi],
        within_range=within,
        summary=summary,
    )


def strengths_summary(
    rows: Sequence[RetentionRow],
    parents_by_benchmark: Mapping[str, Mapping[str, float]],
    displays: Mapping[str, str],
    *,
    higher_is_better: Mapping[str, bool] | None = None,
    threshold: float = 0.95,
) -> str:
    """'kept 98% of model-a's GSM8K, 71% of model-b's MMLU (lost)': the best parent's share per benchmark."""
    parts = []
    for row in rows:
        bench, ratio = row.benchmark, row.vs_best_parent
        parents = parents_by_benchmark.get(bench)
        if not parents or ratio is None:
            continue
        best = best_parent(parents, (higher_is_better or {}).get(bench, True))
        parts.append(
            f"{ratio:.0%} of {best}'s {displays.get(bench, bench)}" + (" (lost)" if ratio < threshold else "")
        )
    return ("kept " + ", ".join(parts)) if parts else ""


def regression_row(
    candidate: str,
    benchmark: str,
    merged: float,
    parents: Mapping[str, float],
    *,
    tolerance: float = 0.05,
    higher_is_better: bool = True,
    significant_worse: bool = False,
    significant_better: bool = False,
    critical: bool = False,
) -> RegressionRow:
    """One row of the report's `regressions` list.

    `significant_worse`: the paired test found the candidate below the weakest parent (Holm-adjusted);
    `significant_better`: above the best parent. `drop` is how far the merge is below the weakest parent,
    in points (positive = worse than every parent)."""
    lo, hi = min(parents.values()), max(parents.values())
    if higher_is_better:
        threshold = lo * (1 - tolerance)
        improvement_threshold = hi * (1 + tolerance)
        drop = lo - merged
        below = merged < threshold
        above = merged > improvement_threshold
    else:
        threshold = hi * (1 + tolerance)
        improvement_threshold = lo * (1 - tolerance)
        drop = merged - hi
        below = merged > threshold
        above = merged < improvement_threshold
    if below:
        verdict = "regression" if significant_worse else "possible regression"
        significant = significant_worse
    elif above:
        verdict = "improvement" if significant_better else "possible improvement"
        significant = significant_better
    else:
        verdict = "ok"
        significant = False
    return RegressionRow(
        candidate=candidate,
        benchmark=benchmark,
        parents=dict(parents),
        merged=merged,
        threshold=threshold,
        drop=drop,
        point_rule=below,
        significant=significant,
        verdict=verdict,
        critical=critical,
    )
