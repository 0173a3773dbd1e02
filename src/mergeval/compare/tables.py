"""Table rows shared by the terminal and Markdown renderers, computed from the report dict alone."""

from __future__ import annotations

from collections.abc import Mapping
from statistics import fmean
from typing import Any

MEAN_OF_PARENTS = "mean(parents)"


def models_by_role(report: Mapping[str, Any], role: str) -> list[str]:
    return [m["name"] for m in report["models"] if m["role"] == role]


def value(report: Mapping[str, Any], model: str, benchmark: str) -> float | None:
    if benchmark == "average":
        return report["averages"].get(model)
    return report["scores"].get(model, {}).get(benchmark, {}).get("value")


def best_per_column(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The best value per benchmark (and "average") among the models, honouring higher_is_better."""
    best: dict[str, float | None] = {}
    for b in report["benchmarks"]:
        values = [value(report, m["name"], b["name"]) for m in report["models"]]
        values = [v for v in values if v is not None]
        best[b["name"]] = (max if b["higher_is_better"] else min)(values) if len(values) > 1 else None
    averages = [v for v in report["averages"].values() if v is not None]
    best["average"] = max(averages) if len(averages) > 1 else None
    return best


def delta_columns(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, header) of the delta columns of a candidate's table: each parent, best/worst/mean parent,
    the base and each baseline."""
    parents = models_by_role(report, "parent")
    cols = [(p, f"Δ {p}") for p in parents]
    if len(parents) >= 2:
        cols += [
            ("best parent", "Δ best parent"),
            ("worst parent", "Δ worst parent"),
            (MEAN_OF_PARENTS, "Δ mean parents"),
        ]
    cols += [(m, f"Δ {m} (base)") for m in models_by_role(report, "base")]
    cols += [(m, f"Δ {m}") for m in models_by_role(report, "baseline")]
    return cols


def _comparison(report: Mapping[str, Any], candidate: str, reference: str, benchmark: str) -> Mapping | None:
    for row in report["comparisons"]:
        if (row["candidate"], row["reference"], row["benchmark"]) == (candidate, reference, benchmark):
            return row
    return None


def delta_rows(report: Mapping[str, Any], candidate: str) -> list[dict[str, Any]]:
    """Per benchmark (+ Average): the candidate's value and its delta against every delta column.

    Each delta is {"diff", "reference", "significant" (None when no paired test), "ci": (lo, hi) | None}.
    Deltas are differences of the headline scores; significance and CI come from the paired comparison."""
    parents = models_by_role(report, "parent")
    higher = {b["name"]: b["higher_is_better"] for b in report["benchmarks"]}
    rows = []
    names = [(b["name"], b["display"]) for b in report["benchmarks"]] + [("average", "Average")]
    for bench, display in names:
        mine = value(report, candidate, bench)
        row: dict[str, Any] = {"benchmark": bench, "display": display, "value": mine, "deltas": {}}
        parent_values = {p: value(report, p, bench) for p in parents}
        known = {p: v for p, v in parent_values.items() if v is not None}
        for key, _ in delta_columns(report):
            ref_name, ref_value = key, None
            if key in ("best parent", "worst parent"):
                if len(known) == len(parents) and known:
                    pick_best = (key == "best parent") == higher.get(bench, True)
                    ref_name = (max if pick_best else min)(known, key=known.get)
                    ref_value = known[ref_name]
            elif key == MEAN_OF_PARENTS:
                ref_value = fmean(known.values()) if known and len(known) == len(parents) else None
            else:
                ref_value = value(report, key, bench)
            if mine is None or ref_value is None:
                row["deltas"][key] = None
                continue
            cmp = _comparison(report, candidate, ref_name, bench) if bench != "average" else None
            row["deltas"][key] = {
                "diff": mine - ref_value,
                "reference": ref_name,
                "significant": None if cmp is None else bool(cmp["significant"]),
                "ci": None if cmp is None else (cmp["ci_low"], cmp["ci_high"]),
            }
        rows.append(row)
    return rows


def status_mark(status: str) -> str:
    return {"pass": "PASS", "fail": "FAIL", "not evaluated": "NOT EVALUATED"}.get(status, status.upper())
