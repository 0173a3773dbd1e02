"""What the HTML and Markdown reports say at a glance (issue 15): the Average first, wide tables folded, gates led
by the gate as written (failed first, per candidate), paired statistics showing the significant rows, and the
text fixes (what the Average covers, an MDD without spread, above/below the parents' range, backend and device).

The wide sample (tests/render/sample_report.py: 16 benchmarks x 6 models, two candidates) carries each case."""

from __future__ import annotations

import re

import pytest
from sample_report import PARENT_A, WIDE_CANDIDATES, WIDE_PARENTS, build_sample_report, build_wide_report

from mergeval.render import render_html, render_markdown
from mergeval.render.tables import benchmark_groups, gate_figures, range_good, range_position
from mergeval.report import GateResult, Report


@pytest.fixture(scope="module")
def wide() -> dict:
    return build_wide_report()


@pytest.fixture(scope="module")
def wide_html(wide) -> str:
    return render_html(wide)


@pytest.fixture(scope="module")
def wide_md(wide) -> str:
    return render_markdown(wide)


def _section(html: str, section: str) -> str:
    start = html.index(f'<section id="{section}"')
    return html[start:html.index("</section>", start)]


def _heads(table: str) -> list[str]:
    """The header texts of a table, without the metric line under a benchmark's name."""
    head = table[table.index("<thead>"):table.index("</thead>")]
    return [re.sub(r"<[^>]+>", "", re.sub(r'<span class="metric">.*?</span>|<sup.*?</sup>', "", cell)).strip()
            for cell in re.findall(r"<th[^>]*>(.*?)</th>", head, re.DOTALL)]


# -- the scores table ----------------------------------------------------------------------------------------


def test_wide_scores_fold_into_tables_with_the_average_first(wide, wide_html):
    scores = _section(wide_html, "scores")
    tables = scores.split('<table class="data scores">')[1:]
    assert len(tables) == 3  # 12 suite benchmarks in two tables of six; the four other checks in one
    displays = [b["display"] for b in wide["benchmarks"]]
    seen = []
    for table in tables:
        heads = _heads(table)
        assert heads[:2] == ["Model", "Average"]
        seen += heads[2:]
        assert table.count('<td class="avg') == len(wide["models"])  # every model's Average in every table
    assert seen == displays  # every benchmark exactly once, in report order
    assert '<h3 class="table-title">leaderboard-mix (1/2)</h3>' in scores
    assert '<h3 class="table-title">humaneval, mtbench, bleu, consistency</h3>' in scores


def test_a_small_report_is_one_table_with_the_average_first():
    html = render_html(build_sample_report())
    scores = _section(html, "scores")
    assert scores.count('<table class="data scores">') == 1 and "table-title" not in scores
    assert _heads(scores)[:3] == ["Model", "Average", "ARC"]


def test_markdown_scores_have_the_average_first_and_fold_like_the_html(wide, wide_md):
    section = wide_md[wide_md.index("## Scores"):wide_md.index("## Candidates vs references")]
    headers = [line for line in section.splitlines() if line.startswith("| Model |")]
    assert len(headers) == 3 and all(h.startswith("| Model | Role | Average | ") for h in headers)
    assert "### leaderboard-mix (1/2)" in section and "### humaneval, mtbench, bleu, consistency" in section
    deltas = wide_md[wide_md.index(f"### {WIDE_CANDIDATES[0]}: differences"):]
    first_row = [line for line in deltas.splitlines() if line.startswith("| ") and "---" not in line][1]
    assert first_row.startswith(f"| Average | {wide['averages'][WIDE_CANDIDATES[0]]:.2f} |")


def test_a_report_without_averages_does_not_describe_one():
    report = build_sample_report()
    report["averages"] = {name: None for name in report["averages"]}
    html, markdown = render_html(report), render_markdown(report)
    assert "No Average: no model has a score on every benchmark" in html and "plain mean" not in html
    assert "No Average: no model has a score on every benchmark" in markdown


def test_the_average_says_what_it_covers(wide_html, wide_md):
    covered = "Average = plain mean of the 12 leaderboard-mix benchmarks (ARC, HellaSwag, MMLU"
    left_out = "not in it: HumanEval, MT-Bench, BLEU (de-en), Consistency"
    assert covered in wide_html and left_out in wide_html
    assert "Average = plain mean of the benchmarks." not in wide_html
    # the columns outside the Average are marked
    assert wide_html.count('<sup class="not-avg" title="not in the Average">†</sup>') == 4
    assert covered in wide_md and left_out in wide_md and "- † = not in the Average." in wide_md
    # every benchmark in the Average: no list, no mark
    small = render_html(build_sample_report())
    assert "Average = plain mean of the 6 benchmarks." in small and 'class="not-avg"' not in small


