#!/usr/bin/env python3
"""Benchmark: clips/s of inference at batch size 1 (ESPnet's cls_inference) vs length-sorted batches.

    python bench/inference.py [--config conf/train_cnn.yaml] [--n_clips 128] [--min_sec 1 --max_sec 10]
                              [--batch_size 32] [--device cpu] [--threads 1]

The model is the default CNN (``conf/train_cnn.yaml`` when it exists, else the CNN config
below) with random weights and ``n_classes`` outputs; speed does not depend on the weights.
Clips are random noise of uniform random length in [min_sec, max_sec], held in memory, so
the timing is the model path only (padding, forward, softmax/sigmoid), not audio decoding.
Both runs use :class:`espnet_cls.inference.BatchInference` on the same clips in the same
process; the baseline is ``batch_size=1`` (ESPnet's ``cls_inference`` refuses anything
else). The scores of both runs are checked equal (max abs difference printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Used when conf/train_cnn.yaml does not exist: the CNN of docs/design.md with its defaults.
INLINE_CNN = {
    "frontend": "default",
    "frontend_conf": {"fs": "16k", "n_mels": 64},
    "normalize": "utterance_mvn",
    "encoder": "cnn",
    "encoder_conf": {},
    "decoder": "linear",
    "decoder_conf": {"pooling": "mean"},
    "model_conf": {"classification_type": "multi-class"},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "conf" / "train_cnn.yaml"))
    ap.add_argument("--n_clips", type=int, default=128)
    ap.add_argument("--min_sec", type=float, default=1.0)
    ap.add_argument("--max_sec", type=float, default=10.0)
    ap.add_argument("--n_classes", type=int, default=50)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared/loaded machine more threads make tiny batch-1 ops "
        "wait on each other and inflate the batching gain; 0: torch's default)",
    )
    ap.add_argument("--repeat", type=int, default=2, help="best of this many timed runs each (interleaved)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    import yaml

    from espnet_cls.contract import model_facts
    from espnet_cls.inference import BatchInference
    from espnet_cls.tasks.cls import build_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if os.path.isfile(args.config):
        with open(args.config, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        source = args.config
    else:
        config = dict(INLINE_CNN)
        source = "inline CNN config (conf/train_cnn.yaml not found)"
    config["token_list"] = [f"c{i}" for i in range(args.n_classes)] + ["<blank>", "<unk>"]
    if config.get("normalize") == "global_mvn":  # no stats here; timing is the same
        config["normalize"] = "utterance_mvn"
        config["normalize_conf"] = {}
    torch.manual_seed(args.seed)
    model = build_model(config).to(args.device).eval()
    fs = model_facts(config).fs
    rng = np.random.default_rng(args.seed)
    lens = rng.integers(int(args.min_sec * fs), int(args.max_sec * fs) + 1, size=args.n_clips)
    waves = [(0.1 * rng.standard_normal(int(n))).astype(np.float32) for n in lens]
    audio_sec = float(lens.sum()) / fs

    def run(bs: int) -> tuple[float, np.ndarray]:
        engine = BatchInference(model, fs, batch_size=bs, device=args.device)
        engine.predict(waves[: min(len(waves), bs)])  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        p = engine.predict(waves)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0, p

    t1 = tb = float("inf")
    for _ in range(max(1, args.repeat)):  # interleaved, so a burst of load on a shared machine hits both
        t, p1 = run(1)
        t1 = min(t1, t)
        t, pb = run(args.batch_size)
        tb = min(tb, t)
    n_params = sum(p.numel() for p in model.parameters())
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"model: {source}: encoder {config.get('encoder')}, {n_params / 1e6:.2f} M parameters, {args.n_classes} classes")
    print(f"device: {dev}; torch {torch.__version__}")
    print(f"data: {args.n_clips} clips, {args.min_sec:g}-{args.max_sec:g} s ({audio_sec:.0f} s of audio), in memory;"
          f" best of {args.repeat} runs each")
    print(f"baseline batch_size=1 (ESPnet cls_inference): {t1:8.2f} s  {args.n_clips / t1:8.1f} clips/s")
    print(f"ours     batch_size={args.batch_size:<3d} length-sorted:   {tb:8.2f} s  {args.n_clips / tb:8.1f} clips/s")
    print(f"speed-up: {t1 / tb:.2f}x")
    print(f"max |score diff| batch {args.batch_size} vs 1: {float(np.max(np.abs(pb - p1))):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
