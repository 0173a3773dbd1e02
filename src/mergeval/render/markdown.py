"""The comparison report as Markdown (GitHub-flavoured tables), from a Report alone.

Sections: verdict, models, scores (best per column in bold), per-subject tables (on request), each
candidate's deltas against its parents and baselines, paired statistics, retention, regressions, the gate
checklist, sanity checks, missing evaluations, provenance.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mergeval.render.tables import (
    BEST_PARENT,
    NO_MDD_REASON,
    WORST_PARENT,
    average_covers,
    average_members,
    benchmark_groups,
    best_per_column,
    delta_columns,
    delta_rows,
    gate_as_written,
    gate_figures,
    gate_groups,
    nothing_differs,
    range_position,
    recorded_runtime,
    status_mark,
)
from mergeval.report import AVERAGE_BAND, FAIL, NOT_EVALUATED, PASS, Comparison, Report, ScoreEntry


def _esc(text: Any) -> str:
    """User text (titles, model and gate names, paths, sign-off, model output) made inert in Markdown: HTML
    escaped (GitHub and most viewers render raw HTML in Markdown), link/image brackets and backticks escaped,
    on one line (a newline could start a heading, a list or an HTML block)."""
    text = html.escape(" ".join(str(text).splitlines()), quote=False)
    for char in ("\\", "`", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text


def _cell(text: Any) -> str:
    """A table cell: escaped as `_esc`, and `|` escaped so it cannot end the cell. Cells hold only user text
    and mergeval's own formatting (`**bold**`, numbers), so escaping the whole cell is safe."""
    return _esc(text).replace("|", "\\|")


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _signed(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:+.2f}" if abs(x) >= 0.005 else "0.00"  # no "-0.00" for float noise


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    out = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
    ]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _score_cell(score: ScoreEntry | None, best: float | None, normalized: bool) -> str:
    if score is None:
        return "-"
    text = _num(score.value)
    if score.partial:
        text += f" ({score.n}/{score.n_target})"
    if score.value is not None and best is not None and score.value == best:
        text = f"**{text}**"
    if normalized and score.raw is not None:  # leaderboard v2: raw beside normalised
        text += f" (raw {_num(score.raw)})"
    return text


def _score_notes(report: Report) -> list[str]:
    prov, suite = report.provenance, report.suite
    notes = [
        "Best value per column in **bold**; (n/N) = items evaluated of the items asked for.",
        _esc(average_covers(report)) + ".",
    ]
    if prov.limit:
        notes.append(f"limit={_esc(prov.limit)} items per task: a quick look, not a full evaluation.")
    if any(b.normalized for b in report.benchmarks):
        notes.append(
            "Normalised as the Open LLM Leaderboard v2: (raw - 1/choices) / (1 - 1/choices) x 100, 0 = random "
            "guessing, clamped at 0; BBH and MuSR per subtask, then averaged. (raw ...) = lm-eval's score."
        )
    if suite.average_note:
        notes.append(suite.average_note + ".")
    if suite.note:
        notes.append(_esc(suite.note))
    return notes


def _scores(report: Report) -> list[str]:
    """Model, role, Average (the first number column), then the benchmarks; more than eight benchmarks fold
    into one table per benchmark family, each with the Average."""
    best = best_per_column(report)
    members = average_members(report)
    lines = ["## Scores", ""]
    if report.suite.label:
        lines += [f"{_esc(report.suite.label)}.", ""]
    groups = benchmark_groups(report) or [("", [])]
    for title, benches in groups:
        headers = (
            ["Model", "Role", "Average"]
            + [f"{b.display}{'' if b.name in members else ' †'} ({b.metric_key}{', normalised' if b.normalized else ''})"
               for b in benches]
        )
        rows = []
        for m in report.models:
            avg = report.averages.get(m.name)
            text = _num(avg)
            if avg is not None and best.get("average") is not None and avg == best["average"]:
                text = f"**{text}**"
            band = report.bands.get(m.name, {}).get(AVERAGE_BAND)
            cells = [m.name, m.role, text + (f" ({band})" if band else "")]
            cells += [_score_cell(report.score(m.name, b.name), best.get(b.name), b.normalized) for b in benches]
            rows.append(cells)
        if title:
            lines += [f"### {_esc(title)}", ""]
        lines += _table(headers, rows, "llr" + "r" * len(benches)) + [""]
    notes = _score_notes(report)
    if any(b.name not in members for b in report.benchmarks):
        notes.insert(1, "† = not in the Average.")
    return lines + [f"- {n}" for n in notes] + [""]


