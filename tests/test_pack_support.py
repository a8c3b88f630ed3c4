"""Helpers for the pack / hub / classifier / export tests (no tests here).

:func:`make_exp` lays out a small but real experiment dir as stage 6 leaves it: a
``config.yaml`` for the real CNN (or transformer) encoder built by ``build_model``, with
global-MVN statistics computed from the model's own frontend, its random-init weights
as ``valid.acc.best.pth`` (a plain state_dict), ``images/``, a few clips of different
lengths, rates and channel counts, and the model's scores on them as stages 7-8 leave
them (``cls_<set>/{text,score,scoring/metrics.json}`` and ``RESULTS.md`` from the
project's own scorer and ``make_results``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

TOKENS = ["violin", "flute", "piano", "<blank>", "<unk>"]

ENCODERS = {
    "cnn": {"channels": [4, 8], "convs_per_block": 1, "dropout": 0.0},
    "transformer": {
        "output_size": 16,
        "attention_heads": 2,
        "linear_units": 32,
        "num_blocks": 1,
        "dropout_rate": 0.0,
        "positional_dropout_rate": 0.0,
        "input_layer": "conv2d",
    },
    "conformer": {
        "output_size": 16,
        "attention_heads": 2,
        "linear_units": 32,
        "num_blocks": 1,
        "dropout_rate": 0.0,
        "positional_dropout_rate": 0.0,
        "cnn_module_kernel": 5,
    },
}

def env() -> dict:
    """Environment for subprocesses: repo importable, one thread, Hub offline."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["OMP_NUM_THREADS"] = "1"
    e["HF_HUB_OFFLINE"] = "1"
    e["HF_HUB_DISABLE_TELEMETRY"] = "1"
    e["LC_ALL"] = "C"
    return e


def run_py(args: list, cwd: Optional[Path] = None, extra_env: Optional[dict] = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``python <args>`` with :func:`env`; returns the completed process (text output)."""
    e = env()
    e.update(extra_env or {})
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def write_clips(folder: Path) -> list[Path]:
    """Four short clips: 16 kHz mono (two lengths), 22.05 kHz stereo, 8 kHz int16 mono."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    specs = [("a.wav", 16000, 1, 0.50, "FLOAT"), ("b.flac", 16000, 1, 0.31, "PCM_16"), ("c.wav", 22050, 2, 0.40, "FLOAT"), ("d.wav", 8000, 1, 0.25, "PCM_16")]
    for name, fs, ch, dur, subtype in specs:
        n = int(fs * dur)
        t = np.arange(n) / fs
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(n)
        if ch == 2:
            x = np.stack([x, 0.5 * x[::-1]], axis=1)
        p = folder / name
        sf.write(str(p), x.astype(np.float32), fs, subtype=subtype)
        out.append(p)
    return out


def make_config(encoder: str = "cnn", stats_file: Optional[str] = None, classification_type: str = "multi-class") -> dict:
    """A model config (as ``exp/cls_X/config.yaml`` holds it) for a tiny model."""
    cfg = {
        "token_list": list(TOKENS),
        "frontend": "default",
        "frontend_conf": {"fs": "16k", "n_fft": 256, "hop_length": 80, "n_mels": 20},
        "specaug": None,
        "normalize": "global_mvn" if stats_file else "utterance_mvn",
        "normalize_conf": {"stats_file": stats_file} if stats_file else {},
        "encoder": encoder,
        "encoder_conf": dict(ENCODERS[encoder]),
        "decoder": "linear",
        "decoder_conf": {"pooling": "mean"},
        "model_conf": {"classification_type": classification_type},
    }
    return cfg


def make_stats(path: Path, config: dict) -> None:
    """A real ``feats_stats.npz`` from the frontend's features of random noise."""
    from espnet_cls.models.frontend import DefaultFrontend

    fe = DefaultFrontend(**config["frontend_conf"])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8000, generator=g) * 0.1
    feats, flens = fe(x, torch.tensor([8000, 6000]))
    rows = torch.cat([feats[i, : int(flens[i])] for i in range(2)]).double().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, count=np.asarray(rows.shape[0]), sum=rows.sum(0), sum_square=(rows**2).sum(0))


