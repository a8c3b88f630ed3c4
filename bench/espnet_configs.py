"""Run every training yaml of an ESPnet checkout's cls1 recipes, unchanged, through our cls_train.

For each ``egs2/*/cls1/conf/**/*.yaml`` (and ``egs2/*/cls1/local/*.yaml``, where nsynth keeps
its config) of ``--espnet_dir``, the yaml is copied byte for byte into the work dir and
trained for ``--max_epoch`` epochs (default 2) on a tiny synthetic corpus (multi-class or
multi-label, as the yaml's ``model_conf.classification_type`` says). Only what cannot exist
here is given on the command line, never edited in the yaml:

* ``--encoder_conf beats_ckpt_path=<tiny BEATs checkpoint>`` for ``encoder: beats`` yamls (the
  checkpoint is built here in the official layout: ``{"cfg": ..., "model": ...}`` with a
  2-layer, 32-dim config; the yaml's own ``beats_config`` keys still apply on top of it);
* ``--utt2weight_file <corpus>/train/utt2weight`` for yamls that name one;
* ``--max_epoch``, the data, token list, ``--fold_length 160000 --fold_length <label fold>`` and
  ``--output_dir`` (what ESPnet's cls.sh passes too).

A yaml passes when cls_train exits 0 and writes, for each ``best_model_criterion``
``[valid, M, max]``, ``valid.M.best.pth``, ``valid.M.ave_Nbest.pth`` (N as ESPnet's
average_nbest_models picks it) and ``valid.M.ave.pth``, and train.log-style
``Nepoch results:`` lines. Nothing is downloaded: the ESPnet checkout is read from disk.

    python bench/espnet_configs.py --espnet_dir /path/to/espnet [--work_dir /tmp/espnet_cfgs] [--only as20k beans]

Writes ``<work_dir>/results.md`` (one row per yaml) and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FS = 16000
CLASSES = {"low": 300.0, "mid": 1200.0, "high": 4000.0}
TINY_BEATS = {
    "input_patch_size": 16, "embed_dim": 24, "conv_bias": False, "encoder_layers": 2, "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 48, "encoder_attention_heads": 4, "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0, "layer_norm_first": False, "deep_norm": True, "dropout": 0.0,
    "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0,
    "conv_pos": 8, "conv_pos_groups": 4, "relative_position_embedding": True, "num_buckets": 32,
    "max_distance": 40, "gru_rel_pos": True, "finetuned_model": False, "predictor_dropout": 0.0,
    "predictor_class": 5,
}


def find_yamls(espnet_dir: Path) -> list[Path]:
    """The cls1 training yamls of an ESPnet checkout, sorted."""
    egs = espnet_dir / "egs2"
    found = set(egs.glob("*/cls1/conf/**/*.yaml")) | set(egs.glob("*/cls1/local/*.yaml"))
    return sorted(p for p in found if p.is_file())


def make_set(d: Path, n: int, multilabel: bool, seed: int) -> None:
    """A dump-like dir: wav.scp, text, utt2num_samples, utt2weight (1-s clips of tones + noise)."""
    import soundfile

    rng = np.random.RandomState(seed)
    (d / "wav").mkdir(parents=True, exist_ok=True)
    names = list(CLASSES)
    wav, text, u2n, u2w = [], [], [], []
    for i in range(n):
        labels = [c for c in names if rng.rand() < 0.45] or [names[i % 3]] if multilabel else [names[i % 3]]
        length = FS  # equal lengths (mixup in ESPnet warns about unequal ones)
        t = np.arange(length) / FS
        x = 0.05 * rng.randn(length)
        for lab in labels:
            x += 0.3 * np.sin(2 * np.pi * CLASSES[lab] * (1 + 0.03 * rng.randn()) * t)
        utt = f"{d.name}-{i:03d}"
        soundfile.write(d / "wav" / f"{utt}.wav", x.astype(np.float32), FS)
        wav.append(f"{utt} {d / 'wav' / (utt + '.wav')}\n")
        text.append(f"{utt} {' '.join(labels)}\n")
        u2n.append(f"{utt} {length}\n")
        u2w.append(f"{utt} {1.0 + i % 3}\n")
    for name, rows in (("wav.scp", wav), ("text", text), ("utt2num_samples", u2n), ("utt2weight", u2w)):
        (d / name).write_text("".join(rows))
    from espnet_cls.contract import DUMP_FS_FILE

    (d / DUMP_FS_FILE).write_text(f"{FS}\n")  # the dump's recorded rate, as stage 2 writes it


def make_corpora(root: Path) -> dict[str, Path]:
    out = {}
    for kind, ml in (("multi-class", False), ("multi-label", True)):
        base = root / kind
        if not (base / "token_list").exists():
            make_set(base / "train", 12, ml, 1)
            make_set(base / "valid", 6, ml, 2)
            (base / "token_list").write_text("".join(f"{c}\n" for c in CLASSES) + "<unk>\n")
        out[kind] = base
    return out


def make_tiny_beats(path: Path) -> Path:
    """A tiny BEATs checkpoint in the official layout (random weights)."""
    if path.exists():
        return path
    import torch

    from espnet_cls.models.beats.checkpoint import normalize_state_dict
    from espnet_cls.models.encoders.beats import BeatsEncoder

    torch.manual_seed(0)
    enc = BeatsEncoder(1, beats_config=dict(TINY_BEATS))
    state = normalize_state_dict(enc.beats_state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"cfg": dict(TINY_BEATS), "model": state}, path)
    return path


def expected_files(cfg: dict, max_epoch: int) -> list[str]:
    """What a successful run must have written, by ESPnet's naming rules."""
    keep = cfg.get("keep_nbest_models", 10)
    nbests = keep if isinstance(keep, list) else [keep]
    ns = [n for n in nbests if int(n) <= max_epoch] or [1]
    out = ["config.yaml", "checkpoint.pth"]
    for crit in cfg.get("best_model_criterion") or [["valid", "acc", "max"]]:
        ph, metric = crit[0], crit[1]
        out += [f"{ph}.{metric}.best.pth", f"{ph}.{metric}.ave.pth"] + [f"{ph}.{metric}.ave_{n}best.pth" for n in ns]
    return out


