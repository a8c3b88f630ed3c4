#!/usr/bin/env python3
"""Cost growth: wall time and peak memory of cls.sh stages 2-5, 7 and 8 against the number of clips.

    python bench/scale.py [--sizes 250,500,1000] [--full]  # --full: N = 1000, 10000, 100000
                          [--clip_sec 0.5] [--nj 2] [--inference_nj 2] [--workdir DIR] [--stages 2,3,4,5,7,8]

For each N it makes synthetic Kaldi data dirs (``train`` N clips, ``valid`` and ``test`` N/10 each, 16-bit
wav at 16 kHz, ``clip_sec`` long, three tone classes), then runs ``./cls.sh --stage S --stop_stage S`` for
every stage in turn (stage 6 too, untimed: a tiny CNN for 2 iterations, so that 7 and 8 have a model).
Per stage it prints the wall time, the CPU time of the whole cls.sh process tree (user + system,
from ``wait4``: every job, every worker) and the peak resident memory of the largest process of the
stage (``ru_maxrss``), and at the end the exponent ``b`` of the least-squares fit ``time ~ N^b`` over all
sizes, the exponent between the two largest sizes (where the fixed costs, mostly process starts, weigh
least), both for wall and CPU time, and the growth of the peak memory from the smallest to the largest N.
Target: ``b <= 1.1`` for every stage; the streaming stages' peak memory flat in N.

Wall times on a shared machine are noisy (the load average is printed with each run); CPU seconds move
much less with the load, so the CPU exponent is the one to read when the machine is busy.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FS = 16000
CLASSES = {"low": 300.0, "mid": 1200.0, "high": 4000.0}

TINY_CONFIG = """\
# bench/scale.py: a tiny CNN trained for 2 iterations (stage 6 is not what this bench measures)
batch_type: folded
batch_size: 32
valid_batch_size: 64
max_epoch: 1
num_iters_per_epoch: 2
num_workers: 0
optim: adam
optim_conf: {lr: 0.001}
keep_nbest_models: 1
use_tensorboard: false
use_matplotlib: false
frontend: default
frontend_conf: {n_fft: 512, hop_length: 320, n_mels: 32}
normalize: utterance_mvn
encoder: cnn
encoder_conf: {channels: [8, 16]}
decoder: linear
decoder_conf: {pooling: mean}
model_conf: {classification_type: multi-class}
"""


def make_set(d: Path, n: int, clip_sec: float, seed: int) -> None:
    """Kaldi data dir with wav.scp, text, utt2spk, spk2utt (sorted), 16-bit wav files."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (d / "wav").mkdir(parents=True, exist_ok=True)
    names = list(CLASSES)
    m = int(clip_sec * FS)
    t = np.arange(m) / FS
    rows = []
    for i in range(n):
        lab = names[i % len(names)]
        x = 0.3 * np.sin(2 * np.pi * CLASSES[lab] * (1 + 0.05 * rng.standard_normal()) * t) + 0.05 * rng.standard_normal(m)
        utt = f"{d.name}_{i:07d}"
        p = d / "wav" / f"{utt}.wav"
        sf.write(p, x.astype("float32"), FS, subtype="PCM_16")
        rows.append((utt, str(p), lab))
    rows.sort()
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
    (d / "text").write_text("".join(f"{u} {lab}\n" for u, _, lab in rows))
    (d / "utt2spk").write_text("".join(f"{u} {u}\n" for u, _, _ in rows))
    (d / "spk2utt").write_text("".join(f"{u} {u}\n" for u, _, _ in rows))


