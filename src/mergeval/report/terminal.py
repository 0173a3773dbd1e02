"""Terminal rendering of evaluation tables with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mergeval.evaluation import EvalResult

LEADERBOARD_BANDS = [(60, "poor, likely broken"), (65, "below average"), (70, "average"), (75, "good"),
                     (80, "excellent"), (float("inf"), "state of the art")]


def leaderboard_band(average: float | None) -> str:
    """The methodology's quality band for a leaderboard-v1 average: a label, never a verdict."""
    if average is None:
        return ""
    for upper, label in LEADERBOARD_BANDS:
        if average < upper:
            return label
    return ""


def _fmt(value: float | None, stderr: float | None = None, *, show_stderr: bool = True) -> str:
    if value is None:
        return "[dim]-[/dim]"
    if stderr is not None and show_stderr:
        return f"{value:.2f} [dim]±{stderr:.2f}[/dim]"
    return f"{value:.2f}"


def eval_table(result: EvalResult, *, show_stderr: bool = True, subjects: bool = False) -> Table:
    """Models x benchmarks (+ Average), best value per column in bold."""
    table = Table(title=f"{result.label}", caption=_caption(result), header_style="bold")
    table.add_column("Model", no_wrap=True)
    for b in result.benchmarks:
        metric = b["metric_key"].replace(",none", "").replace("exact_match,strict-match", "em strict")
        table.add_column(f"{b['display']}\n[dim]{metric}[/dim]", justify="right")
    table.add_column("Average", justify="right")
    best = {}
    for b in result.benchmarks:
        vals = [m.scores[b["name"]].value for m in result.models if m.scores[b["name"]].value is not None]
        best[b["name"]] = max(vals) if len(vals) > 1 else None
    best_avg = max([m.average for m in result.models if m.average is not None], default=None)
    for m in result.models:
        cells = [m.name]
        for b in result.benchmarks:
            s = m.scores[b["name"]]
            cell = _fmt(s.value, s.stderr, show_stderr=show_stderr)
            if s.value is not None and s.n < s.n_target:
                cell += f" [yellow]({s.n}/{s.n_target})[/yellow]"
            if best[b["name"]] is not None and s.value == best[b["name"]]:
                cell = f"[bold green]{cell}[/bold green]"
            cells.append(cell)
        avg = _fmt(m.average)
        if len(result.models) > 1 and m.average is not None and m.average == best_avg:
            avg = f"[bold green]{avg}[/bold green]"
        if result.suite == "leaderboard-v1" and len(result.benchmarks) == 6 and m.average is not None:
            avg += f"\n[dim]{leaderboard_band(m.average)}[/dim]"
        cells.append(avg)
        table.add_row(*cells)
    return table


def _caption(result: EvalResult) -> str:
    parts = []
    if result.limit is not None:
        parts.append(f"limit={result.limit} items per task: a quick check, not a full evaluation")
    if any(s.weighted_value is not None for m in result.models for s in m.scores.values()):
        weighted = ", ".join(
            f"{m.name}: {s.weighted_value:.2f}" for m in result.models for s in m.scores.values()
            if s.weighted_value is not None and s.benchmark == "mmlu"
        )
        if weighted:
            parts.append(f"MMLU = unweighted mean of subjects; lm-eval's size-weighted mmlu group: {weighted}")
    parts.append("Average = plain mean of the benchmarks; ± is the standard error")
    return "\n".join(parts)


def subject_table(result: EvalResult, benchmark: str = "mmlu") -> Table | None:
    """Per-task (e.g. MMLU subject) scores, grouped by category, one column per model."""
    if not result.models or benchmark not in result.models[0].scores:
        return None
    first = result.models[0].scores[benchmark]
    if len(first.tasks) <= 1:
        return None
    table = Table(title=f"{first.display} by subject", header_style="bold")
    table.add_column("Group")
    table.add_column("Subject")
    for m in result.models:
        table.add_column(m.name, justify="right")
    rows = sorted(first.tasks.items(), key=lambda kv: (kv[1].get("group") or "", kv[0]))
    for task, info in rows:
        cells = [info.get("group") or "", task]
        for m in result.models:
            t = m.scores[benchmark].tasks.get(task, {})
            cells.append(_fmt(t.get("value")))
        table.add_row(*cells)
    return table


def print_eval(result: EvalResult, console: Console | None = None, *, subjects: bool = False) -> None:
    console = console or Console()
    if not result.models:
        console.print("[yellow]No results stored for these models and tasks yet.[/yellow]")
        return
    console.print(eval_table(result))
    if subjects:
        for b in result.benchmarks:
            t = subject_table(result, b["name"])
            if t is not None:
                console.print(t)
