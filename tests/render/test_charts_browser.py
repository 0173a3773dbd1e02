"""The charts as a person sees them: in Chromium at 1,366 x 768, no chart text is smaller than 11 px and none
lies outside its chart (an <svg> clips what is outside its box, which is how "...nogrande" happened)."""

from __future__ import annotations

import pytest
from browser import open_view
from sample_report import build_sample_report, build_wide_report

from mergeval.render.html import render_html

# For every chart: its shown width, its view box width, the smallest text in CSS px after the view box's
# scaling, and the text whose glyphs reach outside the <svg>'s box.
_CHART_TEXT_JS = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect(), scale = box.width / svg.viewBox.baseVal.width;
  let smallest = 99, smallestText = '';
  const outside = [];
  for (const t of svg.querySelectorAll('text')) {
    const px = parseFloat(getComputedStyle(t).fontSize) * scale;
    if (px < smallest) { smallest = px; smallestText = t.textContent; }
    const r = t.getBoundingClientRect();
    if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
      outside.push(t.textContent);
  }
  return {chart: svg.getAttribute('aria-label'), shown: box.width, smallest, smallestText, outside};
})"""


def _raw_names(report: dict) -> dict:
    """The wide report with lm-eval's long task names as the benchmarks' display names."""
    for benchmark in report["benchmarks"]:
        benchmark["display"] = f"leaderboard_{benchmark['name']}_{benchmark['kind']}".replace("-", "_")
    return report


@pytest.mark.parametrize(
    ("build", "n_charts"),
    [(build_sample_report, 4), (build_wide_report, 4), (lambda: _raw_names(build_wide_report()), 4)],
    ids=["sample", "wide", "long-names"],
)
def test_chart_text_is_at_least_11px_and_inside_its_chart_at_laptop_width(browser, build, n_charts):
    with open_view(browser, render_html(build())) as view:
        charts = view.evaluate(_CHART_TEXT_JS)
        assert not view.problems.all()
    assert len(charts) == n_charts
    for chart in charts:
        assert chart["shown"] > 300, chart
        assert chart["smallest"] >= 10.95, chart
        assert chart["outside"] == [], chart
