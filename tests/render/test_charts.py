"""The chart layer (render/_svg_charts.py): round unique ticks, radar labels inside the chart and a caption
that states the radius scale actually drawn, text that is not shrunk, well-formed SVG."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest

from mergeval.render import _svg_charts as charts

EVIL = 'a<b>&"c\'d'


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


def _view_box(root: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in root.get("viewBox").split())
    return x, y, x + w, y + h


def _texts(root: ET.Element) -> list[ET.Element]:
    return list(root.iter("text"))


def _own_text(element: ET.Element) -> str:
    """A <text>'s visible text: its own and its <tspan>s', not its <title> tooltip."""
    parts = [element.text or ""]
    for child in element:
        if child.tag != "title":
            parts.append("".join(child.itertext()))
        parts.append(child.tail or "")
    return "".join(parts).strip()


# ---------------------------------------------------------------------------------------------------------
# Ticks
# ---------------------------------------------------------------------------------------------------------

AWKWARD_RANGES = [
    (76.7, 101.0),  # the sweep report used to print 76.7 ... 101
    (84.7, 84.7),  # all values equal: it used to print "84.7, 84.7"
    (0.0, 0.0),
    (-3.2, -0.4),
    (-5.0, 12.0),
    (0.3, 0.7),
    (0.0001, 0.00031),
    (1234.0, 98765.0),
    (99.99, 100.0),
    (-1e-12, 1e-12),
]


@pytest.mark.parametrize(("lo", "hi"), AWKWARD_RANGES)
def test_ticks_are_round_unique_evenly_spaced_and_cover_the_data(lo, hi):
    ticks = charts.nice_ticks(lo, hi)
    labels = ticks.labels()
    assert len(set(labels)) == len(labels), labels
    assert 3 <= len(labels) <= 12, labels
    assert ticks.lo <= lo and ticks.hi >= hi
    mantissa = ticks.step / 10 ** math.floor(math.log10(ticks.step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), ticks.step
    for value, label in zip(ticks.values, labels, strict=True):
        multiple = value / ticks.step
        assert math.isclose(multiple, round(multiple), abs_tol=1e-9), (value, ticks.step)
        assert math.isclose(float(label), value, abs_tol=ticks.step * 1e-6), (label, value)
        assert label != "-0" and not re.fullmatch(r"-0\.0+", label)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(ticks.values)}
    assert len(gaps) == 1


def test_awkward_ranges_get_the_ticks_a_person_would_draw():
    assert charts.nice_ticks(76.7, 101.0).labels() == ["75", "80", "85", "90", "95", "100", "105"]
    assert charts.nice_ticks(84.7, 84.7).labels() == ["80", "82", "84", "86", "88", "90"]
    assert charts.nice_ticks(0.0, 0.0).labels() == ["-1.0", "-0.5", "0.0", "0.5", "1.0"]
    assert charts.nice_ticks(0.0, 0.0, zero=True).lo == 0.0
    assert charts.nice_ticks(-3.2, -0.4).labels() == ["-4", "-3", "-2", "-1", "0"]
    assert charts.nice_ticks(0.3, 0.7).labels() == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert charts.nice_ticks(0.0, 62.0, zero=True).labels() == ["0", "20", "40", "60", "80"]


# ---------------------------------------------------------------------------------------------------------
# Radar
# ---------------------------------------------------------------------------------------------------------

LEADERBOARD = ["leaderboard_bbh", "leaderboard_gpqa", "leaderboard_ifeval", "leaderboard_math_hard",
               "leaderboard_mmlu_pro", "leaderboard_musr"]
NAMES_THAT_WERE_CLIPPED = [
    ["ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande", "GSM8K"],
    ["arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"],
    LEADERBOARD,
    ["W" * 40, "m" * 30, "c", "d", "M" * 25],
    ["x", "y", "a very long benchmark name with spaces in it"],
]


def _radar(axes, values=None, *, names=("merged-model", "parent-one", EVIL)):
    series = [(name, values or [55 + 5 * i + 3 * j for j in range(len(axes))]) for i, name in enumerate(names)]
    colours = charts.model_colours([(n, "parent") for n in names])
    return series, charts.radar(axes, series, colours, title="profile")


def _label_box(text: ET.Element) -> tuple[float, float, float, float]:
    """Where a radar axis label's lines lie, from their anchor and the (generous) width estimate."""
    anchor = text.get("text-anchor")
    boxes = []
    for span in text.iter("tspan"):
        x, y, w = float(span.get("x")), float(span.get("y")), charts.text_width(span.text, charts.FONT, True)
        x0 = {"start": x, "end": x - w, "middle": x - w / 2}[anchor]
        boxes.append((x0, y - charts.FONT, x0 + w, y + 0.3 * charts.FONT))
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