def test_the_header_shows_every_models_average_and_each_candidates_difference_to_its_parents(wide, wide_html):
    glance = wide_html[wide_html.index('<ul class="glance"'):wide_html.index("</ul>", wide_html.index('<ul class="glance"'))]
    entries = re.findall(r'<span class="model-name">([^<]*)</span> <b>([^<]*)</b>', glance)
    assert entries == [(m["name"], f"{wide['averages'][m['name']]:.2f}") for m in wide["models"]]
    parents = sum(wide["averages"][p] for p in WIDE_PARENTS) / 2
    for candidate in WIDE_CANDIDATES:
        delta = wide["averages"][candidate] - parents
        assert f"{'+' if delta > 0 else '−'}{abs(delta):.2f} vs parents" in glance
    assert glance.count("vs parents") == len(WIDE_CANDIDATES)


def test_benchmark_groups_fold_only_what_is_wide(wide):
    report = Report.from_data(wide)
    assert [len(b) for _, b in benchmark_groups(report)] == [6, 6, 4]
    assert [len(b) for _, b in benchmark_groups(report, max_columns=16)] == [16]
    assert [len(b) for _, b in benchmark_groups(report, max_columns=5)] == [4, 4, 4, 4]


# -- gates ---------------------------------------------------------------------------------------------------


def test_gates_are_grouped_per_candidate_failed_first_and_led_by_the_gate_as_written(wide, wide_html):
    gates = _section(wide_html, "gates")
    groups = gates.split('<div class="gate-group">')[1:]
    assert len(groups) == 2
    for candidate, group in zip(WIDE_CANDIDATES, groups, strict=True):
        assert f'<span class="model-name">{candidate}</span>' in group
        assert "2 failed · 2 not evaluated · 4 passed" in group
        assert re.findall(r'<li class="gate gate-(\w+)"', group) == ["fail"] * 2 + ["na"] * 2 + ["pass"] * 4
        written = re.findall(r'<code class="gate-written">([^<]*)</code>', group)
        assert written[0] == "gsm8k &gt;= max(parents) + 2"  # as the plan writes it, no candidate prefix
        assert candidate not in "".join(written)
    # the retention gate reads as a percentage against its threshold
    kept = next(r["vs_mean_parents"] for r in wide["retention"]
                if r["candidate"] == WIDE_CANDIDATES[0] and r["benchmark"] == "average")
    assert f'<b class="gate-value">{kept:.1%}</b> <span class="gate-result">✓</span>' in groups[0]
    assert "threshold <b>≥ 95.0%</b>" in groups[0]
    # the generic title is small text under a failed gate, a tooltip on a passed one
    assert '<div class="gate-what">a measured number against a threshold</div>' in groups[0]
    assert 'title="merged score / parents&#39; score (capability retention) · retention &gt;= 95%: pass"' in groups[0]


@pytest.mark.parametrize(
    "gate, expected",
    [
        (GateResult(name="retention >= 95%", value=0.881, threshold=0.95, status="fail"), ("88.1%", "≥ 95.0%")),
        (GateResult(name="m: average >= min(parents)", candidate="m", value=61.234, threshold=60.5), ("61.23", "≥ 60.5")),
        (GateResult(name="no regressions on gsm8k", value=2, threshold=0), ("2", "≤ 0")),
        (GateResult(name="win_rate >= 45%", value=0, threshold=0.45, status="fail"), ("0.0%", "≥ 45.0%")),
        (GateResult(name="gsm8k >= 50%", value=55.12, threshold=0.5), ("55.12", "≥ 0.5")),
        (GateResult(name="sanity checks pass", value="3/4 passed", threshold="4/4"), ("3/4 passed", "4/4")),
        (GateResult(name="manual testing signed off"), ("not measured", "")),
    ],
)
def test_gate_figures(gate, expected):
    assert gate_figures(gate) == expected


def test_markdown_gates_per_candidate_failed_first(wide_md):
    section = wide_md[wide_md.index("## Deployment checklist"):wide_md.index("## Scores")]
    for candidate in WIDE_CANDIDATES:
        assert f"### {candidate}: 2 of 8 gates failed" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Status")]
    rows = [r for r in rows if not r.startswith("| ---")]
    assert len(rows) == 16
    statuses = [r.split(" | ")[0].removeprefix("| ") for r in rows[:8]]
    assert statuses == ["✗ FAIL"] * 2 + ["? NOT EVALUATED"] * 2 + ["✓ PASS"] * 4
    assert rows[0].split(" | ")[1] == "gsm8k &gt;= max(parents) + 2"
    assert re.search(r"\| retention &gt;= 95% \| \d+\.\d% ✓ \(threshold ≥ 95\.0%\) \|", section)


# -- paired statistics ---------------------------------------------------------------------------------------


