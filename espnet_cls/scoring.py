"""Stage-8 scoring: read reference/hypothesis/score files, compute metrics, write reports.

Inputs (Kaldi-style, one line per clip, see SPEC "File formats"):

- reference ``text`` (``-gtxt``): ``uttid label [label …]`` or ``uttid <blank>`` (no label);
- hypothesis ``text`` (``-ptxt``): what inference predicted, ``uttid [label …]`` (may be empty);
- ``score`` (``-pscore``): ``uttid p_1 … p_n`` with every class's probability in token-list
  order (``n`` = ``n_classes``), or, written with ``output_all_probabilities=false``,
  only the predicted classes' probabilities (then mAP, AUC, d' and the top-1 hit rate
  cannot be computed: the report says so and gives the threshold metrics only);
- ``token_list`` (``-tok``): one class per line, then ``<blank>`` and ``<unk>`` (an
  ESPnet token list with only ``<unk>`` works too).

Decisions:

- Threshold metrics (F1, subset accuracy, multi-class accuracy) use the hypothesis
  ``text`` — what inference really wrote. With ``threshold``/``threshold_file`` the
  decisions are recomputed from the scores instead (multi-label only).
- ``classification_type`` if not given: ``multi-label`` when any reference or
  hypothesis line has a number of labels other than one, or a ``<blank>``; otherwise
  ``multi-class``. Pass it explicitly when a multi-label test set happens to have one
  label per clip (only ``subset_acc`` differs).
- A reference label not in the token list (or ``<unk>``) is counted, reported in
  ``metrics.json`` (``unknown_labels``) and dropped from that clip (``strict``: fatal).
- Every reference clip must have a hypothesis and a score line and vice versa; a score
  line with the wrong number of values is an error naming file and line.

Outputs: ``metrics`` (markdown, ESPnet's ``|Split|…|`` shape, values ×100 with 2
decimals) and ``metrics.json``: the numbers of :func:`espnet_cls.metrics.compute_metrics`
as fractions at its top level (``acc``, ``mAP``, ``mean_auc``, ``d_prime``, ``micro_f1``,
``macro_f1``, ``top1_hit_rate``, ``subset_acc``, counts …), plus ``split``,
``classification_type``, ``scores`` (``all``/``predicted_only``), ``decisions``,
``left_out_classes``, ``unknown_labels``, ``per_class`` (list of dicts), ``confusion_matrix``
(multi-class) and ``files``; nan/inf are written as null.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from espnet_cls import metrics as M
from espnet_cls.contract import BLANK, ContractError, TokenList, decide, read_model_facts
from espnet_cls.fileio import DataError, PathLike, atomic_write, iter_kv

logger = logging.getLogger(__name__)

def read_classes(token_list: PathLike) -> list[str]:
    """Class names of a token list file (:class:`espnet_cls.contract.TokenList`).

    Raises :class:`DataError` (file and line) for an empty line, a duplicate, or a special
    token that is followed by a class (the class index must equal the line number).
    """
    try:
        return TokenList.read(token_list).classes
    except ContractError as e:
        raise DataError(e.msg, e.path, e.line) from None


@dataclass
class ScoringInputs:
    """Everything read from the files, aligned on the reference's utterance order."""

    utt_ids: list[str]
    class_names: list[str]
    y_true: np.ndarray  # [N, C] bool
    y_pred: np.ndarray  # [N, C] bool (from the hypothesis text)
    y_score: Optional[np.ndarray]  # [N, C] float, None if only predicted classes' scores exist
    classification_type: str
    unknown_labels: Counter = field(default_factory=Counter)
    files: dict[str, str] = field(default_factory=dict)


def classification_type_of_config(config_path: PathLike) -> str:
    """``model_conf.classification_type`` of a training config (ESPnet's default: multi-class)."""
    try:
        return read_model_facts(config_path).classification_type
    except ContractError as e:
        raise DataError(e.msg, e.path, e.line) from None


