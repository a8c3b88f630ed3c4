"""Benchmark: demo-corpus generation time and the log-mel + logistic-regression baseline score.

For each demo corpus (default size unless --size), runs ``local/data.sh`` in a temp
dir exactly as stage 1 does, and reports: clips per split and class, clip duration,
wall-clock and CPU seconds of the generation (the CPU figure does not depend on the
machine's load), the generation time as a share of the 60-s budget we set for it,
and the test score of ``python -m espnet_cls.data.baseline`` (accuracy, or mAP for
``instruments_mix``). The numbers in docs/data.md come from this script:

    python bench/make_data.py [--corpora instruments instruments_mix lid] [--size default] [--nj 2]
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=["instruments", "instruments_mix", "lid"])
    p.add_argument("--size", default="default", choices=("small", "default"))
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", default=None, help="write the data dirs here instead of a temp dir")
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
                            str(args.seed), "--nj", str(args.nj)], cwd=REPO, env=env, check=True)  # fmt: skip
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
            results.append(res)
            print(json.dumps(res), flush=True)
    for r in results:
        key = "accuracy" if "accuracy" in r["baseline"] else "mAP"
        print(f"{r['corpus']:16s} clips={sum(c['clips'] for c in r['counts'].values()):5d} "
              f"gen {r['gen_wall_s']:6.1f} s wall / {r['gen_cpu_s']:6.1f} s CPU ({r['budget_share']:.2f} of {BUDGET_S:.0f} s) "
              f"baseline {key}={r['baseline'][key]:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