def _subjects(report: Report) -> list[str]:
    lines = []
    names = report.model_names()
    for bench, rows in report.subjects.items():
        lines += [f"### {_esc(report.display(bench))} by subject", ""]
        ordered = sorted(rows, key=lambda r: (r.group or "", r.task))
        lines += _table(
            ["Group", "Subject"] + names,
            [[r.group or "", r.task] + [_num(r.values.get(n)) for n in names] for r in ordered],
            "ll" + "r" * len(names),
        )
        lines.append("")
    return lines


def _deltas(report: Report, candidate: str) -> list[str]:
    cols = delta_columns(report)
    if not cols:
        return []
    rows = []
    ordered = delta_rows(report, candidate)
    ordered = [r for r in ordered if r.benchmark == "average"] + [r for r in ordered if r.benchmark != "average"]
    for row in ordered:
        cells = [row.display, _num(row.value)]
        for key, _ in cols:
            d = row.deltas.get(key)
            if d is None:
                cells.append("-")
                continue
            text = _signed(d.diff)
            if key in (BEST_PARENT, WORST_PARENT):
                text += f" ({d.reference})"
            if d.significant:
                text += " *"
            cells.append(text)
        rows.append(cells)
    return (
        [f"### {_esc(candidate)}: differences", ""]
        + _table(["Benchmark", candidate] + [h for _, h in cols], rows)
        + [
            "",
            (
                "- Δ = candidate - reference, in points; * = significant in the paired test (Holm-adjusted, "
                f"alpha {report.alpha})."
            ),
            "",
        ]
    )


_PAIRED_HEADERS = ["Candidate", "Reference", "Benchmark", "Diff", "95% CI", "p (test)", "p Holm", "Significant",
                   "n paired", "n missing", "MDD"]


def _mdd(c: Comparison) -> str:
    return "— (no item differs)" if nothing_differs(c) else _num(c.mdd)


def _paired_rows(report: Report, comparisons: list[Comparison]) -> list[list[Any]]:
    return [
        [c.candidate, c.reference, report.display(c.benchmark), _signed(c.diff),
         f"[{_signed(c.ci_low)}, {_signed(c.ci_high)}]", f"{_p(c.p_value)} ({c.test})", _p(c.p_adjusted),
         "yes" if c.significant else "no", c.n_paired, c.n_missing, _mdd(c)]
        for c in comparisons
    ]


def _paired(report: Report) -> list[str]:
    """Only the significant differences; the others are counted, and listed in a folded block."""
    if not report.comparisons:
        return []
    significant = [c for c in report.comparisons if c.significant]
    rest = [c for c in report.comparisons if not c.significant]
    lines = ["## Paired statistics", ""]
    if significant:
        lines += [f"{len(significant)} of {len(report.comparisons)} differences are significant:", ""]
        lines += _table(_PAIRED_HEADERS, _paired_rows(report, significant), "lll" + "r" * 8)
    else:
        lines += [f"None of the {len(report.comparisons)} differences is significant."]
    if rest:
        lines += ["", f"{len(rest)} more not significant: all {len(report.comparisons)} are in the folded list below.",
                  "", "<details><summary>All comparisons</summary>", ""]
        lines += _table(_PAIRED_HEADERS, _paired_rows(report, report.comparisons), "lll" + "r" * 8)
        lines += ["", "</details>"]
    notes = [(
        "- Paired per item: exact McNemar for 0/1 scores, else paired bootstrap (stratified by subject for "
        "multi-subject benchmarks); Holm-adjusted across the benchmarks of each pair. MDD = smallest difference "
        'this many items detects with 80% power: a non-significant diff smaller than the MDD is "not shown", '
        'not "no difference".'
    )]
    if any(nothing_differs(c) for c in report.comparisons):
        notes.append(f"- MDD — : {NO_MDD_REASON}.")
    return lines + ["", *notes, ""]


def _position(report: Report, row: Any) -> str:
    position = range_position(report, row)
    return {"above": "above the range", "below": "below the range", "within": "within"}.get(position or "", "-")


