#!/usr/bin/env python3
"""Benchmark: stage-7 model compute per clip, ours vs the ESPnet way (eager PyTorch, batch 1), and
how far from the machine's limit it is.

    python bench/inference.py [--configs conf/train_cnn.yaml conf/train_transformer.yaml conf/train_conformer.yaml peer]
                              [--n_clips 48] [--min_sec 1 --max_sec 10] [--batch_sizes 1,4,e4,o1,o4] [--threads 1] [--repeat 3]

For each model (random weights, 50 classes; ``peer`` is the transformer of ``bench/espnet_peer.py``)
the same in-memory clips (noise of uniform random length in [min_sec, max_sec]; no audio decoding)
go through :class:`espnet_cls.inference.BatchInference`:

* ``eager b1`` — the PyTorch modules one clip at a time: what ESPnet's ``cls_inference`` does
  (it refuses any other batch size), the baseline;
* ``--batch_sizes`` as ``bench/espnet_peer.py``'s: ``N`` — ``jit bN`` (``--backend jit``: traced, frozen,
  optimized for inference; the Python API's engine and stage 7's PyTorch fallback); ``eN`` — ``eager bN``,
  the batching lever alone; ``oN`` — ``onnx bN``, stage 7's CPU default (``cls_inference --backend onnx``:
  :class:`espnet_cls.onnx_inference.OnnxInference` on the export that
  :func:`espnet_cls.onnx_inference.ensure_onnx` makes from a config.yaml + checkpoint written to a temporary
  folder, in a session of :func:`espnet_cls.onnx_inference.open_session`, ``--threads`` intra-op threads).
  The export is timed once, apart (it is stage 6's, not stage 7's); only the session runs are in the rows.

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
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def _peer_model() -> dict:
    """The model part of bench/espnet_peer.py's config (ESPnet's small transformer): one home for it."""
    import yaml
    from espnet_peer import peer_config

    keys = ("frontend", "frontend_conf", "normalize", "encoder", "encoder_conf", "decoder", "decoder_conf", "model_conf")
    config = {k: v for k, v in yaml.safe_load(peer_config()).items() if k in keys}
    config["frontend_conf"] = {"fs": "16k", **config["frontend_conf"]}
    return config


PEER = _peer_model()


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


def parse_specs(text: str) -> list[tuple[str, int]]:
    """``"1,4,e4,o4"`` -> ``[("jit", 1), ("jit", 4), ("eager", 4), ("onnx", 4)]`` (bench/espnet_peer.py's grammar)."""
    out = []
    for spec in text.split(","):
        spec = spec.strip()
        backend = {"e": "eager", "o": "onnx"}.get(spec[:1], "jit")
        n = int(spec[1:] if backend != "jit" else spec)
        if n < 1:
            raise SystemExit(f"--batch_sizes: bad batch size in {spec!r}")
        out.append((backend, n))
    return out


def onnx_export(model, config: dict, workdir: str) -> tuple:
    """``(onnx path or None, why not, wall s, CPU s)``: ``model`` saved as stage 6 leaves it (config.yaml +
    checkpoint) and exported by stage 7's own :func:`espnet_cls.onnx_inference.ensure_onnx`."""
    import torch
    import yaml

    from espnet_cls.onnx_inference import ensure_onnx

    cfg, pth = Path(workdir) / "config.yaml", Path(workdir) / "valid.acc.best.pth"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    torch.save(model.state_dict(), pth)
    threads = torch.get_num_threads()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        path, why = ensure_onnx(cfg, pth)
    finally:
        torch.set_num_threads(threads)  # ensure_onnx exports on one thread
    return path, why, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=[str(ROOT / "conf" / f"train_{m}.yaml") for m in ("cnn", "transformer", "conformer")] + ["peer"])
    ap.add_argument("--n_clips", type=int, default=48)
    ap.add_argument("--min_sec", type=float, default=1.0)
    ap.add_argument("--max_sec", type=float, default=10.0)
    ap.add_argument("--n_classes", type=int, default=50)
    ap.add_argument("--batch_sizes", default="1,4,e4,o1,o4",
                    help="N: jit at batch N, eN: eager, oN: onnx (stage 7's CPU default); eager b1, the baseline, always runs")
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
    specs = parse_specs(args.batch_sizes)
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
        export_line, sess = "", None
        tmp = tempfile.TemporaryDirectory(prefix="bench_inference_onnx_")
        for backend, bs in specs:
            if backend == "onnx":
                if sess is None:
                    from espnet_cls.onnx_inference import OnnxInference, open_session

                    path, why, ew, ec = onnx_export(model, config, tmp.name)
                    if path is None:
                        export_line = f"  onnx: no export ({why}); onnx rows skipped"
                        sess = False
                        continue
                    export_line = (f"  onnx export (ensure_onnx, once; not in the rows): {ew:.2f} s wall, {ec:.2f} s CPU; "
                                   f"{os.path.getsize(path) / 1e6:.2f} MB")
                    sess = open_session(path, args.threads)
                if sess:
                    runs[f"onnx b{bs}"] = OnnxInference(sess, fs, batch_size=bs)
            elif bs > 1 or backend == "jit":
                runs[f"{backend} b{bs}"] = BatchInference(model, fs, batch_size=bs, backend=backend)
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
        if export_line:
            print(export_line)
        tmp.cleanup()
        base = cpu["eager b1 (ESPnet's way)"]
        for k in runs:
            gf = flops * audio_sec / (cpu[k] / args.threads) / 1e9
            print(f"  {k:<24s} {1e3 * wall[k] / args.n_clips:7.2f} ms/clip wall  {1e3 * cpu[k] / args.n_clips:7.2f} ms/clip CPU"
                  f"  CPU ratio {cpu[k] / base:4.2f}x  {gf:5.1f} GFLOP/s ({100 * gf / peak:3.0f} % of peak)"
                  f"  max|diff| {diffs[k]:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
