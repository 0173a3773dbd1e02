"""Table rows shared by the terminal, Markdown and HTML renderers, computed from a Report alone."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from statistics import fmean

from mergeval.report import (
    FAIL,
    NOT_EVALUATED,
    PASS,
    BenchmarkEntry,
    Comparison,
    GateResult,
    Report,
    RetentionRow,
)

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


# -- folding wide tables ---------------------------------------------------------------------------------------

# Benchmarks per scores table: with the model and Average columns, eight fit a 1,366 px laptop screen.
MAX_BENCHMARK_COLUMNS = 8


def benchmark_groups(report: Report, benchmarks: list[BenchmarkEntry] | None = None,
                     max_columns: int = MAX_BENCHMARK_COLUMNS) -> list[tuple[str, list[BenchmarkEntry]]]:
    """The benchmarks as (title, benchmarks) tables of at most `max_columns` each, so a wide comparison folds
    into several tables instead of scrolling sideways. One table when they all fit (title ""); else one per
    benchmark family (the check that measures them), small families packed together, a large one cut into
    even parts ("leaderboard (1/2)"); a suite keeps a table of its own."""
    benchmarks = list(report.benchmarks if benchmarks is None else benchmarks)
    if len(benchmarks) <= max_columns:
        return [("", benchmarks)] if benchmarks else []
    families: dict[str, list[BenchmarkEntry]] = {}
    suites: set[str] = set()
    for b in benchmarks:
        family = family_of(report, b)
        families.setdefault(family, []).append(b)
        if b.kind == "lm-eval":
            suites.add(family)
    groups: list[tuple[str, list[BenchmarkEntry]]] = []
    small: list[tuple[str, list[BenchmarkEntry]]] = []
    for title, members in families.items():
        if len(members) > max_columns:
            parts = math.ceil(len(members) / max_columns)
            size = math.ceil(len(members) / parts)
            groups += [(f"{title} ({i + 1}/{parts})", members[i * size:(i + 1) * size]) for i in range(parts)]
        elif title in suites:  # a suite keeps its own table
            groups.append((title, members))
        elif small and len(small[-1][1]) + len(members) <= max_columns:
            last_title, last = small[-1]
            small[-1] = (f"{last_title}, {title}", last + members)
        else:
            small.append((title, members))
    return groups + small


def family_of(report: Report, benchmark: BenchmarkEntry) -> str:
    """The family a benchmark belongs to: its suite for lm-eval benchmarks, else the check type measuring it."""
    kind = benchmark.kind or "other"
    return (report.suite.name or kind) if kind == "lm-eval" else kind


# -- what the Average covers ------------------------------------------------------------------------------------


def average_covers(report: Report) -> str:
    """One sentence on what the Average is the mean of, e.g. "Average = plain mean of the 6 leaderboard-v1
    benchmarks (ARC, ...); not in it: Perplexity"."""
    names = [b.name for b in report.benchmarks]
    if not any(v is not None for v in report.averages.values()):
        return "No Average: no model has a score on every benchmark it would cover"
    if not names:
        return "Average = plain mean of the benchmarks"
    covered = [n for n in names if n in average_members(report)]
    suite = f" {report.suite.name}" if report.suite.name else ""
    left_out = [report.display(n) for n in names if n not in covered]
    if not left_out:
        return f"Average = plain mean of the {len(covered)} benchmarks"
    shown = ", ".join(report.display(n) for n in covered)
    return (f"Average = plain mean of the {len(covered)}{suite} benchmarks ({shown}) only; "
            f"not in it: {', '.join(left_out)}")


def average_members(report: Report) -> set[str]:
    """The benchmark names the Average covers (every benchmark when the report does not say)."""
    names = [b.name for b in report.benchmarks]
    covered = [n for n in report.provenance.average_of if n in names] or (
        [b.name for b in report.benchmarks if b.kind == "lm-eval"] if report.suite.name else names)
    return set(covered or names)


# -- gates ------------------------------------------------------------------------------------------------------

_STATUS_ORDER = {FAIL: 0, NOT_EVALUATED: 1, PASS: 2}
_OPERATOR = re.compile(r"(>=|<=|>|<|==)")
_OPERATOR_SIGN = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}
_RETENTION_SUMMARY = "merged score / parents' score (capability retention)"


def gate_groups(report: Report) -> list[tuple[str, list[GateResult]]]:
    """The gates per candidate (report order of candidates), failed first, then not evaluated, then passed."""
    by_candidate: dict[str, list[GateResult]] = {}
    for g in report.gates:
        by_candidate.setdefault(g.candidate or _candidate_prefix(report, g.name) or "", []).append(g)
    return [(c, sorted(gates, key=lambda g: _STATUS_ORDER.get(g.status, 1))) for c, gates in by_candidate.items()]


def _candidate_prefix(report: Report, name: str) -> str | None:
    return next((c for c in report.model_names("candidate") if name.startswith(f"{c}: ")), None)


def gate_as_written(gate: GateResult) -> str:
    """The gate as the plan says it (`retention >= 95%`), without the "candidate: " prefix of a multi-candidate
    report."""
    name = gate.name or gate.description or "gate"
    if gate.candidate and name.startswith(f"{gate.candidate}: "):
        name = name[len(gate.candidate) + 2:]
    return name


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: object, percent: bool) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        if percent:
            return f"{value:.1%}"
        return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return str(value)


