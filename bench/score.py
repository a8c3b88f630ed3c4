#!/usr/bin/env python3
"""Benchmark: per-class AP + ROC AUC over an AudioSet-sized eval set, ours vs scikit-learn.

    python bench/score.py [--n_clips 20000] [--n_classes 527] [--repeat 3]

Ours: ``espnet_cls.metrics.ranking_stats`` (one vectorised sort per class column).
Baseline (named): ``sklearn.metrics.average_precision_score`` + ``roc_auc_score`` called
per class in a Python loop (what ESPnet's ``cls_score.py`` does). Both run in this process
on the same data; the results are checked equal (max abs difference printed) and the
speed ratio is printed. Scores are float32 rounded to 4 decimals, so ties occur.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from espnet_cls.metrics import compute_metrics, ranking_stats  # noqa: E402


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n_clips", type=int, default=20000)
    ap.add_argument("--n_classes", type=int, default=527)
    ap.add_argument("--labels_per_clip", type=float, default=2.0, help="mean positives per clip (AudioSet ~2)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--end_to_end", action="store_true", help="also time score_cls on files of this size")
    args = ap.parse_args()
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(args.seed)
    n, c = args.n_clips, args.n_classes
    y_true = rng.random((n, c)) < args.labels_per_clip / c
    y_true[rng.integers(0, n, c), np.arange(c)] = True  # every class has a positive
    logits = rng.standard_normal((n, c)) + 2.0 * y_true
    y_score = np.round(1 / (1 + np.exp(-logits)), 4).astype(np.float32)

    def sklearn_loop():
        ap_ = np.array([average_precision_score(y_true[:, k], y_score[:, k]) for k in range(c)])
        auc_ = np.array([roc_auc_score(y_true[:, k], y_score[:, k]) for k in range(c)])
        return ap_, auc_

    t_ours, (ap_o, auc_o) = best_of(lambda: ranking_stats(y_true, y_score), args.repeat)
    t_all, _ = best_of(lambda: compute_metrics(y_true, y_score, classification_type="multi-label"), args.repeat)
    t_sk, (ap_s, auc_s) = best_of(sklearn_loop, max(1, min(args.repeat, 2)))
    d_ap = float(np.max(np.abs(ap_o - ap_s)))
    d_auc = float(np.max(np.abs(auc_o - auc_s)))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}")
    print(f"data: {n} clips x {c} classes, {int(y_true.sum())} positives, float32 scores (4 decimals, ties)")
    print(f"ours    ranking_stats (AP+AUC, all classes): {t_ours:8.3f} s  (best of {args.repeat})")
    print(f"ours    compute_metrics (everything):        {t_all:8.3f} s")
    print(f"sklearn per-class loop (AP+AUC):             {t_sk:8.3f} s")
    print(f"speed-up (sklearn / ours ranking_stats): {t_sk / t_ours:.1f}x")
    print(f"max |AP diff| = {d_ap:.2e}, max |AUC diff| = {d_auc:.2e}, mAP ours {np.mean(ap_o):.6f} sklearn {np.mean(ap_s):.6f}")
    if args.end_to_end:
        import tempfile

        from espnet_cls.bin import score_cls

        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            names = [f"class{k}" for k in range(c)]
            (d / "token_list").write_text("\n".join(names + ["<blank>", "<unk>"]) + "\n")
            with open(d / "ref", "w") as fr, open(d / "text", "w") as ft, open(d / "score", "w") as fs:
                for i in range(n):
                    labs = [names[k] for k in np.flatnonzero(y_true[i])] or ["<blank>"]
                    fr.write(f"utt{i:06d} {' '.join(labs)}\n")
                    ft.write(f"utt{i:06d} {' '.join(names[k] for k in np.flatnonzero(y_score[i] >= 0.5))}\n")
                    fs.write(f"utt{i:06d} {' '.join(f'{v:.4f}' for v in y_score[i])}\n")
            argv = ["-gtxt", str(d / "ref"), "-ptxt", str(d / "text"), "-pscore", str(d / "score"),
                    "-tok", str(d / "token_list"), "-o", str(d / "scoring"), "--log_level", "WARNING"]
            t0 = time.perf_counter()
            score_cls.main(argv)
            t_e2e = time.perf_counter() - t0
        size = (n * c * 7) / 1e6
        print(f"ours    score_cls end to end (read ~{size:.0f} MB of files, score, write): {t_e2e:8.3f} s")
    ok = d_ap < 1e-9 and d_auc < 1e-9
    print("EQUAL to 1e-9" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