def run_stage(stage: int, work: Path, args: argparse.Namespace, config: Path, log: Path) -> tuple[float, float, int]:
    """(wall s, CPU s of the process tree, peak RSS KiB of the largest process) of one cls.sh stage."""
    cmd = ["bash", "cls.sh", "--stage", str(stage), "--stop_stage", str(stage),
           "--train_set", "train", "--valid_set", "valid", "--test_sets", "test",
           "--datadir", str(work / "data"), "--dumpdir", str(work / "dump"), "--expdir", str(work / "exp"),
           "--cls_config", str(config), "--feats_normalize", "utterance_mvn", "--ngpu", "0",
           "--nj", str(args.nj), "--inference_nj", str(args.inference_nj), "--skip_upload", "true"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if args.venv:
        env["ESPNET_CLS_VENV"] = args.venv
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        # through a fresh launcher: a process exec'd straight from this one starts with this
        # process's high-water RSS as its ru_maxrss (Linux keeps it across (v)fork + exec), so the
        # bench's own peak (the data it made) would floor every stage's number
        p = subprocess.Popen([sys.executable, "-c", _LAUNCHER, *cmd], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, pass_fds=(), env=env, text=True)
        p.wait()
    wall = time.perf_counter() - t0
    status, cpu, maxrss = (log.read_text().rsplit("\n__scale_rusage__ ", 1)[-1].split() + ["", "", ""])[:3]
    if p.returncode != 0 or status != "0":
        raise SystemExit(f"stage {stage} failed; log {log}:\n{log.read_text()[-3000:]}")
    return wall, float(cpu), int(maxrss)


#: Runs argv[1:] and appends "__scale_rusage__ <exit code> <CPU s of the tree> <peak RSS KiB>" to stdout.
_LAUNCHER = """\
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_pid, st, ru = os.wait4(p.pid, 0)
sys.stdout.flush()
print(f"\\n__scale_rusage__ {os.waitstatus_to_exitcode(st)} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss}", flush=True)
sys.exit(0)
"""


def fit_exponent(ns: list[int], ts: list[float]) -> float:
    xs, ys = [math.log(n) for n in ns], [math.log(max(t, 1e-9)) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="250,500,1000", help="comma-separated N (training clips)")
    ap.add_argument("--full", action="store_true", help="N = 1000, 10000, 100000")
    ap.add_argument("--clip_sec", type=float, default=0.5)
    ap.add_argument("--nj", type=int, default=2)
    ap.add_argument("--inference_nj", type=int, default=2)
    ap.add_argument("--stages", default="2,3,4,5,7,8")
    ap.add_argument("--workdir", default=None, help="keep everything here (default: a temp dir, removed)")
    ap.add_argument("--venv", default=os.environ.get("ESPNET_CLS_VENV"), help="venv for cls.sh (ESPNET_CLS_VENV)")
    args = ap.parse_args(argv)
    sizes = [1000, 10000, 100000] if args.full else [int(s) for s in args.sizes.split(",")]
    timed = [int(s) for s in args.stages.split(",")]
    root = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="espnet_cls_scale_"))
    root.mkdir(parents=True, exist_ok=True)
    config = root / "tiny_cnn.yaml"
    config.write_text(TINY_CONFIG)
    print(f"sizes {sizes}, clips of {args.clip_sec:g} s, nj={args.nj}, inference_nj={args.inference_nj}; "
          f"machine {os.cpu_count()} CPUs; timed stages {timed}")
    results: dict[int, dict[int, tuple[float, float, int]]] = {s: {} for s in timed}
    try:
        for n in sizes:
            work = root / f"n{n}"
            if work.exists():
                shutil.rmtree(work)
            t0 = time.perf_counter()
            nv = max(10, n // 10)
            for name, k, seed in (("train", n, 1), ("valid", nv, 2), ("test", nv, 3)):
                make_set(work / "data" / name, k, args.clip_sec, seed)
            print(f"N={n}: data ({n}/{nv}/{nv} clips) made in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.2f}",
                  flush=True)
            for stage in sorted(set(timed) | ({6} if {7, 8} & set(timed) else set())):
                wall, cpu, rss = run_stage(stage, work, args, config, work / f"stage{stage}.log")
                if stage in results:
                    results[stage][n] = (wall, cpu, rss)
                print(f"  stage {stage}: {wall:8.2f} s  CPU {cpu:8.2f} s  peak RSS {rss / 1024:7.1f} MiB"
                      f"{'' if stage in results else '  (untimed)'}"
                      f"  load {os.getloadavg()[0]:.2f}", flush=True)
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)
        def flag(b: float) -> str:
            return f"{b:.2f}" + ("" if b <= 1.1 else " (> 1.1)")

        print("\n| stage | " + " | ".join(f"N={n} wall, CPU, peak RSS" for n in sizes)
              + " | b wall (all N; two largest) | b CPU (all N; two largest) | peak RSS growth |")
        print("|---|" + "---|" * len(sizes) + "---|---|---|")
        for stage, per in results.items():
            ts = [per[n][0] for n in sizes]
            cs = [per[n][1] for n in sizes]
            rs = [per[n][2] for n in sizes]
            cells = " | ".join(f"{t:.1f} s, {c:.1f} s, {r / 1024:.0f} MiB" for t, c, r in zip(ts, cs, rs))
            bw = f"{flag(fit_exponent(sizes, ts))}; {flag(fit_exponent(sizes[-2:], ts[-2:]))}"
            bc = f"{flag(fit_exponent(sizes, cs))}; {flag(fit_exponent(sizes[-2:], cs[-2:]))}"
            print(f"| {stage} | {cells} | {bw} | {bc} | {rs[-1] / max(rs[0], 1):.2f}x |")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
