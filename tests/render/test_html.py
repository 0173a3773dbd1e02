"""The self-contained HTML report: content, escaping, tolerance of partial reports, and a real browser.

The browser tests load the page in headless Chromium through Playwright (see browser.py):
no console errors, no request leaving the file, the charts drawn, a non-trivial screenshot, a PDF print.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from browser import open_view
from PIL import Image
from sample_report import (
    BASELINE,
    CANDIDATE,
    FIFTH_MODEL,
    PARENT_A,
    PARENT_B,
    build_five_model_report,
    build_sample_report,
)

from mergeval.errors import UserError
from mergeval.render import render_html, write_html

HOSTILE_NAME = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">&amp;'


def _cells(html: str, css_class: str) -> list[str]:
    """Texts of the score cells carrying a class (e.g. 'best'), in page order."""
    pattern = rf'<td[^>]*class="[^"]*\b{css_class}\b[^"]*"[^>]*>\s*<span class="value">([^<]*)</span>'
    return re.findall(pattern, html)


# --------------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------------


def test_report_shows_verdict_suite_models_and_every_benchmark():
    report = build_sample_report()
    html = render_html(report)

    assert "<title>Is hermes-neural-slerp-7b better than its parents? · fail</title>" in html
    assert 'class="verdict verdict-fail"' in html and "exit code 1" in html
    assert "lm-eval 0.4.13 reproduction of the Open LLM Leaderboard v1 settings" in html
    assert "2024-06-11 14:32 UTC" in html
    for name in (CANDIDATE, PARENT_A, PARENT_B, BASELINE):
        assert name in html
    for display in ("ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande", "GSM8K"):
        assert f">{display}<" in html
    # The incomplete baseline GSM8K run is flagged with its item counts.
    assert "660/1319" in html


def test_best_value_per_column_is_marked():
    report = build_sample_report()
    names = [m["name"] for m in report["models"]]
    best = {
        b["name"]: max(report["scores"][n][b["name"]]["value"] for n in names) for b in report["benchmarks"]
    }
    best_average = max(report["averages"].values())
    expected = []  # in page order: row by row, the Average cell first in its row
    for name in names:
        expected += [f"{best_average:.2f}"] if report["averages"][name] == best_average else []
        expected += [
            f"{best[b['name']]:.2f}"
            for b in report["benchmarks"]
            if report["scores"][name][b["name"]]["value"] == best[b["name"]]
        ]
    assert _cells(render_html(report), "best") == expected
    assert len(expected) == 7


def test_lower_is_better_benchmark_marks_the_minimum():
    report = build_sample_report()
    report["benchmarks"].append(
        {
            "name": "wikitext",
            "display": "WikiText ppl",
            "metric_key": "word_perplexity",
            "higher_is_better": False,
            "kind": "perplexity",
        }
    )
    for i, name in enumerate(report["scores"]):
        report["scores"][name]["wikitext"] = {
            "value": 9.5 + i,
            "stderr": None,
            "ci_low": None,
            "ci_high": None,
            "n": 62,
            "n_target": 62,
        }
    html = render_html(report)
    assert "9.50" in _cells(html, "best")
    assert "12.50" not in _cells(html, "best")
    # Perplexity gets its own bar chart: it must not share the 0-100 axis with accuracies.
    assert 'aria-label="Scores per benchmark' in html and html.count("lower is better") >= 1


def test_candidate_deltas_are_signed_coloured_and_marked_when_significant():
    html = render_html(build_sample_report())
    # GSM8K: 55.12 vs 58.76 (Intel) is a significant drop; ARC +0.60 vs Intel is not significant.
    assert re.search(r'<td class="delta bad sig"[^>]*>−3\.64<sup>\*</sup></td>', html)
    assert re.search(r'<td class="delta good"[^>]*>\+0\.60</td>', html)


def test_gates_show_status_value_threshold_and_not_evaluated():
    report = build_sample_report()
    html = render_html(report)
    statuses = [g["status"] for g in report["gates"]]
    assert html.count('class="gate gate-pass"') == statuses.count("pass")
    assert html.count('class="gate gate-fail"') == statuses.count("fail") == 1
    assert html.count('class="gate gate-na"') == statuses.count("not evaluated") == 4
    assert "5 pass · 1 fail · 4 not evaluated" in html
    # each card leads with the gate as written and its number against the threshold
    assert '<code class="gate-written">no_critical_regressions</code>' in html
    assert '<b class="gate-value">1 (GSM8K)</b> <span class="gate-result">✗</span>' in html
    assert "threshold <b>0</b>" in html and '<b class="gate-value">68.04</b>' in html
    # failed first, then not evaluated, then passed
    marks = re.findall(r'<li class="gate gate-(\w+)"', html)
    assert marks == ["fail"] + ["na"] * 4 + ["pass"] * 5


def test_statistics_regressions_retention_and_provenance_sections():
    report = build_sample_report()
    html = render_html(report)
    # One fold for the candidate; inside, per reference (a Holm family), the significant rows, the rest behind
    # "show all"; the partial pairing of the baseline's GSM8K.
    significant = sum(c["significant"] for c in report["comparisons"])
    assert 0 < significant < 18  # some, not all
    assert f"{significant} of 18 differences significant" in html
    assert f"show all: {18 - significant} more, not significant" in html
    shown = html.split('<details class="fold show-all">', 1)[0]
    assert shown.split('id="statistics"')[1].count('<span class="status status-') == significant
    assert "−659" in html  # 1319 - 660 items without a pair
    # GSM8K is the one regression; its verdict badge is red.
    assert html.count('<span class="status status-fail">regression</span>') == 1
    assert '<span class="status status-soft-pass">possible improvement</span>' in html
    # Retention: every summary line, the 95% threshold line, GSM8K below it in red.
    for row in report["retention"]:
        assert row["summary"].replace("'", "&#39;") in html
    assert 'class="threshold"' in html and "threshold 95%" in html
    assert '<td class="bad"><b>91.7%</b></td>' in html
    # Provenance: collapsible, with fingerprints, the merge recipe as YAML and the task settings.
    assert '<details class="fold">\n    <summary><h2>Provenance</h2>' in html
    assert "sha256:9f1c2e7a4b0d5e6f" in html and "method: slerp" in html and "mergekit_version: 0.1.5" in html
    assert "truthfulqa_mc2" in html and "0.4.13" in html


def test_charts_are_inline_svg_with_one_bar_per_model_and_benchmark():
    report = build_sample_report()
    html = render_html(report)
    assert html.count('<svg class="chart') == 4  # bars, radar, MMLU subject deltas, retention
    assert html.count('<g class="bar"><title>') == 4 * 6 + 6 * 2  # score bars + retention bars
    assert html.count('<g class="row"><title>') == 57  # one bar per MMLU subject
    assert html.count("<polygon points=") == 4  # one radar polygon per model
    assert 'class="whisker"' in html


def test_whiskers_fall_back_to_stderr_when_the_interval_is_missing():
    report = build_sample_report()
    score = report["scores"][CANDIDATE]["arc"]
    score.update(value=50.0, stderr=1.0, ci_low=None, ci_high=None)
    html = render_html(report)
    assert f"{CANDIDATE} · ARC: 50.00 (95% CI 48.04–51.96)" in html


def test_bands_are_labels_not_verdicts():
    html = render_html(build_sample_report())
    assert "labels, not verdicts" in html
    assert "band: below average" in html  # the baseline's 60.52


# --------------------------------------------------------------------------------------------------
# Safety and robustness
# --------------------------------------------------------------------------------------------------


def test_html_has_no_external_resource_reference():
    html = render_html(build_sample_report())
    scheme_or_host = r"(?:[a-z][a-z0-9+.-]*:|//)"  # http:, https:, data:, file:, //host...
    assert not re.search(
        rf"""\b(?:src|href|action|poster|data)\s*=\s*["']?\s*{scheme_or_host}""", html, re.IGNORECASE
    )
    assert not re.search(rf"url\(\s*['\"]?\s*{scheme_or_host}", html, re.IGNORECASE)
    assert "@import" not in html and "<link" not in html and "<iframe" not in html
    assert "default-src 'none'" in html  # and the browser is told to refuse anything external


