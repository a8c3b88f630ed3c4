"""Classification metrics in vectorised numpy: AP / mAP, ROC AUC, d', F1, accuracies.

Used by the trainer (validation ``acc`` / ``mAP``) and by the stage-8 scorer
(:mod:`espnet_cls.scoring`). No scikit-learn at run time; the results equal
``sklearn.metrics.average_precision_score`` / ``roc_auc_score`` per class (ties
included) to ~1e-12 (``tests/test_metrics.py`` checks this on random data with ties).

Conventions
-----------
- ``y_true``: ``[N, C]`` multi-hot (bool or 0/1) reference; ``N`` clips, ``C`` =
  ``n_classes`` (the token list without ``<blank>``/``<unk>``). A multi-class reference
  is one-hot (:func:`labels_to_multihot` builds either from label-index lists). A
  multi-label clip with no label (``<blank>``) is an all-zero row.
- ``y_score``: ``[N, C]`` float scores (probabilities), higher = more likely.
- ``y_pred``: ``[N, C]`` bool decisions (what inference wrote in its ``text``).
- Every number is a **fraction** in [0, 1] (the scorer shows them ×100, as ESPnet).
- A number that cannot be computed is ``nan`` (e.g. AP of a class without positives).

API
---
``average_precision(y_true, y_score) -> [C]``
    Step-wise AP per class, exactly sklearn's ``average_precision_score`` (a tie group
    of equal scores is one threshold). ``nan`` for a class with no positive.
``roc_auc(y_true, y_score) -> [C]``
    Area under the ROC curve per class (sklearn's ``roc_auc_score``; ties count ½).
    ``nan`` for a class without positives or without negatives.
``ranking_stats(y_true, y_score) -> (ap [C], auc [C])``
    Both at once from one sort per class (what :func:`compute_metrics` uses).
``mean_average_precision(y_true, y_score, espnet_compat=False) -> float``
    Unweighted mean of per-class AP over the classes with ≥ 1 positive. With
    ``espnet_compat=True``: classes without positives count as 0 and the mean is over
    all ``C`` classes (ESPnet's ``cls_score.py``).
``d_prime(auc) -> float``
    ``sqrt(2) * Phi^-1(auc)`` (``inf`` for AUC 1, ``nan`` for ``nan``).
``f1_stats(y_true, y_pred) -> dict``
    Per-class ``tp/fp/fn/support/n_pred/precision/recall/f1`` arrays, ``micro_f1`` /
    ``micro_precision`` / ``micro_recall``, and ``macro_f1`` = mean per-class F1 over the
    classes with ≥ 1 positive in the reference (the same classes as mAP).
``multiclass_accuracy(y_true, y_score_or_pred) -> float``
    Top-1 accuracy: the argmax column is the clip's (one) label.
``top1_hit_rate(y_true, y_score) -> (float, int)``
    Multi-label: fraction of clips *with at least one label* whose top-scored class is
    one of their labels; ``<blank>`` clips are left out. Also returns that clip count.
``subset_accuracy(y_true, y_pred) -> float``
    Fraction of clips whose predicted set equals the reference set (a ``<blank>`` clip
    is right iff nothing is predicted).
(The decision rule itself, scores -> ``y_pred``, is :func:`espnet_cls.contract.decide`.)
``tune_thresholds(y_true, y_score, default=0.5) -> [C]``
    Per-class threshold maximising that class's F1 (midpoint between the chosen score
    and the next lower distinct score; ``default`` for classes without positives).
``compute_metrics(y_true, y_score=None, y_pred=None, classification_type=..., threshold=0.5,
espnet_compat=False) -> dict``
    Everything above in one dict (see its docstring); ``y_score=None`` gives only the
    threshold metrics (scores written with ``output_all_probabilities=false``).
``labels_to_multihot(label_ids, n_classes) -> [N, C] bool``
``MULTI_CLASS``, ``MULTI_LABEL``: the two ``classification_type`` strings (from :mod:`espnet_cls.contract`).

The trainer's validation metric: ``compute_metrics(y_true, y_score, classification_type)``
then ``["acc"]`` (multi-class top-1 accuracy; multi-label top-1 hit rate) and ``["mAP"]``.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from espnet_cls.contract import CLASSIFICATION_TYPES, MULTI_CLASS, MULTI_LABEL, decide

ArrayLike = Union[np.ndarray, Sequence]

# Elements per chunk when sorting class columns (bounds the memory of the class-major copies).
_CHUNK_ELEMS = 1 << 21


def labels_to_multihot(label_ids: Iterable[Iterable[int]], n_classes: int) -> np.ndarray:
    """Turn per-clip lists of class indices into an ``[N, n_classes]`` bool matrix.

    Indices outside ``[0, n_classes)`` (e.g. ``<unk>``) raise ``ValueError``; drop them first.
    """
    rows = [list(ids) for ids in label_ids]
    out = np.zeros((len(rows), n_classes), dtype=bool)
    for i, ids in enumerate(rows):
        for k in ids:
            if not 0 <= k < n_classes:
                raise ValueError(f"class index {k} out of range [0, {n_classes})")
            out[i, k] = True
    return out


def _check(y_true: ArrayLike, y_score: Optional[ArrayLike] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    t = np.asarray(y_true)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise ValueError(f"y_true must be [N, C], got shape {t.shape}")
    t = t.astype(bool, copy=False)
    if y_score is None:
        return t, None
    s = np.asarray(y_score)
    if s.dtype not in (np.float32, np.float64):  # float32 is kept: sorting it is faster, ties are the same
        s = s.astype(np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if s.shape != t.shape:
        raise ValueError(f"y_score shape {s.shape} != y_true shape {t.shape}")
    if not np.isfinite(s).all():
        raise ValueError("y_score contains nan or inf")
    return t, s


def _ranking_chunk(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and AUC for a chunk in class-major layout: ``t`` bool ``[c, N]``, ``s`` ``[c, N]``.

    A run of equal scores is one threshold (as sklearn's ``_binary_clf_curve``). Only the
    positives are visited: for a positive of score ``v``, with ``ge_all`` / ``ge_pos`` the
    number of clips / positives scoring ``>= v`` (binary search in the sorted column),

    - AP  = mean over positives of ``ge_pos / ge_all`` (the precision at the end of ``v``'s
      tie group, weighted by the recall step each positive makes);
    - AUC = sum over positives of (negatives ``< v`` + ½ negatives ``== v``) / (n_pos n_neg).
    """
    c, n = s.shape
    sorted_all = np.sort(s, axis=1)  # one sort per class column (no argsort, no gather)
    ap = np.full(c, np.nan)
    auc = np.full(c, np.nan)
    for k in range(c):
        pos = np.sort(s[k][t[k]])
        n_pos = len(pos)
        if n_pos == 0:
            continue
        col = sorted_all[k]
        lo_all = np.searchsorted(col, pos, "left")
        hi_all = np.searchsorted(col, pos, "right")
        lo_pos = np.searchsorted(pos, pos, "left")
        hi_pos = np.searchsorted(pos, pos, "right")
        ap[k] = float(np.mean((n_pos - lo_pos) / (n - lo_all)))
        n_neg = n - n_pos
        if n_neg:
            below = (lo_all - lo_pos).sum(dtype=np.int64)
            ties = ((hi_all - lo_all) - (hi_pos - lo_pos)).sum(dtype=np.int64)
            auc[k] = (below + 0.5 * ties) / (float(n_pos) * n_neg)
    return ap, auc


