"""The self-contained HTML report: one file that opens offline, with inline CSS and inline SVG charts.

``render_html(report)`` turns a comparison report dict (schema ``mergeval.report/1``, produced by
mergeval.compare) into a page; ``write_html(report, path)`` writes it. The page has no external resource of
any kind (no CDN, no web font, no script library) and a Content-Security-Policy that forbids loading one,
so it looks the same on a laptop on a plane as in CI artifacts.

How it is built, top to bottom:

* ``_View`` turns the report dict into plain, already formatted rows for the template. The report may come
  from an older or partial run, so every optional key may be missing or null: those show as "-" or
  "not evaluated", never as an exception.
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
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from mergeval.errors import UserError
from mergeval.report import _svg_charts as charts

SCHEMA = "mergeval.report/1"
RETENTION_THRESHOLD = 0.95  # the methodology's pass mark for retention (merged / mean of parents)
_TEMPLATES = Path(__file__).parent / "templates"
_NA = "-"
_NOT_EVALUATED = "not evaluated"

# The only script on the page: open every collapsible section before printing, so paper shows everything.
_PRINT_SCRIPT = (
    "window.addEventListener('beforeprint',function(){"
    "document.querySelectorAll('details').forEach(function(d){d.open=true;});});"
)


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (a string)."""
    if not isinstance(report, Mapping):
        raise UserError(
            f"The HTML report needs a comparison report dict, got {type(report).__name__}: "
            "pass the result of mergeval.compare(...) (or the JSON report it wrote, loaded with json.load)."
        )
    schema = report.get("schema")
    if schema is not None and schema != SCHEMA:
        raise UserError(
            f"This report has schema {schema!r}, but this mergeval renders {SCHEMA!r}: re-run "
            "`mergeval compare` with this version, or render it with the mergeval version that wrote it."
        )
    view = _View(report)
    script_hash = base64.b64encode(hashlib.sha256(_PRINT_SCRIPT.encode()).digest()).decode()
    return (
        _environment()
        .get_template("report.html.j2")
        .render(v=view, script=Markup(_PRINT_SCRIPT), script_hash=script_hash)
    )


def write_html(report: Mapping[str, Any], path: str | Path) -> Path:
    """Render the report and write it to ``path`` (parent folders are created); returns the path."""
    path = Path(path)
    html = render_html(report)
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


def _items(value: Any) -> list:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


# --------------------------------------------------------------------------------------------------
# The view: everything the template shows, formatted
# --------------------------------------------------------------------------------------------------


