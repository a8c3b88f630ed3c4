"""HTML pages: one experiment's report and a comparison of several experiments.

Both are single self-contained files: CSS, JavaScript and charts (inline SVG) are inside;
audio players point at the dumped clips by a path relative to the page (or carry them
as base64 ``data:`` URLs with ``embed_audio``). Nothing is loaded from the network.
"""

from __future__ import annotations

import base64
import datetime
import math
import mimetypes
from html import escape
from pathlib import Path
from typing import Any, Optional, Sequence

from espnet_cls.contract import SPECIAL_TOKENS
from espnet_cls.report import charts
from espnet_cls.report.assets import CSS, JS
from espnet_cls.report.data import MULTI_CLASS, ErrorCase, Experiment, SetReport, relative_url

# (header, metrics.json key), as score_cls.py's markdown table
MULTI_CLASS_COLUMNS = [("acc", "acc"), ("mAP", "mAP"), ("mean_auc", "mean_auc"), ("d_prime", "d_prime"),
                       ("micro_f1", "micro_f1"), ("macro_f1", "macro_f1")]
MULTI_LABEL_COLUMNS = [("mAP", "mAP"), ("top1_acc", "top1_hit_rate"), ("subset_acc", "subset_acc"),
                       ("micro_f1", "micro_f1"), ("macro_f1", "macro_f1"), ("mean_auc", "mean_auc"),
                       ("d_prime", "d_prime")]
NOT_PERCENT = {"d_prime"}
PER_CLASS_COLUMNS = [("AP", "ap"), ("AUC", "auc"), ("precision", "precision"), ("recall", "recall"), ("F1", "f1")]
# config keys shown in the summary table (the full yaml is below it)
CONFIG_KEYS = ["frontend", "frontend_conf", "specaug", "normalize", "encoder", "encoder_conf", "decoder", "decoder_conf",
               "model_conf", "optim", "optim_conf", "scheduler", "scheduler_conf", "max_epoch", "batch_type",
               "batch_size", "batch_bins", "accum_grad", "grad_clip", "use_amp", "best_model_criterion",
               "keep_nbest_models", "patience", "seed", "init_param"]


def _num(v: Any) -> Optional[float]:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_metric(key: str, v: Any) -> str:
    """``×100`` with 2 decimals (as RESULTS.md), ``d_prime`` raw; ``–`` for missing/NaN."""
    f = _num(v)
    if f is None:
        return "–"
    return f"{f:.2f}" if key in NOT_PERCENT else f"{100 * f:.2f}"


def metric_columns(ctype: str) -> list[tuple[str, str]]:
    return MULTI_CLASS_COLUMNS if ctype == MULTI_CLASS else MULTI_LABEL_COLUMNS


def _page(title: str, header: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    links = "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"espnet_cls.bin.report\"><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head>\n<body>\n{header}\n<nav>{links}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>written by <code>python -m espnet_cls.bin.report</code> on {now}; self-contained, "
        f"no network resources</footer>\n<script>{JS}</script>\n</body></html>\n"
    )


def anchor(name: str) -> str:
    """An id-safe anchor for a set or run name."""
    return "s-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# --------------------------------------------------------------------------- training curves


def history_metrics(history: Sequence[dict[str, Any]]) -> list[str]:
    """Numeric metric names in the history, in first-seen order (``loss`` first)."""
    names: list[str] = []
    for e in history:
        for phase in ("train", "valid"):
            for k, v in (e.get(phase) or {}).items():
                if _num(v) is not None and k not in names:
                    names.append(k)
    return sorted(names, key=lambda k: (k != "loss", names.index(k)))


def best_epoch(exp: Experiment) -> Optional[tuple[int, str, float]]:
    """``(epoch, "valid.acc", value)`` of the first ``best_model_criterion``, if the history has it."""
    crit = (exp.config or {}).get("best_model_criterion") or [["valid", "acc", "max"]]
    try:
        phase, metric, mode = crit[0]
    except (TypeError, ValueError):
        return None
    pts = [(e["epoch"], _num((e.get(phase) or {}).get(metric))) for e in exp.history]
    pts = [(ep, v) for ep, v in pts if v is not None]
    if not pts:
        return None
    ep, v = (max if mode == "max" else min)(pts, key=lambda p: p[1])
    return int(ep), f"{phase}.{metric}", float(v)


