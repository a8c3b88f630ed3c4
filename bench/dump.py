#!/usr/bin/env python3
"""Benchmark of stage 2 (wav dump): clips/s of scripts/audio/format_wav_scp.sh at nj=1 and nj=2
(through utils/run.pl, as cls.sh runs it) against a naive single-process baseline, in one run.

    python bench/dump.py [--n_clips 1500] [--dur 3] [--fs_in 44100] [--repeat 1] [--resampler_check]

The corpus is generated locally: ``n_clips`` stereo 16-bit wav files of ``dur`` seconds at
``fs_in`` (noise + tones), dumped to 16 kHz mono flac. The baseline is the obvious loop:
``soundfile.read`` -> channel mean -> ``torchaudio.functional.resample`` (defaults) ->
``soundfile.write`` (flac, 16-bit), one process, torch with 1 thread. Every timing is wall
clock of the whole command (script: split, run.pl, job start-up, merge). Each run starts from
an empty dump dir, so nothing is reused. The machine load (1-min load average) is printed
before and after, because the CPUs may be shared.

``--resampler_check`` also prints speed and quality (SNR of a 1 kHz tone, leakage of a 9 kHz
tone above the new Nyquist) of soxr and torchaudio resampling, 44.1 kHz -> 16 kHz.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
FS_OUT = 16000


def make_corpus(d: Path, n: int, dur: float, fs_in: int, seed: int = 0) -> Path:
    """Write ``n`` stereo wavs (a tone + noise, all different) and a wav.scp under ``d``; return the wav.scp."""
    rng = np.random.default_rng(seed)
    (d / "audio").mkdir(parents=True)
    (d / "data" / "set").mkdir(parents=True)
    t = np.arange(int(dur * fs_in)) / fs_in
    noise = (0.05 * rng.standard_normal((len(t), 2))).astype(np.float32)
    lines = []
    for i in range(n):
        f = 100 + 50 * (i % 40)
        x = 0.3 * np.sin(2 * np.pi * f * t, dtype=np.float32)[:, None] + np.roll(noise, 997 * i, axis=0)
        path = d / "audio" / f"clip{i:05d}.wav"
        sf.write(path, x, fs_in, subtype="PCM_16")
        lines.append(f"utt{i:05d} {path}\n")
    scp = d / "data" / "set" / "wav.scp"
    scp.write_text("".join(lines))
    return scp


def env_for_scripts() -> dict:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["PATH"] = f"{ROOT / 'utils'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ours(work: Path, scp: Path, nj: int) -> tuple[float, float]:
    """Wall and CPU seconds (all child processes) of one dump through the script."""
    out = work / "dump" / "set"
    shutil.rmtree(work / "dump", ignore_errors=True)
    cmd = ["bash", str(ROOT / "scripts/audio/format_wav_scp.sh"), "--nj", str(nj), "--cmd", "run.pl",
           "--audio-format", "flac", "--fs", "16k", str(scp), str(out)]
    c0 = _children_cpu()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=work, env=env_for_scripts(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    cpu = _children_cpu() - c0
    if p.returncode != 0:
        sys.exit(f"format_wav_scp.sh failed:\n{p.stderr}")
    n = len((out / "wav.scp").read_text().splitlines())
    assert n == len(scp.read_text().splitlines())
    return dt, cpu


def run_baseline(work: Path, scp: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the naive loop (in this process; torch already imported)."""
    import torch
    import torchaudio

    torch.set_num_threads(1)
    out = work / "baseline"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    c0 = time.process_time()
    t0 = time.perf_counter()
    lines = []
    for line in scp.read_text().splitlines():
        utt, path = line.split(maxsplit=1)
        x, fs = sf.read(path, dtype="float32", always_2d=True)
        y = torchaudio.functional.resample(torch.from_numpy(x.mean(axis=1)), fs, FS_OUT).numpy()
        dst = out / f"{utt}.flac"
        sf.write(dst, y, FS_OUT, subtype="PCM_16")
        lines.append(f"{utt} {dst}\n")
    (out / "wav.scp").write_text("".join(lines))
    return time.perf_counter() - t0, time.process_time() - c0


def parallel_capacity(loops: int = 15_000_000) -> float:
    """Throughput of 2 concurrent CPU-bound processes over 1 (2.0 on two free cores).

    The same pure-Python loop runs alone, then twice at once, in child processes of this
    session; this is the ceiling for nj=2 / nj=1 on the machine as it is right now (with
    sched_autogroup, a session's processes share the session's CPU slice).
    """
    code = f"s=0\nfor i in range({loops}): s+=i"

    def wall(k: int) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(k)]
        for p in procs:
            p.wait()
        return time.perf_counter() - t0

    t1 = wall(1)
    t2 = wall(2)
    return 2 * t1 / t2


