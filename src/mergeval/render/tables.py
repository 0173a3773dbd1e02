"""Table rows shared by the terminal, Markdown and HTML renderers, computed from a Report alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean

from mergeval.report import Report

MEAN_OF_PARENTS = "mean(parents)"
BEST_PARENT, WORST_PARENT = "best parent", "worst parent"


def best_per_column(report: Report) -> dict[str, float | None]:
    """The best value per benchmark (and "average") among the models, honouring higher_is_better; None for a
    column with fewer than two values (nothing to compare)."""
    best: dict[str, float | None] = {}
    names = report.model_names()
    for b in report.benchmarks:
        values = [v for m in names if (v := report.value(m, b.name)) is not None]
        best[b.name] = (max if b.higher_is_better else min)(values) if len(values) > 1 else None
    averages = [v for v in report.averages.values() if v is not None]
    best["average"] = max(averages) if len(averages) > 1 else None
    return best


def delta_columns(report: Report) -> list[tuple[str, str]]:
    """(key, header) of the delta columns of a candidate's table: each parent, best/worst/mean parent,
    the base and each baseline."""
    parents = report.model_names("parent")
    cols = [(p, f"Δ {p}") for p in parents]
    if len(parents) >= 2:
        cols += [(BEST_PARENT, "Δ best parent"), (WORST_PARENT, "Δ worst parent"), (MEAN_OF_PARENTS, "Δ mean parents")]
    cols += [(m, f"Δ {m} (base)") for m in report.model_names("base")]
    cols += [(m, f"Δ {m}") for m in report.model_names("baseline")]
    return cols


@dataclass(frozen=True)
class Delta:
    """A candidate minus a reference on one benchmark, with the paired test's verdict when there is one."""

    diff: float
    reference: str
    significant: bool | None  # None: no paired test (the Average, or no per-item scores)
    ci: tuple[float | None, float | None] | None


@dataclass
class DeltaRow:
    benchmark: str
    display: str
    value: float | None
    deltas: dict[str, Delta | None] = field(default_factory=dict)  # delta column key -> delta


def _reference(report: Report, key: str, bench: str, higher_is_better: bool) -> tuple[str, float | None]:
    """(reference model, its value) of a delta column on a benchmark."""
    parents = report.model_names("parent")
    known = {p: v for p in parents if (v := report.value(p, bench)) is not None}
    complete = bool(known) and len(known) == len(parents)
    if key in (BEST_PARENT, WORST_PARENT):
        if not complete:
            return key, None
        pick_best = (key == BEST_PARENT) == higher_is_better
        name = (max if pick_best else min)(known, key=lambda p: known[p])
        return name, known[name]
    if key == MEAN_OF_PARENTS:
        return key, fmean(known.values()) if complete else None
    return key, report.value(key, bench)


def delta_rows(report: Report, candidate: str) -> list[DeltaRow]:
    """Per benchmark (+ Average): the candidate's value and its delta against every delta column.

    Deltas are differences of the headline scores; significance and CI come from the paired comparison."""
    rows = []
    names = [(b.name, b.display, b.higher_is_better) for b in report.benchmarks] + [("average", "Average", True)]
    for bench, display, higher in names:
        mine = report.value(candidate, bench)
        row = DeltaRow(bench, display, mine)
        for key, _ in delta_columns(report):
            ref_name, ref_value = _reference(report, key, bench, higher)
            if mine is None or ref_value is None:
                row.deltas[key] = None
                continue
            cmp = report.comparison(candidate, ref_name, bench) if bench != "average" else None
            row.deltas[key] = Delta(mine - ref_value, ref_name, None if cmp is None else bool(cmp.significant),
                                    None if cmp is None else (cmp.ci_low, cmp.ci_high))
        rows.append(row)
    return rows


def status_mark(status: str) -> str:
    return {"pass": "PASS", "fail": "FAIL", "not evaluated": "NOT EVALUATED"}.get(status, status.upper())


def band_columns(report: Report) -> list[str]:
    """The band names any model has a label for, in report order (the Average's first)."""
    names: list[str] = []
    for bands in report.bands.values():
        names += [n for n, label in bands.items() if label and n not in names]
    return names


__all__ = [
    "BEST_PARENT",
    "MEAN_OF_PARENTS",
    "WORST_PARENT",
    "Delta",
    "DeltaRow",
    "band_columns",
    "best_per_column",
    "delta_columns",
    "delta_rows",
    "status_mark",
]
