"""The self-contained HTML report: one file that opens offline, with inline CSS and inline SVG charts.

``render_html(report)`` turns a Report (mergeval.report; or report.json data, read as one) into a page;
``write_html(report, path)`` writes it. The page has no external resource of any kind (no CDN, no web font, no
script library) and a Content-Security-Policy that forbids loading one, so it looks the same on a laptop on a
plane as in CI artifacts.

How it is built, top to bottom:

* ``_View`` turns the Report into plain, already formatted rows for the template. Numbers a report does not
  have show as "-" or "not evaluated". How a benchmark is charted (its unit, range and direction) comes from
  its MetricSpec (``Report.metric``); the thresholds shown (retention pass mark, regression tolerance) are the
  plan's settings as the report states them.
* ``_charts`` draws the SVG charts (``_svg_charts`` does the drawing).
* ``templates/report.html.j2`` lays the page out; Jinja's autoescaping escapes every string from the
  report (a model name can contain ``<script>``), and the chart SVG escapes its own text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from mergeval.core.check import Band, MetricSpec
from mergeval.errors import UserError
from mergeval.render import _svg_charts as charts
from mergeval.render.itemview import itemview_context
from mergeval.render.tables import (
    NO_MDD_REASON,
    average_covers,
    average_members,
    band_columns,
    benchmark_groups,
    family_of,
    gate_as_written,
    gate_figures,
    gate_groups,
    nothing_differs,
    range_good,
    range_position,
    recorded_runtime,
)
from mergeval.report import (
    AVERAGE_BAND,
    FAIL,
    NOT_EVALUATED,
    PASS,
    BenchmarkEntry,
    ModelEntry,
    Report,
    ScoreEntry,
)

_TEMPLATES = Path(__file__).parent / "templates"
_NA = "-"
_NOT_EVALUATED = "not evaluated"

# The only script on the page: open every collapsible section before printing, so paper shows everything.
_PRINT_SCRIPT = (
    "window.addEventListener('beforeprint',function(){"
    "document.querySelectorAll('details').forEach(function(d){d.open=true;});});"
)


def render_html(report: Report | Mapping[str, Any], items: Mapping[str, Any] | None = None) -> str:
    """The report as one self-contained HTML page (a string). `items`: the per-item view's data
    (``mergeval.analysis.itemdiff.item_diff_payload(store, report)``); without it the page has no per-item view."""
    view = _View(Report.from_data(report))
    script_hash = base64.b64encode(hashlib.sha256(_PRINT_SCRIPT.encode()).digest()).decode()
    return (
        _environment()
        .get_template("report.html.j2")
        .render(v=view, script=Markup(_PRINT_SCRIPT), script_hash=script_hash, itemview=itemview_context(items))
    )


def write_html(report: Report | Mapping[str, Any], path: str | Path, items: Mapping[str, Any] | None = None) -> Path:
    """Render the report and write it to ``path`` (parent folders are created); returns the path."""
    path = Path(path)
    html = render_html(report, items)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"Cannot write the HTML report to {path}: {exc.strerror or exc}. "
            "Choose a path in a folder you can write to."
        ) from exc
    return path


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in the template fails the tests instead of rendering blank
        trim_blocks=True,
        lstrip_blocks=True,
    )


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else _NA


def _fmt_signed(value: Any, digits: int = 2) -> str:
    if not _is_number(value):
        return _NA
    if round(value, digits) == 0:
        return f"±{0:.{digits}f}"
    return f"{'+' if value > 0 else '−'}{abs(value):.{digits}f}"


def _fmt_pct(ratio: Any, digits: int = 1) -> str:
    return f"{ratio * 100:.{digits}f}%" if _is_number(ratio) else _NA


def _fmt_p(p: Any) -> str:
    if not _is_number(p):
        return _NA
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def _fmt_any(value: Any) -> str:
    """Gate values and thresholds: numbers without trailing zeros, strings as they are."""
    if value is None:
        return _NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return str(value)


def _fmt_time(text: Any) -> str:
    if not text:
        return _NA
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    offset = moment.utcoffset()
    zone = "" if offset is None else (" UTC" if offset.total_seconds() == 0 else moment.strftime(" UTC%z"))
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def _tone(diff: Any, higher_is_better: bool = True) -> str:
    """CSS class for a difference: 'good', 'bad' or '' (no change / unknown)."""
    if not _is_number(diff) or diff == 0:
        return ""
    return "good" if (diff > 0) == higher_is_better else "bad"


# --------------------------------------------------------------------------------------------------
# The view: everything the template shows, formatted
# --------------------------------------------------------------------------------------------------


def _models(report: Report) -> list[dict]:
    """Every model with its colour; a model with scores that the models list forgot still gets a row."""
    entries = list(report.models)
    entries += [ModelEntry(name=name) for name in report.scores if name not in {m.name for m in entries}]
    colours = charts.model_colours([(m.name, m.role) for m in entries])
    return [
        {
            "name": m.name,
            "role": m.role,
            "fingerprint": m.fingerprint or _NA,
            "reference": m.reference or _NA,
            "merge": m.merge,
            "merge_text": _as_yaml(m.merge.to_dict()) if m.merge else "",
            "colour": colours[m.name],
        }
        for m in entries
    ]


def _benchmark(b: BenchmarkEntry) -> dict:
    # lm-eval's "metric,filter" minus the default filter: "acc", "exact_match · strict-match"
    short = b.metric_key.removesuffix(",none").replace(",", " · ") + (" · normalised" if b.normalized else "")
    return {"name": b.name, "display": b.display, "metric_key": b.metric_key, "metric_short": short,
            "kind": b.kind, "higher_is_better": b.higher_is_better, "normalized": b.normalized}


def _benchmarks(report: Report) -> list[dict]:
    """The report's benchmarks; a report without the list shows whatever its scores mention."""
    entries = list(report.benchmarks)
    if not entries:
        names = list(dict.fromkeys(n for per_model in report.scores.values() for n in per_model))
        entries = [BenchmarkEntry(name=n) for n in names]
    return [_benchmark(b) for b in entries]


