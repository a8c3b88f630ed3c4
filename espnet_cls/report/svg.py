"""Small inline-SVG charts for the HTML report: line charts, a confusion matrix, a bar chart.

Every function returns an ``<svg>`` element as a string (no external resources, no fonts
to download); data points carry a ``<title>`` so hovering shows the exact value.
"""

from __future__ import annotations

import math
from html import escape
from typing import Optional, Sequence

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (1, 2, 2.5, 5 × 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * next(m for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def fmt_num(v: float) -> str:
    """Compact number for axes and tooltips (``0.0005``, ``1.5e-05``, ``2.31``, ``1200``)."""
    if v == 0:
        return "0"
    a = abs(v)
    if a < 1e-3 or a >= 1e5:
        return f"{v:.2g}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.4g}"


class Series:
    """One line of a chart: label, points, colour, dashed or solid."""

    def __init__(self, label: str, xs: Sequence[float], ys: Sequence[Optional[float]], color: str, dashed: bool = False):
        self.label = label
        self.points = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(float(y))]
        self.color = color
        self.dashed = dashed


def line_chart(
    series: Sequence[Series],
    title: str,
    xlabel: str = "epoch",
    ylabel: str = "",
    width: int = 380,
    height: int = 250,
    vline: Optional[float] = None,
    vline_label: str = "",
    log_y: bool = False,
    legend_below: bool = False,
) -> str:
    """A line chart with markers, axes, ticks, a legend (top-right inside the plot, or below it
    for long labels) and an optional vertical marker line."""
    ml, mr, mt, mb = 58, 12, 28, 40
    pw, ph = width - ml - mr, height - mt - mb
    if legend_below:
        height += 14 * sum(1 for s in series if s.points) + 4
    pts = [p for s in series for p in s.points]
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{width / 2:.1f}" y="17" class="ct">{escape(title)}</text>']
    if not pts:
        out.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" class="empty">no data</text></svg>')
        return "".join(out)
    use_log = log_y and all(y > 0 for _, y in pts)
    tf = (lambda y: math.log10(y)) if use_log else (lambda y: y)
    xs = [x for x, _ in pts]
    ys = [tf(y) for _, y in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if use_log:
        y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
        if y1 == y0:
            y1 += 1
        yt = [float(k) for k in range(int(y0), int(y1) + 1)]
    else:
        yt = nice_ticks(min(ys), max(ys))
        y0, y1 = yt[0], yt[-1]

    def X(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * pw

    def Y(y: float) -> float:
        return mt + ph - (y - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" class="plot"/>')
    for t in yt:
        y = Y(t)
        lab = fmt_num(10 ** t) if use_log else fmt_num(t)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{ml - 5}" y="{y + 4:.1f}" class="yt">{lab}</text>')
    xt = [x for x in nice_ticks(x0, x1, 6) if x0 <= x <= x1]
    if all(float(x).is_integer() for x, _ in pts):
        xt = [x for x in xt if float(x).is_integer()] or [x0, x1]
    for t in xt:
        x = X(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" class="axis"/>'
                   f'<text x="{x:.1f}" y="{mt + ph + 16}" class="xt">{fmt_num(t)}</text>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{mt + ph + mb - 6}" class="al">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(13,{mt + ph / 2:.1f}) rotate(-90)" class="al">{escape(ylabel)}'
                   f'{" (log)" if use_log else ""}</text>')
    if vline is not None and x0 <= vline <= x1:
        x = X(vline)
        left = x > ml + pw / 2  # the label on the side with room
        anchor = ' style="text-anchor:end"' if left else ""
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt}" y2="{mt + ph}" class="vline"/>'
                   f'<text x="{x - 3 if left else x + 3:.1f}" y="{mt + ph - 5}" class="vl"{anchor}>'
                   f'{escape(vline_label)}</text>')
    for s in series:
        if not s.points:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(x):.1f},{Y(tf(y)):.1f}" for i, (x, y) in enumerate(s.points))
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        out.append(f'<path d="{d}" fill="none" stroke="{s.color}" stroke-width="1.8"{dash}/>')
        for x, y in s.points:
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(tf(y)):.1f}" r="2.6" fill="{s.color}">'
                       f'<title>{escape(s.label)} — {escape(xlabel)} {fmt_num(x)}: {y:.6g}</title></circle>')
    # legend: one row per series, top-right inside the plot or left-aligned below it
    ly = mt + ph + mb if legend_below else mt + 6
    for s in series:
        if not s.points:
            continue
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        if legend_below:
            out.append(f'<line x1="{ml}" x2="{ml + 18}" y1="{ly + 4}" y2="{ly + 4}" stroke="{s.color}" stroke-width="2"{dash}/>'
                       f'<text x="{ml + 24}" y="{ly + 8}" class="lg" style="text-anchor:start">{escape(s.label)}</text>')
        else:
            lx = ml + pw - 8
            out.append(f'<line x1="{lx - 22}" x2="{lx - 4}" y1="{ly + 4}" y2="{ly + 4}" stroke="{s.color}" stroke-width="2"{dash}/>'
                       f'<text x="{lx - 26}" y="{ly + 8}" class="lg">{escape(s.label)}</text>')
        ly += 14
    out.append("</svg>")
    return "".join(out)