def test_paired_statistics_fold_per_candidate_and_family_and_show_the_significant_rows(wide, wide_html):
    stats = _section(wide_html, "statistics")
    assert "<script" not in stats  # plain <details>
    folds = stats.split('<details class="fold stat-candidate" open>')[1:]
    assert len(folds) == 2
    for candidate, fold in zip(WIDE_CANDIDATES, folds, strict=True):
        mine = [c for c in wide["comparisons"] if c["candidate"] == candidate]
        significant = sum(c["significant"] for c in mine)
        assert 0 < significant < len(mine) == 48
        assert f"{significant} of 48 differences significant" in fold
        families = re.findall(r'<details class="fold stat-family"( open)?>\s*<summary>([^<]*)<', fold)
        assert [title.strip() for _, title in families] == [
            "leaderboard-mix", "humaneval", "mtbench", "bleu", "consistency"]
        # outside "show all" only the significant rows; "show all" holds the rest
        shown = re.sub(r'<details class="fold show-all">.*?</details>', "", fold, flags=re.DOTALL)
        assert shown.count("<td class=\"delta") == significant
        hidden = re.findall(r'<details class="fold show-all">.*?</details>', fold, flags=re.DOTALL)
        assert sum(h.count('<td class="delta') for h in hidden) == 48 - significant
        # a family folds open only when it has something significant
        for is_open, title in families:
            n_sig = sum(c["significant"] for c in mine
                        if next(b for b in wide["benchmarks"] if b["name"] == c["benchmark"])["kind"]
                        == {"leaderboard-mix": "lm-eval"}.get(title.strip(), title.strip()))
            assert bool(is_open) == (n_sig > 0), title


def test_markdown_paired_statistics_show_the_significant_rows_and_count_the_rest(wide, wide_md):
    section = wide_md[wide_md.index("## Paired statistics"):wide_md.index("## Capability retention")]
    significant = sum(c["significant"] for c in wide["comparisons"])
    assert f"{significant} of 96 differences are significant:" in section
    visible, folded = section.split("<details><summary>All comparisons</summary>")
    table_rows = [line for line in visible.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table_rows) == 1 + significant  # header + the significant rows
    assert all(row.split(" | ")[7] == "yes" for row in table_rows[1:])
    assert f"{96 - significant} more not significant" in visible
    assert len([line for line in folded.splitlines() if line.startswith("| ") and "---" not in line]) == 97


def test_a_minimum_detectable_difference_without_spread_is_a_dash_with_its_reason(wide, wide_html, wide_md):
    zero = [c for c in wide["comparisons"] if c["mdd"] == 0]
    assert [(c["candidate"], c["reference"], c["benchmark"]) for c in zero] == [
        (WIDE_CANDIDATES[1], PARENT_A, "musr")]
    stats = _section(wide_html, "statistics")
    assert stats.count('<td class="no-mdd" title="every paired difference is 0') == 1
    assert '—<span class="why">no item differs</span></td>' in stats
    assert ">0.00</td>" not in stats.replace("±0.00", "")
    assert "| — (no item differs) |" in wide_md and "- MDD — : every paired difference is 0" in wide_md


# -- retention: above / below the parents' range ---------------------------------------------------------------


def test_an_improvement_is_above_the_parents_range_not_flagged(wide, wide_html, wide_md):
    report = Report.from_data(wide)
    arc = next(r for r in report.retention if r.candidate == WIDE_CANDIDATES[0] and r.benchmark == "arc")
    assert arc.within_range is False and range_position(report, arc) == "above" and range_good(report, arc, "above")
    retention = _section(wide_html, "retention")
    assert '<td class="left good">above the parents&#39; range</td>' in retention
    assert ">no</td>" not in retention
    assert "| above the range |" in wide_md
    # below the range reads as bad news; for a lower-is-better metric above is the bad side
    assert range_good(report, arc, "below") is False
    lower = Report.from_data({**wide, "benchmarks": [{**b, "higher_is_better": b["name"] != "arc"}
                                                     for b in wide["benchmarks"]]})
    assert range_good(lower, arc, "above") is False


# -- provenance: the backend and device the runs recorded -------------------------------------------------------


def test_provenance_shows_the_backend_and_device_the_runs_recorded(wide_html, wide_md):
    provenance = _section(wide_html, "provenance")
    models_table = provenance[:provenance.index("<h3>Evaluation</h3>")]
    assert models_table.count('<td class="left mono">HFLM</td><td class="left mono">cuda:0</td>') == 6
    assert "backend <code>HFLM</code>, device <code>cuda:0</code>" in provenance
    assert "<dt>backend</dt>" not in provenance  # the plan's unset ("auto") settings do not show as "-"
    assert "| bfloat16 | HFLM | cuda:0 |" in wide_md


def test_backend_and_device_recorded_per_task_are_shown_and_nothing_recorded_says_so():
    report = build_sample_report()
    html = render_html(report)
    assert "backend <code>hf</code>, device <code>not recorded</code>" in html  # the check's own record
    for task in report["provenance"]["tasks"].values():  # what a run records per lm-eval task
        task.update(backend="HFLM", device="cuda:0")
    del report["provenance"]["checks"]["leaderboard-v1"]["backend"]
    html = render_html(report)
    assert "backend <code>HFLM</code>, device <code>cuda:0</code>" in html
    assert "| HFLM | cuda:0 |" in render_markdown(report)
