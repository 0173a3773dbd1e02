"""The comparison report on the terminal (rich), from a Report alone: scores, each candidate's deltas,
retention, regressions, sanity, missing evaluations, the gates and the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from mergeval.render.tables import BEST_PARENT, WORST_PARENT, Delta, delta_columns, delta_rows
from mergeval.render.terminal import UNBOUNDED_WIDTH, esc, folded, make_console, scores_table, subject_tables
from mergeval.report import RegressionRow, Report

_STATUS_STYLE = {
    "pass": "[bold green]PASS[/bold green]",
    "fail": "[bold red]FAIL[/bold red]",
    "not evaluated": "[bold yellow]NOT EVALUATED[/bold yellow]",
}
_MISSING_SHOWN = 20


def _delta(key: str, d: Delta | None) -> str:
    if d is None:
        return "[dim]-[/dim]"
    diff = d.diff if abs(d.diff) >= 0.005 else 0.0  # no "-0.00" for float noise
    style = "green" if diff > 0 else "red" if diff < 0 else "white"
    text = f"[{style}]{diff:+.2f}[/{style}]" if diff else "0.00"
    if key in (BEST_PARENT, WORST_PARENT):
        text += f" [dim]({esc(d.reference)})[/dim]"
    return text + (" *" if d.significant else "")


def deltas_table(report: Report, candidate: str) -> Table | None:
    cols = delta_columns(report)
    if not cols:
        return None
    table = Table(title=f"{esc(candidate)} vs references (Δ points; * significant after Holm)", header_style="bold")
    table.add_column("Benchmark")
    table.add_column(esc(candidate), justify="right")
    for _, header in cols:
        table.add_column(esc(header), justify="right")
    for row in delta_rows(report, candidate):
        value = "[dim]-[/dim]" if row.value is None else f"{row.value:.2f}"
        table.add_row(esc(row.display), value, *[_delta(key, row.deltas.get(key)) for key, _ in cols])
    return folded(table)


def gates_table(report: Report) -> Table:
    table = Table(title="Deployment checklist", header_style="bold", show_lines=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Gate")
    table.add_column("Detail")
    for g in report.gates:
        table.add_row(_STATUS_STYLE.get(g.status, g.status), esc(g.name), esc(g.detail))
    return folded(table)


def _regression_line(r: RegressionRow) -> str:
    regression = "regression" in r.verdict
    color = "red" if regression else "green"
    parents = ", ".join(f"{p} {v:.2f}" for p, v in r.parents.items())
    threshold = f"; regression threshold {r.threshold:.2f}" if regression and r.threshold is not None else ""
    test = "significant in the paired test" if r.significant else "not significant in the paired test"
    merged = "-" if r.merged is None else f"{r.merged:.2f}"
    return (f"[{color}]{r.verdict}[/{color}] {esc(r.candidate)} on {esc(r.benchmark)}: {merged} "
            f"(parents {esc(parents)}{threshold}; {test})")


def _print_analysis(report: Report, console: Console, subjects: bool) -> None:
    console.print(scores_table(report))
    for table in subject_tables(report) if subjects else []:
        console.print(table)
    for candidate in report.model_names("candidate"):
        table = deltas_table(report, candidate)
        if table is not None:
            console.print(table)
    for r in report.retention:
        if r.benchmark == "average":
            console.print(f"[bold]Retention[/bold] {esc(r.candidate)}: {esc(r.summary)}")
    for r in report.regressions:
        if r.verdict != "ok":
            console.print(_regression_line(r))
    if report.sanity:
        failed = [s for s in report.sanity if s.status != "pass"]
        console.print(f"[bold]Sanity[/bold]: {len(report.sanity) - len(failed)}/{len(report.sanity)} checks pass")
        for s in failed:
            console.print(f"  [red]fail[/red] {esc(s.model)} {s.check}: {esc(s.detail)}")


def _print_missing(report: Report, console: Console) -> None:
    if not report.missing:
        return
    console.print(f"[yellow]Missing evaluations ({len(report.missing)}):[/yellow]")
    for m in report.missing[:_MISSING_SHOWN]:
        what = m.check + (f" / {m.benchmark}" if m.benchmark else "")
        console.print(f"  {esc(m.model)}: {esc(what)}: {esc(m.detail)}")
    if len(report.missing) > _MISSING_SHOWN:
        console.print(f"  ... and {len(report.missing) - _MISSING_SHOWN} more")


def _print_adaptive(report: Report, console: Console) -> None:
    for a in report.adaptive:
        rules = "; ".join(f"{r.rule}: {r.verdict} [{r.lower:.1f}, {r.upper:.1f}]" for r in a.rules
                          if r.lower is not None and r.upper is not None)
        console.print(f"[bold]Adaptive[/bold] {esc(a.display or a.benchmark)}: {a.status}, {a.n} of {a.n_target} "
                      f"items ({a.items_saved} evaluations saved); {esc(a.reason)}" + (f"; {esc(rules)}" if rules else ""))
    if any(a.note for a in report.adaptive):
        console.print("[dim]Scores of a benchmark stopped early are the mean of the items evaluated (slightly biased "
                      "by the stopping rule); `mergeval run --full` evaluates the rest.[/dim]")


def print_report(
    report: Report | Mapping[str, Any],
    console: Console | None = None,
    *,
    subjects: bool = False,
    gates_only: bool = False,
) -> None:
    """The report on the terminal: scores, deltas, retention, regressions, sanity, gates, verdict."""
    report = Report.from_data(report)
    console = console or make_console()
    if not gates_only:
        _print_analysis(report, console, subjects)
        _print_adaptive(report, console)
    _print_missing(report, console)
    if report.gates:
        console.print(gates_table(report))
    style = {"pass": "bold green", "fail": "bold red"}.get(report.verdict.status, "bold yellow")
    console.print(f"[{style}]{esc(report.verdict.summary)}[/{style}]")


__all__ = ["UNBOUNDED_WIDTH", "deltas_table", "gates_table", "make_console", "print_report"]