def _blue(frac: float) -> str:
    """White → dark blue for ``frac`` in [0, 1]."""
    f = min(max(frac, 0.0), 1.0)
    r = round(247 + (8 - 247) * f)
    g = round(251 + (48 - 251) * f)
    b = round(255 + (107 - 255) * f)
    return f"rgb({r},{g},{b})"


def confusion_matrix(cm: Sequence[Sequence[int]], names: Sequence[str], title: str = "") -> str:
    """Heat map of a ``[C, C]`` count matrix (row = reference, column = predicted), coloured by
    the fraction of the reference class; counts written in cells when they fit."""
    c = len(names)
    cell = max(8, min(24, int(400 / max(c, 1))))
    lab_w = min(150, 12 + 6 * max((len(n) for n in names), default=4))
    ml, mt = lab_w + 18, lab_w + 10
    w, h = ml + c * cell + 10, mt + c * cell + 8
    fs = max(7, min(12, cell - 4))
    out = [f'<svg class="cm" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" '
           f'height="{h:.0f}" role="img" aria-label="{escape(title or "confusion matrix")}">']
    out.append(f'<text x="{ml + c * cell / 2:.1f}" y="12" class="al">predicted</text>')
    out.append(f'<text transform="translate(12,{mt + c * cell / 2:.1f}) rotate(-90)" class="al">reference</text>')
    for j, n in enumerate(names):
        x = ml + j * cell + cell / 2
        out.append(f'<text transform="translate({x + fs / 3:.1f},{mt - 4}) rotate(-90)" class="cml" '
                   f'style="font-size:{fs}px">{escape(n)}</text>')
    for i, n in enumerate(names):
        y = mt + i * cell + cell / 2
        out.append(f'<text x="{ml - 4}" y="{y + fs / 3:.1f}" class="cmr" style="font-size:{fs}px">{escape(n)}</text>')
    for i in range(c):
        row = [int(v) for v in cm[i]]
        tot = sum(row)
        for j in range(c):
            v = row[j]
            frac = v / tot if tot else 0.0
            x, y = ml + j * cell, mt + i * cell
            cls = "cd" if i == j else "co"
            out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_blue(frac)}" class="{cls}">'
                       f'<title>{escape(names[i])} → {escape(names[j])}: {v} of {tot} ({100 * frac:.1f} %)</title></rect>')
            if v and cell >= 16:
                col = "#fff" if frac > 0.5 else "#111"
                out.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + fs / 3:.1f}" class="cmv" '
                           f'style="font-size:{fs}px;fill:{col}">{v}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(values: Sequence[tuple[str, float]], title: str, mean: Optional[float] = None, unit: str = "%") -> str:
    """Horizontal bars (one row per class, in the given order) with an optional mean line;
    values in [0, 1], drawn ×100."""
    n = len(values)
    bh = 16
    lab_w = min(190, 14 + 6.5 * max((len(k) for k, _ in values), default=4))
    ml, mt, pw = lab_w, 30, 360
    w, h = ml + pw + 60, mt + n * bh + 34
    out = [f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h}" width="{w:.0f}" '
           f'height="{h}" role="img" aria-label="{escape(title)}">',
           f'<text x="{w / 2:.1f}" y="17" class="ct">{escape(title)}</text>']
    for t in (0, 25, 50, 75, 100):
        x = ml + pw * t / 100
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt}" y2="{mt + n * bh}" class="grid"/>'
                   f'<text x="{x:.1f}" y="{mt + n * bh + 14}" class="xt">{t}</text>')
    for i, (k, v) in enumerate(values):
        y = mt + i * bh
        bw = pw * min(max(v, 0.0), 1.0)
        out.append(f'<text x="{ml - 4}" y="{y + 12}" class="cmr">{escape(k)}</text>'
                   f'<rect x="{ml}" y="{y + 2}" width="{bw:.1f}" height="{bh - 4}" class="bar">'
                   f'<title>{escape(k)}: {100 * v:.2f} {unit}</title></rect>'
                   f'<text x="{ml + bw + 3:.1f}" y="{y + 12}" class="bv">{100 * v:.1f}</text>')
    if mean is not None and math.isfinite(mean):
        x = ml + pw * min(max(mean, 0.0), 1.0)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt - 4}" y2="{mt + n * bh}" class="vline"/>'
                   f'<text x="{x + 3:.1f}" y="{mt - 6}" class="vl">mean {100 * mean:.2f}</text>')
    out.append("</svg>")
    return "".join(out)