class _View:
    """The report dict, read defensively and shaped for the template."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.report = report
        suite = _mapping(report.get("suite"))
        self.title = str(report.get("title") or "mergeval comparison report")
        self.generated_at = _fmt_time(report.get("generated_at"))
        self.mergeval_version = str(report.get("mergeval_version") or _NA)
        self.plan = report.get("plan")
        self.suite_name = suite.get("name") or ""
        self.suite_label = suite.get("label") or self.suite_name
        self.suite_note = suite.get("note") or ""

        self.models = self._models()
        self.colours = charts.model_colours([(m["name"], m["role"]) for m in self.models])
        for m in self.models:
            m["colour"] = self.colours[m["name"]]
        self.role_of = {m["name"]: m["role"] for m in self.models}
        # With one candidate, tables need no "Candidate" column: it is the page's subject.
        self.multi_candidate = len([m for m in self.models if m["role"] == "candidate"]) > 1
        self.benchmarks = self._benchmarks()
        self.bench_by_name = {b["name"]: b for b in self.benchmarks}
        self.scores = _mapping(report.get("scores"))
        self.averages = _mapping(report.get("averages"))
        self.comparisons = [c for c in _items(report.get("comparisons")) if isinstance(c, Mapping)]

        self.verdict = self._verdict()
        self.gates = self._gates()
        self.gate_counts = {
            s: sum(g["status"] == s for g in self.gates) for s in ("pass", "fail", "not evaluated")
        }
        self.table = self._table()
        self.charts = self._charts()
        self.subject_charts = self._subject_delta_charts()
        self.comparison_groups = self._comparison_groups()
        self.regression_rows = self._regression_rows()
        self.retention_rows, self.retention_summaries = self._retention()
        self.subject_tables = self._subject_tables()
        self.sanity = self._sanity()
        self.bands = self._bands()
        self.provenance = self._provenance()

    # -- who and what -----------------------------------------------------------------------------

    def _models(self) -> list[dict]:
        models, seen = [], set()
        for m in _items(self.report.get("models")):
            if not isinstance(m, Mapping) or m.get("name") is None:
                continue
            name = str(m["name"])
            seen.add(name)
            merge = m.get("merge") if isinstance(m.get("merge"), Mapping) else None
            models.append(
                {
                    "name": name,
                    "role": str(m.get("role") or "model"),
                    "fingerprint": m.get("fingerprint") or _NA,
                    "reference": m.get("reference") or _NA,
                    "merge": merge,
                    "merge_text": _as_yaml(merge) if merge else "",
                }
            )
        # Scores for a model the models list forgot still deserve a row.
        for name in _mapping(self.report.get("scores")):
            if str(name) not in seen:
                models.append(
                    {
                        "name": str(name),
                        "role": "model",
                        "fingerprint": _NA,
                        "reference": _NA,
                        "merge": None,
                        "merge_text": "",
                    }
                )
                seen.add(str(name))
        return models

    def _benchmarks(self) -> list[dict]:
        benchmarks = []
        for b in _items(self.report.get("benchmarks")):
            if not isinstance(b, Mapping) or b.get("name") is None:
                continue
            metric_key = str(b.get("metric_key") or "")
            benchmarks.append(
                {
                    "name": str(b["name"]),
                    "display": str(b.get("display") or b["name"]),
                    # lm-eval's "metric,filter" minus the default filter: "acc", "exact_match · strict-match"
                    "metric_key": metric_key,
                    "metric_short": metric_key.removesuffix(",none").replace(",", " · "),
                    "kind": b.get("kind") or "",
                    "higher_is_better": b.get("higher_is_better") is not False,
                }
            )
        if not benchmarks:  # fall back to whatever the scores mention
            names: list[str] = []
            for per_model in _mapping(self.report.get("scores")).values():
                names += [n for n in _mapping(per_model) if n not in names]
            benchmarks = [
                {
                    "name": n,
                    "display": n,
                    "metric_key": "",
                    "metric_short": "",
                    "kind": "",
                    "higher_is_better": True,
                }
                for n in names
            ]
        return benchmarks

    def display(self, benchmark: Any) -> str:
        b = self.bench_by_name.get(str(benchmark))
        return b["display"] if b else str(benchmark)

    def score(self, model: str, benchmark: str) -> Mapping:
        return _mapping(_mapping(self.scores.get(model)).get(benchmark))

    def value(self, model: str, benchmark: str) -> float | None:
        v = self.score(model, benchmark).get("value")
        return v if _is_number(v) else None

    def candidates(self) -> list[str]:
        return [m["name"] for m in self.models if m["role"] == "candidate"]

    def references_of(self, candidate: str) -> list[str]:
        """The models a candidate's deltas are shown against: its parents, else the bases/baselines."""
        model = next((m for m in self.models if m["name"] == candidate), None)
        declared = [str(p) for p in _items(_mapping(model and model["merge"]).get("parents"))]
        parents = [p for p in declared if p in self.role_of] or [
            m["name"] for m in self.models if m["role"] == "parent"
        ]
        return parents or [m["name"] for m in self.models if m["role"] in ("base", "baseline")]

    def parents_of(self, candidate: str) -> list[str]:
        return [r for r in self.references_of(candidate) if self.role_of.get(r) == "parent"]

    def comparison(self, candidate: str, reference: str, benchmark: str) -> Mapping | None:
        for c in self.comparisons:
            if (c.get("candidate"), c.get("reference"), c.get("benchmark")) == (
                candidate,
                reference,
                benchmark,
            ):
                return c
        return None

    # -- verdict and gates ------------------------------------------------------------------------

    def _verdict(self) -> dict:
        verdict = _mapping(self.report.get("verdict"))
        status = str(verdict.get("status") or "incomplete")
        return {
            "status": status,
            "css": {"pass": "pass", "fail": "fail"}.get(status, "warn"),
            "summary": verdict.get("summary") or "",
            "exit_code": verdict.get("exit_code"),
        }

    def _gates(self) -> list[dict]:
        gates = []
        for g in _items(self.report.get("gates")):
            if not isinstance(g, Mapping):
                continue
            status = str(g.get("status") or _NOT_EVALUATED)
            gates.append(
                {
                    "name": str(g.get("name") or ""),
                    "description": g.get("description") or g.get("name") or "",
                    "status": status,
                    "css": {"pass": "pass", "fail": "fail"}.get(status, "na"),
                    "value": _fmt_any(g.get("value")),
                    "threshold": _fmt_any(g.get("threshold")),
                    "detail": g.get("detail") or "",
                }
            )
        return gates

    # -- the comparison table ---------------------------------------------------------------------

    def _table(self) -> dict:
        best = {}
        for b in self.benchmarks:
            values = [v for m in self.models if (v := self.value(m["name"], b["name"])) is not None]
            if len(values) > 1:
                best[b["name"]] = max(values) if b["higher_is_better"] else min(values)
        averages = [a for m in self.models if _is_number(a := self.averages.get(m["name"]))]
        best_average = max(averages) if len(averages) > 1 else None

        rows = []
        for m in self.models:
            name = m["name"]
            cells = []
            for b in self.benchmarks:
                s = self.score(name, b["name"])
                value = self.value(name, b["name"])
                n, n_target = s.get("n"), s.get("n_target")
                partial = _is_number(n) and _is_number(n_target) and n < n_target
                cells.append(
                    {
                        "text": _fmt(value) if value is not None else _NOT_EVALUATED,
                        "na": value is None,
                        "stderr": _fmt(s.get("stderr")) if _is_number(s.get("stderr")) else "",
                        "best": value is not None and value == best.get(b["name"]),
                        "partial": f"{n}/{n_target}" if partial else "",
                        "title": self._cell_title(s, b),
                    }
                )
            average = self.averages.get(name)
            band = _mapping(_mapping(self.report.get("bands")).get(name)).get("leaderboard")
            rows.append(
                {
                    "model": m,
                    "cells": cells,
                    "average": _fmt(average),
                    "average_best": _is_number(average) and average == best_average,
                    "band": band or "",
                    "deltas": self._delta_rows(name) if m["role"] == "candidate" else [],
                }
            )
        return {"rows": rows, "benchmarks": self.benchmarks}

    @staticmethod
    def _cell_title(s: Mapping, b: Mapping) -> str:
        parts = [f"{b['display']} ({b['metric_key']})" if b["metric_key"] else b["display"]]
        if _is_number(s.get("ci_low")) and _is_number(s.get("ci_high")):
            parts.append(f"95% CI {s['ci_low']:.2f}–{s['ci_high']:.2f}")
        if _is_number(s.get("n")):
            parts.append(f"{s['n']} of {s.get('n_target', s['n'])} items")
        return "; ".join(parts)

    def _delta_rows(self, candidate: str) -> list[dict]:
        rows = []
        for ref in self.references_of(candidate):
            cells = []
            for b in self.benchmarks:
                a, r = self.value(candidate, b["name"]), self.value(ref, b["name"])
                diff = a - r if a is not None and r is not None else None
                comp = self.comparison(candidate, ref, b["name"])
                significant = bool(comp and comp.get("significant"))
                title = f"{b['display']}: {candidate} minus {ref}"
                if comp:
                    title += (
                        f"; 95% CI {_fmt_signed(comp.get('ci_low'))} to {_fmt_signed(comp.get('ci_high'))}"
                        f", p (Holm) {_fmt_p(comp.get('p_adjusted'))}"
                        f"{', significant' if significant else ', not significant'}"
                    )
                cells.append(
                    {
                        "text": _fmt_signed(diff),
                        "tone": _tone(diff, b["higher_is_better"]),
                        "significant": significant,
                        "title": title,
                    }
                )
            avg_a, avg_r = self.averages.get(candidate), self.averages.get(ref)
            avg_diff = avg_a - avg_r if _is_number(avg_a) and _is_number(avg_r) else None
            rows.append(
                {
                    "reference": ref,
                    "role": self.role_of.get(ref, ""),
                    "cells": cells,
                    "average": _fmt_signed(avg_diff),
                    "average_tone": _tone(avg_diff),
                }
            )
        return rows

    # -- charts -----------------------------------------------------------------------------------

    def _charts(self) -> list[dict]:
        out = []
        # Bars: one chart per scale, so MT-Bench (1-10) or perplexity never share an axis with accuracies.
        scales: dict[str, list[dict]] = {}
        for b in self.benchmarks:
            key = (
                "mtbench" if b["kind"] == "mtbench" else ("lower" if not b["higher_is_better"] else "percent")
            )
            scales.setdefault(key, []).append(b)
        for key, benchmarks in scales.items():
            groups = [
                (b["display"], [self._bar(m["name"], b["name"]) for m in self.models]) for b in benchmarks
            ]
            if not any(bar.value is not None for _, bars in groups for bar in bars):
                continue
            if key == "percent":
                y_max, y_label = 100.0, "score (0-100)"
            elif key == "mtbench":
                y_max, y_label = 10.0, "MT-Bench score (1-10)"
            else:
                top = max((bar.high or bar.value or 0) for _, bars in groups for bar in bars)
                step = charts.nice_step(top)
                y_max, y_label = math.ceil(top / step) * step or 1.0, "lower is better"
            out.append(
                {
                    "id": f"bars-{key}",
                    "title": "Scores per benchmark",
                    "svg": Markup(
                        charts.grouped_bars(
                            groups,
                            self.colours,
                            y_max=y_max,
                            y_label=y_label,
                            title="Scores per benchmark with 95% confidence intervals",
                        )
                    ),
                    "caption": (
                        "Whiskers: 95% confidence interval (the report's interval, else ±1.96 standard "
                        "errors). Faded bars: incomplete runs. Hover a bar for its numbers."
                    ),
                }
            )
        radar_benchmarks = scales.get("percent", [])
        if len(radar_benchmarks) >= 3:
            series = [
                (m["name"], [self.value(m["name"], b["name"]) for b in radar_benchmarks]) for m in self.models
            ]
            series = [s for s in series if any(v is not None for v in s[1])]
            if series:
                out.append(
                    {
                        "id": "radar",
                        "title": "Profile across tasks",
                        "svg": Markup(
                            charts.radar(
                                [b["display"] for b in radar_benchmarks],
                                series,
                                self.colours,
                                title="Profile across tasks, one polygon per model",
                            )
                        ),
                        "caption": (
                            "The radius does not start at zero, so a few points of difference stay visible."
                        ),
                    }
                )
        return out

    def _bar(self, model: str, benchmark: str) -> charts.Bar:
        s = self.score(model, benchmark)
        value = self.value(model, benchmark)
        low, high = s.get("ci_low"), s.get("ci_high")
        if not (_is_number(low) and _is_number(high)) and value is not None and _is_number(s.get("stderr")):
            low, high = value - 1.96 * s["stderr"], value + 1.96 * s["stderr"]
        if not (_is_number(low) and _is_number(high)):
            low = high = None
        n, n_target = s.get("n"), s.get("n_target")
        note = (
            f"incomplete: {n} of {n_target} items"
            if _is_number(n) and _is_number(n_target) and n < n_target
            else ""
        )
        return charts.Bar(model, value, low, high, note)

    def _subject_delta_charts(self) -> list[dict]:
        """Per candidate and per benchmark with subjects: candidate minus the mean of its parents."""
        out = []
        for benchmark, rows in _mapping(self.report.get("subjects")).items():
            for candidate in self.candidates():
                parents = self.parents_of(candidate)
                deltas = []
                for row in _items(rows):
                    values = _mapping(_mapping(row).get("values"))
                    mine = values.get(candidate)
                    theirs = [values[p] for p in parents if _is_number(values.get(p))]
                    if not _is_number(mine) or not theirs:
                        continue
                    label = self._subject_label(benchmark, row.get("task"))
                    delta = mine - mean(theirs)
                    tip = (
                        f"{label}: {mine:.2f} vs parents' mean {mean(theirs):.2f} ("
                        + ", ".join(f"{p} {values[p]:.2f}" for p in parents if _is_number(values.get(p)))
                        + f"); {_fmt_signed(delta)}"
                    )
                    deltas.append(charts.DeltaRow(label, delta, row.get("group"), tip))
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

    def _comparison_groups(self) -> list[dict]:
        """The comparison rows grouped by (candidate, reference): Holm's correction runs within a group."""
        groups: dict[tuple[str, str], dict] = {}
        for row in self._comparison_rows():
            key = (row["candidate"], row["reference"])
            if key not in groups:
                groups[key] = {
                    "candidate": row["candidate"],
                    "reference": row["reference"],
                    "role": row["role"],
                    "rows": [],
                }
            groups[key]["rows"].append(row)
        for group in groups.values():
            group["n_significant"] = sum(bool(r["significant"]) for r in group["rows"])
        return list(groups.values())

    def _comparison_rows(self) -> list[dict]:
        rows = []
        for c in self.comparisons:
            bench = self.bench_by_name.get(str(c.get("benchmark")), {"higher_is_better": True})
            n_missing = c.get("n_missing")
            rows.append(
                {
                    "candidate": str(c.get("candidate", _NA)),
                    "reference": str(c.get("reference", _NA)),
                    "role": str(c.get("reference_role") or self.role_of.get(str(c.get("reference")), "")),
                    "benchmark": self.display(c.get("benchmark")),
                    "candidate_value": _fmt(c.get("candidate_value")),
                    "reference_value": _fmt(c.get("reference_value")),
                    "diff": _fmt_signed(c.get("diff")),
                    "tone": _tone(c.get("diff"), bench["higher_is_better"]),
                    "ci": (
                        f"[{_fmt_signed(c.get('ci_low'))}, {_fmt_signed(c.get('ci_high'))}]"
                        if _is_number(c.get("ci_low")) and _is_number(c.get("ci_high"))
                        else _NA
                    ),
                    "p": _fmt_p(c.get("p_value")),
                    "p_adjusted": _fmt_p(c.get("p_adjusted")),
                    "test": c.get("test") or _NA,
                    "significant": c.get("significant"),
                    "n_paired": str(c["n_paired"]) if _is_number(c.get("n_paired")) else _NA,
                    "n_missing": n_missing if _is_number(n_missing) and n_missing > 0 else 0,
                    "mdd": _fmt(c.get("mdd")),
                }
            )
        return rows

    def _regression_rows(self) -> list[dict]:
        rows = []
        for r in _items(self.report.get("regressions")):
            if not isinstance(r, Mapping):
                continue
            verdict = str(r.get("verdict") or "ok")
            rows.append(
                {
                    "candidate": str(r.get("candidate", _NA)),
                    "benchmark": self.display(r.get("benchmark")),
                    "parents": [(str(p), _fmt(v)) for p, v in _mapping(r.get("parents")).items()],
                    "merged": _fmt(r.get("merged")),
                    "threshold": _fmt(r.get("threshold")),
                    "drop": _fmt(r.get("drop")),
                    "point_rule": r.get("point_rule"),
                    "significant": r.get("significant"),
                    "verdict": verdict,
                    "critical": bool(r.get("critical")),
                    "css": {
                        "regression": "fail",
                        "possible regression": "warn",
                        "improvement": "pass",
                        "possible improvement": "soft-pass",
                    }.get(verdict, "na"),
                }
            )
        return rows

    def _retention(self) -> tuple[list[dict], list[dict]]:
        rows, by_candidate = [], {}
        for r in _items(self.report.get("retention")):
            if not isinstance(r, Mapping):
                continue
            candidate = str(r.get("candidate", _NA))
            expected = _items(r.get("expected_range"))
            per_parent = _mapping(r.get("per_parent"))
            row = {
                "candidate": candidate,
                "benchmark": self.display(r.get("benchmark")),
                "vs_mean": _fmt_pct(r.get("vs_mean_parents")),
                "vs_best": _fmt_pct(r.get("vs_best_parent")),
                "vs_mean_bad": _is_number(r.get("vs_mean_parents"))
                and r["vs_mean_parents"] < RETENTION_THRESHOLD,
                "per_parent": [
                    (str(p), _fmt_pct(v), _is_number(v) and v < RETENTION_THRESHOLD)
                    for p, v in per_parent.items()
                ],
                "expected": (f"{_fmt(expected[0])} – {_fmt(expected[1])}" if len(expected) == 2 else _NA),
                "within": r.get("within_range"),
                "summary": r.get("summary") or "",
                "_chart": charts.RetentionRow(
                    self.display(r.get("benchmark")),
                    r.get("vs_mean_parents") if _is_number(r.get("vs_mean_parents")) else None,
                    r.get("vs_best_parent") if _is_number(r.get("vs_best_parent")) else None,
                    f"{self.display(r.get('benchmark'))}: "
                    f"{_fmt_pct(r.get('vs_mean_parents'))} of the parents' "
                    f"mean, {_fmt_pct(r.get('vs_best_parent'))} of the best parent"
                    + (f" · {r.get('summary')}" if r.get("summary") else ""),
                ),
            }
            rows.append(row)
            by_candidate.setdefault(candidate, []).append(row)
        summaries = []
        for candidate, cand_rows in by_candidate.items():
            chart_rows = [row["_chart"] for row in cand_rows]
            svg = ""
            if any(c.vs_mean is not None or c.vs_best is not None for c in chart_rows):
                svg = Markup(
                    charts.retention_bars(
                        chart_rows,
                        threshold=RETENTION_THRESHOLD,
                        colour=self.colours.get(candidate, "#7c3aed"),
                        title=f"Retention of {candidate}: merged score / parents' score",
                    )
                )
            summaries.append(
                {
                    "candidate": candidate,
                    "svg": svg,
                    "lines": [row["summary"] for row in cand_rows if row["summary"]],
                }
            )
        return rows, summaries

    def _subject_tables(self) -> list[dict]:
        """All subjects for all models (collapsed by default): the numbers behind the delta chart."""
        tables = []
        names = [m["name"] for m in self.models]
        for benchmark, rows in _mapping(self.report.get("subjects")).items():
            body = []
            for row in _items(rows):
                values = _mapping(_mapping(row).get("values"))
                present = [values.get(n) for n in names if _is_number(values.get(n))]
                top = max(present) if len(present) > 1 else None
                body.append(
                    {
                        "group": str(row.get("group") or "").replace("_", " "),
                        "task": self._subject_label(benchmark, row.get("task")),
                        "cells": [
                            (_fmt(values.get(n)), _is_number(values.get(n)) and values.get(n) == top)
                            for n in names
                        ],
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
        for s in _items(self.report.get("sanity")):
            if not isinstance(s, Mapping):
                continue
            model, check = str(s.get("model", _NA)), str(s.get("check", "")).replace("_", " ")
            status = str(s.get("status") or _NOT_EVALUATED)
            cell = {
                "status": status,
                "css": {"pass": "pass", "fail": "fail"}.get(status, "na"),
                "detail": str(s.get("detail") or ""),
            }
            models += [model] if model not in models else []
            checks += [check] if check not in checks else []
            cells[(check, model)] = cell
            if status == "fail":
                failures.append({"model": model, "check": check, "detail": cell["detail"]})
        missing = {"status": _NOT_EVALUATED, "css": "na", "detail": ""}
        return {
            "checks": checks,
            "rows": [
                (m, self.role_of.get(m, ""), [cells.get((check, m), missing) for check in checks])
                for m in models
            ],
            "failures": failures,
        }

    def _bands(self) -> list[dict]:
        out = []
        for name, bands in _mapping(self.report.get("bands")).items():
            bands = _mapping(bands)
            if bands.get("leaderboard") or bands.get("mtbench"):
                out.append(
                    {
                        "model": str(name),
                        "role": self.role_of.get(str(name), ""),
                        "leaderboard": bands.get("leaderboard") or _NA,
                        "mtbench": bands.get("mtbench") or _NA,
                    }
                )
        return out

    def _provenance(self) -> dict:
        prov = _mapping(self.report.get("provenance"))
        shown = {"lm_eval_version", "tasks", "checks", "models"}
        return {
            "lm_eval_version": prov.get("lm_eval_version") or _NA,
            "tasks": _as_table(prov.get("tasks")),
            "checks": _as_table(prov.get("checks")),
            "models": _as_table(prov.get("models")),
            "other": {str(k): v for k, v in prov.items() if k not in shown},
        }


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
