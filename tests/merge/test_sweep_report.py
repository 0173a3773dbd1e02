"""The sweep report draws with the report's chart layer: round unique ticks, a legend above the plot (never over
the data), a visible marker per point with a shape per series, axis titles, well-formed SVG."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

from mergeval.merge.report import render_sweep_report


def _row(name, role, method, t, arithmetic, capitals, front):
    return {
        "name": name, "role": role, "fingerprint": "f" * 24, "method": method,
        "parameters": {"t": t, "density": round(0.5 + t / 3, 4)} if role == "candidate" else {},
        "key": "k" * 24, "status": "new", "error": None, "seconds": 1.0, "kept_at": None,
        "selection": {"arithmetic": arithmetic, "capitals": capitals},
        "report": {"arithmetic": arithmetic, "capitals": capitals},
        "objective_selection": (arithmetic + capitals) / 2, "objective_report": (arithmetic + capitals) / 2,
        "on_pareto_front": front, "provenance": f"{method} t={t}",
    }


def _result(capitals=84.7):
    """Awkward numbers: arithmetic from 76.7 to 101, every merge at the same capitals score."""
    candidates = [_row(f"linear t={t}", "candidate", "linear", t, 76.7 + 20 * t, capitals, t == 0.7)
                  for t in (0.3, 0.5, 0.7)]
    candidates += [_row(f"ties t={t}", "candidate", "ties", t, 80.0 + 20 * t, capitals, False) for t in (0.3, 0.5)]
    parents = [_row("parent-a", "parent", "-", 0, 101.0, 70.0, True),
               _row("parent-b", "parent", "-", 0, 60.0, capitals, False)]
    return {
        "name": "demo", "benchmarks": ["arithmetic", "capitals"], "objective": ["arithmetic", "capitals"],
        "candidates": candidates, "parents": parents, "winner": "linear t=0.7", "runner_up": "ties t=0.5",
        "best_parent": None, "vs_runner_up": None, "vs_best_parent": None, "selection_fraction": 0.5,
        "selection_items": 10, "report_items": 10, "warnings": [], "provenance": {"label": "x"},
    }


def _charts(page: str) -> dict[str, ET.Element]:
    found = {}
    for svg in re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL):
        root = ET.fromstring(svg)  # well-formed XML, or this raises
        found[root.get("aria-label")] = root
    return found


def _classes(element: ET.Element) -> list[str]:
    return element.get("class", "").split()


def _plot_box(root: ET.Element) -> tuple[float, float, float, float]:
    """The plot area: the two axis lines (class "ax")."""
    axes = [line for line in root.iter("line") if "ax" in _classes(line)]
    xs = [float(line.get(k)) for line in axes for k in ("x1", "x2")]
    ys = [float(line.get(k)) for line in axes for k in ("y1", "y2")]
    return min(xs), min(ys), max(xs), max(ys)


def _ticks(root: ET.Element, axis: str) -> list[str]:
    """The x axis's tick labels (centred under it) or the y axis's (right-aligned left of it)."""
    anchor = {"x": "middle", "y": "end"}[axis]
    return [t.text for t in root.iter("text") if "tick" in _classes(t) and t.get("text-anchor") == anchor]


@pytest.mark.parametrize("capitals", [84.7, 0.0])
def test_sweep_plots_have_round_unique_ticks(capitals):
    charts = _charts(render_sweep_report(_result(capitals)))
    assert set(charts) == {"arithmetic vs capitals (selection items)", "objective vs density", "objective vs t"}
    for name, root in charts.items():
        x_ticks, y_ticks = _ticks(root, "x"), _ticks(root, "y")
        for ticks in (x_ticks, y_ticks):
            assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), (name, ticks)
            values = [float(t) for t in ticks]
            steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
            assert len(steps) == 1, (name, ticks)
            step = steps.pop()
            assert all(abs(v / step - round(v / step)) < 1e-9 for v in values), (name, ticks)
        assert "76.7" not in x_ticks and "101" not in x_ticks
    pareto = charts["arithmetic vs capitals (selection items)"]
    assert _ticks(pareto, "x") == ["50", "60", "70", "80", "90", "100", "110"]


def test_sweep_plots_have_a_legend_above_the_plot_and_a_visible_marker_per_point():
    charts = _charts(render_sweep_report(_result()))
    expected_points = {"arithmetic vs capitals (selection items)": 7, "objective vs density": 5, "objective vs t": 5}
    for name, root in charts.items():
        left, top, right, bottom = _plot_box(root)
        keys = [g for g in root.iter("g") if "key" in _classes(g)]
        assert keys, name
        shapes = []
        for key in keys:  # every legend entry sits wholly above the plot area: it cannot hide data
            label = key.find("text")
            assert float(label.get("y")) + 4 < top, (name, label.text)
            shape = next(e for e in key if "mk" in _classes(e))
            shapes.append((shape.tag, len((shape.get("points") or "").split())))
        assert len(set(shapes)) == len(shapes), (name, shapes)  # a marker shape per series
        # Markers: one per point, inside the plot area, drawn after every line so no line hides one.
        order = [e for e in root.iter() if e.tag == "polyline" or ("mk" in _classes(e) and e not in
                 [c for k in keys for c in k])]
        markers = [e for e in order if e.tag != "polyline"]
        assert len(markers) == expected_points[name], name
        last_line = max((i for i, e in enumerate(order) if e.tag == "polyline"), default=-1)
        assert last_line < min(i for i, e in enumerate(order) if e.tag != "polyline")
        for m in markers:
            x = float(m.get("cx") or m.get("x") or m.get("points").split()[0].split(",")[0])
            y = float(m.get("cy") or m.get("y") or m.get("points").split()[0].split(",")[1])
            assert left - 1 <= x <= right + 1 and top - 10 <= y <= bottom + 1, (name, x, y)
            assert m.find("title") is not None and m.find("title").text
    lines = charts["objective vs t"]
    assert len(list(lines.iter("polyline"))) == 2  # linear and ties, each joined in t order


def test_sweep_plots_name_both_axes_and_use_the_chart_styles():
    page = render_sweep_report(_result())
    root = _charts(page)["objective vs t"]
    texts = [t.text for t in root.iter("text")]
    assert "t" in texts and "objective (selection items)" in texts and "objective vs t" in texts
    assert "svg .lbl{" in page and "svg .lbl.tick" in page  # the chart layer's classes are styled
    assert "<script" not in page
