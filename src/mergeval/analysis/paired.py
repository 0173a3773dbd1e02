"""Paired comparisons of a candidate with each reference model, on per-item scores (mergeval.analysis.stats).

One family per (candidate, reference): every benchmark both have per-item scores for is compared with
`compare_many` (paired bootstrap CI, exact McNemar for 0/1 scores, stratified bootstrap by subject for
MMLU), and the p-values are Holm-adjusted across those benchmarks. Items only one model has are left out of
the pair and counted (`n_missing`).

The references are every parent, the base, every baseline, and, with two or more parents, "mean(parents)":
the per-item mean of the parents' scores on the items all of them have (its mean is the mean of the
parents' scores, so the paired difference is exactly merged - mean(parents) on those items).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import fmean

from mergeval.analysis.stats import compare_many
from mergeval.core.check import MetricSpec
from mergeval.core.results import ScoreData
from mergeval.report import Comparison

MEAN_OF_PARENTS = "mean(parents)"


def mean_of_scores(
    scores: Sequence[Mapping[str, ScoreData]], benchmarks: Sequence[MetricSpec]
) -> dict[str, ScoreData]:
    """Per benchmark, the per-item mean of several models' scores on the items all of them have."""
    out: dict[str, ScoreData] = {}
    for bench in benchmarks:
        parts = [s.get(bench.name) for s in scores]
        if not parts or any(p is None or not p.items for p in parts):
            continue
        common = set.intersection(*(set(p.items) for p in parts))
        items = {i: fmean(p.items[i] for p in parts) for i in common}
        strata = None
        if parts[0].strata is not None:
            strata = {i: parts[0].strata[i] for i in common if i in parts[0].strata}
        values = [p.value for p in parts]
        value = fmean(values) if all(v is not None for v in values) else None
        out[bench.name] = ScoreData(
            value=value,
            stderr=None,
            n=len(items),
            n_target=max(p.n_target for p in parts),
            items=items,
            strata=strata,
        )
    return out


def _finite(x: float | None) -> float | None:
    """A number for the report: NaN and infinities (no data to say) become None."""
    return float(x) if x is not None and math.isfinite(x) else None


def compare_pair(
    candidate: str,
    reference: str,
    reference_role: str,
    candidate_scores: Mapping[str, ScoreData],
    reference_scores: Mapping[str, ScoreData],
    benchmarks: Sequence[MetricSpec],
    *,
    alpha: float = 0.05,
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[Comparison]:
    """The report's `comparisons` rows for one candidate vs one reference (one Holm family)."""
    a: dict[str, dict[str, float]] = {}
    b: dict[str, dict[str, float]] = {}
    strata: dict[str, dict[str, str]] = {}
    info = {bench.name: bench for bench in benchmarks}
    for bench in benchmarks:
        ca, rb = candidate_scores.get(bench.name), reference_scores.get(bench.name)
        if ca is None or rb is None or not ca.items or not rb.items:
            continue
        if not set(ca.items) & set(rb.items):
            continue
        a[bench.name], b[bench.name] = dict(ca.items), dict(rb.items)
        if ca.strata is not None:
            strata[bench.name] = {**(rb.strata or {}), **ca.strata}
    if not a:
        return []
    results = compare_many(a, b, strata=strata or None, n_boot=n_boot, seed=seed, alpha=alpha)
    rows = []
    for name, res in results.items():
        scale = info[name].scale
        rows.append(
            Comparison(
                candidate=candidate,
                reference=reference,
                reference_role=reference_role,
                benchmark=name,
                candidate_value=_finite(res.mean_a * scale),
                reference_value=_finite(res.mean_b * scale),
                diff=_finite(res.diff * scale),
                ci_low=_finite(res.ci_low * scale),
                ci_high=_finite(res.ci_high * scale),
                p_value=_finite(res.p_value),
                p_adjusted=_finite(res.p_adjusted),
                test=res.test_used,
                significant=bool(res.significant),
                n_paired=res.n_paired,
                n_missing=res.n_missing_a + res.n_missing_b,
                mdd=_finite(res.mdd * scale),
                # beyond the headline test: the playbook's t-test and McNemar, for readers who want them
                p_ttest=_finite(res.p_ttest),
                p_mcnemar=_finite(res.p_mcnemar),
            )
        )
    return rows


def lookup(comparisons: Sequence[Comparison], candidate: str, reference: str, benchmark: str) -> Comparison | None:
    for row in comparisons:
        if (row.candidate, row.reference, row.benchmark) == (candidate, reference, benchmark):
            return row
    return None
