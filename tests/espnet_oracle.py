"""Real ESPnet as a test oracle: make a tiny corpus, train/score/pack with ``espnet2`` itself.

Everything runs ESPnet's own entry points (``espnet2.bin.tokenize_text``, ``cls_train`` incl.
``--collect_stats``, ``aggregate_stats_dirs``, ``cls_inference``, ``pack``) with the oracle
venv's interpreter (``$ESPNET_ORACLE_VENV``, see tools/install_espnet_oracle.sh), as ESPnet's
cls.sh stages 4-9 do. Used by tests/test_espnet_*.py (marker ``espnet``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ORACLE_VENV = REPO_ROOT / "tools" / "espnet_oracle_venv"


def oracle_python() -> Optional[Path]:
    """The oracle venv's python, or None when ESPnet is not installed there."""
    venv = Path(os.environ.get("ESPNET_ORACLE_VENV") or DEFAULT_ORACLE_VENV)
    py = venv / "bin" / "python"
    return py if py.is_file() else None


def _env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("PYTHONPATH", None)  # the oracle must not see espnet_cls
    return env


def run_espnet(args: Sequence[str], cwd: Path, log: Optional[Path] = None) -> None:
    """``python -m <args>`` in the oracle venv; AssertionError with the log tail on failure."""
    py = oracle_python()
    assert py is not None, "ESPnet oracle venv not found"
    proc = subprocess.run([str(py), "-m", *map(str, args)], cwd=cwd, env=_env(), capture_output=True, text=True)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(f"ESPnet {args[0]} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")


# --------------------------------------------------------------------------- corpus
CLASSES = ("low", "mid", "high")
BASE_HZ = {"low": 220.0, "mid": 660.0, "high": 1760.0}


def _clip(rng: np.random.Generator, labels: Sequence[str], n: int, fs: int) -> np.ndarray:
    t = np.arange(n) / fs
    x = 0.02 * rng.standard_normal(n)
    for lab in labels:
        f = BASE_HZ[lab] * rng.uniform(0.9, 1.1)
        x += rng.uniform(0.2, 0.4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))
    return (x / max(1.0, np.abs(x).max() * 1.05)).astype(np.float32)


def make_corpus(root: Path, sizes: dict, fs: int = 16000, multilabel: bool = False, seed: int = 0,
                dur: tuple = (0.6, 1.4)) -> dict:
    """Write ``root/dump/<set>/{wav.scp,text,utt2spk}`` with tone clips (16-bit wav, ``fs``).

    ``sizes``: ``{"train": 12, "valid": 4, "test": 6}``. Multi-class: one of :data:`CLASSES`;
    multi-label: one or two of them. Returns ``{set: data dir}``.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in sizes.items():
        d = root / "dump" / name
        (d / "wav").mkdir(parents=True, exist_ok=True)
        wav, text = [], []
        for i in range(n):
            k = 1 + int(rng.integers(0, 2)) if multilabel else 1
            labels = sorted(rng.choice(CLASSES, size=k, replace=False).tolist()) if multilabel else [CLASSES[i % 3]]
            key = f"{name}_{i:03d}"
            n_samples = int(fs * rng.uniform(*dur))
            path = d / "wav" / f"{key}.wav"
            sf.write(path, _clip(rng, labels, n_samples, fs), fs, subtype="PCM_16")
            wav.append(f"{key} {path}\n")
            text.append(f"{key} {' '.join(labels)}\n")
        (d / "wav.scp").write_text("".join(wav))
        (d / "text").write_text("".join(text))
        (d / "utt2spk").write_text("".join(f"{line.split()[0]} {line.split()[0]}\n" for line in wav))
        out[name] = d
    return out


# --------------------------------------------------------------------------- training
def train(root: Path, tag: str, config: dict, train_set: str = "train", valid_set: str = "valid",
          extra_args: Sequence[str] = (), stats_tag: Optional[str] = None) -> Path:
    """ESPnet cls.sh stages 4-6 with real ESPnet: token list, stats, 1 training run -> exp dir.

    ``stats_tag``: share the stats dir (shape files, feats_stats.npz) of models with the same
    frontend; collected once with the first config.
    """
    dump = Path("dump")  # paths relative to root, as ESPnet's recipes write them into config.yaml
    token_list = Path("data") / "token_list" / "tokens.txt"
    (root / token_list).parent.mkdir(parents=True, exist_ok=True)
    if not (root / token_list).is_file():
        run_espnet(["espnet2.bin.tokenize_text", "--token_type", "word", "--field", "2-",
                    "--input", dump / train_set / "text", "--output", token_list,
                    "--write_vocabulary", "true", "--add_symbol", "<unk>:-1"], cwd=root)
    config = dict(config)
    normalize = config.pop("normalize", None)  # as ESPnet's cls.sh: --normalize only at training (stage 6)
    cfg_path = Path("conf") / f"{tag}.yaml"
    (root / cfg_path).parent.mkdir(parents=True, exist_ok=True)
    (root / cfg_path).write_text(yaml.safe_dump(config, sort_keys=False))
    data_args = []
    for kind, s in (("train", train_set), ("valid", valid_set)):
        data_args += [f"--{kind}_data_path_and_name_and_type", f"{dump / s / 'wav.scp'},speech,sound",
                      f"--{kind}_data_path_and_name_and_type", f"{dump / s / 'text'},label,text"]
    common = ["--use_preprocessor", "true", "--token_type", "word", "--token_list", token_list,
              "--config", cfg_path, "--ngpu", "0", "--num_workers", "0", *extra_args]
    stats = Path("exp") / f"cls_stats_{stats_tag or tag}"
    if not (root / stats / "train" / "feats_stats.npz").is_file():
        _collect_stats(root, common, data_args, dump, train_set, valid_set, stats, tag)
    exp = Path("exp") / f"cls_{tag}"
    norm_args = []
    if normalize == "global_mvn":
        norm_args = ["--normalize", "global_mvn", "--normalize_conf", f"stats_file={stats / 'train' / 'feats_stats.npz'}"]
    elif normalize is not None:
        norm_args = ["--normalize", str(normalize)]
    run_espnet(["espnet2.bin.cls_train", *common, *data_args, *norm_args, "--resume", "true",
                "--train_shape_file", stats / "train" / "speech_shape", "--train_shape_file", stats / "train" / "label_shape",
                "--valid_shape_file", stats / "valid" / "speech_shape", "--valid_shape_file", stats / "valid" / "label_shape",
                "--fold_length", "160000", "--fold_length", "1", "--output_dir", exp], cwd=root, log=root / f"train_{tag}.log")
    assert (root / exp / "config.yaml").is_file(), f"ESPnet training wrote no {root / exp / 'config.yaml'}"
    return root / exp


def _collect_stats(root, common, data_args, dump, train_set, valid_set, stats, tag) -> None:
    run_espnet(["espnet2.bin.cls_train", "--collect_stats", "true", *common, *data_args,
                    "--train_shape_file", dump / train_set / "wav.scp", "--valid_shape_file", dump / valid_set / "wav.scp",
                    "--output_dir", stats / "logdir" / "stats.1"], cwd=root, log=root / f"stats_{tag}.log")
    run_espnet(["espnet2.bin.aggregate_stats_dirs", "--input_dir", stats / "logdir" / "stats.1",
                    "--output_dir", stats], cwd=root)


def model_file_of(exp: Path) -> Path:
    """The weights ESPnet's cls.sh scores with (``valid.acc.best.pth``, else the last epoch)."""
    for name in ("valid.acc.best.pth", "valid.acc.ave.pth", "latest.pth"):
        if (exp / name).exists():
            return exp / name
    epochs = sorted(exp.glob("*epoch.pth"))
    assert epochs, f"no weights in {exp}"
    return epochs[-1]


