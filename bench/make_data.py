"""Benchmark: demo-corpus generation time and the log-mel + logistic-regression baseline score.

For each demo corpus (default size unless --size), runs ``local/data.sh`` in a temp
dir exactly as stage 1 does, and reports: clips per split and class, clip duration,
wall-clock and CPU seconds of the generation (the CPU figure does not depend on the
machine's load), the generation time as a share of the 60-s budget we set for it,
and the test score of ``python -m espnet_cls.data.baseline`` (accuracy, or mAP for
``instruments_mix``). With ``--cnn_epochs N`` it also trains, for the multi-class
corpora, a small CNN probe (log-mel 64 x 20 ms, four conv blocks 16-32-64-128, mean
pooling, AdamW + one-cycle, N epochs, one thread, no augmentation but a random time
roll) and prints its test accuracy per epoch: evidence that the corpus is learnable,
not our recipe's trainer. The numbers in docs/data.md come from this script:

    python bench/make_data.py [--corpora instruments instruments_mix lid] [--size default] [--nj 2] [--cnn_epochs 12]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from espnet_cls.fileio import read_kv  # noqa: E402

BUDGET_S = 60.0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cnn_probe(d: Path, epochs: int, seed: int = 0) -> list[float]:
    """Train the small CNN probe on ``d/train``, return test accuracy after each epoch."""
    import numpy as np
    import soundfile as sf
    import torch
    import torchaudio

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=1024, hop_length=320, n_mels=64)

    def load(split: str) -> tuple[torch.Tensor, list[str]]:
        wav, text = read_kv(d / split / "wav.scp"), read_kv(d / split / "text")
        keys = sorted(wav)
        x = [torch.log(mel(torch.from_numpy(sf.read(wav[k], dtype="float32")[0])) + 1e-6) for k in keys]
        return torch.stack(x), [text[k] for k in keys]

    xtr, ltr = load("train")
    xte, lte = load("test")
    classes = sorted(set(ltr))
    ytr = torch.tensor([classes.index(c) for c in ltr])
    yte = torch.tensor([classes.index(c) for c in lte])
    mu, sd = xtr.mean((0, 2), keepdim=True), xtr.std((0, 2), keepdim=True)
    xtr, xte = ((xtr - mu) / sd).unsqueeze(1), ((xte - mu) / sd).unsqueeze(1)

    def block(i: int, o: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU(), torch.nn.MaxPool2d(2))

    net = torch.nn.Sequential(block(1, 16), block(16, 32), block(32, 64), block(64, 128), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(128, len(classes)))  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-3)
    steps = epochs * ((len(ytr) + 31) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    accs = []
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(ytr))
        for i in range(0, len(perm), 32):
            b = perm[i : i + 32]
            x = torch.roll(xtr[b], int(torch.randint(0, xtr.shape[-1], (1,))), -1)
            loss = torch.nn.functional.cross_entropy(net(x), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            accs.append(float((net(xte).argmax(1) == yte).float().mean()))
        print(f"  cnn probe epoch {epoch + 1}: test acc {accs[-1]:.3f}", flush=True)
    return [float(np.round(a, 4)) for a in accs]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=["instruments", "instruments_mix", "lid"])
    p.add_argument("--size", default="default", choices=("small", "default"))
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", default=None, help="write the data dirs here instead of a temp dir")
    p.add_argument("--cnn_epochs", type=int, default=0, help="also train the CNN probe (multi-class corpora)")
    p.add_argument("--programs", default="core", choices=("core", "all"), help="instruments corpora: GM programs")
    args = p.parse_args()
    env = dict(os.environ, LC_ALL="C", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env["PATH"] = f"{REPO / 'utils'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        for corpus in args.corpora:
            d = base / corpus / "data"
            c0, t0 = children_cpu(), time.perf_counter()
            subprocess.run(["bash", "local/data.sh", str(d), "--corpus", corpus, "--size", args.size, "--seed",
                            str(args.seed), "--nj", str(args.nj), "--programs", args.programs], cwd=REPO, env=env,
                           check=True)  # fmt: skip
            wall, cpu = time.perf_counter() - t0, children_cpu() - c0
            counts = {}
            for split in ("train", "valid", "test"):
                per: dict[str, int] = {}
                for v in read_kv(d / split / "text").values():
                    for lab in v.split():
                        per[lab] = per.get(lab, 0) + 1
                counts[split] = {"clips": len(read_kv(d / split / "wav.scp")), "per_class": dict(sorted(per.items()))}
            import soundfile as sf

            first = next(iter(read_kv(d / "train" / "wav.scp").values()))
            t1 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "espnet_cls.data.baseline", "--train", str(d / "train"),
                                  "--test", str(d / "test")], cwd=REPO, env=env, check=True, capture_output=True,
                                 text=True)  # fmt: skip
            base_res = json.loads(out.stdout.strip().splitlines()[-1])
            res = {
                "corpus": corpus, "size": args.size, "nj": args.nj, "clip_seconds": sf.info(first).duration,
                "gen_wall_s": round(wall, 1), "gen_cpu_s": round(cpu, 1), "budget_share": round(wall / BUDGET_S, 2),
                "baseline": base_res, "baseline_wall_s": round(time.perf_counter() - t1, 1), "counts": counts,
            }  # fmt: skip
            if args.cnn_epochs and "accuracy" in base_res:
                t2, c2 = time.perf_counter(), time.process_time()
                res["cnn_probe_acc"] = cnn_probe(d, args.cnn_epochs, args.seed)
                res["cnn_probe_wall_s"] = round(time.perf_counter() - t2, 1)
                res["cnn_probe_cpu_s"] = round(time.process_time() - c2, 1)
            results.append(res)
            print(json.dumps(res), flush=True)
    for r in results:
        key = "accuracy" if "accuracy" in r["baseline"] else "mAP"
        print(f"{r['corpus']:16s} clips={sum(c['clips'] for c in r['counts'].values()):5d} "
              f"gen {r['gen_wall_s']:6.1f} s wall / {r['gen_cpu_s']:6.1f} s CPU ({r['budget_share']:.2f} of {BUDGET_S:.0f} s) "
              f"baseline {key}={r['baseline'][key]:.3f}"
              + (f" cnn-probe acc={r['cnn_probe_acc'][-1]:.3f}" if "cnn_probe_acc" in r else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
