"""Inline SVG charts for the HTML report, drawn in Python (no JavaScript library, nothing to download).

Each function returns one ``<svg>`` element as a string, ready to be placed in the page as-is. Every piece
of text that comes from the report (model names, benchmark names, subjects) goes through ``_esc``, because a
model name can contain anything. Hover tooltips are SVG ``<title>`` elements, which browsers show natively.

Colours of axes, grid lines and labels come from CSS classes (``ax``, ``grid``, ``lbl``...) defined in the
page's stylesheet, so the charts follow the light/dark theme; data colours are fixed per model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
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

# MMLU-style subject groups; unknown groups get the fallback grey.
GROUP_COLOURS = {
    "stem": "#2563eb",
    "humanities": "#d97706",
    "social_sciences": "#059669",
    "social sciences": "#059669",
    "other": "#9333ea",
}
_NO_GROUP_COLOUR = "#6b7280"

_FONT = 12  # px, the labels' size in chart units (the SVG scales with the page width)


def _esc(text: object) -> str:
    return escape(str(text), quote=True)


def _num(value: float) -> str:
    """Coordinates with two decimals at most: smaller files, same picture."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(width: float, height: float, body: str, label: str, css_class: str = "chart") -> str:
    return (
        f'<svg class="{css_class}" viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" '
        f'role="img" aria-label="{_esc(label)}" preserveAspectRatio="xMinYMin meet">'
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


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``target_ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _legend(entries: Sequence[tuple[str, str]], x: float, y: float, max_width: float) -> tuple[str, float]:
    """Coloured squares with names, wrapped onto several lines; returns (svg, height used)."""
    parts = []
    cx, cy = x, y
    line_height = 18
    for label, colour in entries:
        shown = _short(label, 44)
        width = 18 + len(shown) * 6.6 + 16
        if cx > x and cx + width > x + max_width:
            cx, cy = x, cy + line_height
        parts.append(
            f'<g><title>{_esc(label)}</title><rect x="{_num(cx)}" y="{_num(cy - 10)}" width="12" height="12" '
            f'rx="2" fill="{colour}"/>'
            f'<text class="lbl" x="{_num(cx + 17)}" y="{_num(cy)}">{_esc(shown)}</text></g>'
        )
        cx += width
    return "".join(parts), cy - y + line_height


def _ticks(start: float, stop: float, step: float) -> Iterator[float]:
    """start, start + step, ... up to stop (the steps accumulate, as the axes have always drawn them)."""
    tick = start
    while tick <= stop + 1e-9:
        yield tick
        tick += step


def _x_grid(ticks: Iterator[float], x_of: Callable[[float], float], y1: float, y2: float,
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
) -> str:
    """Vertical bars per group (benchmark), one bar per model, 95% CI whiskers, y axis from 0."""
    n_models = max((len(bars) for _, bars in groups), default=1)
    bar_w, bar_gap, group_gap = 18.0, 3.0, 26.0
    group_w = n_models * bar_w + (n_models - 1) * bar_gap
    left, right, bottom = 52.0, 16.0, 40.0
    models = [bar.model for bar in groups[0][1]] if groups else []
    plot_w = max(len(groups) * (group_w + group_gap), 420.0)
    width = left + plot_w + right
    legend, legend_h = _legend([(m, colours.get(m, _NO_GROUP_COLOUR)) for m in models], left, 16, plot_w)
    top = 16 + legend_h + 8
    plot_h = 240.0
    height = top + plot_h + bottom

    def y_of(value: float) -> float:
        return top + plot_h - max(0.0, min(value, y_max)) / y_max * plot_h

    parts = [legend]
    for tick in _ticks(0.0, y_max, nice_step(y_max)):
        y = y_of(tick)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{_num(left + plot_w)}" y1="{_num(y)}" y2="{_num(y)}"/>'
        )
        parts.append(
            f'<text class="lbl tick" x="{left - 6}" y="{_num(y + 4)}" text-anchor="end">{_num(tick)}</text>'
        )
    parts.append(
        f'<text class="lbl" transform="translate(14 {_num(top + plot_h / 2)}) rotate(-90)" '
        f'text-anchor="middle">{_esc(y_label)}</text>'
    )
    slot = plot_w / max(len(groups), 1)
    for gi, (group_label, bars) in enumerate(groups):
        gx = left + gi * slot + (slot - group_w) / 2
        for bi, bar in enumerate(bars):
            x = gx + bi * (bar_w + bar_gap)
            colour = colours.get(bar.model, _NO_GROUP_COLOUR)
            parts.append(_bar(bar, group_label, x, bar_w, top + plot_h, y_of, colour))
        parts.append(
            f'<text class="lbl grp" x="{_num(left + gi * slot + slot / 2)}" y="{_num(top + plot_h + 20)}" '
            f'text-anchor="middle">{_esc(_short(group_label, 18))}</text>'
        )
    parts.append(
        f'<line class="ax" x1="{left}" x2="{_num(left + plot_w)}" y1="{_num(top + plot_h)}" '
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
        whisker = (
            f'<path class="whisker" d="M{_num(cx)} {_num(y_lo)}V{_num(y_hi)}'
            f'M{_num(cx - 4)} {_num(y_lo)}h8M{_num(cx - 4)} {_num(y_hi)}h8"/>'
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


def radar(
    axes: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    colours: dict[str, str],
    *,
    title: str,
    scale_max: float = 100.0,
) -> str:
    """One polygon per model over the axes. The radius starts at a round floor below the lowest score
    (stated in the chart) so that differences of a few points stay visible; missing values sit on the floor
    and are listed as "not evaluated" in the point's tooltip."""
    values = [v for _, vals in series for v in vals if v is not None]
    low = min(values, default=0.0)
    floor = max(0.0, math.floor((low - 10) / 10) * 10)
    size, radius = 460.0, 150.0
    legend, legend_h = _legend(
        [(name, colours.get(name, _NO_GROUP_COLOUR)) for name, _ in series], 12, 16, size - 24
    )
    cx, cy = size / 2, 16 + legend_h + 40 + radius
    height = cy + radius + 46
    n = len(axes)

    def point(i: int, value: float) -> tuple[float, float]:
        fraction = (max(floor, min(value, scale_max)) - floor) / (scale_max - floor)
        angle = -math.pi / 2 + 2 * math.pi * i / n
        return cx + math.cos(angle) * radius * fraction, cy + math.sin(angle) * radius * fraction

    parts = [legend]
    step = nice_step(scale_max - floor, 4)
    for ring in _ticks(floor + step, scale_max, step):
        pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in (point(i, ring) for i in range(n)))
        parts.append(f'<polygon class="grid" fill="none" points="{pts}"/>')
        x, y = point(0, ring)
        parts.append(f'<text class="lbl tick" x="{_num(x + 4)}" y="{_num(y - 2)}">{_num(ring)}</text>')
    for i, label in enumerate(axes):
        parts += _radar_axis(label, (cx, cy), point(i, scale_max))
    for name, vals in series:
        pts = [point(i, v if v is not None else floor) for i, v in enumerate(vals)]
        parts += _radar_series(name, pts, axes, vals, colours.get(name, _NO_GROUP_COLOUR))
    parts.append(
        f'<text class="lbl note" x="{_num(cx)}" y="{_num(height - 8)}" text-anchor="middle">'
        f"radius from {_num(floor)} (centre) to {_num(scale_max)} (outer ring)</text>"
    )
    return _svg(size, height, "".join(parts), title, "chart radar")


def _radar_axis(label: str, centre: tuple[float, float], end: tuple[float, float]) -> list[str]:
    """An axis's spoke and its label just beyond the outer ring."""
    (cx, cy), (x, y) = centre, end
    lx, ly = cx + (x - cx) * 1.12, cy + (y - cy) * 1.12
    anchor = "middle" if abs(lx - cx) < 8 else ("start" if lx > cx else "end")
    return [
        f'<line class="grid" x1="{_num(cx)}" y1="{_num(cy)}" x2="{_num(x)}" y2="{_num(y)}"/>',
        (f'<text class="lbl grp" x="{_num(lx)}" y="{_num(ly + 4)}" text-anchor="{anchor}">'
        f"{_esc(_short(label, 18))}</text>"),
    ]


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


def delta_bars(rows: Sequence[DeltaRow], *, title: str, unit: str = "points") -> str:
    """Sorted horizontal bars around zero, coloured by group (e.g. MMLU category)."""
    rows = sorted(rows, key=lambda r: r.delta, reverse=True)
    extent = max((abs(r.delta) for r in rows), default=1.0) or 1.0
    step = nice_step(extent, 3)
    extent = math.ceil(extent / step) * step
    # Room for value labels on both sides of the bars, so the longest bar's label never hits a subject name.
    label_w, bar_area, value_w, row_h = 230.0, 400.0, 44.0, 14.0
    width = label_w + value_w + bar_area + value_w
    groups = []
    for r in rows:
        if r.group not in groups:
            groups.append(r.group)
    legend, legend_h = _legend(
        [(group_label(g), GROUP_COLOURS.get((g or "").lower(), _NO_GROUP_COLOUR)) for g in groups],
        label_w + value_w,
        16,
        bar_area + value_w,
    )
    top = 16 + legend_h + 18
    height = top + len(rows) * row_h + 14
    zero = label_w + value_w + bar_area / 2

    def x_of(value: float) -> float:
        return zero + value / extent * (bar_area / 2)

    parts = [legend, *_x_grid(_ticks(-extent, extent, step), x_of, top - 4, height - 12,
                              lambda tick: f"{'+' if tick > 0 else ''}{_num(tick)}")]
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
        f'<text class="lbl sm" x="{_num(label_w - 8)}" y="{_num(y + 10)}" text-anchor="end">'
        f"{_esc(_short(r.label, 40))}</text>"
        f'<rect x="{_num(x0)}" y="{_num(y + 2)}" width="{_num(max(x1 - x0, 0.8))}" '
        f'height="{_num(row_h - 4)}" '
        f'rx="1.5" fill="{colour}"/>'
        f'<text class="lbl sm val" x="{_num(value_x)}" y="{_num(y + 10)}" text-anchor="{anchor}">'
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
    rows: Sequence[RetentionRow], *, threshold: float, title: str, colour: str = "#7c3aed"
) -> str:
    """Per benchmark: retention vs the mean of the parents (solid) and vs the best parent (light),
    with the pass threshold as a dashed line. The axis starts at a round value below the lowest ratio."""
    ratios = [v for r in rows for v in (r.vs_mean, r.vs_best) if v is not None]
    lo = min([*ratios, threshold, 1.0]) - 0.05
    hi = max([*ratios, 1.0]) + 0.03
    lo, hi = math.floor(lo * 20) / 20, math.ceil(hi * 20) / 20
    label_w, plot_w, row_h = 130.0, 480.0, 34.0
    width = label_w + plot_w + 70
    legend, legend_h = _legend(
        [("vs mean of parents", colour), ("vs best parent", colour + "66")], label_w, 16, plot_w
    )
    top = 16 + legend_h + 22
    height = top + len(rows) * row_h + 18

    def x_of(ratio: float) -> float:
        return label_w + (max(lo, min(ratio, hi)) - lo) / (hi - lo) * plot_w

    step = nice_step(hi - lo, 5)
    parts = [legend, *_x_grid(_ticks(math.ceil(lo / step - 1e-9) * step, hi, step), x_of, top - 4, height - 8,
                              lambda tick: f"{tick * 100:.0f}%")]
    for i, r in enumerate(rows):
        parts += _retention_row(r, top + i * row_h, label_w, x_of, threshold, colour)
    tx = x_of(threshold)
    parts.append(
        f'<line class="threshold" x1="{_num(tx)}" x2="{_num(tx)}" y1="{_num(top - 4)}" '
        f'y2="{_num(height - 8)}"><title>pass threshold {threshold * 100:.0f}%</title></line>'
    )
    parts.append(
        f'<text class="lbl sm bad" x="{_num(tx - 4)}" y="{_num(height - 2)}" text-anchor="end">'
        f"threshold {threshold * 100:.0f}%</text>"
    )
    parts.append(
        f'<line class="ax" x1="{_num(x_of(1.0))}" x2="{_num(x_of(1.0))}" y1="{_num(top - 4)}" '
        f'y2="{_num(height - 8)}"/>'
    )
    return _svg(width, height, "".join(parts), title)


def _retention_row(r: RetentionRow, y: float, label_w: float, x_of: Callable[[float], float], threshold: float,
                   colour: str) -> list[str]:
    """A benchmark's label and its two bars (vs the mean of the parents, vs the best parent)."""
    parts = [
        (f'<text class="lbl grp" x="{_num(label_w - 10)}" y="{_num(y + 20)}" text-anchor="end">'
        f"{_esc(_short(r.label, 18))}</text>")
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
