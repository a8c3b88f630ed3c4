"""Benchmark: training throughput of our trainer vs a minimal hand-written PyTorch loop.

Both train the same model (``conf/train_cnn.yaml`` by default, utterance MVN instead of
global MVN so no statistics are needed) on the same clips, in the same batches, with the
same optimizer, data loading (``ClsDataset`` + ``collate``, ``num_workers``) and thread
count, in the same process. The minimal loop is the lower bound: DataLoader → forward →
backward → clip → step, nothing else. Reported:

* train-epoch clips/s: our ``Trainer.train_epoch`` (accumulation, AMP/DDP plumbing,
  scheduler, hooks, stats, progress logging) vs the minimal loop → overhead %;
Wall-clock and CPU seconds (``time.process_time``, this process; ``num_workers 0``) are both
given: on a shared machine the CPU figure is the one that does not depend on the load.

* full-run clips/s: our ``Trainer.run`` per epoch, which also validates on the whole valid
  set and writes checkpoints, history and curves (for information).

* the limit: training FLOPs per clip (forward + backward, ``FlopCounterMode`` over two batches), the
  achieved GFLOP/s per CPU second of both loops, and the machine's float32 matmul peak per CPU second
  measured in the same run; ``--profile`` adds a ``torch.profiler`` table of one epoch (where the time goes).

    python bench/train.py [--n_train 256] [--seconds 2] [--epochs 3] [--threads 2] [--config conf/train_cnn.yaml] [--profile]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from train_helpers import make_corpus, train_args  # noqa: E402

from espnet_cls.config import resolve_config  # noqa: E402
from espnet_cls.train.dataset import collate  # noqa: E402
from espnet_cls.train.trainer import Trainer, set_all_random_seed  # noqa: E402


class MinimalLoop:
    """The lower bound: the same model class, optimizer and batches, and nothing else."""

    def __init__(self, trainer: Trainer) -> None:
        from espnet_cls.tasks.cls import build_model

        set_all_random_seed(0)
        self.trainer = trainer
        self.model = build_model(trainer.config)
        self.opt = torch.optim.AdamW(self.model.parameters(), **dict(trainer.config["optim_conf"]))

    def epoch(self, epoch: int) -> tuple[float, float]:
        """One epoch over the trainer's batches; returns (wall, CPU) seconds."""
        model, opt = self.model, self.opt
        model.train()
        nw = int(self.trainer.config.get("num_workers") or 0)
        t0, c0 = time.perf_counter(), time.process_time()
        loader = torch.utils.data.DataLoader(self.trainer.train_ds, batch_sampler=self.trainer.train_batches.epoch(epoch),
                                             collate_fn=collate, num_workers=nw)
        for _keys, b in loader:
            loss, _stats, _w = model(b["speech"], b["speech_lengths"], b["label"], b["label_lengths"])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        return time.perf_counter() - t0, time.process_time() - c0


