"""Per-epoch history, best-epoch bookkeeping, n-best averaging and curves.

``history`` is a list of per-epoch dicts ``{"epoch", "train": {...}, "valid": {...}, "lr",
"time"}`` (what ``train_history.json`` holds). ESPnet's ``best_model_criterion`` entries
``[phase, metric, max|min]`` pick epochs from it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from espnet_cls.fileio import atomic_write
from espnet_cls.train.checkpoint import atomic_torch_save, average_state_dicts, link_or_copy

logger = logging.getLogger(__name__)


def epoch_file(epoch: int) -> str:
    """Name of an epoch's model file (ESPnet's ``{N}epoch.pth``)."""
    return f"{epoch}epoch.pth"


def metric_value(entry: dict, phase: str, metric: str) -> Optional[float]:
    """``entry[phase][metric]`` as a float, or None if missing / not finite."""
    v = entry.get(phase, {}).get(metric)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def sorted_epochs(history: Sequence[dict], phase: str, metric: str, mode: str) -> list[int]:
    """Epochs that have the metric, best first (ties: earlier epoch first)."""
    vals = [(e["epoch"], metric_value(e, phase, metric)) for e in history]
    vals = [(ep, v) for ep, v in vals if v is not None]
    sign = -1.0 if mode == "max" else 1.0
    return [ep for ep, _ in sorted(vals, key=lambda x: (sign * x[1], x[0]))]


def nbest_list(keep_nbest_models: Any) -> list[int]:
    """``keep_nbest_models`` (int or list of ints) → sorted list of n."""
    if isinstance(keep_nbest_models, (list, tuple)):
        out = sorted({int(n) for n in keep_nbest_models})
    else:
        out = [int(keep_nbest_models)]
    return [n for n in out if n > 0] or [1]


def update_best_links(out_dir: Path, history: Sequence[dict], criteria: Sequence[Sequence[str]]) -> None:
    """``valid.<metric>.best.pth`` → the best epoch's model file, for each criterion."""
    for phase, metric, mode in criteria:
        order = sorted_epochs(history, phase, metric, mode)
        if order and (out_dir / epoch_file(order[0])).exists():
            link_or_copy(epoch_file(order[0]), out_dir / f"{phase}.{metric}.best.pth")


def remove_stale_epochs(out_dir: Path, history: Sequence[dict], criteria: Sequence[Sequence[str]],
                        keep_nbest_models: Any, current_epoch: int) -> list[int]:
    """Delete ``N epoch.pth`` files that are in no criterion's n-best (the current epoch is
    kept until the next one). Returns the removed epochs."""
    keep_n = max(nbest_list(keep_nbest_models))
    keep: set[int] = {current_epoch}
    for phase, metric, mode in criteria:
        keep.update(sorted_epochs(history, phase, metric, mode)[:keep_n])
    removed = []
    for e in history:
        ep = int(e["epoch"])
        p = out_dir / epoch_file(ep)
        if ep not in keep and p.exists():
            p.unlink()
            removed.append(ep)
    return removed


def average_nbest(out_dir: Path, history: Sequence[dict], criteria: Sequence[Sequence[str]],
                  keep_nbest_models: Any) -> list[Path]:
    """Write ``<phase>.<metric>.ave_<n>best.pth`` (mean of the n best epochs' weights) and the
    ``<phase>.<metric>.ave.pth`` link (to the largest n). Returns the files written."""
    written = []
    for phase, metric, mode in criteria:
        order = [ep for ep in sorted_epochs(history, phase, metric, mode) if (out_dir / epoch_file(ep)).exists()]
        if not order:
            logger.warning("no epoch has %s.%s: no averaged model", phase, metric)
            continue
        last_name = None
        # ESPnet's rule (average_nbest_models): only the n <= number of epochs; none left -> 1.
        ns = [n for n in nbest_list(keep_nbest_models) if n <= len(order)] or [1]
        for k in ns:
            name = f"{phase}.{metric}.ave_{k}best.pth"
            avg = average_state_dicts([out_dir / epoch_file(ep) for ep in order[:k]])
            atomic_torch_save(avg, out_dir / name)
            logger.info("averaged %s over epochs %s -> %s", f"{phase}.{metric}", order[:k], name)
            written.append(out_dir / name)
            last_name = name
        if last_name:
            link_or_copy(last_name, out_dir / f"{phase}.{metric}.ave.pth")
    return written