def _retention(report: Report) -> list[str]:
    if not report.retention:
        return []
    parents = report.model_names("parent")
    rows = []
    for r in report.retention:
        lo, hi = r.expected_range or (None, None)
        rows.append(
            [r.candidate, report.display(r.benchmark), _pct(r.vs_mean_parents), _pct(r.vs_best_parent)]
            + [_pct(r.per_parent.get(p)) for p in parents]
            + [f"[{_num(lo)}, {_num(hi)}]", _position(report, r)]
        )
    headers = (["Candidate", "Benchmark", "vs mean of parents", "vs best parent"] + [f"vs {p}" for p in parents]
               + ["Parents' range", "Merged is"])
    lines = (
        ["## Capability retention", ""]
        + _table(headers, rows, "ll" + "r" * (len(parents) + 3) + "l")
        + ["", f"- Retention = merged / mean(parents); the plan's pass mark is {report.retention_mark:.0%}.", ""]
    )
    summaries = [r for r in report.retention if r.benchmark == "average"]
    lines += [f"- **{_esc(r.candidate)}**: {_esc(r.summary)}" for r in summaries]
    return lines + ([""] if summaries else [])


_REGRESSION_HEADERS = ["Candidate", "Benchmark", "Parents", "Merged", "Threshold", "vs weakest parent", "Point rule",
                       "Significant", "Verdict"]


def _regressions(report: Report) -> list[str]:
    if not report.regressions:
        return []
    rows = [
        [r.candidate, report.display(r.benchmark) + (" (critical)" if r.critical else ""),
         ", ".join(f"{p} {_num(v)}" for p, v in r.parents.items()), _num(r.merged), _num(r.threshold),
         _signed(-r.drop if r.drop is not None else None), "yes" if r.point_rule else "no",
         "yes" if r.significant else "no", r.verdict]
        for r in report.regressions
    ]
    return (
        ["## Regressions", ""]
        + _table(_REGRESSION_HEADERS, rows, "lll" + "r" * 5 + "l")
        + [
            "",
            (
                f"- Point rule (the methodology's): merged < min(parents) x {1 - report.tolerance:.2f}. "
                '"regression" = point rule and a significant paired drop vs the weakest parent; '
                '"possible regression" = point rule only. Improvements mirror it above max(parents).'
            ),
            "",
        ]
    )



_MARK = {PASS: "✓", FAIL: "✗", NOT_EVALUATED: "?"}


def _gates(report: Report) -> list[str]:
    """Per candidate, failed first: the gate as the plan writes it, the number against its threshold."""
    lines = ["## Deployment checklist", ""]
    if not report.gates:
        return lines + ["No gates in the plan.", ""]
    groups = gate_groups(report)
    for candidate, gates in groups:
        if candidate and (len(groups) > 1 or len(report.model_names("candidate")) > 1):
            failed = sum(g.status == FAIL for g in gates)
            lines += [f"### {_esc(candidate)}: {failed} of {len(gates)} gates failed", ""]
        rows = []
        for g in gates:
            value, threshold = gate_figures(g)
            result = f"{value} {_MARK.get(g.status, '?')}" + (f" (threshold {threshold})" if threshold else "")
            what = g.description if g.description and g.description != gate_as_written(g) else ""
            rows.append([f"{_MARK.get(g.status, '?')} {status_mark(g.status)}", gate_as_written(g), result,
                         "; ".join(t for t in (g.detail, what) if t)])
        lines += _table(["Status", "Gate", "Result", "Detail"], rows, "llll") + [""]
    return lines + [f"**{_esc(report.verdict.summary)}** (exit code {report.verdict.exit_code})", ""]


def _fact(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:,.2f}"


def _sanity(report: Report) -> list[str]:
    if not report.sanity:
        return []
    rows = [[s.model, s.check, status_mark(s.status), s.detail] for s in report.sanity]
    return ["## Sanity checks", ""] + _table(["Model", "Check", "Status", "Detail"], rows, "llll") + [""]


def _facts(report: Report) -> list[str]:
    """Single numbers per model (size, speed, win rate, ...), one row per fact."""
    names = list(dict.fromkeys(f for facts in report.facts.values() for f in facts))
    if not names:
        return []
    models = [m for m in report.model_names() if m in report.facts] or list(report.facts)
    rows = [[report.display(f)] + [_fact(report.facts.get(m, {}).get(f)) for m in models] for f in names]
    return ["## Facts", ""] + _table(["Fact"] + models, rows) + [""]


