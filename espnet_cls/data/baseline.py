"""Reference score of a data set: log-mel mean/std features + logistic regression (sklearn).

    python -m espnet_cls.data.baseline --train data/train --test data/test

Each clip becomes the mean and standard deviation over time of its 64 log-mel
energies (25 ms window, 10 ms hop, 128 numbers); a standardised logistic regression
is fit on the training set (one-vs-rest for multi-label sets). Prints test top-1
accuracy for a multi-class set, or mAP (mean over classes with a positive of the
step-wise average precision) and top-1 hit rate for a multi-label set. The numbers
in ``docs/data.md`` come from this command; the demo corpora are meant to be hard
for it and easy for a CNN.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

from espnet_cls.cli import run_main, setup_logging
from espnet_cls.contract import BLANK, MULTI_CLASS, MULTI_LABEL
from espnet_cls.fileio import DataError, read_kv

logger = logging.getLogger("espnet_cls.data")


def load_audio(path: str, fs: int) -> np.ndarray:
    """Read a plain audio path as mono float32 at ``fs`` (resampled with soxr if needed)."""
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types
        raise DataError(f"cannot read audio: {e}", path) from None
    x = x.mean(axis=1)
    if sr != fs:
        import soxr

        x = soxr.resample(x, sr, fs).astype(np.float32)
    return x


def logmel_stats(x: np.ndarray, fs: int = 16000, n_mels: int = 64) -> np.ndarray:
    """Mean and std over time of the log-mel energies of one clip -> (2 * n_mels,)."""
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=fs, n_fft=int(0.025 * fs), win_length=int(0.025 * fs), hop_length=int(0.010 * fs), n_mels=n_mels
    )
    with torch.no_grad():
        m = torch.log(mel(torch.from_numpy(np.ascontiguousarray(x))) + 1e-6).numpy()
    return np.concatenate([m.mean(axis=1), m.std(axis=1)])


def load_set(data_dir: Path, fs: int) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """Features and label lists of a data dir (``wav.scp`` must hold plain paths)."""
    wavs = read_kv(data_dir / "wav.scp")
    text = read_kv(data_dir / "text", allow_empty_value=True)
    keys = sorted(wavs, key=str.encode)
    feats, labels = [], []
    for i, k in enumerate(keys, 1):
        if wavs[k].rstrip().endswith("|"):
            raise DataError("the baseline reads plain paths only, not pipes", data_dir / "wav.scp", i)
        if k not in text:
            raise DataError(f"utterance {k!r} has no text", data_dir / "text")
        feats.append(logmel_stats(load_audio(wavs[k], fs), fs))
        labels.append([t for t in text[k].split() if t != BLANK])
    return keys, np.stack(feats), labels


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, int]:
    """Macro mAP over classes with at least one positive; also returns how many were left out."""
    from sklearn.metrics import average_precision_score

    has_pos = y_true.sum(axis=0) > 0
    aps = [average_precision_score(y_true[:, c], scores[:, c]) for c in np.flatnonzero(has_pos)]
    return float(np.mean(aps)), int((~has_pos).sum())


def evaluate(train_dir: Path, test_dir: Path, fs: int = 16000, seed: int = 0) -> dict:
    """Fit on ``train_dir``, score ``test_dir``; returns a dict of metrics."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(1)
    _, xtr, ltr = load_set(train_dir, fs)
    _, xte, lte = load_set(test_dir, fs)
    multi_label = any(len(v) != 1 for v in ltr)
    classes = sorted({c for v in ltr for c in v})
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {"n_train": len(ltr), "n_test": len(lte), "n_classes": len(classes)}
    if not multi_label:
        ytr = np.array([index[v[0]] for v in ltr])
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0, random_state=seed))
        clf.fit(xtr, ytr)
        pred = clf.predict(xte)
        ref = np.array([index.get(v[0], -1) if v else -1 for v in lte])
        out.update(type=MULTI_CLASS, accuracy=float(np.mean(pred == ref)))
        return out
    ytr = np.zeros((len(ltr), len(classes)), dtype=int)
    for i, v in enumerate(ltr):
        ytr[i, [index[c] for c in v]] = 1
    yte = np.zeros((len(lte), len(classes)), dtype=int)
    for i, v in enumerate(lte):
        yte[i, [index[c] for c in v if c in index]] = 1
    clf = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=3000, random_state=seed)))
    clf.fit(xtr, ytr)
    scores = clf.predict_proba(xte)
    m_ap, left_out = mean_average_precision(yte, scores)
    labelled = yte.sum(axis=1) > 0
    top1 = yte[np.arange(len(yte)), scores.argmax(axis=1)][labelled]
    out.update(type=MULTI_LABEL, mAP=m_ap, classes_without_positive=left_out, top1_hit_rate=float(top1.mean()))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: print the metrics as one JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, type=Path, help="training data dir (wav.scp, text)")
    p.add_argument("--test", required=True, type=Path, help="evaluation data dir (wav.scp, text)")
    p.add_argument("--fs", type=int, default=16000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    setup_logging()
    res = evaluate(args.train, args.test, args.fs, args.seed)
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    run_main(main)
