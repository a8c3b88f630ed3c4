"""The one chart stack: matplotlib figures for training curves, confusion matrices and per-class AP.

The same functions draw the PNGs of ``exp/cls_X/images/`` (stage 6's curves, stage 8's
confusion matrix or per-class AP, which RESULTS.md and the model card link) and the inline
SVG charts of the HTML report (:func:`to_svg`), so a chart looks and reads the same wherever
it appears. matplotlib is already a requirement (ESPnet draws its curves with it); only its
object API and the Agg/SVG canvases are used (no pyplot state, safe in worker processes).

::

    fig = line_chart([Series("train", [1, 2], [0.9, 0.7], PALETTE[0], dashed=True)], "loss", ylabel="loss")
    save_png(fig, "exp/cls_X/images/loss.png")
    html = to_svg(fig, "loss")            # <svg class="chart" role="img" aria-label="loss" ...>
"""

from __future__ import annotations

import io
import math
import re
from html import escape
from typing import Any, Optional, Sequence

import numpy as np

from espnet_cls.fileio import PathLike, atomic_write

#: matplotlib's tab10 colours
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

#: text stays text in the SVG (small, selectable); ids are stable from run to run
_RC = {"svg.fonttype": "none", "svg.hashsalt": "espnet_cls", "font.size": 9}


class Series:
    """One line of a chart: label, points (``None``/NaN values are skipped), colour, dashed or solid."""

    def __init__(self, label: str, xs: Sequence[float], ys: Sequence[Optional[float]], color: str, dashed: bool = False):
        self.label = label
        self.points = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(float(y))]
        self.color = color
        self.dashed = dashed


def _figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    fig.espnet_cls_tips = {}  # artist gid -> hover text (an SVG <title>, see to_svg)
    return fig


def _tip(fig: Any, artist: Any, text: str) -> None:
    gid = f"tip{len(fig.espnet_cls_tips)}"
    artist.set_gid(gid)
    fig.espnet_cls_tips[gid] = text


def fmt_num(v: float) -> str:
    """Compact number for tooltips (``0.0005``, ``1.5e-05``, ``2.31``, ``1200``)."""
    if v == 0:
        return "0"
    a = abs(v)
    if a < 1e-3 or a >= 1e5:
        return f"{v:.2g}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.4g}"


def line_chart(
    series: Sequence[Series],
    title: str,
    ylabel: str = "",
    xlabel: str = "epoch",
    vline: Optional[float] = None,
    vline_label: str = "",
    width: int = 480,
    height: int = 260,
    legend_below: bool = False,
) -> Any:
    """Lines over epochs (``width``/``height`` in pixels at 100 dpi); ``vline`` marks e.g. the best epoch."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(width / 100, height / 100)
        ax = fig.add_subplot(111)
        drawn = [s for s in series if s.points]
        for s in drawn:
            xs, ys = zip(*s.points)
            ax.plot(xs, ys, color=s.color, linestyle="--" if s.dashed else "-", label=s.label)
            for x, y in s.points:  # one marker per point, so that each carries its value on hover
                (pt,) = ax.plot([x], [y], color=s.color, marker="o", markersize=3, linestyle="none")
                _tip(fig, pt, f"{s.label}: {xlabel} {fmt_num(x)}: {fmt_num(y)}")
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#999")
        if vline is not None and drawn:
            ax.axvline(vline, color="#e0a400", linestyle=":", linewidth=1, label=vline_label or None)
        if drawn and all(float(x).is_integer() for s in drawn for x, _ in s.points):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if drawn:
            if legend_below:
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=7, frameon=False)
            else:
                ax.legend(fontsize=7)
        fig.tight_layout()
    return fig


def confusion_matrix(cm: Sequence[Sequence[int]], names: Sequence[str], title: str = "") -> Any:
    """Rows: reference, columns: predicted; colour: fraction of the reference class; counts shown up to 20 classes."""
    import matplotlib

    cm = np.asarray(cm, dtype=np.float64)
    c = len(names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    with matplotlib.rc_context(_RC):
        size = min(4 + 0.35 * c, 40)
        fig = _figure(size, size * 0.9)
        ax = fig.add_subplot(111)
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the reference class")
        if c <= 60:
            ax.set_xticks(range(c), list(names), rotation=90, fontsize=7)
            ax.set_yticks(range(c), list(names), fontsize=7)
        if c <= 20:
            for i in range(c):
                for j in range(c):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if norm[i, j] > 0.5 else "black")
        if c <= 40:  # hover: "reference → predicted: n of N"
            from matplotlib.patches import Rectangle

            tot = cm.sum(axis=1)
            for i in range(c):
                for j in range(c):
                    cell = ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linewidth=0))
                    _tip(fig, cell, f"{names[i]} → {names[j]}: {int(cm[i, j])} of {int(tot[i])}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


def bar_chart(values: Sequence[tuple[str, float]], title: str, mean: Optional[float] = None, unit: str = "%") -> Any:
    """One bar per ``(label, fraction)`` in the order given (shown ×100 for ``%``); ``mean``: a dashed line."""
    import matplotlib

    scale = 100.0 if unit == "%" else 1.0
    vals = np.array([v for _, v in values], dtype=np.float64) * scale
    with matplotlib.rc_context(_RC):
        fig = _figure(min(4 + 0.25 * len(vals), 40), 4.5)
        ax = fig.add_subplot(111)
        bars = ax.bar(range(len(vals)), vals, color=PALETTE[0])
        for (k, _), v, b in zip(values, vals, bars):
            _tip(fig, b, f"{k}: {v:.2f}{' %' if unit == '%' else ''}")
        if mean is not None and math.isfinite(mean):
            ax.axhline(mean * scale, color=PALETTE[1], linestyle="--", label=f"mean {mean * scale:.2f}")
            ax.legend(fontsize=7)
        if len(vals) <= 81:
            ax.set_xticks(range(len(vals)), [k for k, _ in values], rotation=90, fontsize=7)
        else:
            ax.set_xlabel(f"{len(vals)} classes")
        ax.set_ylabel(f"AP ({unit})" if unit else "AP")
        if unit == "%":
            ax.set_ylim(0, 100)
        ax.set_title(title)
        fig.tight_layout()
    return fig


def save_png(fig: Any, path: PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as PNG, atomically."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})


def to_svg(fig: Any, label: str, css_class: str = "chart") -> str:
    """``fig`` as an inline ``<svg>`` element (no XML prolog) with ``class``, ``role="img"`` and ``aria-label``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    for gid, tip in getattr(fig, "espnet_cls_tips", {}).items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{escape(tip)}</title>', 1)
    attrs = f' class="{escape(css_class)}" role="img" aria-label="{escape(label)}"'
    return re.sub(r"^<svg\b", "<svg" + attrs, text, count=1).strip()
