"""The HTML report looked at the way a person does, on a 1,366 x 768 laptop screen in headless Chromium: the
verdict, every model's Average and every candidate's deltas are inside the viewport without scrolling
sideways (and the verdict, every model's Average and the first failed gate on the first screen), for a small report (4 models x 6 benchmarks) and a wide one (6 models x 16 benchmarks, which folds
into several tables).

The browser is driven by tests/browser.py (the `browser` fixture); the measuring is one script below.
"""

from __future__ import annotations

import json

import pytest
from sample_report import build_five_model_report, build_sample_report, build_wide_report

from browser import open_view
from mergeval.render import write_html

WIDTH, HEIGHT = 1366, 768

# Everything a reader must see without scrolling sideways, measured with every folded part open.
_MEASURE = """(() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    const vw = document.documentElement.clientWidth;
    const box = e => { const r = e.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.right)]; };
    const outside = sel => [...document.querySelectorAll(sel)]
        .filter(e => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > vw; })
        .map(e => [e.textContent.trim().slice(0, 40), ...box(e)]);
    const where = e => e.closest('section') ? e.closest('section').id : '?';
    return JSON.stringify({
        window: window.innerWidth,
        viewport: vw,
        scroll_width: document.documentElement.scrollWidth,
        verdict: box(document.querySelector('.verdict')),
        averages: document.querySelectorAll('#scores td.avg').length,
        deltas: document.querySelectorAll('#scores td.delta').length,
        tables: document.querySelectorAll('#scores table.scores').length,
        glance: [...document.querySelectorAll('.glance-model')].map(e => [...box(e), Math.round(e.getBoundingClientRect().bottom)]),
        first_failed_gate: (g => g ? Math.round(g.getBoundingClientRect().bottom) : null)(document.querySelector('.gate-fail')),
        outside: {
            verdict: outside('.verdict'),
            averages: outside('#scores td.avg'),
            deltas: outside('#scores td.delta'),
            gates: outside('.gate'),
        },
        scrolled: [...document.querySelectorAll('.scroll')]
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => [where(e), e.scrollWidth, e.clientWidth]),
        cut: [...document.querySelectorAll('table')]
            .filter(t => t.getBoundingClientRect().right > t.closest('.card').getBoundingClientRect().right + 1)
            .map(where),
    });
})()"""


def _measure(browser, report: dict, tmp_path, name: str) -> dict:
    path = write_html(report, tmp_path / f"{name}.html")
    with open_view(browser, path, width=WIDTH, height=HEIGHT) as page:
        facts = json.loads(page.evaluate(_MEASURE))
        assert page.problems.all() == []
    return facts


@pytest.mark.parametrize(
    "build, n_models, n_benchmarks, n_tables",
    [(build_sample_report, 4, 6, 1), (build_five_model_report, 5, 6, 1), (build_wide_report, 6, 16, 3)],
    ids=["sample", "five-models", "wide-16x6"],
)
def test_the_verdict_averages_and_deltas_fit_a_laptop_screen(browser, tmp_path, build, n_models, n_benchmarks, n_tables):
    report = build()
    assert len(report["models"]) == n_models and len(report["benchmarks"]) == n_benchmarks
    facts = _measure(browser, report, tmp_path, build.__name__)
    assert facts["window"] == WIDTH and facts["viewport"] <= WIDTH  # the page's width less a scroll bar
    assert facts["scroll_width"] <= facts["viewport"], facts  # no horizontal scroll of the page
    assert facts["scrolled"] == [] and facts["cut"] == [], facts  # nor of a table inside its card
    assert facts["tables"] == n_tables
    candidates = [m for m in report["models"] if m["role"] == "candidate"]
    assert facts["averages"] == n_models * n_tables  # every model's Average, in every folded table
    assert facts["deltas"] > 0 and facts["deltas"] % len(candidates) == 0
    assert facts["outside"] == {"verdict": [], "averages": [], "deltas": [], "gates": []}, facts
    assert 0 <= facts["verdict"][0] < facts["verdict"][1] <= facts["viewport"]
    # on the first screen, without scrolling at all: the verdict, every model's Average and the first failed gate
    assert len(facts["glance"]) == n_models
    assert all(0 <= left < right <= facts["viewport"] and bottom <= HEIGHT for left, right, bottom in facts["glance"])
    assert facts["first_failed_gate"] is not None and facts["first_failed_gate"] <= HEIGHT


def test_the_average_is_the_first_number_column(browser, tmp_path):
    """In the browser: in each scores table the Average header comes right after the model column."""
    path = write_html(build_wide_report(), tmp_path / "wide.html")
    with open_view(browser, path, width=WIDTH, height=HEIGHT) as page:
        heads = json.loads(page.evaluate("""JSON.stringify([...document.querySelectorAll('#scores table.scores')]
            .map(t => [...t.querySelectorAll('thead th')].map(th => th.childNodes[0].textContent.trim())))"""))
    assert len(heads) == 3  # the suite's twelve benchmarks in two tables of six, the four other checks in one
    assert all(h[:2] == ["Model", "Average"] for h in heads), heads
    assert sum(len(h) - 2 for h in heads) == 16  # every benchmark once


def test_no_table_is_cut_at_laptop_widths(browser, tmp_path):
    """From 1,024 to 1,440 px, no table ends past its card and the page does not scroll sideways ("By
    category" included: it moves under its chart rather than being cut)."""
    for name, report in (("sample", build_sample_report()), ("wide", build_wide_report())):
        path = write_html(report, tmp_path / f"{name}.html")
        with open_view(browser, path, width=WIDTH, height=HEIGHT) as page:
            for width in (1024, 1100, 1280, 1300, 1366, 1440):
                page.set_viewport(width, HEIGHT)
                facts = json.loads(page.evaluate(_MEASURE))
                assert facts["scroll_width"] <= facts["viewport"], (name, width, facts)
                assert facts["cut"] == [], (name, width, facts["cut"])
                if width >= 1280:  # laptop widths: nothing scrolls inside its card either
                    assert facts["scrolled"] == [], (name, width, facts["scrolled"])
            assert page.problems.all() == []


def test_paired_statistics_show_only_the_significant_rows_until_opened(browser, tmp_path):
    report = build_wide_report()
    significant = sum(c["significant"] for c in report["comparisons"])
    assert 0 < significant < len(report["comparisons"]) == 96
    path = write_html(report, tmp_path / "wide.html")
    count = """[...document.querySelectorAll('#statistics tbody tr:not(.group-head)')]
        .filter(e => e.checkVisibility()).length"""
    with open_view(browser, path, width=WIDTH, height=HEIGHT) as page:
        assert page.evaluate(count) == significant
        page.evaluate("document.querySelectorAll('#statistics details').forEach(d => { d.open = true; })")
        assert page.evaluate(count) == 96
