"""The sweep report: one self-contained HTML file (inline CSS and SVG, no scripts, no external requests).

Every value that comes from a file, a model name or a config is escaped. Sections: the verdict (winner, its
score on the report items, significance against the runner-up and the best parent), warnings, the ranking
table, the Pareto front across benchmarks, score-vs-parameter plots, and how each candidate was made.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"]

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
svg{background:#fff;border:1px solid #eee}
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


def _scale(values: Sequence[float], lo_pad: float = 0.05) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * lo_pad
    return lo - pad, hi + pad


@dataclass(frozen=True)
class _Frame:
    """A chart's drawing area and the data ranges it maps onto it."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 52
    right: int = 12
    top: int = 28
    bottom: int = 42

    def sx(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.width - self.left - self.right)

    def sy(self, y: float) -> float:
        return self.height - self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.height - self.top - self.bottom)


def _axes(f: _Frame, title: str, x_label: str, y_label: str) -> list[str]:
    base, mid_y = f.height - f.bottom, (f.top + f.height - f.bottom) / 2
    parts = [
        f"<text x='{f.width / 2}' y='16' text-anchor='middle' font-size='13' font-weight='600'>{esc(title)}</text>",
        f"<line x1='{f.left}' y1='{base}' x2='{f.width - f.right}' y2='{base}' stroke='#999'/>",
        f"<line x1='{f.left}' y1='{f.top}' x2='{f.left}' y2='{base}' stroke='#999'/>",
    ]
    for i in range(5):
        xv, yv = f.x0 + (f.x1 - f.x0) * i / 4, f.y0 + (f.y1 - f.y0) * i / 4
        parts += [
            f"<text x='{f.sx(xv):.1f}' y='{base + 14}' text-anchor='middle' font-size='10'>{xv:.3g}</text>",
            f"<text x='{f.left - 4}' y='{f.sy(yv) + 3:.1f}' text-anchor='end' font-size='10'>{yv:.3g}</text>",
            f"<line x1='{f.left}' y1='{f.sy(yv):.1f}' x2='{f.width - f.right}' y2='{f.sy(yv):.1f}' stroke='#eee'/>",
        ]
    parts += [
        (f"<text x='{(f.left + f.width - f.right) / 2}' y='{f.height - 8}' text-anchor='middle' font-size='11'>"
        f"{esc(x_label)}</text>"),
        (f"<text x='12' y='{mid_y}' text-anchor='middle' font-size='11' transform='rotate(-90 12 {mid_y})'>"
        f"{esc(y_label)}</text>"),
    ]
    return parts


def _series(f: _Frame, index: int, name: str, points: list[tuple[float, float, str]], lines: bool) -> list[str]:
    colour = _PALETTE[index % len(_PALETTE)]
    ordered = sorted(points)
    parts = []
    if lines and len(ordered) > 1:
        path = " ".join(f"{f.sx(x):.1f},{f.sy(y):.1f}" for x, y, _ in ordered)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.5'/>")
    parts += [f"<circle cx='{f.sx(x):.1f}' cy='{f.sy(y):.1f}' r='4' fill='{colour}'><title>{esc(tip)}</title>"
              "</circle>" for x, y, tip in ordered]
    parts.append(f"<rect x='{f.left + 8}' y='{f.top + 4 + 14 * index}' width='10' height='10' fill='{colour}'/>"
                 f"<text x='{f.left + 22}' y='{f.top + 13 + 14 * index}' font-size='11'>{esc(name)}</text>")
    return parts


def svg_scatter(
    series: dict[str, list[tuple[float, float, str]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    lines: bool = True,
    width: int = 460,
    height: int = 300,
) -> str:
    """An inline SVG chart: one colour per series, points (x, y, tooltip), optionally joined in x order."""
    points = [(x, y) for pts in series.values() for x, y, _ in pts]
    if not points:
        return ""
    frame = _Frame(width, height, *_scale([p[0] for p in points]), *_scale([p[1] for p in points]))
    parts = [(f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='{esc(title)}'>"), *_axes(frame, title, x_label, y_label)]
    for index, (name, pts) in enumerate(series.items()):
        parts += _series(frame, index, name, pts, lines)
    parts.append("</svg>")
    return "".join(parts)


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
                series.setdefault(c["method"], []).append(
                    (float(c["parameters"][name]), c["objective_selection"], c["name"])
                )
        plots.append(
            svg_scatter(
                series, title=f"objective vs {name}", x_label=name, y_label="objective (selection items)"
            )
        )
    return plots


def pareto_plot(result: dict[str, Any]) -> str:
    """The first two benchmarks against each other (selection items): merges, parents, the front."""
    benches = result["benchmarks"]
    if len(benches) < 2:
        return ""
    bx, by = benches[0], benches[1]
    series: dict[str, list[tuple[float, float, str]]] = {}
    for r in result["candidates"] + result["parents"]:
        if bx in r["selection"] and by in r["selection"]:
            group = (
                "parents"
                if r["role"] != "candidate"
                else ("Pareto front" if r["on_pareto_front"] else "merges")
            )
            series.setdefault(group, []).append((r["selection"][bx], r["selection"][by], r["name"]))
    return svg_scatter(series, title=f"{bx} vs {by} (selection items)", x_label=bx, y_label=by, lines=False)


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
        f"<title>mergeval sweep: {esc(result['name'])}</title><style>{_CSS}</style></head><body>",
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