@pytest.mark.parametrize("axes", NAMES_THAT_WERE_CLIPPED)
def test_radar_labels_lie_inside_the_view_box_and_stay_at_the_column_width(axes):
    _, svg = _radar(axes)
    root = _parse(svg)
    vx0, vy0, vx1, vy1 = _view_box(root)
    labels = [t for t in _texts(root) if "grp" in t.get("class", "")]
    assert len(labels) == len(axes)
    for text, full in zip(labels, axes, strict=True):
        assert text.find("title").text == full  # the full name is always in the tooltip
        x0, y0, x1, y1 = _label_box(text)
        assert vx0 <= x0 and x1 <= vx1 and vy0 <= y0 and y1 <= vy1, (full, (x0, y0, x1, y1), (vx0, vy0, vx1, vy1))
    # Shortened only when a name cannot fit on two lines beside the smallest radius; never wider than the column.
    assert vx1 - vx0 == charts.RADAR_WIDTH
    shown = " ".join(_own_text(t) for t in labels)
    if axes in NAMES_THAT_WERE_CLIPPED[:3]:  # real benchmark names: shown whole
        assert "…" not in shown
        for name in axes:
            assert name.replace(" ", "") in shown.replace(" ", "")


def test_winogrande_is_shown_whole():
    _, svg = _radar(NAMES_THAT_WERE_CLIPPED[1])
    assert ">winogrande</tspan>" in svg


@pytest.mark.parametrize(
    ("values", "floor", "says_zero"),
    [
        ([62.0, 71.0, 85.5, 79.0, 66.0, 58.0], 40.0, False),  # a floor well above zero
        ([3.0, 71.0, 85.5, 79.0, 66.0, 58.0], 0.0, True),  # a score below 10: the radius starts at zero
        ([None, None, 50.0, 50.0, 50.0, 50.0], 40.0, False),
    ],
)
def test_radar_caption_states_the_scale_the_chart_draws(values, floor, says_zero):
    axes = ["arc", "hellaswag", "mmlu", "truthfulqa", "winogrande", "gsm8k"]
    series, svg = _radar(axes, values, names=("only",))
    caption = charts.radar_caption(series)
    scale = charts.radar_scale(values)
    assert scale.floor == floor and scale.top == 100.0
    # The caption never contradicts itself or the chart: either "runs from 0" or "starts at F, not at zero".
    if says_zero:
        assert caption == "The radius runs from 0 at the centre to 100 at the outer ring."
    else:
        assert f"starts at {floor:g}, not at zero" in caption and "outer ring 100" in caption
        assert "from 0" not in caption
    # The chart's own note gives the same centre and outer ring.
    note = next(t for t in _texts(_parse(svg)) if "note" in t.get("class", ""))
    assert note.text == f"centre {floor:g} · outer ring 100"
    # And the drawing follows it: a score at the floor (or missing) sits at the centre, 100 on the outer ring.
    root = _parse(svg)
    outer = [c for c in root.iter("polygon") if c.get("class") == "grid"][-1]
    ring_r = max(math.hypot(*map(float, p.split(","))) for p in outer.get("points").split())
    for circle, value in zip(root.iter("circle"), values, strict=True):
        r = math.hypot(float(circle.get("cx")), float(circle.get("cy")))
        expected = 0.0 if value is None else (max(value, floor) - floor) / (100 - floor) * ring_r
        assert math.isclose(r, expected, abs_tol=0.02), (value, r, expected)


# ---------------------------------------------------------------------------------------------------------
# Text sizes and well-formed SVG for every chart
# ---------------------------------------------------------------------------------------------------------