def peak_gflops(repeat: int = 3) -> float:
    """float32 GFLOP/s per CPU second of a 1024^3 matmul (best of ``repeat``)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        for _ in range(8):
            a @ b
        best = min(best, time.process_time() - c0)
    return 8 * 2 * 1024**3 / best / 1e9


def train_flops_per_clip(tr: Trainer) -> float:
    """FLOPs of forward + backward per training clip, counted over the first two batches."""
    from torch.utils.flop_counter import FlopCounterMode

    from espnet_cls.tasks.cls import build_model

    model = build_model(tr.config)
    model.train()
    batches = tr.train_batches.epoch(1)[:2]
    n = 0
    with FlopCounterMode(display=False) as fc:
        for keys in batches:
            _k, b = collate([tr.train_ds[k] for k in keys])
            loss, _stats, _w = model(b["speech"], b["speech_lengths"], b["label"], b["label_lengths"])
            loss.backward()
            n += len(keys)
    return fc.get_total_flops() / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "conf" / "train_cnn.yaml"))
    ap.add_argument("--n_train", type=int, default=256)
    ap.add_argument("--n_valid", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num_workers", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=2.0, help="clip length (the instruments corpus has 2 s clips)")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of one training epoch")
    ap.add_argument("--malloc_tuning", default="true", choices=["true", "false"],
                    help="espnet_cls.cli.tune_malloc, as cls_train applies it (false: glibc's defaults)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.malloc_tuning == "true":
        from espnet_cls.cli import tune_malloc

        tune_malloc()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        c = make_corpus(root, multilabel=False, n_train=args.n_train, n_valid=args.n_valid,
                        dur=(args.seconds, args.seconds))
        argv = train_args(c, Path(args.config), root / "exp", "--normalize", "utterance_mvn", "--max_epoch",
                          str(args.epochs), "--num_workers", str(args.num_workers), "--use_tensorboard", "false",
                          "--scheduler", "none")
        config = resolve_config(argv)
        tr = Trainer(config)
        tr.setup()
        n_clips = sum(len(b) for b in tr.train_batches.epoch(1))
        flops_per_clip = train_flops_per_clip(tr)
        # warm-up (first-call costs: allocator, lazy imports) for both, not timed
        loop = MinimalLoop(tr)
        loop.epoch(1)
        tr.train_epoch(1)
        # alternate one epoch of each, so that load changes on a shared machine hit both alike
        t_min = t_ours = c_min = c_ours = 0.0
        ratios = []
        for e in range(1, args.epochs + 1):
            w, cpu = loop.epoch(e)
            t_min += w
            c_min += cpu
            t0, c0 = time.perf_counter(), time.process_time()
            tr.train_epoch(e)
            t_ours += time.perf_counter() - t0
            c_ours += time.process_time() - c0
            ratios.append((time.process_time() - c0) / cpu)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                tr.train_epoch(args.epochs + 1)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        peak = peak_gflops()
        # full runs (validation + checkpoints + history + curves each epoch)
        config2 = resolve_config(argv + ["--output_dir", str(root / "exp_full")])
        tr2 = Trainer(config2)
        tr2.setup()
        t0, c0 = time.perf_counter(), time.process_time()
        tr2.run()
        t_full, c_full = time.perf_counter() - t0, time.process_time() - c0
    total = n_clips * args.epochs
    print(f"clips per epoch: {n_clips} of {args.seconds:g} s, epochs: {args.epochs}, threads: {args.threads}, "
          f"num_workers: {args.num_workers}, config: {Path(args.config).name}, malloc tuning: {args.malloc_tuning}")
    print(f"load average: {os.getloadavg()[0]:.2f} (machine has {os.cpu_count()} CPUs)")
    print(f"minimal loop     : {total / t_min:8.1f} clips/s wall ({t_min:.2f} s), {total / c_min:8.1f} clips/CPU-s "
          f"({c_min:.2f} CPU s)")
    print(f"ours train_epoch : {total / t_ours:8.1f} clips/s wall ({t_ours:.2f} s), {total / c_ours:8.1f} clips/CPU-s "
          f"({c_ours:.2f} CPU s)")
    print(f"overhead, wall: {100 * (t_ours / t_min - 1):+.1f} %   CPU: {100 * (c_ours / c_min - 1):+.1f} %   "
          f"CPU per epoch pair, median: {100 * (sorted(ratios)[len(ratios) // 2] - 1):+.1f} % "
          f"(all: {', '.join(f'{100 * (r - 1):+.0f}' for r in ratios)})")
    flops = flops_per_clip * total
    print(f"training FLOPs: {flops_per_clip / 1e9:.3f} GFLOP per clip (forward + backward); achieved per CPU second: "
          f"minimal loop {flops / c_min / 1e9:.1f}, ours {flops / c_ours / 1e9:.1f} GFLOP/s; "
          f"peak (1024^3 float32 matmul) {peak:.1f} GFLOP/s per CPU second")
    print(f"ours full run    : {total / t_full:8.1f} train clips/s wall ({t_full:.2f} s), {total / c_full:8.1f} "
          f"clips/CPU-s ({c_full:.2f} CPU s) incl. validation of {args.n_valid} clips, checkpoints, curves")

if __name__ == "__main__":
    main()