def format_timespan(seconds: float) -> str:
    """Seconds as ``humanfriendly.format_timespan`` writes them (ESPnet's ``time=`` field):
    ``0.5 seconds``, ``1 second``, ``1 minute and 2.53 seconds``, ``1 hour, 2 minutes and 3.2 seconds``
    (at most three units, the largest first)."""
    def num(v: float) -> str:
        return f"{round(v, 2):.2f}".rstrip("0").rstrip(".")

    def unit(v: float, name: str) -> str:
        text = num(v)
        return f"{text} {name}" + ("" if text == "1" else "s")

    seconds = max(0.0, float(seconds))
    if round(seconds, 2) < 60:
        return unit(seconds, "second")
    parts = []
    rest = seconds
    for name, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        n = int(rest // size)
        if n:
            parts.append(unit(n, name))
            rest -= n * size
    if round(rest, 2) > 0:
        parts.append(unit(rest, "second"))
    parts = parts[:3]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def espnet_value(v: float) -> str:
    """A number as ESPnet's ``Reporter.log_message`` writes it (``.3f``, or ``.3e`` when
    ``|v| > 1e3`` or ``|v| <= 1e-3``)."""
    v = float(v)
    return f"{v:.3e}" if abs(v) > 1.0e3 or abs(v) <= 1.0e-3 else f"{v:.3f}"


def epoch_results_line(entry: dict) -> str:
    """An epoch's ``train.log`` line in ESPnet's format, which scripts for ESPnet parse::

        3epoch results: [train] loss=0.512, acc=0.812, optim0_lr0=1.000e-03, time=2.5 seconds, total_count=36,
        [valid] loss=0.601, acc=0.778, mAP=0.850, time=0.4 seconds, total_count=9

    (one line). ``entry`` is a history entry; its ``counts``/``phase_time`` give total_count and time.
    """
    counts = entry.get("counts", {})
    times = entry.get("phase_time", {})
    blocks = []
    for phase in ("train", "valid"):
        fields = [f"{k}={espnet_value(v)}" for k, v in entry.get(phase, {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if phase == "train" and entry.get("lr") is not None:
            fields.append(f"optim0_lr0={espnet_value(entry['lr'])}")
        if phase in times:
            fields.append(f"time={format_timespan(times[phase])}")
        if phase in counts:
            fields.append(f"total_count={int(counts[phase])}")
        if fields:
            blocks.append(f"[{phase}] " + ", ".join(fields))
    return f"{entry['epoch']}epoch results: " + ", ".join(blocks)


def write_history(out_dir: Path, history: Sequence[dict]) -> None:
    """``train_history.json``, atomically."""
    with atomic_write(out_dir / "train_history.json") as f:
        json.dump(list(history), f, indent=1)
        f.write("\n")


def plot_curves(out_dir: Path, history: Sequence[dict]) -> None:
    """``images/<metric>.png`` for every metric in the history (train and valid on one plot),
    plus ``images/lr.png``, drawn by :mod:`espnet_cls.report.charts` (the HTML report draws
    the same figures); skipped if matplotlib is missing."""
    try:
        from espnet_cls.report import charts
    except ImportError:  # pragma: no cover
        logger.info("matplotlib not installed: no curves")
        return
    img = out_dir / "images"
    img.mkdir(parents=True, exist_ok=True)
    metrics: list[str] = []
    for e in history:
        for phase in ("train", "valid"):
            for k, v in e.get(phase, {}).items():
                if isinstance(v, (int, float)) and k not in metrics:
                    metrics.append(k)
    epochs = [e["epoch"] for e in history]
    for m in metrics + ["lr"]:
        if m == "lr":
            series = [charts.Series("lr", epochs, [e.get("lr") for e in history], charts.PALETTE[2])]
        else:
            series = [charts.Series(phase, epochs, [metric_value(e, phase, m) for e in history], color, phase == "train")
                      for phase, color in (("train", charts.PALETTE[0]), ("valid", charts.PALETTE[1]))]
        charts.save_png(charts.line_chart(series, m, ylabel=m, width=600, height=400), img / f"{m}.png", dpi=80)