def _adaptive(report: Report) -> list[str]:
    """What an adaptive run did per benchmark: decided after n of N items, why, the anytime-valid intervals."""
    if not report.adaptive:
        return []
    rows = []
    for a in report.adaptive:
        rules = "; ".join(f"{r.rule}: {r.verdict} [{_num(r.lower)}, {_num(r.upper)}]" for r in a.rules) or "-"
        rows.append([a.display or a.benchmark, f"{a.n} of {a.n_target}", a.status, a.items_saved, rules, a.reason])
    alpha = report.adaptive[0].alpha
    lines = ["## Adaptive evaluation", ""]
    lines += _table(["Benchmark", "Items", "Status", "Items saved", "Rules [anytime-valid interval]", "Why"],
                    rows, "lllrll")
    note = (f"Intervals hold at every round simultaneously (confidence sequences, alpha {alpha} split over the "
            "run's rules, docs/methodology.md). Where a benchmark stopped early, its scores are the plain mean of "
            "the items evaluated, slightly biased by the stopping rule; `mergeval run --full` evaluates the rest.")
    lines += ["", note, ""]
    return lines


def _missing(report: Report) -> list[str]:
    if not report.missing:
        return []
    rows = [[m.model, m.check, m.benchmark or "-", m.detail] for m in report.missing]
    return (
        ["## Missing evaluations", ""]
        + _table(["Model", "Check", "Benchmark", "Detail"], rows, "llll")
        + ["", "Run `mergeval run PLAN` to evaluate them.", ""]
    )


def _task_table(tasks: Mapping[str, Any]) -> list[str]:
    rows = [
        [t, i.get("num_fewshot"), i.get("metric_key"), i.get("task_version"), i.get("dtype"), i.get("check"),
         i.get("dataset") or "-"]
        for t, i in tasks.items()
    ]
    table = _table(["Task", "Few-shot", "Metric", "Version", "dtype", "Check", "Data"], rows, "lrllll" + "l")
    return ["", "<details><summary>Tasks</summary>", ""] + table + ["", "</details>"]


def _provenance(report: Report) -> list[str]:
    prov = report.provenance
    runtime = recorded_runtime(report)
    rows = [
        [m.name, m.role, m.fingerprint, m.reference, prov.models.get(m.name, {}).get("dtype", "-"),
         runtime.get(m.name, {}).get("backend") or "not recorded", runtime.get(m.name, {}).get("device") or "not recorded",
         (m.merge.method if m.merge else None) or "-"]
        for m in report.models
    ]
    lines = ["## Provenance", ""]
    lines += _table(["Model", "Role", "Fingerprint", "Reference", "dtype", "Backend", "Device", "Merge method"], rows,
                    "llllllll") + [""]
    stats = prov.statistics
    lines += [
        (
            f"- mergeval {prov.mergeval_version}, lm-eval {prov.lm_eval_version}; "
            f"plan {_esc(report.plan or '-')} (hash {prov.plan_hash}); store {_esc(prov.store)}"
        ),
        (
            f"- statistics: {stats.get('tests')}; alpha {stats.get('alpha')}, {stats.get('n_boot')} bootstrap "
            f"resamples, seed {stats.get('seed')}"
        ),
    ]
    if prov.tasks:
        lines += _task_table(prov.tasks)
    return lines + [""]


def render_markdown(report: Report | Mapping[str, Any], *, subjects: bool = False) -> str:
    """The whole report as one Markdown document. `subjects`: include per-subject (MMLU) tables."""
    report = Report.from_data(report)
    verdict = report.verdict
    lines = [
        f"# {_esc(report.title)}",
        "",
        f"**Verdict: {verdict.status.upper()}** — {_esc(verdict.summary)}",
        "",
        f"Generated {report.generated_at} by mergeval {report.mergeval_version}.",
        "",
    ]
    lines += _gates(report) + _scores(report) + _adaptive(report)
    if subjects:
        lines += _subjects(report)
    candidates = report.model_names("candidate")
    if any(_deltas(report, c) for c in candidates):
        lines += ["## Candidates vs references", ""]
        for c in candidates:
            lines += _deltas(report, c)
    for section in (_paired, _retention, _regressions, _sanity, _facts, _missing, _provenance):
        lines += section(report)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: Report | Mapping[str, Any], path: str | Path, *, subjects: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(report, subjects=subjects), encoding="utf-8")
    return path


__all__ = ["render_markdown", "write_markdown"]
