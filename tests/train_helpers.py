"""Tiny synthetic corpora and configs for the trainer/statistics tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

FS = 16000
FREQS = {"low": 300.0, "mid": 1200.0, "high": 4000.0}


def _clip(rng: np.random.RandomState, labels: list[str], n: int) -> np.ndarray:
    t = np.arange(n) / FS
    x = 0.05 * rng.randn(n)
    for lab in labels:
        f = FREQS[lab] * (1 + 0.03 * rng.randn())
        x += 0.3 * np.sin(2 * np.pi * f * t + rng.rand() * 6.28)
    return x.astype(np.float32)


def make_set(root: Path, name: str, n: int, multilabel: bool, seed: int, dur: tuple[float, float] = (0.25, 0.5)) -> Path:
    """A dump-like dir ``root/name`` with wav.scp, text, utt2num_samples (clip lengths uniform in ``dur`` s)."""
    rng = np.random.RandomState(seed)
    d = root / name
    (d / "wav").mkdir(parents=True, exist_ok=True)
    classes = list(FREQS)
    wav, text, u2n = [], [], []
    for i in range(n):
        if multilabel:
            labels = [c for c in classes if rng.rand() < 0.4]
        else:
            labels = [classes[i % len(classes)]]
        length = int(FS * (dur[0] + (dur[1] - dur[0]) * rng.rand()))
        utt = f"{name}-{i:03d}"
        path = d / "wav" / f"{utt}.wav"
        soundfile.write(path, _clip(rng, labels, length), FS)
        wav.append(f"{utt} {path}\n")
        text.append(f"{utt} {' '.join(labels) if labels else '<blank>'}\n")
        u2n.append(f"{utt} {length}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "text").write_text("".join(text))
    (d / "utt2num_samples").write_text("".join(u2n))
    return d


def make_corpus(root: Path, multilabel: bool = False, n_train: int = 48, n_valid: int = 18,
                dur: tuple[float, float] = (0.25, 0.5)) -> dict:
    """train/valid dirs + token_list; returns their paths."""
    train = make_set(root, "train", n_train, multilabel, 1, dur)
    valid = make_set(root, "valid", n_valid, multilabel, 2, dur)
    tl = root / "token_list"
    tl.write_text("".join(f"{c}\n" for c in FREQS) + "<blank>\n<unk>\n")
    return {"train": train, "valid": valid, "token_list": tl}


TINY_YAML = """\
batch_type: folded
batch_size: 8
max_epoch: 3
num_workers: 0
optim: adam
optim_conf: {lr: 0.003}
scheduler: none
keep_nbest_models: 2
grad_clip: 5.0
seed: 3
use_tensorboard: false
frontend: default
frontend_conf: {n_fft: 256, hop_length: 160, n_mels: 32}
normalize: utterance_mvn
encoder: cnn
encoder_conf: {channels: [8, 16], dropout: 0.0}
decoder: linear
decoder_conf: {pooling: mean}
model_conf: {classification_type: CTYPE}
best_model_criterion: [[valid, acc, max]]
"""


def write_yaml(root: Path, multilabel: bool = False, extra: str = "") -> Path:
    """The tiny training yaml (multi-class or multi-label)."""
    p = root / ("tiny_ml.yaml" if multilabel else "tiny.yaml")
    p.write_text(TINY_YAML.replace("CTYPE", "multi-label" if multilabel else "multi-class") + extra)
    return p


def train_args(c: dict, yaml_path: Path, out: Path, *extra: str) -> list[str]:
    """cls_train command-line arguments for a corpus from :func:`make_corpus`."""
    return [
        "--config", str(yaml_path), "--output_dir", str(out),
        "--train_data_path_and_name_and_type", f"{c['train']}/wav.scp,speech,sound",
        "--train_data_path_and_name_and_type", f"{c['train']}/text,label,text",
        "--valid_data_path_and_name_and_type", f"{c['valid']}/wav.scp,speech,sound",
        "--valid_data_path_and_name_and_type", f"{c['valid']}/text,label,text",
        "--token_list", str(c["token_list"]), "--frontend_conf", "fs=16k",
        "--fold_length", "160000", "--fold_length", "1", *extra,
    ]