def ranking_stats(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(AP [C], ROC AUC [C])`` from one sort per class (``nan`` where undefined)."""
    t, s = _check(y_true, y_score)
    n, c = t.shape
    ap = np.full(c, np.nan)
    auc = np.full(c, np.nan)
    if n == 0:
        return ap, auc
    step = max(1, _CHUNK_ELEMS // n)
    for a in range(0, c, step):
        b = min(c, a + step)
        ap[a:b], auc[a:b] = _ranking_chunk(np.ascontiguousarray(t[:, a:b].T), np.ascontiguousarray(s[:, a:b].T))
    return ap, auc


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> np.ndarray:
    """Per-class step-wise average precision ``[C]`` (sklearn's definition); ``nan`` without positives."""
    return ranking_stats(y_true, y_score)[0]


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> np.ndarray:
    """Per-class ROC AUC ``[C]`` (ties count ½); ``nan`` without positives or negatives."""
    return ranking_stats(y_true, y_score)[1]


def _mean_defined(values: np.ndarray, espnet_compat: bool = False) -> float:
    """Mean over non-nan entries; with ``espnet_compat`` nan counts as 0 over all entries."""
    v = np.asarray(values, dtype=np.float64)
    if espnet_compat:
        return float(np.nan_to_num(v, nan=0.0).mean()) if v.size else float("nan")
    ok = ~np.isnan(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def mean_average_precision(y_true: ArrayLike, y_score: ArrayLike, espnet_compat: bool = False) -> float:
    """mAP: mean AP over classes with ≥ 1 positive (``espnet_compat``: over all, missing = 0)."""
    return _mean_defined(average_precision(y_true, y_score), espnet_compat)


def d_prime(auc: float) -> float:
    """Sensitivity index ``sqrt(2) * Phi^-1(auc)``; ``inf``/``-inf`` at 1/0, ``nan`` for nan."""
    if auc is None or math.isnan(auc):
        return float("nan")
    if auc >= 1.0:
        return float("inf")
    if auc <= 0.0:
        return float("-inf")
    return math.sqrt(2.0) * NormalDist().inv_cdf(auc)


def f1_stats(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, Any]:
    """Counts, precision, recall and F1 per class plus micro and macro averages.

    Returns ``{"tp","fp","fn","support","n_pred"}`` (int arrays ``[C]``),
    ``{"precision","recall","f1"}`` (float arrays ``[C]``; ``nan`` where the denominator
    is 0, e.g. F1 of a class never in the reference and never predicted),
    ``micro_precision``, ``micro_recall``, ``micro_f1`` (pooled counts; F1 = 2TP/(2TP+FP+FN)),
    and ``macro_f1`` (mean per-class F1 over classes with ``support > 0``).
    """
    t, _ = _check(y_true)
    p, _ = _check(y_pred)
    if p.shape != t.shape:
        raise ValueError(f"y_pred shape {p.shape} != y_true shape {t.shape}")
    tp = (t & p).sum(axis=0)
    fp = (~t & p).sum(axis=0)
    fn = (t & ~p).sum(axis=0)
    support = tp + fn
    n_pred = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), np.nan)
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    TP, FP, FN = int(tp.sum()), int(fp.sum()), int(fn.sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": support,
        "n_pred": n_pred,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "micro_precision": TP / (TP + FP) if TP + FP else float("nan"),
        "micro_recall": TP / (TP + FN) if TP + FN else float("nan"),
        "micro_f1": 2 * TP / (2 * TP + FP + FN) if TP + FP + FN else float("nan"),
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else float("nan"),
    }


def multiclass_accuracy(y_true: ArrayLike, y_score_or_pred: ArrayLike) -> float:
    """Top-1 accuracy: fraction of clips whose argmax column is set in ``y_true``."""
    t, _ = _check(y_true)
    s = np.asarray(y_score_or_pred, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"shape {s.shape} != y_true shape {t.shape}")
    if t.shape[0] == 0:
        return float("nan")
    return float(t[np.arange(t.shape[0]), s.argmax(axis=1)].mean())


def top1_hit_rate(y_true: ArrayLike, y_score: ArrayLike) -> tuple[float, int]:
    """Multi-label top-1 hit rate over clips with ≥ 1 label, and the number of such clips."""
    t, s = _check(y_true, y_score)
    labelled = t.any(axis=1)
    n = int(labelled.sum())
    if n == 0:
        return float("nan"), 0
    hit = t[np.arange(t.shape[0]), s.argmax(axis=1)]
    return float(hit[labelled].mean()), n


def subset_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of clips whose predicted label set equals the reference set exactly."""
    t, _ = _check(y_true)
    p, _ = _check(y_pred)
    if t.shape[0] == 0:
        return float("nan")
    return float((t == p).all(axis=1).mean())


def tune_thresholds(y_true: ArrayLike, y_score: ArrayLike, default: float = 0.5) -> np.ndarray:
    """Per-class thresholds ``[C]`` that maximise each class's F1 (``score >= thr`` is positive).

    Every distinct score of a class is a candidate; among equal F1s the highest threshold
    wins. The returned value is the midpoint between the chosen score and the next lower
    distinct score (the same decisions on these data, more margin on new data). Classes
    with no positive keep ``default``.
    """
    t, s = _check(y_true, y_score)
    n, c = t.shape
    out = np.full(c, float(default))
    if n == 0:
        return out
    for k in range(c):
        col_t = t[:, k]
        n_pos = int(col_t.sum())
        if n_pos == 0:
            continue
        order = np.argsort(-s[:, k], kind="stable")
        ss, tt = s[order, k], col_t[order]
        tp = np.cumsum(tt)
        is_end = np.append(ss[:-1] != ss[1:], True)
        f1 = np.where(is_end, 2.0 * tp / (n_pos + np.arange(1, n + 1)), -1.0)
        i = int(f1.argmax())
        out[k] = (ss[i] + ss[i + 1]) / 2.0 if i + 1 < n else ss[i]
    return out


def compute_metrics(
    y_true: ArrayLike,
    y_score: Optional[ArrayLike] = None,
    y_pred: Optional[ArrayLike] = None,
    classification_type: str = MULTI_LABEL,
    threshold: Union[float, ArrayLike] = 0.5,
    espnet_compat: bool = False,
) -> dict[str, Any]:
    """All metrics of one set.

    Args:
        y_true: ``[N, C]`` multi-hot reference.
        y_score: ``[N, C]`` scores, or None when only the predicted classes' scores exist
            (then ``mAP``, ``mean_auc``, ``d_prime`` and ``top1_hit_rate`` are nan).
        y_pred: ``[N, C]`` decisions (the inference ``text``); None: :func:`predict` on
            ``y_score`` with ``threshold``.
        classification_type: ``"multi-class"`` or ``"multi-label"``.
        threshold: multi-label decision threshold (scalar or ``[C]``) when ``y_pred`` is None.
        espnet_compat: mAP/AUC average over all classes with missing ones as 0, and ``acc``
            is ESPnet's (argmax of the reference row vs argmax of the scores, all clips).

    Returns a dict of floats (fractions) and ints:
        ``classification_type, n_instances, n_classes, acc`` (multi-class top-1 accuracy —
        from ``y_pred`` if given, else argmax of ``y_score``; multi-label: the top-1 hit
        rate), ``mAP, mean_auc, d_prime`` (d' of ``mean_auc``), ``micro_f1, macro_f1,
        micro_precision, micro_recall``, multi-label only: ``top1_hit_rate,
        n_labelled_instances, subset_acc``; ``n_classes_ap`` (classes in the mAP mean),
        ``n_classes_no_positive`` (classes with no positive in the reference),
        ``n_classes_left_out`` (those left out of the mAP mean: 0 with ``espnet_compat``),
        ``n_classes_auc``; and ``per_class``: a dict of ``[C]`` lists
        ``ap, auc, precision, recall, f1, support, n_pred``.
    """
    if classification_type not in CLASSIFICATION_TYPES:
        raise ValueError(f"classification_type must be one of {CLASSIFICATION_TYPES}, got {classification_type!r}")
    t, s = _check(y_true, y_score)
    n, c = t.shape
    if y_pred is None:
        if s is None:
            raise ValueError("need y_score or y_pred")
        p = decide(s, classification_type, threshold)
    else:
        p, _ = _check(y_pred)
        if p.shape != t.shape:
            raise ValueError(f"y_pred shape {p.shape} != y_true shape {t.shape}")
    f1 = f1_stats(t, p)
    support = f1["support"]
    out: dict[str, Any] = {"classification_type": classification_type, "n_instances": n, "n_classes": c}
    if s is not None:
        ap, auc = ranking_stats(t, s)
    else:
        ap = auc = np.full(c, np.nan)
    out["mAP"] = _mean_defined(ap, espnet_compat) if s is not None else float("nan")
    out["mean_auc"] = _mean_defined(auc, espnet_compat) if s is not None else float("nan")
    out["d_prime"] = d_prime(out["mean_auc"])
    if classification_type == MULTI_CLASS:
        if espnet_compat and s is not None:
            out["acc"] = float((t.argmax(axis=1) == s.argmax(axis=1)).mean()) if n else float("nan")
        else:
            out["acc"] = multiclass_accuracy(t, p if y_pred is not None or s is None else s)
    else:
        if s is not None:
            hit, n_lab = top1_hit_rate(t, s)
        else:
            hit, n_lab = float("nan"), int(t.any(axis=1).sum())
        out["top1_hit_rate"] = hit
        out["n_labelled_instances"] = n_lab
        out["subset_acc"] = subset_accuracy(t, p)
        if espnet_compat and s is not None:
            out["acc"] = float((t.argmax(axis=1) == s.argmax(axis=1)).mean()) if n else float("nan")
        else:
            out["acc"] = hit
    for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall"):
        out[key] = f1[key]
    out["n_classes_ap"] = int((support > 0).sum()) if not espnet_compat else c
    out["n_classes_no_positive"] = int((support == 0).sum())
    out["n_classes_left_out"] = int((support == 0).sum()) if not espnet_compat else 0
    out["n_classes_auc"] = int(((support > 0) & (support < n)).sum())
    out["per_class"] = {
        "ap": ap.tolist(),
        "auc": auc.tolist(),
        "precision": f1["precision"].tolist(),
        "recall": f1["recall"].tolist(),
        "f1": f1["f1"].tolist(),
        "support": support.astype(int).tolist(),
        "n_pred": f1["n_pred"].astype(int).tolist(),
    }
    return out