def run_one(src: Path, rel: str, work: Path, corpora: dict, ckpt: Path, max_epoch: int, timeout: int) -> dict:
    dst = work / "configs" / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)  # unchanged
    cfg = yaml.safe_load(dst.read_text()) or {}
    ctype = (cfg.get("model_conf") or {}).get("classification_type", "multi-class")
    base = corpora["multi-label" if ctype == "multi-label" else "multi-class"]
    out = work / "exp" / rel.replace("/", "_").removesuffix(".yaml")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "espnet_cls.bin.cls_train", "--config", str(dst), "--output_dir", str(out),
           "--max_epoch", str(max_epoch), "--token_list", str(base / "token_list"),
           "--train_data_path_and_name_and_type", f"{base}/train/wav.scp,speech,sound",
           "--train_data_path_and_name_and_type", f"{base}/train/text,label,text",
           "--valid_data_path_and_name_and_type", f"{base}/valid/wav.scp,speech,sound",
           "--valid_data_path_and_name_and_type", f"{base}/valid/text,label,text",
           "--fold_length", "160000", "--fold_length", "1" if ctype != "multi-label" else "600"]
    subst = []
    if cfg.get("encoder") == "beats":
        cmd += ["--encoder_conf", f"beats_ckpt_path={ckpt}"]
        subst.append("beats_ckpt_path")
    if cfg.get("utt2weight_file"):
        cmd += ["--utt2weight_file", str(base / "train" / "utt2weight")]
        subst.append("utt2weight_file")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = 124, (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    secs = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.log").write_text(err)
    lines = [ln for ln in err.splitlines() if "epoch results:" in ln]
    missing = [f for f in expected_files(cfg, max_epoch) if not (out / f).exists()] if rc == 0 else []
    ok = rc == 0 and not missing and len(lines) == max_epoch
    errors = [ln for ln in err.splitlines() if "ERROR" in ln or "Error" in ln]
    reason = ""
    if not ok:
        reason = (errors[-1] if errors else (err.strip().splitlines() or ["no output"])[-1])[:300]
        if rc == 0 and missing:
            reason = f"missing {', '.join(missing)}"
        elif rc == 0:
            reason = f"{len(lines)} epoch lines for {max_epoch} epochs"
    return {"config": rel, "ok": ok, "rc": rc, "seconds": round(secs, 1), "substituted": subst,
            "type": ctype, "reason": reason, "last_epoch_line": lines[-1].split(" INFO: ", 1)[-1] if lines else ""}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--espnet_dir", required=True, type=Path, help="an ESPnet checkout (holds egs2/)")
    ap.add_argument("--work_dir", type=Path, default=Path("/tmp/espnet_cls_configs"))
    ap.add_argument("--max_epoch", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=[], help="run only yamls whose path contains one of these")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per yaml")
    args = ap.parse_args(argv)
    yamls = [p for p in find_yamls(args.espnet_dir) if not args.only or any(o in str(p) for o in args.only)]
    if not yamls:
        print(f"no egs2/*/cls1 yamls under {args.espnet_dir}", file=sys.stderr)
        return 1
    args.work_dir.mkdir(parents=True, exist_ok=True)
    corpora = make_corpora(args.work_dir / "data")
    ckpt = make_tiny_beats(args.work_dir / "BEATs_tiny.pt")
    results = []
    for p in yamls:
        rel = str(p.relative_to(args.espnet_dir / "egs2"))
        r = run_one(p, rel, args.work_dir, corpora, ckpt, args.max_epoch, args.timeout)
        results.append(r)
        print(f"{'PASS' if r['ok'] else 'FAIL'} {rel} ({r['seconds']} s){'' if r['ok'] else ': ' + r['reason']}",
              flush=True)
    n_ok = sum(r["ok"] for r in results)
    rows = ["| config | result | time (s) | given on the command line | note |", "|---|---|---|---|---|"]
    for r in results:
        note = r["reason"] if not r["ok"] else r["last_epoch_line"][:120]
        rows.append(f"| {r['config']} | {'pass' if r['ok'] else 'FAIL'} | {r['seconds']} | "
                    f"{', '.join(r['substituted']) or '-'} | {note.replace('|', '/')} |")
    summary = f"{n_ok} of {len(results)} ESPnet cls1 yamls trained {args.max_epoch} epochs unchanged"
    (args.work_dir / "results.md").write_text(summary + "\n\n" + "\n".join(rows) + "\n")
    (args.work_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(summary)
    print(f"table: {args.work_dir / 'results.md'}")
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
