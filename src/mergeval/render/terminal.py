"""Terminal tables (rich) from a Report: the models x benchmarks table and the per-subject tables, shared by
`mergeval eval` / `show` (`print_eval`) and the plan report (mergeval.render.console).

`mergeval eval` still produces an EvalResult (mergeval.evaluation); `eval_report` reads it as a Report (a
table without gates) until the evaluation returns a Report itself.
"""

from __future__ import annotations

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


def esc(text: Any) -> str:
    """Text from the report, inert in rich markup."""
    return str(text).replace("[", "\\[")


def _num(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "[dim]-[/dim]"
    if stderr is not None:
        return f"{value:.2f} [dim]±{stderr:.2f}[/dim]"
    return f"{value:.2f}"


def _metric(bench: BenchmarkEntry, short: bool) -> str:
    """The metric under a column header: as the suite names it (short), or lm-eval's key."""
    if not short:
        return bench.metric_key
    metric = bench.metric_label or bench.metric_key.replace(",none", "").replace("exact_match,strict-match", "em strict")
    return metric + ("\nnormalised" if bench.normalized else "")


def _cell(score: ScoreEntry | None, best: float | None, *, stderr: bool) -> str:
    if score is None:
        return _num(None)
    if score.reason and score.value is None:
        return "[yellow]not evaluated[/yellow]"
    cell = _num(score.value, score.stderr if stderr else None)
    if score.partial:
        cell += f" [yellow]({score.n}/{score.n_target})[/yellow]"
    if best is not None and score.value == best:
        cell = f"[bold green]{cell}[/bold green]"
    if score.raw is not None:  # leaderboard v2: the raw score under the normalised one
        cell += f"\n[dim]raw {_num(score.raw)}[/dim]"
    return cell


def scores_table(report: Report, *, roles: bool = True, stderr: bool = False, caption: str | None = None,
                 short_metrics: bool = False) -> Table:
    """Models x benchmarks (+ Average), best value per column in bold, the Average's band under it."""
    best = best_per_column(report)
    table = Table(title=esc(report.title), caption=esc(report.suite.label) if caption is None else caption,
                  header_style="bold")
    table.add_column("Model", no_wrap=True)
    if roles:
        table.add_column("Role")
    for b in report.benchmarks:
        table.add_column(f"{esc(b.display)}\n[dim]{esc(_metric(b, short_metrics))}[/dim]", justify="right")
    table.add_column("Average", justify="right")
    for m in report.models:
        cells = [esc(m.name)] + ([m.role] if roles else [])
        cells += [_cell(report.score(m.name, b.name), best.get(b.name), stderr=stderr) for b in report.benchmarks]
        average = report.averages.get(m.name)
        cell = _num(average)
        if average is not None and average == best.get("average"):
            cell = f"[bold green]{cell}[/bold green]"
        band = report.bands.get(m.name, {}).get(AVERAGE_BAND)
        cells.append(cell + (f"\n[dim]{esc(band)}[/dim]" if band else ""))
        table.add_row(*cells)
    return table


def subject_tables(report: Report) -> list[Table]:
    """Per-subject values (MMLU), grouped by category, one column per model."""
    names = report.model_names()
    tables = []
    for bench, rows in report.subjects.items():
        table = Table(title=f"{esc(report.display(bench))} by subject", header_style="bold")
        table.add_column("Group")
        table.add_column("Subject")
        for name in names:
            table.add_column(esc(name), justify="right")
        for r in sorted(rows, key=lambda r: (r.group or "", r.task)):
            table.add_row(r.group or "", r.task, *[_num(r.values.get(n)) for n in names])
        tables.append(table)
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


def print_eval(result: EvalResult | Report, console: Console | None = None, *, subjects: bool = False) -> None:
    """An lm-eval suite's table on the terminal, with the reasons benchmarks were not evaluated."""
    console = console or Console()
    report = eval_report(result) if isinstance(result, EvalResult) else result
    if not report.models:
        console.print("[yellow]No results stored for these models and tasks yet.[/yellow]")
        return
    console.print(scores_table(report, roles=False, stderr=True, caption=_eval_caption(report), short_metrics=True))
    reasons = {name: s.reason for scores in report.scores.values() for name, s in scores.items() if s.reason}
    for reason in reasons.values():
        console.print(f"[yellow]{esc(reason)}[/yellow]")
    if subjects:
        for table in subject_tables(report):
            console.print(table)


__all__ = ["eval_report", "print_eval", "scores_table", "subject_tables"]