def _infer_type(ref_counts: list[int], ref_blank: bool, hyp_counts: list[int]) -> str:
    if ref_blank or any(k != 1 for k in ref_counts) or any(k != 1 for k in hyp_counts):
        return M.MULTI_LABEL
    return M.MULTI_CLASS


def load_scoring_inputs(
    gt_text: PathLike,
    pred_text: PathLike,
    pred_score: PathLike,
    token_list: PathLike,
    classification_type: Optional[str] = None,
    strict: bool = False,
) -> ScoringInputs:
    """Read and check the four inputs; see the module docstring for the rules."""
    classes = read_classes(token_list)
    index = {c: k for k, c in enumerate(classes)}
    n_classes = len(classes)
    if classification_type is not None and classification_type not in M.CLASSIFICATION_TYPES:
        raise ValueError(f"classification_type must be one of {M.CLASSIFICATION_TYPES}")

    # reference
    utt_ids: list[str] = []
    ref_line: dict[str, int] = {}
    ref_labels: list[list[int]] = []
    ref_counts: list[int] = []
    ref_blank = False
    unknown: Counter = Counter()
    for key, value, lineno in iter_kv(gt_text):
        if key in ref_line:
            raise DataError(f"duplicate utterance {key!r} (first on line {ref_line[key]})", gt_text, lineno)
        ref_line[key] = lineno
        labels = value.split()
        if labels == [BLANK]:
            ref_blank = True
            labels = []
        elif BLANK in labels:
            raise DataError(f"{BLANK} together with labels", gt_text, lineno)
        ids = []
        for lab in labels:
            k = index.get(lab)
            if k is None:
                if strict:
                    raise DataError(f"label {lab!r} is not in the token list {token_list}", gt_text, lineno)
                if not unknown:
                    logger.warning("%s:%d: label %r is not in the token list (counted, then dropped)", gt_text, lineno, lab)
                unknown[lab] += 1
            elif k not in ids:
                ids.append(k)
        utt_ids.append(key)
        ref_counts.append(len(labels))
        ref_labels.append(ids)
    if not utt_ids:
        raise DataError("no utterances", gt_text)
    if unknown:
        logger.warning(
            "%s: %d occurrences of %d labels not in the token list: %s",
            gt_text,
            sum(unknown.values()),
            len(unknown),
            ", ".join(f"{k}({v})" for k, v in unknown.most_common(10)),
        )
    pos = {u: i for i, u in enumerate(utt_ids)}
    n = len(utt_ids)

    # hypothesis text
    hyp: list[Optional[list[int]]] = [None] * n
    for key, value, lineno in iter_kv(pred_text, allow_empty_value=True):
        i = pos.get(key)
        if i is None:
            raise DataError(f"utterance {key!r} is not in the reference {gt_text}", pred_text, lineno)
        if hyp[i] is not None:
            raise DataError(f"duplicate utterance {key!r}", pred_text, lineno)
        ids = []
        for lab in value.split():
            k = index.get(lab)
            if k is None:
                raise DataError(f"predicted label {lab!r} is not in the token list {token_list}", pred_text, lineno)
            ids.append(k)
        hyp[i] = ids
    for i, h in enumerate(hyp):
        if h is None:
            raise DataError(f"utterance {utt_ids[i]!r} (reference line {ref_line[utt_ids[i]]}) has no line here", pred_text)
    hyp_ids: list[list[int]] = hyp  # type: ignore[assignment]
    ctype = classification_type or _infer_type(ref_counts, ref_blank, [len(h) for h in hyp_ids])
    if ctype == M.MULTI_CLASS:
        for i, h in enumerate(hyp_ids):
            if len(h) != 1:
                raise DataError(f"multi-class: utterance {utt_ids[i]!r} has {len(h)} predicted labels, expected 1", pred_text)

    # scores
    rows: list[Optional[np.ndarray]] = [None] * n
    full: Optional[bool] = None
    for key, value, lineno in iter_kv(pred_score, allow_empty_value=True):
        i = pos.get(key)
        if i is None:
            raise DataError(f"utterance {key!r} is not in the reference {gt_text}", pred_score, lineno)
        if rows[i] is not None:
            raise DataError(f"duplicate utterance {key!r}", pred_score, lineno)
        try:
            vals = np.array(value.split(), dtype=np.float64)  # string -> float in C (fast on 527 classes)
        except ValueError:
            raise DataError("a value is not a number", pred_score, lineno) from None
        if not np.isfinite(vals).all():
            raise DataError("nan or inf score", pred_score, lineno)
        if full is None:
            full = len(vals) == n_classes
        if full and len(vals) != n_classes:
            raise DataError(
                f"{len(vals)} scores, expected {n_classes} (one per class of {token_list})", pred_score, lineno
            )
        if not full and len(vals) != len(hyp_ids[i]):
            raise DataError(
                f"{len(vals)} scores: expected {n_classes} (all classes) or, with output_all_probabilities=false,"
                f" {len(hyp_ids[i])} (one per predicted label in {pred_text})",
                pred_score,
                lineno,
            )
        rows[i] = vals
    for i, r in enumerate(rows):
        if r is None:
            raise DataError(f"utterance {utt_ids[i]!r} (reference line {ref_line[utt_ids[i]]}) has no line here", pred_score)
    y_score = np.stack(rows).astype(np.float64, copy=False) if full else None  # type: ignore[arg-type]
    if not full:
        logger.warning(
            "%s holds only the predicted classes' scores (output_all_probabilities=false): "
            "mAP, AUC, d' and the top-1 hit rate cannot be computed; reporting threshold metrics only",
            pred_score,
        )
    return ScoringInputs(
        utt_ids=utt_ids,
        class_names=classes,
        y_true=M.labels_to_multihot(ref_labels, n_classes),
        y_pred=M.labels_to_multihot(hyp_ids, n_classes),
        y_score=y_score,
        classification_type=ctype,
        unknown_labels=unknown,
        files={"gt_text": str(gt_text), "pred_text": str(pred_text), "pred_score": str(pred_score), "token_list": str(token_list)},
    )