def make_exp(root: Path, encoder: str = "cnn", tag: str = "cls_tiny", classification_type: str = "multi-class") -> dict:
    """Lay out ``root/exp/<tag>`` (see module docstring); returns paths and the built model."""
    from espnet_cls.tasks.cls import build_model

    torch.manual_seed(0)
    stats = root / "exp" / "cls_stats_16k" / "train" / "feats_stats.npz"
    config = make_config(encoder, str(stats), classification_type)
    make_stats(stats, config)
    exp = root / "exp" / tag
    exp.mkdir(parents=True, exist_ok=True)
    # a trainer's config also holds job keys with relative data paths
    config = {**config, "train_data_path_and_name_and_type": [["dump/train/wav.scp", "speech", "sound"]], "max_epoch": 2}
    (exp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    model = build_model(config).eval()
    with torch.no_grad():  # move BatchNorm stats off their defaults so they matter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), exp / "valid.acc.best.pth")
    (exp / "images").mkdir(exist_ok=True)
    (exp / "images" / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    clips = write_clips(root / "clips")
    score_sets(root, exp, model, clips, classification_type)
    token_list = root / "data" / "token_list"
    token_list.parent.mkdir(parents=True, exist_ok=True)
    token_list.write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    return {
        "root": root,
        "exp": exp,
        "config": exp / "config.yaml",
        "model_file": exp / "valid.acc.best.pth",
        "stats": stats,
        "token_list": token_list,
        "model": model,
        "clips": clips,
    }


REFERENCE_LABELS = ["violin", "flute", "piano", "violin"]  # of write_clips' a, b, c, d


def score_sets(root: Path, exp: Path, model, clips: list[Path], classification_type: str) -> None:
    """Stages 7-8 in miniature with the project's real scorer: the model's own predictions on
    ``clips`` as ``exp/cls_<set>/{text,score}``, ``scoring/metrics.json`` by
    :func:`espnet_cls.scoring.score`, then ``RESULTS.md`` by ``make_results`` (no images)."""
    from espnet_cls.scoring import load_scoring_inputs, make_results, score, write_report

    probs = reference_probs(model, clips)
    classes = TOKENS[:3]
    tok = root / "data" / "token_list"
    tok.parent.mkdir(parents=True, exist_ok=True)
    tok.write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    for set_name, n in (("valid", 3), ("test", 4)):
        utts = [f"utt{i}" for i in range(n)]
        ref = root / "dump" / set_name / "text"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text("".join(f"{u} {lab}\n" for u, lab in zip(utts, REFERENCE_LABELS)), encoding="utf-8")
        d = exp / f"cls_{set_name}"
        d.mkdir(parents=True, exist_ok=True)
        if classification_type == "multi-class":
            hyp = [[classes[int(np.argmax(p))]] for p in probs[:n]]
        else:
            hyp = [[c for c, v in zip(classes, p) if v >= 0.5] for p in probs[:n]]
        (d / "text").write_text("".join(" ".join([u, *h]) + "\n" for u, h in zip(utts, hyp)), encoding="utf-8")
        (d / "score").write_text("".join(u + " " + " ".join(f"{v:.6f}" for v in p) + "\n" for u, p in zip(utts, probs)), encoding="utf-8")
        inputs = load_scoring_inputs(ref, d / "text", d / "score", tok, classification_type=classification_type)
        write_report(score(inputs, f"cls_{set_name}"), d / "scoring")
    make_results(exp, images=False, per_class=True)


def pack_exp(e: dict, outpath: Optional[Path] = None) -> Path:
    """Pack ``make_exp``'s experiment with stage 9's options; returns the zip path."""
    from espnet_cls.pack import pack

    outpath = outpath or e["exp"] / f"{e['exp'].name}_valid.acc.best.zip"
    pack(
        e["config"],
        e["model_file"],
        outpath,
        options=[e["stats"], e["exp"] / "RESULTS.md", e["exp"] / "images", e["token_list"]],
    )
    return outpath


def reference_probs(model, clips: list[Path], fs: int = 16000) -> np.ndarray:
    """In-process probabilities, one clip at a time, audio decoded as stage 2 does."""
    from espnet_cls.audio import load_audio

    out = []
    with torch.inference_mode():
        for c in clips:
            x, _ = load_audio(str(c), fs=fs)
            p = model.predict_proba(torch.from_numpy(x).unsqueeze(0), torch.tensor([len(x)]))
            out.append(p[0].numpy())
    return np.stack(out)