def test_hostile_model_names_are_escaped_everywhere():
    report = build_sample_report(candidate=HOSTILE_NAME, parent_b="b&b </td></tr></table>")
    html = render_html(report)
    assert "<script>window.__pwned" not in html
    assert "<img" not in html
    assert '</td></tr></table>"' not in html and "b&b </td>" not in html
    assert html.count("<script") == 1  # the page's own print helper only
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html


def test_minimal_report_renders_with_placeholders():
    html = render_html({"schema": "mergeval.report/1", "title": "Nothing yet"})
    assert "Nothing yet" in html
    assert 'class="verdict verdict-warn"' in html and ">incomplete<" in html
    assert "No gates in this report." in html and "Sanity checks: not evaluated." in html


def test_nulls_and_missing_optional_keys_render_as_not_evaluated():
    report = build_sample_report()
    report["scores"][CANDIDATE]["gsm8k"] = {
        "value": None,
        "stderr": None,
        "ci_low": None,
        "ci_high": None,
        "n": 0,
        "n_target": 1319,
    }
    del report["scores"][BASELINE]["truthfulqa"]
    report["averages"][CANDIDATE] = None
    report["comparisons"][0].update(p_value=None, p_adjusted=None, ci_low=None, significant=None, mdd=None)
    report["retention"][0].update(vs_mean_parents=None, expected_range=None, within_range=None)
    report["regressions"][0]["parents"] = None
    report["subjects"]["mmlu"][0]["values"][CANDIDATE] = None
    report["models"][0]["merge"] = None
    report["verdict"] = None
    for key in ("bands", "sanity", "provenance", "suite", "generated_at"):
        del report[key]
    html = render_html(report)
    assert html.count("not evaluated") >= 4 + 2  # gates, plus the two missing scores
    assert "<sup>*</sup>" in html  # the other deltas still render
    assert html.count('<g class="row"><title>') == 56  # the subject without a candidate value is left out