def read_threshold_file(path: PathLike, class_names: list[str], default: float = 0.5) -> np.ndarray:
    """Per-class thresholds ``[C]`` from ``class threshold`` lines; unlisted classes get ``default``."""
    index = {c: k for k, c in enumerate(class_names)}
    thr = np.full(len(class_names), float(default))
    for key, value, lineno in iter_kv(path):
        if key not in index:
            raise DataError(f"class {key!r} is not in the token list", path, lineno)
        try:
            thr[index[key]] = float(value)
        except ValueError:
            raise DataError(f"threshold {value!r} is not a number", path, lineno) from None
    return thr


def write_threshold_file(path: PathLike, class_names: list[str], thresholds: np.ndarray) -> None:
    """Write ``class threshold`` lines in token-list order (atomically)."""
    with atomic_write(path) as f:
        for c, t in zip(class_names, thresholds):
            f.write(f"{c} {float(t):.6g}\n")


def score(
    inputs: ScoringInputs,
    split: str = "",
    threshold: Optional[float] = None,
    thresholds: Optional[np.ndarray] = None,
    espnet_compat: bool = False,
) -> dict[str, Any]:
    """Compute the report (a JSON-ready dict) for one set.

    ``threshold`` / ``thresholds`` (multi-label, needs all scores) recompute the decisions
    from the scores; otherwise the hypothesis text's decisions are used.
    """
    ctype = inputs.classification_type
    y_pred = inputs.y_pred
    decisions = "hypothesis text"
    if ctype == M.MULTI_LABEL and (threshold is not None or thresholds is not None):
        if inputs.y_score is None:
            raise DataError("a threshold needs every class's score (output_all_probabilities=true)", inputs.files.get("pred_score"))
        thr = thresholds if thresholds is not None else threshold
        y_pred = decide(inputs.y_score, ctype, thr)
        decisions = "per-class thresholds" if thresholds is not None else f"scores >= {threshold:g}"
    m = M.compute_metrics(inputs.y_true, inputs.y_score, y_pred, ctype, espnet_compat=espnet_compat)
    per = m.pop("per_class")
    support = np.asarray(per["support"])
    per_class = [
        {"class": name, **{k: per[k][i] for k in ("ap", "auc", "precision", "recall", "f1", "support", "n_pred")}}
        for i, name in enumerate(inputs.class_names)
    ]
    report: dict[str, Any] = {
        "split": split,
        "classification_type": ctype,
        "scores": "all" if inputs.y_score is not None else "predicted_only",
        "decisions": decisions,
        "espnet_compat": espnet_compat,
        **{k: v for k, v in m.items() if k != "classification_type"},  # the numbers, at the top level
        "left_out_classes": [c for c, s in zip(inputs.class_names, support) if s == 0],
        "unknown_labels": dict(inputs.unknown_labels.most_common()),
        "n_unknown_label_occurrences": int(sum(inputs.unknown_labels.values())),
        "per_class": per_class,
        "files": inputs.files,
    }
    if ctype == M.MULTI_CLASS:
        report["confusion_matrix"] = confusion_matrix(inputs.y_true, y_pred).tolist()
    return report


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Multi-class ``[C, C]`` counts: row = reference class, column = predicted class.

    Clips without a known reference class (an unknown label) are not counted.
    """
    t = np.asarray(y_true, bool)
    p = np.asarray(y_pred, bool)
    ok = t.any(axis=1) & p.any(axis=1)
    c = t.shape[1]
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (t[ok].argmax(axis=1), p[ok].argmax(axis=1)), 1)
    return cm


# (column header, metrics key) of the markdown table, per classification type
MULTI_CLASS_COLUMNS = [
    ("acc", "acc"),
    ("mAP", "mAP"),
    ("mean_auc", "mean_auc"),
    ("d_prime", "d_prime"),
    ("micro_f1", "micro_f1"),
    ("macro_f1", "macro_f1"),
]
MULTI_LABEL_COLUMNS = [
    ("mAP", "mAP"),
    ("top1_acc", "top1_hit_rate"),
    ("subset_acc", "subset_acc"),
    ("micro_f1", "micro_f1"),
    ("macro_f1", "macro_f1"),
    ("mean_auc", "mean_auc"),
    ("d_prime", "d_prime"),
]
_NOT_PERCENT = {"d_prime"}


def _fmt(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.2f}" if key in _NOT_PERCENT else f"{100 * v:.2f}"


def format_markdown(report: dict[str, Any], header: bool = True) -> str:
    """ESPnet-shaped markdown table for one set: ``|Split|…|`` header, separator, one row."""
    m = report
    cols = MULTI_CLASS_COLUMNS if report["classification_type"] == M.MULTI_CLASS else MULTI_LABEL_COLUMNS
    names = ["Split"] + [c for c, _ in cols] + ["n_labels", "n_left_out", "n_instances"]
    vals = [report["split"] or "-"] + [_fmt(k, m.get(k)) for _, k in cols]
    if m.get("d_prime") is None and m.get("mean_auc") == 1.0:  # JSON has no inf: d' of AUC 1 is stored as null
        vals[1 + [k for _, k in cols].index("d_prime")] = "inf"
    vals += [str(m["n_classes"]), str(m["n_classes_left_out"]), str(m["n_instances"])]
    lines = []
    if header:
        lines.append("|" + "|".join(names) + "|")
        lines.append("|" + "|".join("---" for _ in names) + "|")
    lines.append("|" + "|".join(vals) + "|")
    return "\n".join(lines) + "\n"


def format_per_class_markdown(report: dict[str, Any]) -> str:
    """Per-class table (AP, AUC, precision, recall, F1 ×100; support; predicted count)."""
    lines = ["|class|AP|AUC|precision|recall|F1|support|n_pred|", "|---|---|---|---|---|---|---|---|"]
    for row in report["per_class"]:
        vals = [_fmt(k, row[k]) for k in ("ap", "auc", "precision", "recall", "f1")]
        lines.append(f"|{row['class']}|" + "|".join(vals) + f"|{row['support']}|{row['n_pred']}|")
    return "\n".join(lines) + "\n"


def _json_safe(obj: Any) -> Any:
    """nan/inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_report(report: dict[str, Any], output_dir: PathLike) -> None:
    """Write ``output_dir/metrics`` (markdown) and ``output_dir/metrics.json``, atomically."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "metrics.json") as f:
        json.dump(_json_safe(report), f, indent=1, allow_nan=False)
        f.write("\n")
    with atomic_write(out / "metrics") as f:
        f.write(format_markdown(report))


def split_name_from_path(pred_score: PathLike) -> str:
    """ESPnet's split name: the directory holding the score file (``cls_<set>``)."""
    parent = Path(pred_score).resolve().parent.name
    return parent or "-"


