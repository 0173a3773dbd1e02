"""The sweep report: one self-contained HTML file (inline CSS and SVG, no scripts, no external requests).

Every value that comes from a file, a model name or a config is escaped. Sections: the verdict (winner, its
score on the report items, significance against the runner-up and the best parent), warnings, the ranking
table, the Pareto front across benchmarks, score-vs-parameter plots, and how each candidate was made.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from mergeval.render._svg_charts import CHART_CSS, Series, xy_chart

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px}
body{color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f5f5f5}
td.l,th.l{text-align:left}
tr.win td{background:#eef7ee;font-weight:600}
tr.parent td{color:#555;font-style:italic}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem 1rem;margin:.5rem 0}
.verdict{background:#f3f7fc;border-left:4px solid #1f77b4;padding:.6rem 1rem}
.muted{color:#777;font-size:.85rem}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
svg.chart{background:#fff;border:1px solid #eee;flex:none}
code{background:#f5f5f5;padding:0 .2rem}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _comparison_text(comp: dict[str, Any] | None, what: str, higher_is_better: bool = True) -> str:
    if not comp:
        return f"<li>No {esc(what)} to compare with.</li>"
    verdict = (
        "significantly better"
        if comp["significant"] and (comp["diff"] > 0) == higher_is_better
        else ("significantly worse" if comp["significant"] else "not significantly different")
    )
    per = ", ".join(
        f"{esc(b)} {c['diff']:+.1f}{' *' if c['significant'] else ''}"
        for b, c in comp["per_benchmark"].items()
    )
    return (
        f"<li>vs {esc(what)} <b>{esc(comp['b'])}</b>: {comp['diff']:+.1f} points "
        f"(95% CI {comp['ci_low']:+.1f} to {comp['ci_high']:+.1f}, p {_p(comp['p_value'])}, "
        f"{esc(comp['test'])}, "
        f"{comp['n_items']} report items): <b>{verdict}</b>. Per benchmark: {per or '–'} "
        f"<span class=muted>(* Holm-adjusted p &lt; alpha)</span></li>"
    )


def _table(result: dict[str, Any]) -> str:
    benches = result["benchmarks"]
    head = (
        "<tr><th class=l>model</th><th class=l>status</th><th>objective<br>(selection)</th>"
        "<th>objective<br>(report)</th>"
        + "".join(f"<th>{esc(b)}<br>(report)</th>" for b in benches)
        + "<th>Pareto</th><th class=l>fingerprint</th></tr>"
    )
    rows = []
    sign = -1 if result.get("higher_is_better", True) else 1
    ranked = sorted(
        result["candidates"],
        key=lambda r: sign * r["objective_selection"] if r["objective_selection"] is not None else float("inf"),
    )
    for r in ranked + result["parents"]:
        cls = "win" if r["name"] == result["winner"] else ("parent" if r["role"] != "candidate" else "")
        status = r["role"] if r["role"] != "candidate" else r["status"]
        if r.get("error"):
            status += f": {r['error'][:160]}"
        rows.append(
            f"<tr class='{cls}'><td class=l>{esc(r['name'])}</td><td class=l>{esc(status)}</td>"
            f"<td>{_num(r['objective_selection'])}</td><td>{_num(r['objective_report'])}</td>"
            + "".join(f"<td>{_num(r['report'].get(b))}</td>" for b in benches)
            + f"<td>{'●' if r['on_pareto_front'] else ''}</td><td "
            f"class=l><code>{esc(r['fingerprint'][:16])}</code>"
            f"</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def parameter_plots(result: dict[str, Any]) -> list[str]:
    """Objective (selection items) against every numeric parameter that varies, one series per method."""
    plots = []
    candidates = [c for c in result["candidates"] if c["objective_selection"] is not None]
    names = sorted(
        {
            k
            for c in candidates
            for k, v in c["parameters"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    for name in names:
        values = {c["parameters"][name] for c in candidates if name in c["parameters"]}
        if len(values) < 2:
            continue
        series: dict[str, list[tuple[float, float, str]]] = {}
        for c in candidates:
            if name in c["parameters"]:
                x, y = float(c["parameters"][name]), c["objective_selection"]
                series.setdefault(c["method"], []).append((x, y, f"{c['name']}: {name} {x:g}, objective {y:.1f}"))
        plots.append(
            xy_chart(
                [Series(method, points) for method, points in series.items()],
                title=f"objective vs {name}",
                x_label=name,
                y_label="objective (selection items)",
            )
        )
    return plots


def pareto_plot(result: dict[str, Any]) -> str:
    """The first two benchmarks against each other (selection items): merges, parents, the front."""
    benches = result["benchmarks"]
    if len(benches) < 2:
        return ""
    bx, by = benches[0], benches[1]
    series: dict[str, list[tuple[float, float, str]]] = {"merges": [], "Pareto front": [], "parents": []}
    for r in result["candidates"] + result["parents"]:
        if bx in r["selection"] and by in r["selection"]:
            group = (
                "parents"
                if r["role"] != "candidate"
                else ("Pareto front" if r["on_pareto_front"] else "merges")
            )
            x, y = r["selection"][bx], r["selection"][by]
            series[group].append((x, y, f"{r['name']}: {bx} {x:.1f}, {by} {y:.1f}"))
    # Fixed looks per group, so the front is recognisable in every sweep report.
    looks = {"merges": ("#94a3b8", "circle"), "Pareto front": ("#db2777", "diamond"), "parents": ("#2563eb", "square")}
    return xy_chart(
        [Series(group, points, *looks[group]) for group, points in series.items() if points],
        title=f"{bx} vs {by} (selection items)",
        x_label=bx,
        y_label=by,
        lines=False,
    )


def _verdict(result: dict[str, Any]) -> list[str]:
    winner = result["winner"]
    winner_row = next((c for c in result["candidates"] if c["name"] == winner), None)
    if not winner_row:
        return ["<div class=verdict>", "<p>No candidate could be scored.</p>", "</div>"]
    direction = result.get("higher_is_better", True)
    parts = [
        "<div class=verdict>",
        (f"<p>Winner (chosen on {result['selection_items']} selection items): <b>{esc(winner)}</b>. On "
        f"the {result['report_items']} report items it was not chosen on, its objective is "
        f"<b>{_num(winner_row['objective_report'])}</b> (selection items: "
        f"{_num(winner_row['objective_selection'])}).</p><ul>"),
        _comparison_text(result["vs_runner_up"], "runner-up", direction),
        _comparison_text(result["vs_best_parent"], "best parent", direction),
        "</ul>",
    ]
    if winner_row.get("provenance"):
        parts.append(f"<p class=muted>How it was made: {esc(winner_row['provenance'])}</p>")
    if result.get("best_path"):
        parts.append(f"<p class=muted>Weights written to <code>{esc(result['best_path'])}</code>.</p>")
    return [*parts, "</div>"]


def _made_and_provenance(result: dict[str, Any]) -> list[str]:
    parts = [("<h2>How each candidate was made</h2><table><tr><th class=l>candidate</th><th class=l>recipe</th>"
             "<th class=l>key</th></tr>")]
    parts += [f"<tr><td class=l>{esc(c['name'])}</td><td class=l>{esc(c.get('provenance') or '–')}</td>"
              f"<td class=l><code>{esc((c.get('key') or '')[:16])}</code></td></tr>" for c in result["candidates"]]
    parts.append("</table>")
    prov = result.get("provenance") or {}
    items = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in prov.items() if v is not None)
    return [*parts, f"<h2>Provenance</h2><ul class=muted>{items}</ul>"]


def render_sweep_report(result: dict[str, Any]) -> str:
    """The sweep report as a complete HTML document (from `SweepResult.to_dict()`)."""
    direction = "higher is better" if result.get("higher_is_better", True) else "lower is better"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>mergeval sweep: {esc(result['name'])}</title><style>{_CSS}{CHART_CSS}</style></head><body>",
        f"<h1>Merge sweep: {esc(result['name'])}</h1>",
        (f"<p class=muted>{len(result['candidates'])} candidates, {len(result['parents'])} parent/base "
        f"models; objective: mean of {esc(', '.join(result['objective']))} ({direction}); benchmarks: "
        f"{esc(', '.join(result['benchmarks']))}. {esc(result['provenance'].get('label') or '')}</p>"),
        *_verdict(result),
        *(f"<div class=warn>{esc(warning)}</div>" for warning in result["warnings"]),
        ("<h2>Ranking</h2><p class=muted>Ranked by the objective on the selection items; the report "
        "columns are the items the ranking did not see. Scores are on each benchmark's report scale.</p>"),
        _table(result),
    ]
    pareto, plots = pareto_plot(result), parameter_plots(result)
    if pareto or plots:
        parts += [("<h2>Trade-offs</h2><p class=muted>Pareto front: the models no other model matches or beats "
                  "on every benchmark (selection items).</p><div class=plots>"), pareto, *plots, "</div>"]
    parts += [*_made_and_provenance(result), "</body></html>"]
    return "\n".join(parts)


def write_sweep_report(result, path: str | Path) -> Path:
    """Render a SweepResult (or its dict) to `path`; returns the path."""
    data = result if isinstance(result, dict) else result.to_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_sweep_report(data), encoding="utf-8")
    return path
