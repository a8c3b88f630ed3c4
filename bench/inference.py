#!/usr/bin/env python3
"""Benchmark: stage-7 model compute per clip, ours vs the ESPnet way (eager PyTorch, batch 1), and
how far from the machine's limit it is.

    python bench/inference.py [--configs conf/train_cnn.yaml conf/train_transformer.yaml conf/train_conformer.yaml peer]
                              [--n_clips 48] [--min_sec 1 --max_sec 10] [--batch_sizes 1,4,16] [--threads 1] [--repeat 3]

For each model (random weights, 50 classes; ``peer`` is the transformer of ``bench/espnet_peer.py``)
the same in-memory clips (noise of uniform random length in [min_sec, max_sec]; no audio decoding)
go through :class:`espnet_cls.inference.BatchInference`:

* ``eager b1`` — the PyTorch modules one clip at a time: what ESPnet's ``cls_inference`` does
  (it refuses any other batch size), the baseline;
* ``jit bN`` — our stage-7 default on CPU (``--backend jit``: traced, frozen, optimized for
  inference) at each batch size, and ``eager bN`` for the batching lever alone.

Runs are interleaved (round robin, best of ``--repeat``); CPU seconds (``time.process_time``, one
torch thread) are printed beside wall seconds because they move less with the machine's load.
Scores of every run are checked against eager batch 1 (max |diff|, must be <= 1e-5).

The limit: FLOPs per second of audio (``torch.utils.flop_counter.FlopCounterMode`` over one
forward of every clip), the achieved GFLOP/s of each run, and the machine's peak measured in the
same run (a 1024 x 1024 float32 matmul, per CPU second, like the GFLOP/s of the runs).
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

PEER = {  # the model of bench/espnet_peer.py: ESPnet's small transformer
    "frontend": "default",
    "frontend_conf": {"fs": "16k", "n_fft": 512, "hop_length": 160, "n_mels": 64},
    "normalize": "utterance_mvn",
    "encoder": "transformer",
    "encoder_conf": {"output_size": 128, "attention_heads": 4, "linear_units": 256, "num_blocks": 2,
                     "input_layer": "conv2d"},
    "decoder": "linear",
    "decoder_conf": {"pooling": "mean"},
    "model_conf": {"classification_type": "multi-class"},
}


def peak_gflops(repeat: int = 3) -> float:
    """float32 GFLOP/s of a 1024^3 matmul per CPU second (best of ``repeat``), on the current torch threads."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(8):
            a @ b
        best = min(best, (time.process_time() - t0) / torch.get_num_threads())
    return 8 * 2 * 1024**3 / best / 1e9


def count_flops(model, waves, fs: int) -> float:
    """FLOPs of one eager forward of every clip, per second of audio."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        for w in waves:
            x = torch.from_numpy(w)[None]
            model.predict_proba(x, torch.tensor([len(w)]))
        total = fc.get_total_flops()
    return total / (sum(len(w) for w in waves) / fs)


def load_config(spec: str, n_classes: int) -> tuple[str, dict]:
    import yaml

    if spec == "peer":
        config, name = dict(PEER), "peer transformer (bench/espnet_peer.py)"
    else:
        with open(spec, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        name = os.path.relpath(spec, ROOT) if os.path.isabs(spec) else spec
    config["token_list"] = [f"c{i}" for i in range(n_classes)] + ["<blank>", "<unk>"]
    if config.get("normalize") == "global_mvn":  # no stats here; the cost is the same
        config["normalize"], config["normalize_conf"] = "utterance_mvn", {}
    config["specaug"] = None
    return name, config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=[str(ROOT / "conf" / f"train_{m}.yaml") for m in ("cnn", "transformer", "conformer")] + ["peer"])
    ap.add_argument("--n_clips", type=int, default=48)
    ap.add_argument("--min_sec", type=float, default=1.0)
    ap.add_argument("--max_sec", type=float, default=10.0)
    ap.add_argument("--n_classes", type=int, default=50)
    ap.add_argument("--batch_sizes", default="1,4,16")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: one per inference job)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many interleaved runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--malloc_tuning", default="true", choices=["true", "false"],
                    help="espnet_cls.cli.tune_malloc, as cls_inference applies it (false: glibc's defaults)")
    args = ap.parse_args()
    if args.malloc_tuning == "true":
        from espnet_cls.cli import tune_malloc

        tune_malloc()

    import torch

    from espnet_cls.inference import BatchInference
    from espnet_cls.tasks.cls import build_model

    torch.set_num_threads(args.threads)
    fs = 16000
    rng = np.random.default_rng(args.seed)
    lens = rng.integers(int(args.min_sec * fs), int(args.max_sec * fs) + 1, size=args.n_clips)
    waves = [(0.1 * rng.standard_normal(int(n))).astype(np.float32) for n in lens]
    audio_sec = float(lens.sum()) / fs
    bss = [int(b) for b in args.batch_sizes.split(",")]
    print(f"device: {platform.machine()} CPU, {args.threads} torch thread(s); torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; malloc tuning: {args.malloc_tuning}")
    print(f"data: {args.n_clips} clips of {args.min_sec:g}-{args.max_sec:g} s ({audio_sec:.0f} s of audio) in memory; "
          f"best of {args.repeat} interleaved runs")
    peak0 = peak_gflops()
    print(f"peak (1024^3 float32 matmul per CPU second, {args.threads} thread(s)): {peak0:.1f} GFLOP/s")
    for spec in args.configs:
        name, config = load_config(spec, args.n_classes)
        torch.manual_seed(args.seed)
        model = build_model(config).eval()
        n_params = sum(p.numel() for p in model.parameters())
        flops = count_flops(model, waves[:8], fs)
        runs = {"eager b1 (ESPnet's way)": BatchInference(model, fs, batch_size=1, backend="eager")}
        for bs in bss:
            runs[f"jit b{bs}"] = BatchInference(model, fs, batch_size=bs, backend="jit")
            if bs > 1:
                runs[f"eager b{bs}"] = BatchInference(model, fs, batch_size=bs, backend="eager")
        wall = {k: float("inf") for k in runs}
        cpu = dict(wall)
        ref = runs["eager b1 (ESPnet's way)"].predict(waves)
        diffs = {}
        for k, eng in runs.items():  # warm-up (and the jit trace) outside the timing
            diffs[k] = float(np.abs(eng.predict(waves[:2]) - ref[:2]).max())
        for _ in range(args.repeat):
            for k, eng in runs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                p = eng.predict(waves)
                wall[k] = min(wall[k], time.perf_counter() - t0)
                cpu[k] = min(cpu[k], time.process_time() - c0)
                diffs[k] = max(diffs[k], float(np.abs(p - ref).max()))
        peak = max(peak0, peak_gflops())
        print(f"\nmodel: {name}: encoder {config['encoder']}, {n_params / 1e6:.2f} M parameters; "
              f"{flops / 1e9:.3f} GFLOP per second of audio; load {os.getloadavg()[0]:.2f}")
        base = cpu["eager b1 (ESPnet's way)"]
        for k in runs:
            gf = flops * audio_sec / (cpu[k] / args.threads) / 1e9
            print(f"  {k:<24s} {1e3 * wall[k] / args.n_clips:7.2f} ms/clip wall  {1e3 * cpu[k] / args.n_clips:7.2f} ms/clip CPU"
                  f"  CPU ratio {cpu[k] / base:4.2f}x  {gf:5.1f} GFLOP/s ({100 * gf / peak:3.0f} % of peak)"
                  f"  max|diff| {diffs[k]:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