# --------------------------------------------------------------------------- RESULTS.md


def find_scored_sets(exp_dir: PathLike) -> list[tuple[str, Path]]:
    """``[(set dir name, metrics.json)]`` for every ``exp_dir/*/scoring/metrics.json``, by name."""
    exp = Path(exp_dir)
    found = [(p.parent.parent.name, p) for p in exp.glob("*/scoring/metrics.json")]
    return sorted(found, key=lambda x: x[0].encode())


def _git_info(cwd: PathLike) -> tuple[str, str]:
    import subprocess

    try:
        h = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        d = subprocess.run(["git", "log", "-1", "--format=%cd"], cwd=cwd, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    if h.returncode != 0:
        return "unknown", "unknown"
    return h.stdout.strip() + (" (with local changes)" if dirty.stdout.strip() else ""), d.stdout.strip()


def environment_block(exp_dir: PathLike, repo_dir: Optional[PathLike] = None) -> str:
    """ESPnet-style ``## Environments`` list: date, versions, git hash, config name."""
    import datetime
    import platform

    import espnet_cls

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = "not installed"
    repo = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parents[1]
    git_hash, git_date = _git_info(repo)
    if git_hash == "unknown":  # the package is not in a git checkout: try the recipe's directory
        git_hash, git_date = _git_info(Path.cwd())
    config_name = "-"
    cfg_path = Path(exp_dir) / "config.yaml"
    if cfg_path.is_file():
        import yaml

        try:
            cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            cfg = {}
        if isinstance(cfg, dict) and cfg.get("config"):
            config_name = str(cfg["config"])
    if config_name == "-" and (Path(exp_dir) / "run.sh").is_file():  # cls.sh's resume script: --cls_config X
        import shlex

        try:
            words = shlex.split((Path(exp_dir) / "run.sh").read_text(encoding="utf-8").splitlines()[0])
        except (ValueError, IndexError, OSError):
            words = []
        for a, b in zip(words, words[1:]):
            if a in ("--cls_config", "--cls-config"):
                config_name = b
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    return "\n".join(
        [
            "## Environments",
            f"- date: `{now}`",
            f"- python version: `{platform.python_version()}`",
            f"- espnet_cls version: `espnet_cls {espnet_cls.__version__}`",
            f"- pytorch version: `pytorch {torch_version}`",
            f"- Git hash: `{git_hash}`",
            f"  - Commit date: `{git_date}`",
            f"- config: `{config_name}`",
            f"- experiment: `{Path(exp_dir).resolve().name}`",
            "",
        ]
    )


def _note_lines(report: dict[str, Any]) -> list[str]:
    m = report
    notes = []
    if report["scores"] != "all":
        notes.append("- scores hold only the predicted classes (`output_all_probabilities=false`): no mAP/AUC/top-1")
    if report["classification_type"] == M.MULTI_LABEL:
        notes.append(
            f"- top1_acc: the top-scored class is a label of the clip, over the {m.get('n_labelled_instances')} clips "
            "with at least one label; subset_acc and F1 use the decisions of the "
            f"{report.get('decisions', 'hypothesis text')}"
        )
    if m["n_classes_left_out"]:
        left = report["left_out_classes"]
        shown = ", ".join(left[:20]) + (", …" if len(left) > 20 else "")
        notes.append(f"- {m['n_classes_left_out']} classes without a positive clip are left out of mAP/macro-F1: {shown}")
    elif report.get("espnet_compat"):
        notes.append("- ESPnet-compatible averaging: classes without positives count as 0")
    if report.get("n_unknown_label_occurrences"):
        unk = ", ".join(f"{k} ({v})" for k, v in list(report["unknown_labels"].items())[:20])
        notes.append(f"- {report['n_unknown_label_occurrences']} reference labels not in the token list (dropped): {unk}")
    return notes


def plot_images(report: dict[str, Any], out_dir: PathLike) -> Optional[Path]:
    """A confusion matrix (multi-class) or a per-class AP bar chart (multi-label) as PNG,
    drawn by :mod:`espnet_cls.report.charts` (the report's charts are the same figures).

    Returns the image path, or None when there is nothing to plot (no AP without scores).
    """
    from espnet_cls.report import charts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = report["split"] or "set"
    names = [r["class"] for r in report["per_class"]]
    if report["classification_type"] == M.MULTI_CLASS and "confusion_matrix" in report:
        fig = charts.confusion_matrix(report["confusion_matrix"], names,
                                      f"{split}: confusion matrix (acc {_fmt('acc', report['acc'])} %)")
        path = out / f"{split}_confusion_matrix.png"
    else:
        aps = [(n, r["ap"]) for n, r in zip(names, report["per_class"]) if r["ap"] is not None and not math.isnan(r["ap"])]
        if not aps:
            return None
        aps.sort(key=lambda kv: -kv[1])
        mean_ap = report.get("mAP")
        mean_ap = float(np.mean([v for _, v in aps])) if mean_ap is None else float(mean_ap)
        fig = charts.bar_chart(aps, f"{split}: per-class average precision", mean=mean_ap)
        path = out / f"{split}_per_class_ap.png"
    charts.save_png(fig, path, dpi=100)
    return path


def make_results(exp_dir: PathLike, images: bool = True, per_class: bool = True) -> str:
    """Write ``exp_dir/RESULTS.md`` from every ``cls_<set>/scoring/metrics.json``; return its text.

    Layout: an ESPnet-style header and environment block, one summary table per
    classification type over all sets, then per set its table, notes (left-out classes,
    unknown labels), an image (``images/<set>_confusion_matrix.png`` or
    ``images/<set>_per_class_ap.png``) and the per-class table in a ``<details>`` block.
    """
    exp = Path(exp_dir).resolve()
    if not exp.is_dir():
        raise DataError("experiment directory not found", exp)
    sets = find_scored_sets(exp)
    if not sets:
        raise DataError("no */scoring/metrics.json here: run stage 8 (score_cls.py -o …/scoring) first", exp)
    reports = []
    for name, path in sets:
        try:
            rep = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read: {e}", path) from None
        rep["split"] = rep.get("split") or name
        reports.append(rep)
    lines = ["<!-- Generated by python -m espnet_cls.bin.make_results -->", "# RESULTS", environment_block(exp)]
    lines.append(f"## {exp.name}")
    for ctype in M.CLASSIFICATION_TYPES:
        group = [r for r in reports if r["classification_type"] == ctype]
        if group:
            lines.append(format_markdown(group[0]).rstrip("\n"))
            lines += [format_markdown(r, header=False).rstrip("\n") for r in group[1:]]
            lines.append("")
    for rep in reports:
        lines.append(f"### {rep['split']}")
        lines.append(format_markdown(rep).rstrip("\n"))
        lines.append("")
        notes = _note_lines(rep)
        if notes:
            lines += notes + [""]
        if images:
            img = plot_images(rep, exp / "images")
            if img is not None:
                lines += [f"![{rep['split']}](images/{img.name})", ""]
        if per_class:
            lines += ["<details><summary>per-class table</summary>", "", format_per_class_markdown(rep), "</details>", ""]
    text = "\n".join(lines).rstrip("\n") + "\n"
    with atomic_write(exp / "RESULTS.md") as f:
        f.write(text)
    return text