def _bars(n_benchmarks: int, n_models: int, every: int = 3) -> str:
    models = [f"model-{i}-{EVIL}" for i in range(n_models)]
    groups = [
        (f"benchmark_{j}_with_a_long_name" if j % every == 0 else f"b{j}",
         [charts.Bar(m, 40.0 + i + j, 38.0 + i, 43.0 + i, "incomplete" if i == 1 else "") for i, m in
          enumerate(models)])
        for j in range(n_benchmarks)
    ]
    return charts.grouped_bars(groups, charts.model_colours([(m, "parent") for m in models]), y_max=100.0,
                               y_label="score (0-100)", title=f"bars {EVIL}")


def _deltas() -> str:
    rows = [charts.DeltaRow(f"high_school_subject_number_{i}_{EVIL}", (i - 20) / 3, ["stem", None][i % 2], EVIL)
            for i in range(57)]
    return charts.delta_bars(rows, title=EVIL)


def _retention() -> str:
    rows = [charts.RetentionRow(name, mean, best, EVIL)
            for name, mean, best in (("ARC", 1.02, 0.99), ("truthfulqa_mc2", 0.91, None), (EVIL, None, None))]
    return charts.retention_bars(rows, threshold=0.95, title=EVIL)


ALL_CHARTS = {
    "bars, 6 benchmarks x 4 models": (lambda: _bars(6, 4), charts.BARS_WIDTH),
    "bars, 14 benchmarks x 5 models": (lambda: _bars(14, 5), charts.BARS_WIDTH),
    "bars, 16 long names x 6 models": (lambda: _bars(16, 6, every=1), charts.BARS_WIDTH),
    "radar": (lambda: _radar(LEADERBOARD)[1], charts.RADAR_WIDTH),
    "subject deltas": (_deltas, charts.DELTA_WIDTH),
    "retention": (_retention, charts.RETENTION_WIDTH),
}


@pytest.mark.parametrize("name", ALL_CHARTS)
def test_every_chart_is_well_formed_escaped_and_its_text_is_not_shrunk(name):
    make, column = ALL_CHARTS[name]
    svg = make()
    root = _parse(svg)
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    x0, _, x1, _ = _view_box(root)
    # Laid out at the width it is shown at (1,366 px window), so chart units are CSS px there: the page's
    # 11-12 px label sizes stay 11-12 px, whatever the number of benchmarks or models.
    assert x1 - x0 <= column
    assert float(root.get("width")) == x1 - x0
    for text in _texts(root):
        classes = text.get("class", "").split()
        assert "lbl" in classes, text.attrib
        size = min([charts.FONT, *(charts.FONT_CLASSES[c] for c in classes if c in charts.FONT_CLASSES)])
        assert size * column / (x1 - x0) >= 11, (text.attrib, size)


def test_bar_labels_that_do_not_fit_their_slot_are_slanted_not_cut():
    root = _parse(_bars(14, 5))
    groups = [t for t in _texts(root) if "grp" in t.get("class", "")]
    assert len(groups) == 14 and all("rotate(-35)" in t.get("transform", "") for t in groups)
    assert [_own_text(t) for t in groups][:2] == ["benchmark_0_with…", "b1"]
    assert groups[0].find("title").text == "benchmark_0_with_a_long_name"
    for chart in (root, _parse(_bars(16, 6, every=1))):  # the slanted names stay inside the chart
        _, _, right, bottom = _view_box(chart)
        for text in (t for t in _texts(chart) if "grp" in t.get("class", "")):
            translate = re.search(r"translate\(([\d.]+) ([\d.]+)\)", text.get("transform"))
            mid, base = (float(v) for v in translate.groups())
            width = charts.text_width(_own_text(text), charts.FONT, bold=True)
            assert mid - width * math.cos(math.radians(35)) >= 0, _own_text(text)
            assert base + width * math.sin(math.radians(35)) <= bottom and mid <= right
    short = _parse(_bars(3, 2))
    assert all("rotate" not in t.get("transform", "") for t in _texts(short) if "grp" in t.get("class", ""))


def test_bar_axis_ticks_are_round():
    root = _parse(_bars(6, 4))
    ticks = [t.text for t in _texts(root) if "tick" in t.get("class", "")]
    assert ticks == ["0", "20", "40", "60", "80", "100"]