def curves_html(exp: Experiment) -> str:
    """One chart per metric (train dashed vs valid solid) and one for the learning rate."""
    if not exp.history:
        return '<p class="muted">no train_history.json</p>'
    best = best_epoch(exp)
    vline = best[0] if best else None
    vlabel = f"best {best[1]}" if best else ""
    charts_: list[str] = []
    for m in history_metrics(exp.history):
        series = []
        for phase, color, dashed in (("train", charts.PALETTE[0], True), ("valid", charts.PALETTE[1], False)):
            xs = [e["epoch"] for e in exp.history]
            ys = [_num((e.get(phase) or {}).get(m)) for e in exp.history]
            series.append(charts.Series(phase, xs, ys, color, dashed))
        charts_.append(charts.to_svg(charts.line_chart(series, m, ylabel=m, vline=vline, vline_label=vlabel), m))
    lr = [(e["epoch"], _num(e.get("lr"))) for e in exp.history]
    if any(v is not None for _, v in lr):
        s = charts.Series("lr", [x for x, _ in lr], [v for _, v in lr], charts.PALETTE[2])
        charts_.append(charts.to_svg(charts.line_chart([s], "learning rate", ylabel="lr", vline=vline), "learning rate"))
    t = [(e["epoch"], _num(e.get("time"))) for e in exp.history]
    if any(v is not None for _, v in t):
        s = charts.Series("seconds", [x for x, _ in t], [v for _, v in t], charts.PALETTE[4])
        charts_.append(charts.to_svg(charts.line_chart([s], "time per epoch", ylabel="s"), "time per epoch"))
    return f'<div class="charts">{"".join(charts_)}</div>'


# --------------------------------------------------------------------------- per set