def resampler_check() -> None:
    import soxr
    import torch
    import torchaudio

    torch.set_num_threads(1)
    fs_in, fs_out = 44100, 16000
    t = np.arange(fs_in * 10) / fs_in
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    high = (0.5 * np.sin(2 * np.pi * 9000 * t)).astype(np.float32)
    kaiser = dict(lowpass_filter_width=64, rolloff=0.9475937167399596, resampling_method="sinc_interp_kaiser",
                  beta=14.769656459379492)
    cands = [
        ("soxr HQ (ours)", lambda v: soxr.resample(v, fs_in, fs_out, "HQ")),
        ("soxr VHQ", lambda v: soxr.resample(v, fs_in, fs_out, "VHQ")),
        ("torchaudio default", lambda v: torchaudio.functional.resample(torch.from_numpy(v), fs_in, fs_out).numpy()),
        ("torchaudio kaiser_best",
         lambda v: torchaudio.functional.resample(torch.from_numpy(v), fs_in, fs_out, **kaiser).numpy()),
    ]
    print("resampler check: 10 s mono, 44.1 kHz -> 16 kHz, 1 thread")
    for name, f in cands:
        f(tone)
        t0 = time.process_time()  # CPU time: stays meaningful on a shared machine
        for _ in range(10):
            y = f(tone)
        ms = (time.process_time() - t0) / 10 * 1000
        ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / fs_out)
        mid = slice(1000, len(y) - 1000)
        snr = 10 * np.log10(np.mean(ref[mid] ** 2) / np.mean((y[mid] - ref[mid]) ** 2))
        ya = f(high)
        leak = 10 * np.log10(np.mean(ya[mid] ** 2) / 0.125 + 1e-30)
        print(f"  {name:24s} {ms:6.1f} ms CPU   1 kHz SNR {snr:6.1f} dB   9 kHz leakage {leak:7.1f} dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n_clips", type=int, default=1500, help="enough work (~10 s CPU) that start-up costs are small")
    ap.add_argument("--dur", type=float, default=3.0, help="seconds per clip")
    ap.add_argument("--fs_in", type=int, default=44100)
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant; the best (least disturbed) is used")
    ap.add_argument("--resampler_check", action="store_true")
    args = ap.parse_args()

    if args.resampler_check:
        resampler_check()
    work = Path(tempfile.mkdtemp(prefix="bench_dump_"))
    try:
        scp = make_corpus(work, args.n_clips, args.dur, args.fs_in)
        n = args.n_clips
        print(f"corpus: {n} clips x {args.dur:g} s, stereo 16-bit wav at {args.fs_in} Hz -> mono 16 kHz flac")
        print(f"machine: {os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")
        cap_before = parallel_capacity()
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "nj=1": [], "nj=2": []}
        for _ in range(args.repeat):  # interleaved, so a load burst hits all variants alike
            runs["baseline"].append(run_baseline(work, scp))
            runs["nj=1"].append(run_ours(work, scp, 1))
            runs["nj=2"].append(run_ours(work, scp, 2))
        cap_after = parallel_capacity()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"parallel capacity of this session (2 busy processes / 1; 2.00 = two free cores): "
              f"{cap_before:.2f} before, {cap_after:.2f} after")
        best = {k: min(v) for k, v in runs.items()}  # least disturbed run (by wall time)
        labels = {
            "baseline": "baseline: naive loop sf.read+torchaudio resample+sf.write (1 process, 1 thread)",
            "nj=1": "ours: format_wav_scp.sh --nj 1 (run.pl, soxr)",
            "nj=2": "ours: format_wav_scp.sh --nj 2 (run.pl, soxr)",
        }
        for k in ("baseline", "nj=1", "nj=2"):
            wall, cpu = best[k]
            others = ", ".join(f"{w:.2f}" for w, _ in runs[k])
            print(f"{labels[k]:82s} {n / wall:7.1f} clips/s  wall {wall:6.2f} s  CPU {cpu:6.2f} s"
                  f"  ({1000 * cpu / n:.2f} ms CPU/clip; wall of runs: {others})")
        w = {k: v[0] for k, v in best.items()}
        print(f"ratio nj=2 / nj=1 (clips/s):     {w['nj=1'] / w['nj=2']:.2f}x")
        print(f"ratio nj=1 / baseline (clips/s): {w['baseline'] / w['nj=1']:.2f}x")
        print(f"ratio nj=2 / baseline (clips/s): {w['baseline'] / w['nj=2']:.2f}x")
        print(f"CPU per clip, baseline / nj=1:   {best['baseline'][1] / best['nj=1'][1]:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