@pytest.mark.parametrize(
    "key",
    [
        "scores",
        "models",
        "benchmarks",
        "subjects",
        "comparisons",
        "retention",
        "regressions",
        "gates",
        "averages",
        "verdict",
        "provenance",
    ],
)
def test_each_top_level_key_may_be_missing(key):
    report = build_sample_report()
    del report[key]
    assert "<html" in render_html(report)


def test_report_round_trips_through_json():
    report = json.loads(json.dumps(build_sample_report()))
    assert render_html(report) == render_html(build_sample_report())


def test_wrong_input_is_a_user_error():
    with pytest.raises(UserError, match="schema 'mergeval.report/9'"):
        render_html({**build_sample_report(), "schema": "mergeval.report/9"})
    with pytest.raises(UserError, match="comparison report dict"):
        render_html([1, 2, 3])  # type: ignore[arg-type]


def test_write_html_creates_folders_and_does_not_mutate_the_report(tmp_path):
    report = build_sample_report()
    before = copy.deepcopy(report)
    path = write_html(report, tmp_path / "deep" / "er" / "report.html")
    assert path == tmp_path / "deep" / "er" / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert report == before


# --------------------------------------------------------------------------------------------------
# A real browser
# --------------------------------------------------------------------------------------------------


def _page_facts(page) -> dict:
    return page.evaluate("""JSON.stringify({
        scripts: document.scripts.length,
        images: document.images.length,
        pwned: window.__pwned === undefined ? null : window.__pwned,
        text: document.body.innerText,
        charts: [...document.querySelectorAll('svg.chart')]
            .map(s => Math.round(s.getBoundingClientRect().width)),
        overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        background: getComputedStyle(document.body).backgroundColor,
    })""")


