"""The comparison report as Markdown (GitHub-flavoured tables), from the report dict alone.

Sections: verdict, models, scores (best per column in bold), per-subject tables (on request), each
candidate's deltas against its parents and baselines, paired statistics, retention, regressions, the gate
checklist, sanity checks, missing evaluations, provenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mergeval.compare.tables import (
    best_per_column,
    delta_columns,
    delta_rows,
    models_by_role,
    status_mark,
    value,
)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


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


def _scores(report: Mapping[str, Any]) -> list[str]:
    best = best_per_column(report)
    headers = (
        ["Model", "Role"]
        + [f"{b['display']} ({b['metric_key']})" for b in report["benchmarks"]]
        + ["Average"]
    )
    rows = []
    for m in report["models"]:
        cells = [m["name"], m["role"]]
        for b in report["benchmarks"]:
            s = report["scores"].get(m["name"], {}).get(b["name"], {})
            v = s.get("value")
            text = _num(v)
            if v is not None and s.get("n", 0) < s.get("n_target", 0):
                text += f" ({s['n']}/{s['n_target']})"
            if v is not None and best.get(b["name"]) is not None and v == best[b["name"]]:
                text = f"**{text}**"
            cells.append(text)
        avg = report["averages"].get(m["name"])
        text = _num(avg)
        if avg is not None and best.get("average") is not None and avg == best["average"]:
            text = f"**{text}**"
        band = (report.get("bands", {}).get(m["name"]) or {}).get("leaderboard")
        if band:
            text += f" ({band})"
        cells.append(text)
        rows.append(cells)
    lines = ["## Scores", ""]
    suite = report.get("suite") or {}
    if suite.get("label"):
        lines += [f"{suite['label']}.", ""]
    lines += _table(headers, rows, "ll" + "r" * (len(report["benchmarks"]) + 1))
    notes = [
        "Best value per column in **bold**; (n/N) = items evaluated of the items asked for.",
        "Average = plain mean of "
        + (", ".join(report["provenance"].get("average_of", [])) or "the suite")
        + ".",
    ]
    if report["provenance"].get("limit"):
        notes.append(
            f"limit={report['provenance']['limit']} items per task: a quick look, not a full evaluation."
        )
    if suite.get("note"):
        notes.append(suite["note"])
    return lines + [""] + [f"- {n}" for n in notes] + [""]


def _subjects(report: Mapping[str, Any]) -> list[str]:
    lines = []
    names = [m["name"] for m in report["models"]]
    displays = {b["name"]: b["display"] for b in report["benchmarks"]}
    for bench, rows in report.get("subjects", {}).items():
        lines += [f"### {displays.get(bench, bench)} by subject", ""]
        ordered = sorted(rows, key=lambda r: (r.get("group") or "", r["task"]))
        lines += _table(
            ["Group", "Subject"] + names,
            [[r.get("group") or "", r["task"]] + [_num(r["values"].get(n)) for n in names] for r in ordered],
            "ll" + "r" * len(names),
        )
        lines.append("")
    return lines


def _deltas(report: Mapping[str, Any], candidate: str) -> list[str]:
    cols = delta_columns(report)
    if not cols:
        return []
    rows = []
    for row in delta_rows(report, candidate):
        cells = [row["display"], _num(row["value"])]
        for key, _ in cols:
            d = row["deltas"].get(key)
            if d is None:
                cells.append("-")
                continue
            text = _signed(d["diff"])
            if key in ("best parent", "worst parent"):
                text += f" ({d['reference']})"
            if d["significant"]:
                text += " *"
            cells.append(text)
        rows.append(cells)
    return (
        [f"### {candidate}: differences", ""]
        + _table(["Benchmark", candidate] + [h for _, h in cols], rows)
        + [
            "",
            (
                "- Δ = candidate - reference, in points; * = significant in the paired test (Holm-adjusted, "
                f"alpha {report['provenance']['statistics']['alpha']})."
            ),
            "",
        ]
    )


def _paired(report: Mapping[str, Any]) -> list[str]:
    if not report["comparisons"]:
        return []
    displays = {b["name"]: b["display"] for b in report["benchmarks"]}
    rows = [
        [
            c["candidate"],
            c["reference"],
            displays.get(c["benchmark"], c["benchmark"]),
            _signed(c["diff"]),
            f"[{_signed(c['ci_low'])}, {_signed(c['ci_high'])}]",
            f"{_p(c['p_value'])} ({c['test']})",
            _p(c["p_adjusted"]),
            "yes" if c["significant"] else "no",
            c["n_paired"],
            c["n_missing"],
            _num(c["mdd"]),
        ]
        for c in report["comparisons"]
    ]
    return (
        ["## Paired statistics", ""]
        + _table(
            [
                "Candidate",
                "Reference",
                "Benchmark",
                "Diff",
                "95% CI",
                "p (test)",
                "p Holm",
                "Significant",
                "n paired",
                "n missing",
                "MDD",
            ],
            rows,
            "lll" + "r" * 8,
        )
        + [
            "",
            (
                "- Paired per item: exact McNemar for 0/1 scores, else paired bootstrap (stratified by "
                "subject for multi-subject benchmarks); Holm-adjusted across the benchmarks of each pair. "
                "MDD = smallest "
                "difference this many items detects with 80% power: a non-significant diff smaller than the "
                'MDD is "not shown", not "no difference".'
            ),
            "",
        ]
    )


def _retention(report: Mapping[str, Any]) -> list[str]:
    if not report["retention"]:
        return []
    parents = models_by_role(report, "parent")
    displays = {b["name"]: b["display"] for b in report["benchmarks"]}
    displays["average"] = "Average"
    rows = []
    for r in report["retention"]:
        lo, hi = r["expected_range"]
        rows.append(
            [
                r["candidate"],
                displays.get(r["benchmark"], r["benchmark"]),
                _pct(r["vs_mean_parents"]),
                _pct(r["vs_best_parent"]),
            ]
            + [_pct(r["per_parent"].get(p)) for p in parents]
            + [f"[{_num(lo)}, {_num(hi)}]", {True: "yes", False: "no", None: "-"}[r["within_range"]]]
        )
    lines = (
        ["## Capability retention", ""]
        + _table(
            ["Candidate", "Benchmark", "vs mean of parents", "vs best parent"]
            + [f"vs {p}" for p in parents]
            + ["Expected range", "In range"],
            rows,
            "ll" + "r" * (len(parents) + 3) + "l",
        )
        + [
            "",
            (
                f"- Retention = merged / mean(parents); the methodology's pass mark is "
                f"{report['provenance']['settings'].get('retention', 0.95):.0%}."
            ),
            "",
        ]
    )
    summaries = [r for r in report["retention"] if r["benchmark"] == "average"]
    for r in summaries:
        lines += [f"- **{r['candidate']}**: {r['summary']}"]
    return lines + ([""] if summaries else [])


def _regressions(report: Mapping[str, Any]) -> list[str]:
    if not report["regressions"]:
        return []
    displays = {b["name"]: b["display"] for b in report["benchmarks"]}
    rows = [
        [
            r["candidate"],
            displays.get(r["benchmark"], r["benchmark"]) + (" (critical)" if r["critical"] else ""),
            ", ".join(f"{p} {_num(v)}" for p, v in r["parents"].items()),
            _num(r["merged"]),
            _num(r["threshold"]),
            _signed(-r["drop"]),
            "yes" if r["point_rule"] else "no",
            "yes" if r["significant"] else "no",
            r["verdict"],
        ]
        for r in report["regressions"]
    ]
    tol = report["provenance"]["settings"].get("tolerance", 0.05)
    return (
        ["## Regressions", ""]
        + _table(
            [
                "Candidate",
                "Benchmark",
                "Parents",
                "Merged",
                "Threshold",
                "vs weakest parent",
                "Point rule",
                "Significant",
                "Verdict",
            ],
            rows,
            "lll" + "r" * 5 + "l",
        )
        + [
            "",
            (
                f"- Point rule (the methodology's): merged < min(parents) x {1 - tol:.2f}. "
                '"regression" = point rule and a significant paired drop vs the weakest parent; '
                '"possible regression" = point rule only. Improvements mirror it above max(parents).'
            ),
            "",
        ]
    )


def _gates(report: Mapping[str, Any]) -> list[str]:
    verdict = report["verdict"]
    lines = ["## Deployment checklist", ""]
    if not report["gates"]:
        return lines + ["No gates in the plan.", ""]

    def show(x: Any) -> str:
        return _num(x) if isinstance(x, float) else ("-" if x is None else str(x))

    rows = [
        [status_mark(g["status"]), g["name"], show(g["value"]), show(g["threshold"]), g["detail"]]
        for g in report["gates"]
    ]
    return (
        lines
        + _table(["Status", "Gate", "Value", "Threshold", "Detail"], rows, "lllll")
        + ["", f"**{verdict['summary']}** (exit code {verdict['exit_code']})", ""]
    )


def _sanity(report: Mapping[str, Any]) -> list[str]:
    if not report["sanity"]:
        return []
    rows = [[s["model"], s["check"], status_mark(s["status"]), s["detail"]] for s in report["sanity"]]
    lines = ["## Sanity checks", ""] + _table(["Model", "Check", "Status", "Detail"], rows, "llll") + [""]
    facts = report.get("facts") or {}
    if facts:
        rows = [
            [m, _num(f.get("size_gb"), 3), _num(f.get("params_b"), 3), _num(f.get("tokens_per_second"), 1)]
            for m, f in facts.items()
        ]
        lines += _table(["Model", "Size (GB)", "Parameters (B)", "Tokens/s"], rows) + [""]
    return lines


def _missing(report: Mapping[str, Any]) -> list[str]:
    missing = report.get("missing") or []
    if not missing:
        return []
    rows = [[m["model"], m["check"], m["benchmark"] or "-", m["detail"]] for m in missing]
    return (
        ["## Missing evaluations", ""]
        + _table(["Model", "Check", "Benchmark", "Detail"], rows, "llll")
        + ["", "Run `mergeval run PLAN` to evaluate them.", ""]
    )


def _provenance(report: Mapping[str, Any]) -> list[str]:
    prov = report["provenance"]
    lines = ["## Provenance", ""]
    rows = []
    for m in report["models"]:
        merge = m.get("merge") or {}
        p = prov.get("models", {}).get(m["name"], {})
        rows.append(
            [
                m["name"],
                m["role"],
                m["fingerprint"],
                m["reference"],
                p.get("dtype", "-"),
                merge.get("method") or "-",
            ]
        )
    lines += _table(
        ["Model", "Role", "Fingerprint", "Reference", "dtype", "Merge method"], rows, "llllll"
    ) + [""]
    lines += [
        (
            f"- mergeval {prov.get('mergeval_version')}, lm-eval {prov.get('lm_eval_version')}; "
            f"plan {report.get('plan') or '-'} (hash {prov.get('plan_hash')}); store {prov.get('store')}"
        ),
        (
            f"- statistics: {prov['statistics']['tests']}; alpha {prov['statistics']['alpha']}, "
            f"{prov['statistics']['n_boot']} bootstrap resamples, seed {prov['statistics']['seed']}"
        ),
    ]
    tasks = prov.get("tasks") or {}
    if tasks:
        lines += ["", "<details><summary>Tasks</summary>", ""]
        lines += _table(
            ["Task", "Few-shot", "Metric", "Version", "dtype", "Check", "Data"],
            [
                [
                    t,
                    i.get("num_fewshot"),
                    i.get("metric_key"),
                    i.get("task_version"),
                    i.get("dtype"),
                    i.get("check"),
                    i.get("dataset") or "-",
                ]
                for t, i in tasks.items()
            ],
            "lrllll" + "l",
        )
        lines += ["", "</details>"]
    return lines + [""]


def render_markdown(report: Mapping[str, Any], *, subjects: bool = False) -> str:
    """The whole report as one Markdown document. `subjects`: include per-subject (MMLU) tables."""
    verdict = report["verdict"]
    lines = [
        f"# {report['title']}",
        "",
        f"**Verdict: {verdict['status'].upper()}** — {verdict['summary']}",
        "",
        f"Generated {report['generated_at']} by mergeval {report['mergeval_version']}.",
        "",
    ]
    lines += _gates(report)
    lines += _scores(report)
    if subjects:
        lines += _subjects(report)
    candidates = models_by_role(report, "candidate")
    if any(_deltas(report, c) for c in candidates):
        lines += ["## Candidates vs references", ""]
        for c in candidates:
            lines += _deltas(report, c)
    lines += _paired(report)
    lines += _retention(report)
    lines += _regressions(report)
    lines += _sanity(report)
    lines += _missing(report)
    lines += _provenance(report)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: Mapping[str, Any], path, *, subjects: bool = False):
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(report, subjects=subjects), encoding="utf-8")
    return path


__all__ = ["render_markdown", "value", "write_markdown"]
