"""Terminal tables (rich) from a Report: the models x benchmarks table and the per-subject tables, shared by
`mergeval eval` / `show` (`print_eval`) and the plan report (mergeval.render.console).

`mergeval eval` still produces an EvalResult (mergeval.evaluation); `eval_report` reads it as a Report (a
table without gates) until the evaluation returns a Report itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from mergeval.analysis.bands import band_label, suite_average_bands
from mergeval.evaluation import EvalResult
from mergeval.render.tables import best_per_column
from mergeval.report import (
    AVERAGE_BAND,
    BenchmarkEntry,
    ModelEntry,
    Provenance,
    Report,
    ScoreEntry,
    SubjectRow,
    SuiteInfo,
)

# Width of output that goes to no terminal (a CI log, `| tee`, a file) when COLUMNS does not say: wide enough
# that tables fit and paths stay whole; a log viewer wraps long lines itself.
UNBOUNDED_WIDTH = 200


def make_console(*, stderr: bool = False, file: Any = None) -> Console:
    """The console every command prints through. On a terminal: its width. Elsewhere: COLUMNS when set, else
    UNBOUNDED_WIDTH, and text lines are never wrapped (a path stays one piece to copy); tables fit that width
    and fold a cell rather than cut it."""
    console = Console(stderr=stderr, file=file)
    if not console.is_terminal:
        if not os.environ.get("COLUMNS", "").strip().isdigit():
            console.width = UNBOUNDED_WIDTH
        console.soft_wrap = True
    return console


def folded(table: Table) -> Table:
    """A cell too long for its column folds onto the next line instead of being cut with an ellipsis."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def esc(text: Any) -> str:
    """Text from the report, inert in rich markup."""
    return str(text).replace("[", "\\[")