def infer(root: Path, exp: Path, data_dir: Path, out: Path, model_file: Optional[Path] = None) -> dict:
    """ESPnet's ``cls_inference --output_all_probabilities true`` -> ``{key: (text, probs)}``."""
    model_file = model_file or model_file_of(exp)
    run_espnet(["espnet2.bin.cls_inference", "--batch_size", "1", "--ngpu", "0",
                "--data_path_and_name_and_type", f"{data_dir / 'wav.scp'},speech,sound",
                "--classification_train_config", exp / "config.yaml",
                "--classification_model_file", model_file, "--output_dir", out,
                "--output_all_probabilities", "true"], cwd=root, log=out.with_suffix(".log"))
    return read_prediction(out / "prediction")


def read_prediction(pred_dir: Path) -> dict:
    """``{key: (text, np.array(score))}`` from a ``prediction/`` dir (ESPnet's or ours)."""
    texts = {}
    for line in (pred_dir / "text").read_text().splitlines():
        k, _, v = line.partition(" ")
        texts[k] = v.strip()
    out = {}
    for line in (pred_dir / "score").read_text().splitlines():
        k, _, v = line.partition(" ")
        out[k] = (texts.get(k, ""), np.array([float(s) for s in v.split()], dtype=np.float64))
    return out


def pack(root: Path, exp: Path, outpath: Path, model_file: Optional[Path] = None) -> Path:
    """ESPnet cls.sh stage 9: ``espnet2.bin.pack cls`` -> a model zip (espnet_model_zoo layout)."""
    model_file = model_file or model_file_of(exp)
    rel = lambda p: os.path.relpath(p, root)  # noqa: E731 - ESPnet's cls.sh packs from the recipe dir
    args = ["espnet2.bin.pack", "cls", "--classification_train_config", rel(exp / "config.yaml"),
            "--classification_model_file", rel(model_file), "--outpath", outpath]
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    stats = (cfg.get("normalize_conf") or {}).get("stats_file")
    if stats:
        args += ["--option", stats]
    if (exp / "images").is_dir():
        args += ["--option", rel(exp / "images")]
    run_espnet(args, cwd=root, log=outpath.with_suffix(".log"))
    return outpath


def compare(ours: dict, theirs: dict) -> tuple[float, list]:
    """Max |ours - theirs| over every probability, and the keys whose ``text`` differs."""
    assert set(ours) == set(theirs), f"keys differ: {sorted(set(ours) ^ set(theirs))}"
    worst = 0.0
    bad_text = []
    for k, (text, probs) in theirs.items():
        o_text, o_probs = ours[k]
        assert o_probs.shape == probs.shape, (k, o_probs.shape, probs.shape)
        worst = max(worst, float(np.abs(o_probs - probs).max()))
        if o_text.split() != text.split():
            bad_text.append((k, o_text, text))
    return worst, bad_text


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/espnet_oracle.py ROOT
    print(oracle_python(), file=sys.stderr)