def gate_figures(gate: GateResult) -> tuple[str, str]:
    """(the measured value, the threshold with its operator) as a reader compares them: `88.1%`, `≥ 95.0%`.
    Retention gates and gates written with a percentage (`win_rate >= 45%`) are ratios and read as percentages."""
    name = gate_as_written(gate)
    percent = ("retention" in name.lower() or "%" in name or gate.description == _RETENTION_SUMMARY) and all(
        v is None or (_is_number(v) and 0 <= v <= 10) for v in (gate.value, gate.threshold))
    value = "not measured" if gate.value is None else _plain(gate.value, percent)
    if gate.threshold is None:
        return value, ""
    match = _OPERATOR.search(name)
    sign = _OPERATOR_SIGN[match.group(1)] if match and _is_number(gate.threshold) else ""
    if name.lower().startswith("no regression") and _is_number(gate.threshold):
        sign = "≤"
    return value, f"{sign} {_plain(gate.threshold, percent)}".strip()


# -- statistics -------------------------------------------------------------------------------------------------


def nothing_differs(c: Comparison) -> bool:
    """Every paired difference is zero (the two models answered every item alike): no MDD can be computed."""
    zeros = [v for v in (c.diff, c.ci_low, c.ci_high) if v is not None]
    return c.mdd is not None and abs(c.mdd) < 1e-12 and bool(zeros) and all(abs(v) < 1e-12 for v in zeros)


NO_MDD_REASON = "every paired difference is 0, so there is no spread to size a detectable difference from"


# -- retention --------------------------------------------------------------------------------------------------


def range_position(report: Report, row: RetentionRow) -> str | None:
    """Where the candidate lies against its parents' range: "within", "above" or "below" (None: unknown)."""
    if row.expected_range is None or len(row.expected_range) != 2:
        return None if row.within_range is None else ("within" if row.within_range else None)
    low, high = row.expected_range
    merged = report.value(row.candidate, row.benchmark)
    if merged is None or low is None or high is None:
        return None if row.within_range is None else ("within" if row.within_range else None)
    if merged > high:
        return "above"
    if merged < low:
        return "below"
    return "within"


def range_good(report: Report, row: RetentionRow, position: str | None) -> bool | None:
    """Whether leaving the range is good news (above for higher-is-better scores), None inside or unknown."""
    if position not in ("above", "below"):
        return None
    bench = report.benchmark(row.benchmark)
    higher = bench.higher_is_better if bench else True
    return (position == "above") == higher


# -- provenance -------------------------------------------------------------------------------------------------


def recorded_runtime(report: Report) -> dict[str, dict[str, str]]:
    """Per model: the backend and device its runs recorded ({"backend": "HFLM", "device": "cuda:0"}), read from
    the provenance of the models, then of the tasks and checks; the plan's settings when nothing was recorded.
    Several values are joined ("HFLM, transformers")."""
    prov = report.provenance
    found: dict[str, dict[str, list[str]]] = {}

    def note(model: str, key: str, value: object) -> None:
        if value in (None, "", "None"):
            return
        values = found.setdefault(model, {}).setdefault(key, [])
        if str(value) not in values:
            values.append(str(value))

    names = report.model_names() or list(prov.models)
    for model in names:
        entry = prov.models.get(model)
        if isinstance(entry, dict):
            for key in ("backend", "device"):
                note(model, key, entry.get(key))
    shared: dict[str, list[str]] = {}
    for task in prov.tasks.values():
        if isinstance(task, dict):
            for key in ("backend", "device"):
                if task.get(key) not in (None, "", "None") and str(task[key]) not in shared.setdefault(key, []):
                    shared[key].append(str(task[key]))
    for check in prov.checks.values():
        if not isinstance(check, dict):
            continue
        for key in ("backend", "device"):
            if check.get(key) not in (None, "", "None") and str(check[key]) not in shared.setdefault(key, []):
                shared[key].append(str(check[key]))
        per_model = check.get("models")
        if isinstance(per_model, dict):
            for model, entry in per_model.items():
                if isinstance(entry, dict):
                    for key in ("backend", "device"):
                        note(str(model), key, entry.get(key))
    out = {}
    for model in names:
        mine = found.get(model, {})
        row = {}
        for key in ("backend", "device"):
            values = mine.get(key) or shared.get(key) or (
                [str(prov.settings[key])] if prov.settings.get(key) not in (None, "") else [])
            row[key] = ", ".join(values)
        out[model] = row
    return out


__all__ = [
    "BEST_PARENT",
    "MAX_BENCHMARK_COLUMNS",
    "MEAN_OF_PARENTS",
    "NO_MDD_REASON",
    "WORST_PARENT",
    "Delta",
    "DeltaRow",
    "average_covers",
    "average_members",
    "band_columns",
    "benchmark_groups",
    "best_per_column",
    "delta_columns",
    "delta_rows",
    "family_of",
    "gate_as_written",
    "gate_figures",
    "gate_groups",
    "nothing_differs",
    "range_good",
    "range_position",
    "recorded_runtime",
    "status_mark",
]