def test_page_loads_cleanly_in_headless_chromium(browser, tmp_path):
    report_path = write_html(build_sample_report(), tmp_path / "report.html")
    hostile_path = write_html(build_sample_report(candidate=HOSTILE_NAME), tmp_path / "hostile.html")

    with open_view(browser, report_path, width=1280, height=900) as page:
        facts = json.loads(_page_facts(page))
        assert page.problems.all() == []
        assert page.problems.requested_urls == [report_path.resolve().as_uri()]
        assert facts["scripts"] == 1 and facts["images"] == 0
        assert (
            len(facts["charts"]) == 4 and min(facts["charts"]) > 300
        )  # every chart drawn at a readable size
        assert facts["overflow"] <= 0  # nothing wider than a laptop screen
        assert "GSM8K" in facts["text"] and "not evaluated" in facts["text"]

        screenshot = page.screenshot(tmp_path / "report.png", full_page=True)
        with Image.open(screenshot) as image:
            assert image.width >= 1200 and image.height > 3000  # the full page
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 200  # charts and badges, not a blank page
            light_background = image.convert("RGB").getpixel((5, image.height - 5))

        pdf = tmp_path / "report.pdf"
        page.page.pdf(path=pdf, print_background=True)
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000

        page.page.emulate_media(color_scheme="dark")
        dark = json.loads(_page_facts(page))
        assert dark["background"] != facts["background"]
        with Image.open(page.screenshot(tmp_path / "dark.png")) as image:
            dark_background = image.convert("RGB").getpixel((5, image.height - 5))
        assert sum(dark_background) < sum(light_background) - 300

        page.page.emulate_media(color_scheme="light")
        page.set_viewport(820, 900)
        narrow = json.loads(_page_facts(page))
        assert narrow["overflow"] <= 0  # tables scroll inside their cards, the page does not

        # On paper nothing can scroll: at about an A4 text width, every table and chart fits.
        page.set_viewport(720, 900)
        page.page.emulate_media(media="print")
        printed = json.loads(_page_facts(page))
        assert printed["overflow"] <= 0
        page.page.emulate_media(media="screen")

        page.load(hostile_path)
        hostile = json.loads(_page_facts(page))
        assert page.problems.all() == []
        assert hostile["pwned"] is None and hostile["images"] == 0 and hostile["scripts"] == 1
        assert "<script>window.__pwned=1</script>" in hostile["text"]  # shown as text, not run


def test_five_models_fit_a_laptop_screen_in_headless_chromium(browser, tmp_path):
    """At 1300x800, with 5 models x 6 benchmarks and every folded part open, nothing scrolls sideways: not the
    page, not a table inside its card; every table ends inside its card (GSM8K and Average are visible)."""
    report = build_five_model_report()
    assert len(report["models"]) == 5 and len(report["benchmarks"]) == 6
    report_path = write_html(report, tmp_path / "five.html")
    with open_view(browser, report_path, width=1300, height=800) as page:
        fit = json.loads(page.evaluate("""(() => {
            document.querySelectorAll('details').forEach(d => { d.open = true; });
            const where = e => e.closest('section') ? e.closest('section').id : '?';
            return JSON.stringify({
                page: [document.scrollingElement.scrollWidth, window.innerWidth],
                scrolled: [...document.querySelectorAll('.scroll')]
                    .filter(e => e.scrollWidth > e.clientWidth)
                    .map(e => [where(e), e.scrollWidth, e.clientWidth]),
                cut: [...document.querySelectorAll('table')]
                    .filter(t => t.getBoundingClientRect().right > t.closest('.card').getBoundingClientRect().right)
                    .map(where),
                headers: [...document.querySelectorAll('#scores thead th')].map(th => th.textContent.trim()),
                tables: document.querySelectorAll('table').length,
            });
        })()"""))
        assert page.problems.all() == []
    assert fit["page"][0] <= fit["page"][1], fit
    assert fit["scrolled"] == [] and fit["cut"] == [], fit
    assert fit["headers"][1] == "Average" and fit["headers"][-1].startswith("GSM8K")
    assert fit["tables"] >= 8  # the scores, by-category, all-subjects, statistics, ... tables were measured
    assert FIFTH_MODEL in render_html(report)


def test_sample_fixture_is_consistent():
    """The fixture itself: MMLU is the mean of its subjects and the averages are the mean of six scores."""
    report = build_sample_report()
    for name in report["scores"]:
        subjects = [row["values"][name] for row in report["subjects"]["mmlu"]]
        assert len(subjects) == 57
        assert report["scores"][name]["mmlu"]["value"] == pytest.approx(sum(subjects) / 57, abs=0.006)
        values = [report["scores"][name][b["name"]]["value"] for b in report["benchmarks"]]
        assert report["averages"][name] == pytest.approx(sum(values) / 6, abs=0.006)