def metrics_table(rows: Sequence[tuple[str, dict[str, Any]]], ctype: str, highlight_best: bool = False) -> str:
    """``|name|metrics…|n_labels|n_instances|`` as an HTML table (values ×100 as RESULTS.md).

    ``rows``: (name as HTML, metrics.json dict). Several rows: sortable, best per column bold
    with ``highlight_best``."""
    cols = metric_columns(ctype)
    best: dict[str, float] = {}
    if highlight_best and len(rows) > 1:
        for _, key in cols:
            vals = [_num(m.get(key)) for _, m in rows]
            vals = [v for v in vals if v is not None]
            if vals:
                best[key] = max(vals)
    head = "".join(f'<th data-type="num">{escape(h)}</th>' for h, _ in cols)
    sortable = " sortable" if len(rows) > 1 else ""
    out = [f'<table class="metrics{sortable}"><thead><tr><th class="t">name</th>{head}'
           '<th data-type="num">n_labels</th><th data-type="num">n_left_out</th><th data-type="num">n_instances</th>'
           "</tr></thead><tbody>"]
    for name, m in rows:
        tds = []
        for _, key in cols:
            v = _num(m.get(key))
            cls = ' class="best"' if key in best and v is not None and v == best[key] else ""
            tds.append(f'<td data-v="{"" if v is None else v}"{cls}>{fmt_metric(key, v)}</td>')
        tail = "".join(f'<td>{escape(str(m.get(k, "–")))}</td>' for k in ("n_classes", "n_classes_left_out", "n_instances"))
        out.append(f'<tr><td class="t">{name}</td>{"".join(tds)}{tail}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def per_class_table(rep: SetReport) -> str:
    """Sortable per-class table: AP (with a bar), AUC, precision, recall, F1, support, predicted."""
    tid = f"perclass-{anchor(rep.name)}"
    head = ['<th class="t" data-type="text">class</th>']
    head += [f'<th data-type="num" data-key="{k}">{escape(h)}</th>' for h, k in PER_CLASS_COLUMNS]
    head += ['<th data-type="num" data-key="support">support</th>', '<th data-type="num" data-key="n_pred">predicted</th>']
    out = [f'<div class="scroll"><table id="{tid}" class="perclass sortable"><thead><tr>{"".join(head)}</tr></thead><tbody>']
    for r in rep.metrics.get("per_class", []):
        tds = [f'<td class="t">{escape(str(r["class"]))}</td>']
        for _, k in PER_CLASS_COLUMNS:
            v = _num(r.get(k))
            bar = f'<span class="mini" style="width:{30 * v:.0f}px"></span>' if k == "ap" and v is not None else ""
            tds.append(f'<td data-v="{"" if v is None else repr(v)}">{bar}{fmt_metric(k, v)}</td>')
        for k in ("support", "n_pred"):
            v = _num(r.get(k))
            tds.append(f'<td data-v="{"" if v is None else int(v)}">{"–" if v is None else int(v)}</td>')
        out.append(f"<tr>{''.join(tds)}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def top_confusions(rep: SetReport, n: int = 10) -> str:
    """The ``n`` largest off-diagonal cells of the confusion matrix as a small table."""
    cm = rep.metrics.get("confusion_matrix")
    names = rep.class_names
    if not cm:
        return ""
    pairs = []
    for i, row in enumerate(cm):
        tot = sum(row)
        for j, v in enumerate(row):
            if i != j and v:
                pairs.append((int(v), i, j, tot))
    if not pairs:
        return '<p class="muted">no confusions</p>'
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    rows = "".join(f'<tr><td class="t">{escape(names[i])}</td><td class="t">{escape(names[j])}</td><td>{v}</td>'
                   f"<td>{100 * v / tot:.0f} %</td></tr>" for v, i, j, tot in pairs[:n])
    return ('<table class="confusions"><thead><tr><th class="t">reference</th><th class="t">predicted as</th>'
            f'<th>clips</th><th>of the class</th></tr></thead><tbody>{rows}</tbody></table>')


def class_chart(rep: SetReport) -> str:
    """Confusion matrix (multi-class, up to 100 classes) or per-class AP bars (multi-label)."""
    names = rep.class_names
    cm = rep.metrics.get("confusion_matrix")
    if rep.classification_type == MULTI_CLASS and cm:
        if len(names) > 100:
            return f'<p class="muted">{len(names)} classes: confusion matrix not drawn; see the top confusions</p>'
        title = f"{rep.name}: confusion matrix"
        return (charts.to_svg(charts.confusion_matrix(cm, names, title), title, "cm")
                + '<p class="muted">rows: reference, columns: predicted; colour: fraction of the reference class; '
                'diagonal: correct</p>')
    aps = [(str(r["class"]), _num(r.get("ap"))) for r in rep.metrics.get("per_class", [])]
    vals = sorted([(k, v) for k, v in aps if v is not None], key=lambda kv: -kv[1])
    if not vals:
        return '<p class="muted">no per-class AP (scores of the predicted classes only)</p>'
    note = ""
    if len(vals) > 80:
        note = f'<p class="muted">{len(vals)} classes: the 40 best and the 40 worst</p>'
        vals = vals[:40] + [("…", 0.0)] + vals[-40:]
    title = f"{rep.name}: per-class AP (%)"
    return note + charts.to_svg(charts.bar_chart(vals, title, mean=_num(rep.metrics.get("mAP"))), title, "bars")


def _audio_src(path: Path, page_dir: Path, embed: bool) -> str:
    if embed:
        mime = {".flac": "audio/flac", ".wav": "audio/wav"}.get(path.suffix.lower()) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
    return relative_url(path, page_dir)


def _labels(labels: Sequence[str], good: Sequence[str], kind: str) -> str:
    if not labels:
        return '<span class="muted">(none)</span>'
    return "".join(f'<span class="lab {"ok" if lab in good else kind}">{escape(lab)}</span>' for lab in labels)


def errors_table(rep: SetReport, page_dir: Path, embed_audio: bool) -> str:
    """The worst errors: clip, reference, prediction, top-5 with probabilities and a player."""
    if not rep.errors:
        if rep.n_errors_total == 0 and not rep.notes:
            return '<p class="muted">no wrong clips</p>'
        return ""
    out = ['<table class="errors"><thead><tr><th>#</th><th class="t">clip</th><th class="t">reference</th>'
           '<th class="t">predicted</th><th title="how confident the wrong decision was">conf.</th><th class="t">top-5</th><th class="t">audio</th>'
           "</tr></thead><tbody>"]
    for k, e in enumerate(rep.errors, 1):
        out.append(_error_row(k, e, page_dir, embed_audio))
    out.append("</tbody></table>")
    shown = f"{len(rep.errors)} most confident of {rep.n_errors_total} wrong clips"
    return f'<p class="muted">{shown}</p><div class="wide">' + "".join(out) + "</div>"


def _error_row(k: int, e: ErrorCase, page_dir: Path, embed_audio: bool) -> str:
    ref = _labels(e.reference, e.reference, "")
    pred = _labels(e.predicted, e.reference, "ko")
    conf = "–" if e.confidence is None else f"{e.confidence:.3f}"
    top = ""
    if e.top:
        cells = []
        for cls, p in e.top:
            ok = " ok" if cls in e.reference else ""
            cells.append(f'<span class="lab{ok}">{escape(cls)}</span><span class="b{ok}" style="width:{70 * p:.0f}px">'
                         f"</span><span>{p:.3f}</span>")
        top = f'<div class="top5">{"".join(cells)}</div>'
    if e.audio is not None and e.audio.is_file():
        src = _audio_src(e.audio, page_dir, embed_audio)
        audio = f'<audio controls preload="none" src="{escape(src)}" title="{escape(e.utt_id)}"></audio>'
    else:
        audio = '<span class="muted">audio not found</span>'
    return (f'<tr><td>{k}</td><td class="t clip"><code>{escape(e.utt_id)}</code></td><td class="t labs">{ref}</td>'
            f'<td class="t labs">{pred}</td><td>{conf}</td><td class="t">{top}</td><td class="t audio">{audio}</td></tr>')


def set_section(rep: SetReport, page_dir: Path, embed_audio: bool) -> str:
    ctype = rep.classification_type
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in rep.notes)
    left = rep.metrics.get("left_out_classes") or []
    if left:
        shown = ", ".join(left[:20]) + (", …" if len(left) > 20 else "")
        notes += f'<p class="note">{len(left)} classes without a positive clip are left out of mAP/macro-F1: {escape(shown)}</p>'
    chart_title = "Confusion matrix" if ctype == MULTI_CLASS and rep.metrics.get("confusion_matrix") else "Per-class AP"
    conf = top_confusions(rep) if ctype == MULTI_CLASS else ""
    conf_html = f"<h3>Most frequent confusions</h3>{conf}" if conf else ""
    return (
        f'<section id="{anchor(rep.name)}" class="set"><h2>{escape(rep.name)} '
        f'<span class="muted">({escape(ctype)}, {escape(str(rep.metrics.get("n_instances", "?")))} clips)</span></h2>'
        f"{metrics_table([(escape(rep.name), rep.metrics)], ctype)}{notes}"
        f'<div class="row"><div><h3>Per-class (click a header to sort)</h3>{per_class_table(rep)}</div>'
        f'<div class="grow"><h3>{chart_title}</h3>{class_chart(rep)}{conf_html}</div></div>'
        f"<h3>Worst errors (most confident wrong predictions)</h3>{errors_table(rep, page_dir, embed_audio)}"
        "</section>"
    )


# --------------------------------------------------------------------------- config


def _short(v: Any, limit: int = 160) -> str:
    if isinstance(v, dict):
        s = ", ".join(f"{k}={_short(x, 60)}" for k, x in v.items())
    elif isinstance(v, list):
        s = "[" + ", ".join(_short(x, 60) for x in v) + "]"
    else:
        s = str(v)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def config_section(exp: Experiment) -> str:
    if exp.config is None:
        return '<section id="config"><h2>Config</h2><p class="muted">no config.yaml</p></section>'
    cfg = exp.config
    rows = "".join(f'<tr><td class="t"><code>{escape(k)}</code></td><td class="t">{escape(_short(cfg[k]))}</td></tr>'
                   for k in CONFIG_KEYS if k in cfg and cfg[k] not in (None, [], {}))
    n_cls = len([t for t in cfg.get("token_list") or [] if t not in SPECIAL_TOKENS])
    full = f"<details><summary>full config.yaml</summary><pre>{escape(exp.config_text or '')}</pre></details>"
    return (f'<section id="config"><h2>Config</h2><p>{n_cls} classes; <a href="config.yaml">config.yaml</a></p>'
            f'<table class="config"><tbody>{rows}</tbody></table>{full}</section>')


# --------------------------------------------------------------------------- pages


def _key_metric(rep: SetReport) -> tuple[str, str]:
    return ("acc", "acc") if rep.classification_type == MULTI_CLASS else ("mAP", "mAP")


def summary_cards(exp: Experiment) -> str:
    cards = []
    for rep in exp.sets:
        label, key = _key_metric(rep)
        second = ("mAP", "mAP") if key == "acc" else ("top-1", "top1_hit_rate")
        cards.append(f'<div class="card"><div class="k">{escape(rep.name)} · {label}</div>'
                     f'<div class="v">{fmt_metric(key, rep.metrics.get(key))}</div>'
                     f'<div class="s">{second[0]} {fmt_metric(second[1], rep.metrics.get(second[1]))} · '
                     f'macro-F1 {fmt_metric("macro_f1", rep.metrics.get("macro_f1"))}</div></div>')
    if exp.history:
        best = best_epoch(exp)
        total = sum(_num(e.get("time")) or 0.0 for e in exp.history)
        b = f"best {escape(best[1])} {best[2]:.4g} at epoch {best[0]}" if best else "no best epoch"
        cards.append(f'<div class="card"><div class="k">training</div><div class="v">{len(exp.history)} epochs</div>'
                     f'<div class="s">{b} · {total:.0f} s</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def render_experiment(exp: Experiment, page_path: Path, embed_audio: bool = False) -> str:
    """The HTML of one experiment's report, to be written at ``page_path``."""
    page_dir = page_path.resolve().parent
    ctypes = sorted({r.classification_type for r in exp.sets}) or [
        str(((exp.config or {}).get("model_conf") or {}).get("classification_type", "?"))]
    links = []
    for f in ("RESULTS.md", "config.yaml", "train.log"):
        if (exp.path / f).is_file():
            links.append(f'<a href="{relative_url(exp.path / f, page_dir)}">{f}</a>')
    try:
        shown_path = str(exp.path.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown_path = str(exp.path)
    header = (f"<header><h1>{escape(exp.name)}</h1><div class=\"sub\">{escape(', '.join(ctypes))} · "
              f"{escape(shown_path)} · {' · '.join(links)}</div></header>")
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in exp.notes)
    body = [f'<section id="summary"><h2>Summary</h2>{notes}{summary_cards(exp)}</section>',
            f'<section id="training"><h2>Training curves</h2>{curves_html(exp)}</section>']
    body += [set_section(rep, page_dir, embed_audio) for rep in exp.sets]
    body.append(config_section(exp))
    nav = [("summary", "Summary"), ("training", "Training")] + [(anchor(r.name), r.name) for r in exp.sets]
    nav.append(("config", "Config"))
    return _page(f"{exp.name} — report", header, nav, "\n".join(body))


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = _short(d, 80)
    return out


IGNORED_DIFF_KEYS = ("output_dir", "token_list", "train_data_path_and_name_and_type", "valid_data_path_and_name_and_type",
                     "train_shape_file", "valid_shape_file", "normalize_conf.stats_file", "config")


def config_diff(exps: Sequence[Experiment]) -> str:
    """The config keys whose values differ between runs (paths and the token list left out)."""
    flat = [_flatten(e.config or {}) for e in exps]
    keys = sorted({k for f in flat for k in f if not k.startswith(IGNORED_DIFF_KEYS)})
    diff = [k for k in keys if len({f.get(k, "–") for f in flat}) > 1]
    if not diff:
        return '<p class="muted">the configs do not differ (apart from paths)</p>'
    head = "".join(f'<th class="t">{escape(e.name)}</th>' for e in exps)
    rows = "".join(f'<tr><td class="t"><code>{escape(k)}</code></td>'
                   + "".join(f'<td class="t">{escape(f.get(k, "–"))}</td>' for f in flat) + "</tr>" for k in diff)
    return f'<div class="scroll"><table class="cfgdiff"><thead><tr><th class="t">key</th>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def render_comparison(exps: Sequence[Experiment], page_path: Path) -> str:
    """A page comparing runs: metrics side by side per set, curves overlaid, config differences."""
    page_dir = page_path.resolve().parent
    color = {e.name: charts.PALETTE[i % len(charts.PALETTE)] for i, e in enumerate(exps)}
    runs = []
    for e in exps:
        rep = e.path / "report.html"
        link = f'<a href="{relative_url(rep, page_dir)}">report</a>' if rep.is_file() else ""
        best = best_epoch(e) if e.history else None
        b = f"{best[1]} {best[2]:.4g} @ {best[0]}" if best else "–"
        runs.append(f'<tr><td class="t"><span style="color:{color[e.name]}">■</span> {escape(e.name)}</td>'
                    f'<td class="t">{escape(str(e.path))}</td><td>{len(e.history)}</td><td class="t">{escape(b)}</td>'
                    f'<td class="t">{link}</td></tr>')
    runs_html = ('<table class="runs"><thead><tr><th class="t">run</th><th class="t">directory</th><th>epochs</th>'
                 f'<th class="t">best epoch</th><th class="t"></th></tr></thead><tbody>{"".join(runs)}</tbody></table>')
    set_names = sorted({r.name for e in exps for r in e.sets}, key=str.encode)
    sets_html = []
    for name in set_names:
        by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for e in exps:
            for r in e.sets:
                if r.name == name:
                    cell = f'<span style="color:{color[e.name]}">■</span> {escape(e.name)}'
                    by_type.setdefault(r.classification_type, []).append((cell, r.metrics))
        tables = "".join(metrics_table(rows, ct, highlight_best=True) for ct, rows in sorted(by_type.items()))
        sets_html.append(f'<section id="{anchor(name)}"><h2>{escape(name)}</h2>{tables}'
                         '<p class="muted">bold: the best run per column (higher is better)</p></section>')
    metrics: list[str] = []
    for e in exps:
        for m in history_metrics(e.history):
            if m not in metrics:
                metrics.append(m)
    charts_: list[str] = []
    for m in metrics:
        series = []
        for e in exps:
            xs = [h["epoch"] for h in e.history]
            for phase, dashed in (("valid", False), ("train", True)):
                ys = [_num((h.get(phase) or {}).get(m)) for h in e.history]
                series.append(charts.Series(f"{e.name} {phase}", xs, ys, color[e.name], dashed))
        charts_.append(charts.to_svg(charts.line_chart(series, m, ylabel=m, width=560, height=280, legend_below=True), m))
    lr_series = [charts.Series(e.name, [h["epoch"] for h in e.history], [_num(h.get("lr")) for h in e.history], color[e.name])
                 for e in exps]
    if any(s.points for s in lr_series):
        charts_.append(charts.to_svg(charts.line_chart(lr_series, "learning rate", ylabel="lr", width=560, height=280, legend_below=True), "learning rate"))
    curves = (f'<div class="charts">{"".join(charts_)}</div><p class="muted">solid: valid, dashed: train</p>'
              if charts_ else '<p class="muted">no train_history.json in any run</p>')
    body = [f'<section id="runs"><h2>Runs</h2>{runs_html}</section>', *sets_html,
            f'<section id="training"><h2>Training curves, overlaid</h2>{curves}</section>',
            f'<section id="config"><h2>Config differences</h2>{config_diff(exps)}</section>']
    nav = [("runs", "Runs")] + [(anchor(n), n) for n in set_names] + [("training", "Training"), ("config", "Config")]
    header = (f"<header><h1>Comparison of {len(exps)} runs</h1><div class=\"sub\">"
              f"{escape(' · '.join(e.name for e in exps))}</div></header>")
    return _page(f"comparison of {len(exps)} runs", header, nav, "\n".join(body))
