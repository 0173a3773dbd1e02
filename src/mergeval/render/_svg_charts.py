"""The one chart layer of mergeval: inline SVG drawn in Python (no JavaScript, nothing to download).

Both the comparison report (``render/html.py``) and the sweep report (``merge/report.py``) draw with these
functions; docs/charts.md says why this is hand-made SVG rather than Vega-Lite. Each function returns one
``<svg>`` element as a string, well-formed XML, ready to be placed in the page as-is. Every piece of text that
comes from the report (model names, benchmark names, subjects) goes through ``_esc``, because a model name can
contain anything. Hover tooltips are SVG ``<title>`` elements, which browsers show natively.

Colours of axes, grid lines and labels come from CSS classes (``ax``, ``grid``, ``lbl``...) defined in the
page's stylesheet (``CHART_CSS`` is the light-theme set for pages without their own), so the charts follow the
light/dark theme; data colours are fixed per model.

Sizes: each chart is laid out at the CSS width it is shown at in a 1,366 px wide window (``*_WIDTH``), so one
chart unit is one CSS pixel there and the 11-12 px labels stay 11-12 px; nothing is shrunk by viewBox
scaling unless the page is narrower than that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

# Data colours by role, assigned in model order. They read on both white and dark backgrounds.
_ROLE_PALETTES = {
    "candidate": ["#7c3aed", "#db2777", "#c2410c"],
    "parent": ["#2563eb", "#0d9488", "#65a30d", "#0891b2"],
    "base": ["#a16207", "#b45309"],
    "baseline": ["#64748b", "#94a3b8", "#78716c"],
}
_FALLBACK_COLOURS = ["#475569", "#9f1239", "#155e75", "#3f6212"]
# Series colours where there are no roles (the sweep report's methods, groups of models).
SERIES_COLOURS = ["#2563eb", "#db2777", "#059669", "#7c3aed", "#c2410c", "#0891b2", "#65a30d", "#64748b"]
# Marker shapes, one per series, so series stay apart without colour and where points coincide.
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down", "cross")

# MMLU-style subject groups; unknown groups get the fallback grey.
GROUP_COLOURS = {
    "stem": "#2563eb",
    "humanities": "#d97706",
    "social_sciences": "#059669",
    "social sciences": "#059669",
    "other": "#9333ea",
}
_NO_GROUP_COLOUR = "#6b7280"

# CSS px each chart is shown at in a 1,366 px window (measured in Chromium): <main> is 1,240 px wide less 24 px
# padding and the card's 20 px padding (1,150 px); the chart grid gives the bars 3/5 (679 px) and the radar 2/5
# (453 px) of it, less the 18 px gap. A few px less than that, so the chart is never scaled down there.
BARS_WIDTH = 672.0
RADAR_WIDTH = 448.0
DELTA_WIDTH = 672.0
RETENTION_WIDTH = 672.0
XY_WIDTH = 460.0  # the sweep report's plots, shown at their own size

# Font sizes in chart units (= CSS px at the widths above); the page's CSS uses the same numbers per class.
FONT = 12.0  # .lbl
FONT_SMALL = 11.0  # .lbl.tick, .lbl.note, .lbl.sm
FONT_CLASSES = {"tick": FONT_SMALL, "note": FONT_SMALL, "sm": FONT_SMALL}

# The chart classes for a page without the comparison report's stylesheet (the sweep report).
CHART_CSS = """
svg.chart{display:block;max-width:100%;height:auto;font-family:inherit}
svg .lbl{fill:#1f2937;font-size:12px}
svg .lbl.tick,svg .lbl.note{fill:#6b7280;font-size:11px}
svg .lbl.sm{font-size:11px}
svg .lbl.grp,svg .lbl.ttl{font-weight:600}
svg .grid{stroke:#e5e7eb;stroke-width:1}
svg .ax{stroke:#6b7280;stroke-width:1.2}
svg .mk{stroke:#fff;stroke-width:1.2}
"""


def _esc(text: object) -> str:
    return escape(str(text), quote=True)


def _num(value: float) -> str:
    """Coordinates with two decimals at most: smaller files, same picture."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NARROW = set("iljtfr.,:;'|!()[] I")
_WIDE = set("mwMWOQGD@%&")


def text_width(text: str, size: float = FONT, bold: bool = False) -> float:
    """A generous estimate of a label's width (no font metrics in Python), calibrated on DejaVu Sans, the
    widest of the page's fonts (Debian's system-ui): within -3%..+25% of Chromium's measure for lowercase
    names, digits and capitals. Used to make room for labels, never to clip them."""
    em = sum(0.36 if c in _NARROW else 1.0 if c in _WIDE else 0.66 if c.isdigit() else 0.76 if c.isupper()
             else 0.64 for c in text)
    return em * size * (1.12 if bold else 1.0)


def _fit(text: str, width: float, size: float = FONT, bold: bool = False) -> str:
    """The text, shortened with an ellipsis until its estimated width fits."""
    if text_width(text, size, bold) <= width:
        return text
    while len(text) > 1 and text_width(text + "…", size, bold) > width:
        text = text[:-1]
    return text + "…"


def _svg(width: float, height: float, body: str, label: str, css_class: str = "chart",
         x0: float = 0.0, y0: float = 0.0) -> str:
    return (
        f'<svg class="{css_class}" viewBox="{_num(x0)} {_num(y0)} {_num(width)} {_num(height)}" '
        f'width="{_num(width)}" role="img" aria-label="{_esc(label)}" preserveAspectRatio="xMinYMin meet">'
        f"<title>{_esc(label)}</title>{body}</svg>"
    )


def model_colours(models: Sequence[tuple[str, str]]) -> dict[str, str]:
    """A colour per model from ``(name, role)`` pairs, by role: candidates stand out, baselines are grey."""
    used: dict[str, int] = {}
    colours = {}
    fallback = 0
    for name, role in models:
        palette = _ROLE_PALETTES.get(role)
        index = used.get(role, 0)
        if palette and index < len(palette):
            colours[name] = palette[index]
            used[role] = index + 1
        else:
            colours[name] = _FALLBACK_COLOURS[fallback % len(_FALLBACK_COLOURS)]
            fallback += 1
    return colours


# --------------------------------------------------------------------------------------------------
# Ticks
# --------------------------------------------------------------------------------------------------


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``target_ticks`` ticks."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power * (1 + 1e-9):
            return factor * power
    return 10 * power


def _decimals(step: float) -> int:
    """How many decimals show a multiple of ``step`` exactly (2.5 -> 1, 0.25 -> 2, 20 -> 0)."""
    for digits in range(12):
        if abs(round(step, digits) - step) <= 1e-9 * step:
            return digits
    return 12


@dataclass(frozen=True)
class Ticks:
    """Round, unique, evenly spaced tick values covering the data; ``lo``/``hi`` are the axis ends."""

    values: tuple[float, ...]
    step: float
    decimals: int

    @property
    def lo(self) -> float:
        return self.values[0]

    @property
    def hi(self) -> float:
        return self.values[-1]

    def label(self, value: float) -> str:
        return f"{value + 0.0:.{self.decimals}f}"

    def labels(self) -> list[str]:
        return [self.label(v) for v in self.values]


def nice_ticks(lo: float, hi: float, target: int = 5, *, zero: bool = False) -> Ticks:
    """Ticks at multiples of a round step from at or below ``lo`` to at or above ``hi``.

    Equal ends (one value, or all values the same) get an axis around the value (84.7 -> 80..90; 0 -> -1..1),
    ``zero`` makes the axis include 0. Each tick is an integer times the step (no accumulated float error),
    so the labels are round and unique: 76.7..101 gives 75, 80, ... 105, never 76.7 or 101."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    lo, hi = min(lo, hi), max(lo, hi)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):  # one value (differences below a billionth count as none)
        mid = (lo + hi) / 2 if abs(lo + hi) > 2e-9 else 0.0
        pad = abs(mid) * 0.05 or 1.0
        lo, hi = (0.0, 2 * pad) if zero and mid == 0.0 else (mid - pad, mid + pad)
        if zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
    step = nice_step(hi - lo, target)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    digits = _decimals(step)
    values = tuple(round(k * step, digits) + 0.0 for k in range(first, last + 1))
    return Ticks(values, step, digits)


def _step_ticks(lo: float, hi: float, step: float) -> list[float]:
    """The multiples of ``step`` from ``lo`` to ``hi`` (both included when they are multiples)."""
    digits = _decimals(step)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


# --------------------------------------------------------------------------------------------------
# Shared pieces: legend, markers, grid
# --------------------------------------------------------------------------------------------------


def marker(shape: str, x: float, y: float, colour: str, size: float = 4.5, tip: str = "") -> str:
    """One data point as a filled shape with a light outline, so it stays visible over lines and other points."""
    s = size
    tip_xml = f"<title>{_esc(tip)}</title>" if tip else ""
    attrs = f'class="mk" fill="{colour}"'
    if shape == "circle":
        return f'<circle {attrs} cx="{_num(x)}" cy="{_num(y)}" r="{_num(s)}">{tip_xml}</circle>'
    if shape == "square":
        return (f'<rect {attrs} x="{_num(x - s * .9)}" y="{_num(y - s * .9)}" width="{_num(s * 1.8)}" '
                f'height="{_num(s * 1.8)}">{tip_xml}</rect>')
    points = {
        "triangle": [(0, -1.25), (1.1, .85), (-1.1, .85)],
        "triangle-down": [(0, 1.25), (1.1, -.85), (-1.1, -.85)],
        "diamond": [(0, -1.3), (1.3, 0), (0, 1.3), (-1.3, 0)],
        "cross": [(-.4, -1.2), (.4, -1.2), (.4, -.4), (1.2, -.4), (1.2, .4), (.4, .4), (.4, 1.2), (-.4, 1.2),
                  (-.4, .4), (-1.2, .4), (-1.2, -.4), (-.4, -.4)],
    }.get(shape, [(0, -1.3), (1.3, 0), (0, 1.3), (-1.3, 0)])
    pts = " ".join(f"{_num(x + dx * s)},{_num(y + dy * s)}" for dx, dy in points)
    return f'<polygon {attrs} points="{pts}">{tip_xml}</polygon>'


def _legend(entries: Sequence[tuple[str, str]], x: float, y: float, max_width: float,
            shapes: Sequence[str] | None = None) -> tuple[str, float]:
    """Swatches (or marker shapes) with names, wrapped onto lines of ``max_width``, with ``y`` the top of the
    first line; returns (svg, height used). The legend sits above the plot, never over the data."""
    parts = []
    cx, line, line_height = x, 0, 18.0
    for i, (label, colour) in enumerate(entries):
        shown = _fit(label, max(max_width - 24, 40.0))
        width = 18 + text_width(shown) + 16
        if cx > x and cx + width > x + max_width:
            cx, line = x, line + 1
        base = y + line * line_height + 13
        if shapes:
            swatch = (f'<line x1="{_num(cx - 1)}" x2="{_num(cx + 13)}" y1="{_num(base - 4)}" y2="{_num(base - 4)}" '
                      f'stroke="{colour}" stroke-width="2"/>' + marker(shapes[i], cx + 6, base - 4, colour, 4.0))
        else:
            swatch = f'<rect x="{_num(cx)}" y="{_num(base - 10)}" width="12" height="12" rx="2" fill="{colour}"/>'
        parts.append(
            f'<g class="key"><title>{_esc(label)}</title>{swatch}'
            f'<text class="lbl" x="{_num(cx + 18)}" y="{_num(base)}">{_esc(shown)}</text></g>'
        )
        cx += width
    return "".join(parts), (line + 1) * line_height if entries else 0.0


def _x_grid(ticks: Iterable[float], x_of: Callable[[float], float], y1: float, y2: float,
            label: Callable[[float], str]) -> list[str]:
    """Vertical grid lines from y1 to y2 with a tick label above each."""
    parts = []
    for tick in ticks:
        x = x_of(tick)
        parts.append(f'<line class="grid" x1="{_num(x)}" x2="{_num(x)}" y1="{_num(y1)}" y2="{_num(y2)}"/>')
        parts.append(
            f'<text class="lbl tick" x="{_num(x)}" y="{_num(y1 - 4)}" text-anchor="middle">{label(tick)}</text>'
        )
    return parts


def _y_grid(ticks: Ticks, y_of: Callable[[float], float], x1: float, x2: float) -> list[str]:
    """Horizontal grid lines from x1 to x2 with a tick label left of each."""
    parts = []
    for tick in ticks.values:
        y = y_of(tick)
        parts.append(f'<line class="grid" x1="{_num(x1)}" x2="{_num(x2)}" y1="{_num(y)}" y2="{_num(y)}"/>')
        parts.append(f'<text class="lbl tick" x="{_num(x1 - 6)}" y="{_num(y + 4)}" text-anchor="end">'
                     f"{ticks.label(tick)}</text>")
    return parts


def _y_title(text: str, x: float, y_mid: float) -> str:
    return (f'<text class="lbl" transform="translate({_num(x)} {_num(y_mid)}) rotate(-90)" '
            f'text-anchor="middle">{_esc(text)}</text>')


# --------------------------------------------------------------------------------------------------
# Grouped bars with confidence whiskers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One model's score on one benchmark; ``low``/``high`` is the 95% interval (None: no whisker)."""

    model: str
    value: float | None
    low: float | None = None
    high: float | None = None
    note: str = ""


def grouped_bars(
    groups: Sequence[tuple[str, Sequence[Bar]]],
    colours: dict[str, str],
    *,
    y_max: float,
    y_label: str,
    title: str,
    width: float = BARS_WIDTH,
) -> str:
    """Vertical bars per group (benchmark), one bar per model, 95% CI whiskers, y axis from 0 to ``y_max``.

    Laid out at ``width`` chart units (the CSS width it is shown at), so the text is never scaled down; group
    names that do not fit their slot are slanted rather than shortened."""
    n_models = max((len(bars) for _, bars in groups), default=1)
    models = [bar.model for bar in groups[0][1]] if groups else []
    ticks = nice_ticks(0.0, y_max if y_max > 0 else 1.0, 5, zero=True)
    tick_w = max(text_width(label, FONT_SMALL) for label in ticks.labels())
    left, right = 24 + tick_w + 8, 12.0
    n_groups = max(len(groups), 1)
    min_plot = (4.0 * n_models + 12) * n_groups
    label_ws = [min(text_width(label, FONT, bold=True), 150.0) for label, _ in groups]
    if any(w > max(width - left - right, min_plot) / n_groups - 6 for w in label_ws):
        # Slanted names reach left of their group (cos 35° = 0.82 of their width): widen the left margin up
        # to what the bars leave, and shorten the first names if that is not enough, so the chart keeps its
        # width (and its text its size).
        max_left = max(left, width - right - min_plot)
        for _ in range(2):
            slot = max(width - left - right, min_plot) / n_groups
            reach = max((w * 0.82 - (i * slot + slot / 2) for i, w in enumerate(label_ws)), default=0.0)
            left = min(max(left, reach + 8), max_left)
        slot = max(width - left - right, min_plot) / n_groups
        label_ws = [min(w, (left - 8 + i * slot + slot / 2) / 0.82) for i, w in enumerate(label_ws)]
    plot_w = max(width - left - right, min_plot)
    width = left + plot_w + right
    slot = plot_w / n_groups
    bar_gap = 2.0 if n_models > 1 else 0.0
    bar_w = max(min(22.0, (slot - 14 - (n_models - 1) * bar_gap) / n_models), 3.0)
    group_w = n_models * bar_w + (n_models - 1) * bar_gap
    slanted = any(w > slot - 6 for w in label_ws)
    longest = max(label_ws, default=0.0)
    bottom = (longest * 0.6 + 22) if slanted else 28.0
    legend, legend_h = _legend([(m, colours.get(m, _NO_GROUP_COLOUR)) for m in models], left, 4, plot_w)
    top = 4 + legend_h + 10
    plot_h = 240.0
    height = top + plot_h + bottom
    y_top = ticks.hi

    def y_of(value: float) -> float:
        return top + plot_h - max(0.0, min(value, y_top)) / y_top * plot_h

    parts = [legend, *_y_grid(ticks, y_of, left, left + plot_w), _y_title(y_label, 12, top + plot_h / 2)]
    for gi, (group_label, bars) in enumerate(groups):
        gx = left + gi * slot + (slot - group_w) / 2
        for bi, bar in enumerate(bars):
            x = gx + bi * (bar_w + bar_gap)
            colour = colours.get(bar.model, _NO_GROUP_COLOUR)
            parts.append(_bar(bar, group_label, x, bar_w, top + plot_h, y_of, colour))
        mid, base = left + gi * slot + slot / 2, top + plot_h + 18
        shown = _fit(group_label, label_ws[gi] if slanted else slot - 6, bold=True)
        if slanted:
            parts.append(f'<text class="lbl grp" transform="translate({_num(mid + 4)} {_num(base - 6)}) '
                         f'rotate(-35)" text-anchor="end"><title>{_esc(group_label)}</title>{_esc(shown)}</text>')
        else:
            parts.append(f'<text class="lbl grp" x="{_num(mid)}" y="{_num(base)}" text-anchor="middle">'
                         f"<title>{_esc(group_label)}</title>{_esc(shown)}</text>")
    parts.append(
        f'<line class="ax" x1="{_num(left)}" x2="{_num(left + plot_w)}" y1="{_num(top + plot_h)}" '
        f'y2="{_num(top + plot_h)}"/>'
    )
    return _svg(width, height, "".join(parts), title)


def _bar(bar: Bar, group_label: str, x: float, bar_w: float, base: float, y_of: Callable[[float], float],
         colour: str) -> str:
    """One bar from the axis at `base` up to its value, with its interval's whisker and a tooltip."""
    if bar.value is None:
        tip = f"{bar.model} · {group_label}: not evaluated"
        return (
            f'<g><title>{_esc(tip)}</title><text class="lbl na" x="{_num(x + bar_w / 2)}" '
            f'y="{_num(base - 4)}" text-anchor="middle">–</text></g>'
        )
    y = y_of(bar.value)
    tip = f"{bar.model} · {group_label}: {bar.value:.2f}"
    whisker = ""
    if bar.low is not None and bar.high is not None:
        tip += f" (95% CI {bar.low:.2f}–{bar.high:.2f})"
        y_lo, y_hi, cx = y_of(bar.low), y_of(bar.high), x + bar_w / 2
        half = min(4.0, bar_w / 2)
        whisker = (
            f'<path class="whisker" d="M{_num(cx)} {_num(y_lo)}V{_num(y_hi)}'
            f'M{_num(cx - half)} {_num(y_lo)}h{_num(2 * half)}M{_num(cx - half)} {_num(y_hi)}h{_num(2 * half)}"/>'
        )
    if bar.note:
        tip += f" · {bar.note}"
    hatch = ' stroke-dasharray="3 2" fill-opacity="0.45"' if bar.note else ""
    return (
        f'<g class="bar"><title>{_esc(tip)}</title><rect x="{_num(x)}" y="{_num(y)}" '
        f'width="{_num(bar_w)}" height="{_num(base - y)}" rx="2" fill="{colour}" '
        f'stroke="{colour}"{hatch}/>{whisker}</g>'
    )


# --------------------------------------------------------------------------------------------------
# Radar
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RadarScale:
    """Where the radar's radius starts (``floor``, the centre) and ends (``top``, the outer ring), and the
    rings between. ``caption`` states exactly this scale, so the chart and its caption cannot disagree."""

    floor: float
    top: float
    rings: tuple[float, ...]

    @property
    def caption(self) -> str:
        if self.floor > 0:
            return (f"The radius starts at {_num(self.floor)}, not at zero (centre {_num(self.floor)}, outer "
                    f"ring {_num(self.top)}), so a few points of difference stay visible.")
        return f"The radius runs from 0 at the centre to {_num(self.top)} at the outer ring."

    @property
    def note(self) -> str:
        return f"centre {_num(self.floor)} · outer ring {_num(self.top)}"


def radar_scale(values: Iterable[float | None], scale_max: float = 100.0) -> RadarScale:
    """The radius starts at a round value 10 or more below the lowest score (never below 0), so that
    differences of a few points stay visible; it ends at ``scale_max``."""
    scores = [v for v in values if v is not None and math.isfinite(v)]
    low = min(min(scores, default=0.0), scale_max)
    floor = max(0.0, math.floor((low - 10) / 10) * 10)
    step = nice_step(scale_max - floor, 4)
    rings = [r for r in _step_ticks(floor + step, scale_max, step) if scale_max - r > step / 2]
    return RadarScale(floor, scale_max, (*rings, scale_max))


def radar_caption(series: Sequence[tuple[str, Sequence[float | None]]], scale_max: float = 100.0) -> str:
    """The caption for ``radar(...)`` drawn from the same ``series``: what the radius scale is."""
    return radar_scale((v for _, vals in series for v in vals), scale_max).caption


def radar(
    axes: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    colours: dict[str, str],
    *,
    title: str,
    scale_max: float = 100.0,
    width: float = RADAR_WIDTH,
) -> str:
    """One polygon per model over the axes, on ``radar_scale``'s radius (its caption is ``radar_caption``).
    Missing values sit at the centre and are listed as "not evaluated" in the point's tooltip.

    The radius is chosen so that every axis label fits in ``width`` next to the rings; labels longer than
    28 characters are shortened (full name in the tooltip). If they still do not fit, the chart gets wider:
    the view box always holds every label, so none is clipped."""
    scale = radar_scale((v for _, vals in series for v in vals), scale_max)
    n = max(len(axes), 1)
    angles = [-math.pi / 2 + 2 * math.pi * i / n for i in range(n)]
    gap, pad, min_radius = 10.0, 6.0, 90.0
    sides = [abs(math.cos(a)) > 0.1 for a in angles]
    shown = [_label_lines(label, width / 2 - pad - gap - min_radius if side else width - 2 * pad)
             for label, side in zip(axes, sides, strict=True)]
    # The widest label on either side limits the radius: r + gap + label width must fit in half the width.
    side_w = max((text_width(line, FONT, bold=True) for lines, side in zip(shown, sides, strict=True) if side
                  for line in lines), default=0.0)
    radius = max(min(150.0, width / 2 - pad - gap - side_w), min_radius)

    def point(i: int, value: float) -> tuple[float, float]:
        fraction = (max(scale.floor, min(value, scale.top)) - scale.floor) / (scale.top - scale.floor)
        return math.cos(angles[i]) * radius * fraction, math.sin(angles[i]) * radius * fraction

    labels, boxes = [], [(-radius, -radius, radius, radius)]
    for i, label in enumerate(shown):
        text, box = _radar_label(label, axes[i], angles[i], radius + gap)
        labels.append(text)
        boxes.append(box)
    x0 = min(min(b[0] for b in boxes) - pad, -width / 2)
    x1 = max(max(b[2] for b in boxes) + pad, width / 2)
    legend, legend_h = _legend([(name, colours.get(name, _NO_GROUP_COLOUR)) for name, _ in series],
                               x0 + pad, 0, x1 - x0 - 2 * pad)
    y_plot = min(b[1] for b in boxes) - pad
    y0 = y_plot - legend_h - 6
    legend = f'<g transform="translate(0 {_num(y0 + 2)})">{legend}</g>'
    note_y = max(b[3] for b in boxes) + pad + FONT_SMALL
    parts = [legend]
    for ring in scale.rings:
        pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in (point(i, ring) for i in range(n)))
        parts.append(f'<polygon class="grid" fill="none" points="{pts}"/>')
        if ring < scale.top:  # the outer ring's value is in the note; there it would touch the top label
            x, y = point(0, ring)
            parts.append(f'<text class="lbl tick" x="{_num(x + 4)}" y="{_num(y - 2)}">{_num(ring)}</text>')
    for i in range(n):
        x, y = point(i, scale.top)
        parts.append(f'<line class="grid" x1="0" y1="0" x2="{_num(x)}" y2="{_num(y)}"/>')
    parts += labels
    for name, vals in series:
        pts = [point(i, v if v is not None else scale.floor) for i, v in enumerate(vals)]
        parts += _radar_series(name, pts, axes, vals, colours.get(name, _NO_GROUP_COLOUR))
    parts.append(f'<text class="lbl note" x="0" y="{_num(note_y)}" text-anchor="middle">{scale.note}</text>')
    height = note_y + 6 - y0
    return _svg(x1 - x0, height, "".join(parts), title, "chart radar", x0, y0)


def _label_lines(label: str, max_width: float, max_lines: int = 3) -> list[str]:
    """A label on one line, or wrapped after "_", "-", "/" or spaces onto up to ``max_lines`` lines no wider
    than ``max_width``; what still does not fit is shortened with an ellipsis (the full name is in the
    label's tooltip)."""
    if text_width(label, FONT, bold=True) <= max_width:
        return [label]
    words = re.findall(r"[^_\-/ ]*[_\-/ ]+|[^_\-/ ]+$", label)
    lines = [""]
    for word in words:
        if lines[-1] and text_width(lines[-1] + word.rstrip(), FONT, bold=True) > max_width:
            lines.append("")
        lines[-1] += word
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], "".join(lines[max_lines - 1:])]
    return [_fit(line.rstrip(), max_width, bold=True) for line in lines]


def _radar_label(lines: list[str], full: str, angle: float, distance: float) -> tuple[str, tuple[float, ...]]:
    """An axis's label (one or two lines) just beyond the outer ring, and its box (x0, y0, x1, y1) for sizing
    the chart."""
    x, y = math.cos(angle) * distance, math.sin(angle) * distance
    w = max(text_width(line, FONT, bold=True) for line in lines)
    line_h = FONT + 2
    if abs(math.cos(angle)) <= 0.1:
        anchor, bx = "middle", x - w / 2
    else:
        anchor, bx = ("start", x) if x > 0 else ("end", x - w)
    extra = (len(lines) - 1) * line_h
    if math.sin(angle) > 0.5:
        first = y + FONT
    elif math.sin(angle) < -0.5:
        first = y - 4 - extra
    else:
        first = y + 4 - extra / 2
    spans = "".join(f'<tspan x="{_num(x)}" y="{_num(first + k * line_h)}">{_esc(line)}</tspan>'
                    for k, line in enumerate(lines))
    text = f'<text class="lbl grp" text-anchor="{anchor}"><title>{_esc(full)}</title>{spans}</text>'
    return text, (bx, first - FONT, bx + w, first + extra + FONT * 0.3)


def _radar_series(name: str, pts: Sequence[tuple[float, float]], axes: Sequence[str],
                  vals: Sequence[float | None], colour: str) -> list[str]:
    """A model's polygon and a point per axis with its value as the tooltip."""
    poly = " ".join(f"{_num(x)},{_num(y)}" for x, y in pts)
    parts = [
        (f'<g class="series"><title>{_esc(name)}</title><polygon points="{poly}" fill="{colour}" '
        f'fill-opacity="0.07" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/></g>')
    ]
    for (x, y), axis, value in zip(pts, axes, vals, strict=True):
        shown = f"{value:.2f}" if value is not None else "not evaluated"
        parts.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{colour}">'
            f"<title>{_esc(f'{name} · {axis}: {shown}')}</title></circle>"
        )
    return parts


# --------------------------------------------------------------------------------------------------
# Horizontal diverging bars (subject deltas) and retention bars
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaRow:
    label: str
    delta: float
    group: str | None
    tip: str


def delta_bars(rows: Sequence[DeltaRow], *, title: str, unit: str = "points", width: float = DELTA_WIDTH) -> str:
    """Sorted horizontal bars around zero, coloured by group (e.g. MMLU category)."""
    rows = sorted(rows, key=lambda r: r.delta, reverse=True)
    extent = max((abs(r.delta) for r in rows), default=1.0) or 1.0
    step = nice_step(extent, 3)
    extent = math.ceil(extent / step - 1e-9) * step
    tick_label = Ticks((extent,), step, _decimals(step)).label
    # Room for value labels on both sides of the bars, so the longest bar's label never hits a subject name.
    label_w = min(max((text_width(_short(r.label, 40), FONT_SMALL) for r in rows), default=60.0) + 14, 250.0)
    value_w, row_h = 40.0, 16.0
    bar_area = max(width - label_w - 2 * value_w, 240.0)
    width = label_w + 2 * value_w + bar_area
    groups = []
    for r in rows:
        if r.group not in groups:
            groups.append(r.group)
    legend, legend_h = _legend(
        [(group_label(g), GROUP_COLOURS.get((g or "").lower(), _NO_GROUP_COLOUR)) for g in groups],
        label_w + value_w,
        4,
        bar_area + value_w,
    )
    top = 4 + legend_h + 20
    height = top + len(rows) * row_h + 14
    zero = label_w + value_w + bar_area / 2

    def x_of(value: float) -> float:
        return zero + value / extent * (bar_area / 2)

    parts = [legend, *_x_grid(_step_ticks(-extent, extent, step), x_of, top - 4, height - 12,
                              lambda tick: f"{'+' if tick > 0 else ''}{tick_label(tick)}")]
    parts += [_delta_row(r, top + i * row_h, label_w, row_h, zero, x_of) for i, r in enumerate(rows)]
    parts.append(
        f'<line class="ax" x1="{_num(zero)}" x2="{_num(zero)}" y1="{_num(top - 4)}" '
        f'y2="{_num(height - 12)}"/>'
    )
    return _svg(width, height, "".join(parts), f"{title} ({unit})", "chart tall")


def _delta_row(r: DeltaRow, y: float, label_w: float, row_h: float, zero: float,
               x_of: Callable[[float], float]) -> str:
    """A subject's label, its bar from zero and its signed value."""
    colour = GROUP_COLOURS.get((r.group or "").lower(), _NO_GROUP_COLOUR)
    x0, x1 = sorted((zero, x_of(r.delta)))
    sign = "+" if r.delta > 0 else ("−" if r.delta < 0 else "±")
    value_x = x_of(r.delta) + (4 if r.delta >= 0 else -4)
    anchor = "start" if r.delta >= 0 else "end"
    return (
        f'<g class="row"><title>{_esc(r.tip)}</title>'
        f'<text class="lbl sm" x="{_num(label_w - 8)}" y="{_num(y + 11)}" text-anchor="end">'
        f"{_esc(_fit(_short(r.label, 40), label_w - 8, FONT_SMALL))}</text>"
        f'<rect x="{_num(x0)}" y="{_num(y + 2)}" width="{_num(max(x1 - x0, 0.8))}" '
        f'height="{_num(row_h - 4)}" '
        f'rx="1.5" fill="{colour}"/>'
        f'<text class="lbl sm val" x="{_num(value_x)}" y="{_num(y + 11)}" text-anchor="{anchor}">'
        f"{sign}{abs(r.delta):.1f}</text></g>"
    )


def group_label(group: str | None) -> str:
    return (group or "no group").replace("_", " ")


@dataclass(frozen=True)
class RetentionRow:
    label: str
    vs_mean: float | None  # ratio, 1.0 = 100%
    vs_best: float | None
    tip: str


def retention_bars(
    rows: Sequence[RetentionRow], *, threshold: float, title: str, colour: str = "#7c3aed",
    width: float = RETENTION_WIDTH,
) -> str:
    """Per benchmark: retention vs the mean of the parents (solid) and vs the best parent (light),
    with the pass threshold as a dashed line. The axis starts at a round value below the lowest ratio."""
    ratios = [v for r in rows for v in (r.vs_mean, r.vs_best) if v is not None]
    lo = min([*ratios, threshold, 1.0]) - 0.05
    hi = max([*ratios, 1.0]) + 0.03
    lo, hi = math.floor(lo * 20) / 20, math.ceil(hi * 20) / 20
    label_w = min(max((text_width(_short(r.label, 24), FONT, bold=True) for r in rows), default=60.0) + 18,
                  200.0)
    value_w, row_h = 60.0, 34.0
    plot_w = max(width - label_w - value_w, 240.0)
    width = label_w + plot_w + value_w
    legend, legend_h = _legend(
        [("vs mean of parents", colour), ("vs best parent", colour + "66")], label_w, 4, plot_w
    )
    top = 4 + legend_h + 24
    height = top + len(rows) * row_h + 22

    def x_of(ratio: float) -> float:
        return label_w + (max(lo, min(ratio, hi)) - lo) / (hi - lo) * plot_w

    step = nice_step(hi - lo, 5)
    parts = [legend, *_x_grid(_step_ticks(lo, hi, step), x_of, top - 4, height - 12,
                              lambda tick: f"{tick * 100:.{max(_decimals(step * 100), 0)}f}%")]
    for i, r in enumerate(rows):
        parts += _retention_row(r, top + i * row_h, label_w, x_of, threshold, colour)
    tx = x_of(threshold)
    parts.append(
        f'<line class="threshold" x1="{_num(tx)}" x2="{_num(tx)}" y1="{_num(top - 4)}" '
        f'y2="{_num(height - 12)}"><title>pass threshold {threshold * 100:.0f}%</title></line>'
    )
    parts.append(
        f'<text class="lbl sm bad" x="{_num(tx - 4)}" y="{_num(height - 5)}" text-anchor="end">'
        f"threshold {threshold * 100:.0f}%</text>"
    )
    parts.append(
        f'<line class="ax" x1="{_num(x_of(1.0))}" x2="{_num(x_of(1.0))}" y1="{_num(top - 4)}" '
        f'y2="{_num(height - 12)}"/>'
    )
    return _svg(width, height, "".join(parts), title)


def _retention_row(r: RetentionRow, y: float, label_w: float, x_of: Callable[[float], float], threshold: float,
                   colour: str) -> list[str]:
    """A benchmark's label and its two bars (vs the mean of the parents, vs the best parent)."""
    parts = [
        (f'<text class="lbl grp" x="{_num(label_w - 10)}" y="{_num(y + 20)}" text-anchor="end">'
        f"<title>{_esc(r.label)}</title>{_esc(_fit(_short(r.label, 24), label_w - 10, bold=True))}</text>")
    ]
    for offset, ratio, fill in ((3, r.vs_mean, colour), (17, r.vs_best, colour + "66")):
        if ratio is None:
            parts.append(
                f'<text class="lbl sm na" x="{_num(label_w + 4)}" y="{_num(y + offset + 10)}">'
                "not evaluated</text>"
            )
            continue
        bad = ratio < threshold
        parts.append(
            f'<g class="bar"><title>{_esc(r.tip)}</title>'
            f'<rect x="{_num(label_w)}" y="{_num(y + offset)}" '
            f'width="{_num(x_of(ratio) - label_w)}" height="12" rx="2" fill="{fill}"/>'
            f'<text class="lbl sm val{" bad" if bad else ""}" x="{_num(x_of(ratio) + 4)}" '
            f'y="{_num(y + offset + 10)}">{ratio * 100:.1f}%</text></g>'
        )
    return parts


# --------------------------------------------------------------------------------------------------
# Points and lines on two numeric axes (the sweep report)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A named set of points ``(x, y, tooltip)``; colour and marker shape default to the series' position."""

    name: str
    points: Sequence[tuple[float, float, str]]
    colour: str = ""
    shape: str = ""


def _padded_ticks(values: Sequence[float]) -> Ticks:
    """Round ticks for the data and 3% more on each side, so no marker sits on an axis line."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.03
    return nice_ticks(lo - pad, hi + pad, 5)


def xy_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    lines: bool = True,
    width: float = XY_WIDTH,
    plot_height: float = 220.0,
) -> str:
    """Points on round-ticked x and y axes, one colour and marker shape per series, optionally joined in x
    order. The title and the legend sit above the plot area (never over the data); all lines are drawn
    before any marker, so every marker stays visible. Returns "" when there is no point."""
    points = [(x, y) for s in series for x, y, _ in s.points]
    if not points:
        return ""
    xt, yt = (_padded_ticks([p[axis] for p in points]) for axis in (0, 1))
    colours = [s.colour or SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(series)]
    shapes = [s.shape or MARKERS[i % len(MARKERS)] for i, s in enumerate(series)]
    left = 22 + max(text_width(label, FONT_SMALL) for label in yt.labels()) + 8
    right = max(10.0, text_width(xt.labels()[-1], FONT_SMALL) / 2 + 4)
    plot_w = width - left - right
    title_svg = (f'<text class="lbl ttl" x="{_num(left)}" y="14">'
                 f"{_esc(_fit(title, width - left - 4, bold=True))}</text>")
    legend, legend_h = _legend([(s.name, c) for s, c in zip(series, colours, strict=True)], left, 22, plot_w,
                               shapes)
    top = 22 + legend_h + 12
    height = top + plot_height + 40

    def sx(x: float) -> float:
        return left + (x - xt.lo) / (xt.hi - xt.lo) * plot_w

    def sy(y: float) -> float:
        return top + plot_height - (y - yt.lo) / (yt.hi - yt.lo) * plot_height

    base = top + plot_height
    parts = [title_svg, legend, *_y_grid(yt, sy, left, left + plot_w)]
    for tick in xt.values:
        parts.append(f'<line class="grid" x1="{_num(sx(tick))}" x2="{_num(sx(tick))}" y1="{_num(top)}" '
                     f'y2="{_num(base)}"/>')
        parts.append(f'<text class="lbl tick" x="{_num(sx(tick))}" y="{_num(base + 15)}" text-anchor="middle">'
                     f"{xt.label(tick)}</text>")
    parts += [
        f'<line class="ax" x1="{_num(left)}" x2="{_num(left + plot_w)}" y1="{_num(base)}" y2="{_num(base)}"/>',
        f'<line class="ax" x1="{_num(left)}" x2="{_num(left)}" y1="{_num(top)}" y2="{_num(base)}"/>',
        (f'<text class="lbl" x="{_num(left + plot_w / 2)}" y="{_num(base + 33)}" text-anchor="middle">'
         f"{_esc(x_label)}</text>"),
        _y_title(y_label, 12, top + plot_height / 2),
    ]
    if lines:
        for s, colour in zip(series, colours, strict=True):
            ordered = sorted(s.points)
            if len(ordered) > 1:
                path = " ".join(f"{_num(sx(x))},{_num(sy(y))}" for x, y, _ in ordered)
                parts.append(f'<polyline class="line" points="{path}" fill="none" stroke="{colour}" '
                             f'stroke-width="1.8"/>')
    for s, colour, shape in zip(series, colours, shapes, strict=True):
        parts += [marker(shape, sx(x), sy(y), colour, tip=f"{s.name}: {tip}" if tip else s.name)
                  for x, y, tip in sorted(s.points)]
    return _svg(width, height, "".join(parts), title)
