"""Terminal rendering of a comparison report (rich), from the report dict alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from mergeval.compare.tables import best_per_column, delta_columns, delta_rows, models_by_role

_STATUS_STYLE = {
    "pass": "[bold green]PASS[/bold green]",
    "fail": "[bold red]FAIL[/bold red]",
    "not evaluated": "[bold yellow]NOT EVALUATED[/bold yellow]",
}


def _num(x: float | None) -> str:
    return "[dim]-[/dim]" if x is None else f"{x:.2f}"


def _esc(text: Any) -> str:
    return str(text).replace("[", "\\[")


def scores_table(report: Mapping[str, Any], *, subjects: bool = False) -> list[Table]:
    best = best_per_column(report)
    suite = report.get("suite") or {}
    table = Table(title=_esc(report["title"]), caption=_esc(suite.get("label", "")), header_style="bold")
    table.add_column("Model", no_wrap=True)
    table.add_column("Role")
    for b in report["benchmarks"]:
        table.add_column(f"{_esc(b['display'])}\n[dim]{_esc(b['metric_key'])}[/dim]", justify="right")
    table.add_column("Average", justify="right")
    for m in report["models"]:
        cells = [_esc(m["name"]), m["role"]]
        for b in report["benchmarks"]:
            s = report["scores"].get(m["name"], {}).get(b["name"], {})
            v = s.get("value")
            cell = _num(v)
            if v is not None and s.get("n", 0) < s.get("n_target", 0):
                cell += f" [yellow]({s['n']}/{s['n_target']})[/yellow]"
            if v is not None and best.get(b["name"]) is not None and v == best[b["name"]]:
                cell = f"[bold green]{cell}[/bold green]"
            cells.append(cell)
        avg = report["averages"].get(m["name"])
        cell = _num(avg)
        if avg is not None and best.get("average") is not None and avg == best["average"]:
            cell = f"[bold green]{cell}[/bold green]"
        band = (report.get("bands", {}).get(m["name"]) or {}).get("leaderboard")
        if band:
            cell += f"\n[dim]{band}[/dim]"
        cells.append(cell)
        table.add_row(*cells)
    tables = [table]
    if subjects:
        names = [m["name"] for m in report["models"]]
        displays = {b["name"]: b["display"] for b in report["benchmarks"]}
        for bench, rows in report.get("subjects", {}).items():
            t = Table(title=f"{_esc(displays.get(bench, bench))} by subject", header_style="bold")
            t.add_column("Group")
            t.add_column("Subject")
            for n in names:
                t.add_column(_esc(n), justify="right")
            for r in sorted(rows, key=lambda r: (r.get("group") or "", r["task"])):
                t.add_row(r.get("group") or "", r["task"], *[_num(r["values"].get(n)) for n in names])
            tables.append(t)
    return tables


def deltas_table(report: Mapping[str, Any], candidate: str) -> Table | None:
    cols = delta_columns(report)
    if not cols:
        return None
    table = Table(
        title=f"{_esc(candidate)} vs references (Δ points; * significant after Holm)", header_style="bold"
    )
    table.add_column("Benchmark")
    table.add_column(_esc(candidate), justify="right")
    for _, header in cols:
        table.add_column(_esc(header), justify="right")
    for row in delta_rows(report, candidate):
        cells = [_esc(row["display"]), _num(row["value"])]
        for key, _ in cols:
            d = row["deltas"].get(key)
            if d is None:
                cells.append("[dim]-[/dim]")
                continue
            diff = d["diff"] if abs(d["diff"]) >= 0.005 else 0.0  # no "-0.00" for float noise
            style = "green" if diff > 0 else "red" if diff < 0 else "white"
            text = f"[{style}]{diff:+.2f}[/{style}]" if diff else "0.00"
            if key in ("best parent", "worst parent"):
                text += f" [dim]({_esc(d['reference'])})[/dim]"
            if d["significant"]:
                text += " *"
            cells.append(text)
        table.add_row(*cells)
    return table


def gates_table(report: Mapping[str, Any]) -> Table:
    table = Table(title="Deployment checklist", header_style="bold", show_lines=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Gate")
    table.add_column("Detail")
    for g in report["gates"]:
        table.add_row(_STATUS_STYLE.get(g["status"], g["status"]), _esc(g["name"]), _esc(g["detail"]))
    return table


def print_report(
    report: Mapping[str, Any],
    console: Console | None = None,
    *,
    subjects: bool = False,
    gates_only: bool = False,
) -> None:
    """The report on the terminal: scores, deltas, retention, regressions, sanity, gates, verdict."""
    console = console or Console()
    if not gates_only:
        for table in scores_table(report, subjects=subjects):
            console.print(table)
        for cand in models_by_role(report, "candidate"):
            table = deltas_table(report, cand)
            if table is not None:
                console.print(table)
        for r in report["retention"]:
            if r["benchmark"] == "average":
                console.print(f"[bold]Retention[/bold] {_esc(r['candidate'])}: {_esc(r['summary'])}")
        flagged = [r for r in report["regressions"] if r["verdict"] != "ok"]
        for r in flagged:
            regression = "regression" in r["verdict"]
            color = "red" if regression else "green"
            parents = ", ".join(f"{p} {v:.2f}" for p, v in r["parents"].items())
            threshold = f"; regression threshold {r['threshold']:.2f}" if regression else ""
            test = (
                "significant in the paired test" if r["significant"] else "not significant in the paired test"
            )
            console.print(
                f"[{color}]{r['verdict']}[/{color}] {_esc(r['candidate'])} on {_esc(r['benchmark'])}: "
                f"{r['merged']:.2f} (parents {_esc(parents)}{threshold}; {test})"
            )
        failed = [s for s in report["sanity"] if s["status"] != "pass"]
        if report["sanity"]:
            passed = len(report["sanity"]) - len(failed)
            console.print(f"[bold]Sanity[/bold]: {passed}/{len(report['sanity'])} checks pass")
            for s in failed:
                console.print(f"  [red]fail[/red] {_esc(s['model'])} {s['check']}: {_esc(s['detail'])}")
    missing = report.get("missing") or []
    if missing:
        console.print(f"[yellow]Missing evaluations ({len(missing)}):[/yellow]")
        for m in missing[:20]:
            what = f"{m['check']}" + (f" / {m['benchmark']}" if m["benchmark"] else "")
            console.print(f"  {_esc(m['model'])}: {_esc(what)}: {_esc(m['detail'])}")
        if len(missing) > 20:
            console.print(f"  ... and {len(missing) - 20} more")
    if report["gates"]:
        console.print(gates_table(report))
    verdict = report["verdict"]
    style = {"pass": "bold green", "fail": "bold red"}.get(verdict["status"], "bold yellow")
    console.print(f"[{style}]{_esc(verdict['summary'])}[/{style}]")