def _band_text(bands: tuple[Band, ...]) -> str:
    """"<60 poor, 60–65 below average, ..., >80 state of the art" from a band table."""
    parts = []
    for band in bands:
        if math.isinf(band.low):
            parts.append(f"<{band.high:g} {band.label}")
        elif math.isinf(band.high):
            parts.append(f">{band.low:g} {band.label}")
        else:
            parts.append(f"{band.low:g}–{band.high:g} {band.label}")
    return ", ".join(parts)


class _View:
    """The Report shaped for the template."""

    def __init__(self, report: Report) -> None:
        self.report = report
        suite = report.suite
        self.title = report.title or "mergeval comparison report"
        self.generated_at = _fmt_time(report.generated_at)
        self.mergeval_version = report.mergeval_version or _NA
        self.plan = report.plan
        self.suite_name = suite.name
        self.suite_label = suite.label or suite.name
        self.suite_note = suite.note
        self.average_note = suite.average_note
        self.average_covers = average_covers(report)
        # The plan's thresholds, as the report states them (one setting, one reader: mergeval.report.Report).
        self.retention_mark = f"{report.retention_mark:.0%}"
        self.point_factor = f"{1 - report.tolerance:.2f}"

        self.models = _models(report)
        self.colours = {m["name"]: m["colour"] for m in self.models}
        self.role_of = {m["name"]: m["role"] for m in self.models}
        # With one candidate, tables need no "Candidate" column: it is the page's subject.
        self.multi_candidate = len([m for m in self.models if m["role"] == "candidate"]) > 1
        self.benchmarks = _benchmarks(report)
        self.bench_by_name = {b["name"]: b for b in self.benchmarks}

        self.verdict = self._verdict()
        self.gates = self._gates()
        self.gate_counts = {s: sum(g["status"] == s for g in self.gates) for s in ("pass", "fail", "not evaluated")}
        self.gate_groups = self._gate_groups()
        self.tables = self._tables()
        self.glance = self._glance()
        self.charts = self._charts()
        self.subject_charts = self._subject_delta_charts()
        self.stat_groups = self._stat_groups()
        self.regression_rows = self._regression_rows()
        self.retention_rows, self.retention_summaries = self._retention()
        self.subject_tables = self._subject_tables()
        self.sanity = self._sanity()
        self.band_columns, self.bands, self.band_notes = self._bands()
        self.provenance = self._provenance()
        # what an adaptive run did per benchmark (none: the section is left out)
        self.adaptive = [{**a.model_dump(), "rules": [f"{r.rule}: {r.verdict} [{_fmt(r.lower)}, {_fmt(r.upper)}]"
                                                      for r in a.rules]} for a in report.adaptive]

    # -- who and what -----------------------------------------------------------------------------

    def display(self, benchmark: Any) -> str:
        b = self.bench_by_name.get(str(benchmark))
        return b["display"] if b else self.report.display(str(benchmark))

    def score(self, model: str, benchmark: str) -> ScoreEntry:
        return self.report.score(model, benchmark) or ScoreEntry()

    def value(self, model: str, benchmark: str) -> float | None:
        return self.report.value(model, benchmark) if benchmark != "average" else None

    def candidates(self) -> list[str]:
        return [m["name"] for m in self.models if m["role"] == "candidate"]

    def references_of(self, candidate: str) -> list[str]:
        """The models a candidate's deltas are shown against: its parents, else the bases/baselines."""
        model = next((m for m in self.models if m["name"] == candidate), None)
        declared = list(model["merge"].parents) if model and model["merge"] else []
        parents = [p for p in declared if p in self.role_of] or [
            m["name"] for m in self.models if m["role"] == "parent"
        ]
        return parents or [m["name"] for m in self.models if m["role"] in ("base", "baseline")]

    def parents_of(self, candidate: str) -> list[str]:
        return [r for r in self.references_of(candidate) if self.role_of.get(r) == "parent"]

    # -- verdict and gates ------------------------------------------------------------------------

    def _verdict(self) -> dict:
        verdict = self.report.verdict
        return {
            "status": verdict.status,
            "css": {"pass": "pass", "fail": "fail"}.get(verdict.status, "warn"),
            "summary": verdict.summary,
            "exit_code": verdict.exit_code,
        }

    def _gates(self) -> list[dict]:
        return [self._gate(g) for g in self.report.gates]

    @staticmethod
    def _gate(g: Any) -> dict:
        value, threshold = gate_figures(g)
        written = gate_as_written(g)
        return {
            "name": g.name,
            "written": written,
            "description": g.description if g.description and g.description != written else "",
            "status": g.status,
            "css": {PASS: "pass", FAIL: "fail"}.get(g.status, "na"),
            "mark": {PASS: "✓", FAIL: "✗"}.get(g.status, "?"),
            "value": value,
            "threshold": threshold,
            "detail": g.detail,
        }

    def _gate_groups(self) -> list[dict]:
        """Gates per candidate, failed first: what a reader looks for first."""
        groups = []
        for candidate, gates in gate_groups(self.report):
            counts = {s: sum(g.status == s for g in gates) for s in (FAIL, NOT_EVALUATED, PASS)}
            groups.append({"candidate": candidate, "gates": [self._gate(g) for g in gates],
                           "counts": counts, "css": "fail" if counts[FAIL] else "na" if counts[NOT_EVALUATED] else "pass"})
        return groups

    # -- the comparison table ---------------------------------------------------------------------

    def _glance(self) -> list[dict]:
        """Every model's Average for the page's header; a candidate's with its difference to the mean of its
        parents."""
        averages = self.report.averages
        if not any(_is_number(averages.get(m["name"])) for m in self.models):
            return []
        present = [a for m in self.models if _is_number(a := averages.get(m["name"]))]
        best = max(present) if len(present) > 1 else None
        out = []
        for m in self.models:
            average = averages.get(m["name"])
            parents = [averages.get(p) for p in self.parents_of(m["name"])] if m["role"] == "candidate" else []
            delta = (average - mean(parents)) if parents and _is_number(average) and all(
                _is_number(p) for p in parents) else None
            out.append({"name": m["name"], "colour": m["colour"], "average": _fmt(average),
                        "best": _is_number(average) and average == best,
                        "delta": f"{_fmt_signed(delta)} vs parents" if delta is not None else "",
                        "delta_tone": _tone(delta),
                        "delta_title": "the Average minus the mean of its parents' Averages, in points"})
        return out

    def _tables(self) -> list[dict]:
        """The models x benchmarks table, folded into several when it would not fit a laptop screen: each
        table has the model, its Average (the first number column) and up to eight benchmarks."""
        by_name = {b.name: b for b in self.report.benchmarks}
        entries = [by_name.get(b["name"]) or BenchmarkEntry(name=b["name"]) for b in self.benchmarks]
        groups = benchmark_groups(self.report, entries)
        full = self._table()
        members = average_members(self.report) if self.report.benchmarks else {b["name"] for b in self.benchmarks}
        tables = []
        for title, benches in groups or [("", [])]:
            keep = [i for i, b in enumerate(self.benchmarks) if b["name"] in {e.name for e in benches}]
            rows = [
                {**row, "cells": [row["cells"][i] for i in keep],
                 "deltas": [{**d, "cells": [d["cells"][i] for i in keep]} for d in row["deltas"]]}
                for row in full["rows"]
            ]
            benchmarks = [{**self.benchmarks[i], "in_average": self.benchmarks[i]["name"] in members} for i in keep]
            tables.append({"title": title, "rows": rows, "benchmarks": benchmarks})
        return tables

    def _table(self) -> dict:
        best = {}
        for b in self.benchmarks:
            values = [v for m in self.models if (v := self.value(m["name"], b["name"])) is not None]
            if len(values) > 1:
                best[b["name"]] = max(values) if b["higher_is_better"] else min(values)
        averages = [a for m in self.models if _is_number(a := self.report.averages.get(m["name"]))]
        best_average = max(averages) if len(averages) > 1 else None
        rows = []
        for m in self.models:
            name = m["name"]
            average = self.report.averages.get(name)
            rows.append(
                {
                    "model": m,
                    "cells": [self._cell(name, b, best.get(b["name"])) for b in self.benchmarks],
                    "average": _fmt(average),
                    "average_best": _is_number(average) and average == best_average,
                    "band": self.report.bands.get(name, {}).get(AVERAGE_BAND) or "",
                    "deltas": self._delta_rows(name) if m["role"] == "candidate" else [],
                }
            )
        return {"rows": rows, "benchmarks": self.benchmarks}

    def _cell(self, model: str, b: dict, best: float | None) -> dict:
        stored = self.report.score(model, b["name"])
        s = stored or ScoreEntry()
        return {
            "text": _fmt(s.value) if s.value is not None else _NOT_EVALUATED,
            "na": s.value is None,
            "stderr": _fmt(s.stderr) if _is_number(s.stderr) else "",
            "best": s.value is not None and s.value == best,
            "partial": f"{s.n}/{s.n_target}" if s.n < s.n_target else "",
            "title": self._cell_title(s, b, counted=stored is not None),
            # leaderboard v2: lm-eval's raw score under the normalised one
            "raw": _fmt(s.raw) if b["normalized"] and _is_number(s.raw) else "",
        }

    @staticmethod
    def _cell_title(s: ScoreEntry, b: dict, *, counted: bool) -> str:
        parts = [f"{b['display']} ({b['metric_key']})" if b["metric_key"] else b["display"]]
        if _is_number(s.ci_low) and _is_number(s.ci_high):
            parts.append(f"95% CI {s.ci_low:.2f}–{s.ci_high:.2f}")
        if counted:
            parts.append(f"{s.n} of {s.n_target} items")
        return "; ".join(parts)

    def _delta_cell(self, candidate: str, ref: str, b: dict) -> dict:
        a, r = self.value(candidate, b["name"]), self.value(ref, b["name"])
        diff = a - r if a is not None and r is not None else None
        comp = self.report.comparison(candidate, ref, b["name"])
        significant = bool(comp and comp.significant)
        title = f"{b['display']}: {candidate} minus {ref}"
        if comp:
            title += (
                f"; 95% CI {_fmt_signed(comp.ci_low)} to {_fmt_signed(comp.ci_high)}"
                f", p (Holm) {_fmt_p(comp.p_adjusted)}"
                f"{', significant' if significant else ', not significant'}"
            )
        return {"text": _fmt_signed(diff), "tone": _tone(diff, b["higher_is_better"]), "significant": significant,
                "title": title}

    def _delta_rows(self, candidate: str) -> list[dict]:
        rows = []
        for ref in self.references_of(candidate):
            avg_a, avg_r = self.report.averages.get(candidate), self.report.averages.get(ref)
            avg_diff = avg_a - avg_r if _is_number(avg_a) and _is_number(avg_r) else None
            rows.append(
                {
                    "reference": ref,
                    "role": self.role_of.get(ref, ""),
                    "cells": [self._delta_cell(candidate, ref, b) for b in self.benchmarks],
                    "average": _fmt_signed(avg_diff),
                    "average_tone": _tone(avg_diff),
                }
            )
        return rows

    # -- charts -----------------------------------------------------------------------------------

    def _axes(self) -> dict[str, tuple[MetricSpec, list[dict]]]:
        """Benchmarks grouped by the axis they can share: one per unit and range, lower-is-better apart,
        so MT-Bench (1-10) or perplexity never share an axis with accuracies (0-100)."""
        axes: dict[str, tuple[MetricSpec, list[dict]]] = {}
        for b in self.benchmarks:
            spec = self.report.metric(b["name"])
            if not spec.higher_is_better:
                key = "lower"
            elif spec.unit == "%" and spec.range == (0.0, 100.0):
                key = "percent"
            else:
                key = "-".join(str(part) for part in (spec.unit, *spec.range)).replace(" ", "")
            axes.setdefault(key, (spec, []))[1].append(b)
        return axes

    def _bar_chart(self, key: str, spec: MetricSpec, benchmarks: list[dict]) -> dict | None:
        groups = [(b["display"], [self._bar(m["name"], b["name"]) for m in self.models]) for b in benchmarks]
        if not any(bar.value is not None for _, bars in groups for bar in bars):
            return None
        top = max((bar.high or bar.value or 0) for _, bars in groups for bar in bars)
        step = charts.nice_step(top)
        auto = math.ceil(top / step) * step or 1.0
        if key == "percent":
            y_max, y_label = 100.0, "score (0-100)"
        elif key == "lower":
            y_max, y_label = auto, "lower is better"
        else:
            y_max = spec.range[1] if spec.range[1] is not None else auto
            y_label = f"{' / '.join(b['display'] for b in benchmarks)} score ({spec.unit})"
        svg = charts.grouped_bars(groups, self.colours, y_max=y_max, y_label=y_label,
                                  title="Scores per benchmark with 95% confidence intervals")
        return {
            "id": f"bars-{key}",
            "title": "Scores per benchmark",
            "svg": Markup(svg),
            "caption": (
                "Whiskers: 95% confidence interval (the report's interval, else ±1.96 standard "
                "errors). Faded bars: incomplete runs. Hover a bar for its numbers."
            ),
        }

    def _radar(self, benchmarks: list[dict]) -> dict | None:
        series = [(m["name"], [self.value(m["name"], b["name"]) for b in benchmarks]) for m in self.models]
        series = [s for s in series if any(v is not None for v in s[1])]
        if len(benchmarks) < 3 or not series:
            return None
        svg = charts.radar([b["display"] for b in benchmarks], series, self.colours,
                           title="Profile across tasks, one polygon per model")
        return {"id": "radar", "title": "Profile across tasks", "svg": Markup(svg),
                "caption": charts.radar_caption(series)}

    def _charts(self) -> list[dict]:
        axes = self._axes()
        out = [self._bar_chart(key, spec, benchmarks) for key, (spec, benchmarks) in axes.items()]
        out.append(self._radar(axes["percent"][1] if "percent" in axes else []))
        return [chart for chart in out if chart is not None]

    def _bar(self, model: str, benchmark: str) -> charts.Bar:
        s = self.score(model, benchmark)
        value = self.value(model, benchmark)
        low, high = s.ci_low, s.ci_high
        if not (_is_number(low) and _is_number(high)) and value is not None and _is_number(s.stderr):
            low, high = value - 1.96 * s.stderr, value + 1.96 * s.stderr
        if not (_is_number(low) and _is_number(high)):
            low = high = None
        note = f"incomplete: {s.n} of {s.n_target} items" if s.n < s.n_target else ""
        return charts.Bar(model, value, low, high, note)

    def _subject_deltas(self, benchmark: str, candidate: str) -> list[charts.DeltaRow]:
        parents = self.parents_of(candidate)
        deltas = []
        for row in self.report.subjects.get(benchmark, []):
            mine = row.values.get(candidate)
            theirs = {p: v for p in parents if _is_number(v := row.values.get(p))}
            if not _is_number(mine) or not theirs:
                continue
            label = self._subject_label(benchmark, row.task)
            delta = mine - mean(theirs.values())
            tip = (
                f"{label}: {mine:.2f} vs parents' mean {mean(theirs.values()):.2f} ("
                + ", ".join(f"{p} {v:.2f}" for p, v in theirs.items())
                + f"); {_fmt_signed(delta)}"
            )
            deltas.append(charts.DeltaRow(label, delta, row.group, tip))
        return deltas

    def _subject_delta_charts(self) -> list[dict]:
        """Per candidate and per benchmark with subjects: candidate minus the mean of its parents."""
        out = []
        for benchmark in self.report.subjects:
            for candidate in self.candidates():
                deltas = self._subject_deltas(benchmark, candidate)
                if not deltas:
                    continue
                title = f"{self.display(benchmark)} subjects: {candidate} minus the mean of its parents"
                out.append(
                    {
                        "title": title,
                        "svg": Markup(charts.delta_bars(deltas, title=title)),
                        "groups": self._group_summary(deltas),
                    }
                )
        return out

    @staticmethod
    def _group_summary(deltas: list[charts.DeltaRow]) -> list[dict]:
        """Per subject group: how many subjects, mean delta, how many got better / worse."""
        by_group: dict[str | None, list[float]] = {}
        for d in deltas:
            by_group.setdefault(d.group, []).append(d.delta)
        rows = [
            (charts.group_label(group), charts.GROUP_COLOURS.get((group or "").lower(), "#6b7280"), values)
            for group, values in by_group.items()
        ]
        rows.append(("all subjects", "transparent", [d.delta for d in deltas]))
        return [
            {
                "group": label,
                "colour": colour,
                "n": len(values),
                "mean": _fmt_signed(mean(values)),
                "tone": _tone(mean(values)),
                "better": sum(v > 0 for v in values),
                "worse": sum(v < 0 for v in values),
            }
            for label, colour, values in rows
        ]

    @staticmethod
    def _subject_label(benchmark: str, task: Any) -> str:
        text = str(task or "?")
        prefix = f"{benchmark}_"
        return text.removeprefix(prefix).replace("_", " ")

    # -- statistics, regressions, retention ---------------------------------------------------------

    def _stat_groups(self) -> list[dict]:
        """The paired comparisons folded per candidate, then per benchmark family; each fold shows the
        significant rows and keeps the others behind "show all"."""
        entries = {b.name: b for b in self.report.benchmarks}
        out: dict[str, dict] = {}
        for row in self._comparison_rows():
            bench = entries.get(row["bench_name"])
            family = family_of(self.report, bench) if bench else "other"
            cand = out.setdefault(row["candidate"], {"candidate": row["candidate"], "families": {}})
            cand["families"].setdefault(family, []).append(row)
        groups = []
        for cand in out.values():
            families = [
                {"title": title, "n": len(rows), "n_significant": sum(bool(r["significant"]) for r in rows),
                 "significant": _by_reference([r for r in rows if r["significant"]]),
                 "other": _by_reference([r for r in rows if not r["significant"]]),
                 "n_other": sum(not r["significant"] for r in rows)}
                for title, rows in cand["families"].items()
            ]
            groups.append({
                "candidate": cand["candidate"], "families": families,
                "n": sum(f["n"] for f in families), "n_significant": sum(f["n_significant"] for f in families),
            })
        return groups

    def _comparison_rows(self) -> list[dict]:
        rows = []
        for c in self.report.comparisons:
            bench = self.bench_by_name.get(c.benchmark, {"higher_is_better": True})
            rows.append(
                {
                    "candidate": c.candidate,
                    "reference": c.reference,
                    "role": c.reference_role or self.role_of.get(c.reference, ""),
                    "benchmark": self.display(c.benchmark),
                    "candidate_value": _fmt(c.candidate_value),
                    "reference_value": _fmt(c.reference_value),
                    "diff": _fmt_signed(c.diff),
                    "tone": _tone(c.diff, bench["higher_is_better"]),
                    "ci": (
                        f"[{_fmt_signed(c.ci_low)}, {_fmt_signed(c.ci_high)}]"
                        if _is_number(c.ci_low) and _is_number(c.ci_high)
                        else _NA
                    ),
                    "p": _fmt_p(c.p_value),
                    "p_adjusted": _fmt_p(c.p_adjusted),
                    "test": c.test or _NA,
                    "significant": c.significant,
                    "n_paired": str(c.n_paired) if c.n_paired is not None else _NA,
                    "n_missing": max(c.n_missing, 0),
                    "mdd": "—" if nothing_differs(c) else _fmt(c.mdd),
                    "mdd_reason": NO_MDD_REASON if nothing_differs(c) else "",
                    "bench_name": c.benchmark,
                }
            )
        return rows

    def _regression_rows(self) -> list[dict]:
        css = {"regression": "fail", "possible regression": "warn", "improvement": "pass",
               "possible improvement": "soft-pass"}
        return [
            {
                "candidate": r.candidate,
                "benchmark": self.display(r.benchmark),
                "parents": [(p, _fmt(v)) for p, v in r.parents.items()],
                "merged": _fmt(r.merged),
                "threshold": _fmt(r.threshold),
                "drop": _fmt(r.drop),
                "point_rule": r.point_rule,
                "significant": r.significant,
                "verdict": r.verdict,
                "critical": r.critical,
                "css": css.get(r.verdict, "na"),
            }
            for r in self.report.regressions
        ]

    def _retention(self) -> tuple[list[dict], list[dict]]:
        mark = self.report.retention_mark
        rows, by_candidate = [], {}
        for r in self.report.retention:
            display = self.display(r.benchmark)
            tip = (f"{display}: {_fmt_pct(r.vs_mean_parents)} of the parents' mean, {_fmt_pct(r.vs_best_parent)} "
                   "of the best parent" + (f" · {r.summary}" if r.summary else ""))
            row = {
                "candidate": r.candidate,
                "benchmark": display,
                "vs_mean": _fmt_pct(r.vs_mean_parents),
                "vs_best": _fmt_pct(r.vs_best_parent),
                "vs_mean_bad": _is_number(r.vs_mean_parents) and r.vs_mean_parents < mark,
                "per_parent": [(p, _fmt_pct(v), _is_number(v) and v < mark) for p, v in r.per_parent.items()],
                "expected": (f"{_fmt(r.expected_range[0])} – {_fmt(r.expected_range[1])}"
                             if r.expected_range and len(r.expected_range) == 2 else _NA),
                "within": r.within_range,
                "position": (position := range_position(self.report, r)),
                "position_text": {"within": "within", "above": "above the parents' range",
                                  "below": "below the parents' range"}.get(position or "", _NA),
                "position_tone": {True: "good", False: "bad"}.get(range_good(self.report, r, position), ""),
                "summary": r.summary,
                "_chart": charts.RetentionRow(display, r.vs_mean_parents, r.vs_best_parent, tip),
            }
            rows.append(row)
            by_candidate.setdefault(r.candidate, []).append(row)
        return rows, [self._retention_summary(c, cand_rows, mark) for c, cand_rows in by_candidate.items()]

    def _retention_summary(self, candidate: str, rows: list[dict], mark: float) -> dict:
        chart_rows = [row["_chart"] for row in rows]
        svg = ""
        if any(c.vs_mean is not None or c.vs_best is not None for c in chart_rows):
            svg = Markup(
                charts.retention_bars(chart_rows, threshold=mark, colour=self.colours.get(candidate, "#7c3aed"),
                                      title=f"Retention of {candidate}: merged score / parents' score")
            )
        return {"candidate": candidate, "svg": svg, "lines": [row["summary"] for row in rows if row["summary"]]}

    def _subject_tables(self) -> list[dict]:
        """All subjects for all models (collapsed by default): the numbers behind the delta chart."""
        tables = []
        names = [m["name"] for m in self.models]
        for benchmark, rows in self.report.subjects.items():
            body = []
            for row in rows:
                present = [v for n in names if _is_number(v := row.values.get(n))]
                top = max(present) if len(present) > 1 else None
                body.append(
                    {
                        "group": (row.group or "").replace("_", " "),
                        "task": self._subject_label(benchmark, row.task),
                        "cells": [(_fmt(row.values.get(n)), _is_number(row.values.get(n)) and row.values.get(n) == top)
                                  for n in names],
                    }
                )
            body.sort(key=lambda r: (r["group"], r["task"]))
            if body:
                tables.append({"benchmark": self.display(benchmark), "models": names, "rows": body})
        return tables

    # -- sanity, bands, provenance ------------------------------------------------------------------

    def _sanity(self) -> dict:
        """Models x checks, each cell a status with the detail as its tooltip; failures are listed too."""
        models: list[str] = []
        checks: list[str] = []
        cells: dict[tuple[str, str], dict] = {}
        failures = []
        for s in self.report.sanity:
            check = s.check.replace("_", " ")
            cell = {"status": s.status, "css": {"pass": "pass", "fail": "fail"}.get(s.status, "na"), "detail": s.detail}
            models += [s.model] if s.model not in models else []
            checks += [check] if check not in checks else []
            cells[(check, s.model)] = cell
            if s.status == "fail":
                failures.append({"model": s.model, "check": check, "detail": s.detail})
        missing = {"status": _NOT_EVALUATED, "css": "na", "detail": ""}
        return {
            "checks": checks,
            "rows": [
                (m, self.role_of.get(m, ""), [cells.get((check, m), missing) for check in checks])
                for m in models
            ],
            "failures": failures,
        }

    def _bands(self) -> tuple[list[str], list[dict], list[str]]:
        """(column titles, a row per model with a label, "title: band table" notes) of the score bands."""
        names = band_columns(self.report)
        titles = ["Average" if n == AVERAGE_BAND else self.report.metric(n).title for n in names]
        rows = [
            {"model": model, "role": self.role_of.get(model, ""),
             "labels": [bands.get(n) or _NA for n in names]}
            for model, bands in self.report.bands.items() if any(bands.get(n) for n in names)
        ]
        notes = [f"{title}: {_band_text(self.report.metric(name).bands)}" for name, title in zip(names, titles, strict=True)
                 if self.report.metric(name).bands]
        return titles, rows, notes

    def _provenance(self) -> dict:
        prov = self.report.provenance.to_dict()
        shown = {"lm_eval_version", "tasks", "checks", "models"}
        runtime = recorded_runtime(self.report)
        settings = prov.get("settings")
        if isinstance(settings, Mapping):  # the recorded backend and device replace the plan's unset ("auto") ones
            prov["settings"] = {k: v for k, v in settings.items() if not (k in ("backend", "device") and v is None)}
        return {
            "runtime": {m: {k: v or "not recorded" for k, v in r.items()} for m, r in runtime.items()},
            "backends": sorted({v for r in runtime.values() if (v := r["backend"])}),
            "devices": sorted({v for r in runtime.values() if (v := r["device"])}),
            "lm_eval_version": prov.get("lm_eval_version") or _NA,
            "tasks": _as_table(prov.get("tasks")),
            "checks": _as_table(prov.get("checks")),
            "models": _as_table(prov.get("models")),
            "other": {str(k): v for k, v in prov.items() if k not in shown},
        }