def _num(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "[dim]-[/dim]"
    if stderr is not None:
        return f"{value:.2f} [dim]±{stderr:.2f}[/dim]"
    return f"{value:.2f}"


def metric_header(report: Report, bench: BenchmarkEntry) -> str:
    """The metric under a column header as the suite names it, with the scale: `acc_norm (%)` (never lm-eval's
    raw key `acc_norm,none`)."""
    metric = bench.metric_label or short_metric_key(bench.metric_key)
    unit = report.metric(bench.name).unit
    shown = f"{metric} ({unit})" if metric and unit else metric or (f"({unit})" if unit else "")
    return shown + ("\nnormalised" if bench.normalized else "")


def short_metric_key(key: str) -> str:
    """lm-eval's `metric,filter` key as a name: `acc,none` -> acc, `exact_match,strict-match` -> em strict."""
    if key == "exact_match,strict-match":
        return "em strict"
    metric, _, flt = key.partition(",")
    return metric if flt in ("", "none") else f"{metric} {flt}"


def _cell(score: ScoreEntry | None, best: float | None, *, stderr: bool, n: bool = False) -> str:
    if score is None:
        return _num(None)
    if score.reason and score.value is None:
        return "[yellow]not evaluated[/yellow]"
    cell = _num(score.value, score.stderr if stderr else None)
    if score.partial:
        cell += f" [yellow]({score.n}/{score.n_target})[/yellow]"
    elif n and score.value is not None:
        cell += f" [dim]n={score.n:,}[/dim]"
    if best is not None and score.value == best:
        cell = f"[bold green]{cell}[/bold green]"
    if score.raw is not None:  # leaderboard v2: the raw score under the normalised one
        cell += f"\n[dim]raw {_num(score.raw)}[/dim]"
    return cell


def items_note(report: Report, bench: BenchmarkEntry, sizes: Mapping[str, int] | None = None) -> tuple[str, bool]:
    """How many items a column's numbers rest on, for its header: `n=10 of 1,172 (limit 10)` when every model
    has the same count, else only `of 1,172` and (second value True) each cell says its own n."""
    counts = {s.n for m in report.models if (s := report.score(m.name, bench.name)) is not None and s.value is not None}
    full = (sizes or {}).get(bench.name)
    limit = report.provenance.limit
    limit_text = f" (limit {limit})" if limit is not None else ""
    if len(counts) == 1:
        (n,) = counts
        return f"n={n:,}" + (f" of {full:,}" if full and full != n else "") + limit_text, False
    return (f"of {full:,}" if full else "") + limit_text, len(counts) > 1


def scores_table(report: Report, *, roles: bool = True, stderr: bool = False, caption: str | None = None,
                 sizes: Mapping[str, int] | None = None) -> Table:
    """Models x benchmarks (+ Average), best value per column in bold, the Average's band under it; each
    header names the metric, its scale and how many items the numbers rest on (`sizes`: each benchmark's
    whole dataset, when known)."""
    best = best_per_column(report)
    table = Table(title=esc(report.title), caption=esc(report.suite.label) if caption is None else caption,
                  header_style="bold")
    table.add_column("Model", no_wrap=True)
    if roles:
        table.add_column("Role")
    per_cell: set[str] = set()
    for b in report.benchmarks:
        note, cells_say_n = items_note(report, b, sizes)
        if cells_say_n:
            per_cell.add(b.name)
        header = f"{esc(b.display)}\n[dim]{esc(metric_header(report, b))}" + (f"\n{esc(note)}" if note else "")
        table.add_column(header + "[/dim]", justify="right")
    table.add_column("Average\n[dim](%)[/dim]" if _all_percent(report) else "Average", justify="right")
    for m in report.models:
        cells = [esc(m.name)] + ([m.role] if roles else [])
        cells += [_cell(report.score(m.name, b.name), best.get(b.name), stderr=stderr, n=b.name in per_cell)
                  for b in report.benchmarks]
        average = report.averages.get(m.name)
        cell = _num(average)
        if average is not None and average == best.get("average"):
            cell = f"[bold green]{cell}[/bold green]"
        band = report.bands.get(m.name, {}).get(AVERAGE_BAND)
        cells.append(cell + (f"\n[dim]{esc(band)}[/dim]" if band else ""))
        table.add_row(*cells)
    return folded(table)


def _all_percent(report: Report) -> bool:
    return bool(report.benchmarks) and all(report.metric(b.name).unit == "%" for b in report.benchmarks)


def subject_tables(report: Report) -> list[Table]:
    """Per-subject values (MMLU), grouped by category, one column per model."""
    names = report.model_names()
    tables = []
    for bench, rows in report.subjects.items():
        table = Table(title=f"{esc(report.display(bench))} by subject (%)", header_style="bold")
        table.add_column("Group")
        table.add_column("Subject")
        for name in names:
            table.add_column(esc(name), justify="right")
        for r in sorted(rows, key=lambda r: (r.group or "", r.task)):
            table.add_row(r.group or "", r.task, *[_num(r.values.get(n)) for n in names])
        tables.append(folded(table))
    return tables


# -- mergeval eval / show -----------------------------------------------------------------------------------


def eval_report(result: EvalResult) -> Report:
    """An lm-eval suite's table (EvalResult) as a Report without gates."""
    bands = suite_average_bands(result.suite, len(result.benchmarks))
    return Report(
        title=result.label,
        suite=SuiteInfo(name=result.suite, label=result.label, average_note=result.average_note),
        models=[ModelEntry(name=m.name, fingerprint=m.fingerprint, reference=m.reference) for m in result.models],
        benchmarks=[BenchmarkEntry(name=b["name"], display=b["display"], metric_key=b["metric_key"], kind="lm-eval",
                                   normalized=result.normalized, metric_label=b.get("metric_label", ""))
                    for b in result.benchmarks],
        scores={m.name: {name: _eval_score(s) for name, s in m.scores.items()} for m in result.models},
        averages={m.name: m.average for m in result.models},
        subjects=_eval_subjects(result),
        bands={m.name: {AVERAGE_BAND: band_label(bands, m.average) or None} for m in result.models},
        provenance=Provenance(limit=result.limit),
    )


def _eval_score(s: Any) -> ScoreEntry:
    extra = {"raw": s.raw} if s.normalized else {}
    if s.weighted_value is not None:
        extra["weighted_value"] = s.weighted_value
    if s.not_evaluated:
        extra["reason"] = s.not_evaluated
    return ScoreEntry(value=s.value, stderr=s.stderr, n=s.n, n_target=s.n_target, **extra)


def _eval_subjects(result: EvalResult) -> dict[str, list[SubjectRow]]:
    out: dict[str, list[SubjectRow]] = {}
    for b in result.benchmarks if result.models else []:
        first = result.models[0].scores.get(b["name"])
        if first is None or len(first.tasks) <= 1:
            continue
        out[b["name"]] = [
            SubjectRow(task=task, group=info.get("group"),
                       values={m.name: m.scores[b["name"]].tasks.get(task, {}).get("value") for m in result.models})
            for task, info in first.tasks.items()
        ]
    return out


def _eval_caption(report: Report) -> str:
    parts = []
    if report.provenance.limit is not None:
        parts.append(f"limit={report.provenance.limit} items per task: a quick check, not a full evaluation")
    weighted = ", ".join(f"{m}: {s.weighted_value:.2f}" for m, scores in report.scores.items()
                         for name, s in scores.items() if s.weighted_value is not None and name == "mmlu")
    if weighted:
        parts.append(f"MMLU = unweighted mean of subjects; lm-eval's size-weighted mmlu group: {weighted}")
    if any(b.normalized for b in report.benchmarks):
        parts.append("Scores normalised as the Open LLM Leaderboard v2: (raw - 1/choices) / (1 - 1/choices) x 100, "
                     "0 = random guessing; raw = lm-eval's score")
        parts.append(f"{report.suite.average_note}; ± is the standard error")
    else:
        parts.append("Average = plain mean of the benchmarks; ± is the standard error")
    return "\n".join(parts)


def print_eval(result: EvalResult | Report, console: Console | None = None, *, subjects: bool = False,
               sizes: Mapping[str, int] | None = None) -> None:
    """An lm-eval suite's table on the terminal, with the reasons benchmarks were not evaluated; `sizes`:
    each benchmark's whole dataset (items), for the headers' `n=10 of 1,172`."""
    console = console or make_console()
    report = eval_report(result) if isinstance(result, EvalResult) else result
    if not report.models:
        console.print("[yellow]No results stored for these models and tasks yet.[/yellow]")
        return
    console.print(scores_table(report, roles=False, stderr=True, caption=_eval_caption(report), sizes=sizes))
    reasons = {name: s.reason for scores in report.scores.values() for name, s in scores.items() if s.reason}
    for reason in reasons.values():
        console.print(f"[yellow]{esc(reason)}[/yellow]")
    if subjects:
        for table in subject_tables(report):
            console.print(table)


__all__ = ["UNBOUNDED_WIDTH", "eval_report", "folded", "items_note", "make_console", "metric_header", "print_eval", "scores_table",
           "short_metric_key", "subject_tables"]