def _by_reference(rows: list[dict]) -> list[dict]:
    """Comparison rows grouped by their reference (a Holm family), in report order."""
    groups: dict[str, dict] = {}
    for row in rows:
        groups.setdefault(row["reference"], {"reference": row["reference"], "role": row["role"], "rows": []})
        groups[row["reference"]]["rows"].append(row)
    return list(groups.values())


def _as_table(value: Any) -> dict | None:
    """A mapping of name -> flat mapping as (columns, rows) for a table; anything else stays a tree (None)."""
    if not isinstance(value, Mapping) or not value:
        return None
    if not all(isinstance(v, Mapping) for v in value.values()):
        return None
    columns: list[str] = []
    for v in value.values():
        columns += [str(k) for k in v if str(k) not in columns]
    rows = [(str(name), [_fmt_any(_flat(v.get(c))) for c in columns]) for name, v in value.items()]
    return {"columns": columns, "rows": rows}


def _as_yaml(value: Mapping) -> str:
    """A merge recipe the way mergekit users write it; anything YAML cannot represent becomes a string."""
    try:
        return yaml.safe_dump(dict(value), sort_keys=False, default_flow_style=None, width=100)
    except yaml.YAMLError:
        return json.dumps(value, indent=2, default=str)


def _flat(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(_flat(v)) for v in value)
    return value
