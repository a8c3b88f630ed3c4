"""Development benchmark: train a recipe config on the dev corpora with several seeds, print mean +- std.

For each corpus of :mod:`espnet_cls.data.devbench` (``instruments_dev``, ``instruments_mix_dev``,
``lid_dev``: instruments unseen in training, dense mixtures, unseen speakers, random channels
and noise), this script

1. generates the corpus once (seed ``--data_seed``) into ``<workdir>/data/<corpus>``;
2. runs ``cls.sh`` stages 2-5 once (dump, filtering, token list, statistics);
3. runs ``cls.sh`` stages 6-8 (training, inference on valid and test, scoring) for every
   training seed, exactly as a recipe does, with the multi-class config (``--config``) or,
   for the multi-label corpus, ``--multilabel_config``; the experiment is
   ``<workdir>/exp/<corpus>/cls_<tag>_seed<S>`` and is reused when its scores exist;
4. appends each result to ``<workdir>/results.jsonl`` and prints, for every tag recorded there,
   the mean +- std (sample std over seeds) of the valid and test metric per corpus
   (accuracy, or mAP for the mixtures).

Decisions are made on **valid**; test is reported, never tuned on. A run takes a few minutes
per corpus and seed on two shared CPU cores (``nice``, one training at a time)::

    python bench/accuracy.py --tag before --config conf/train_cnn.yaml \\
        --multilabel_config conf/train_cnn_multilabel.yaml --seeds 0 1 2
    python bench/accuracy.py --report            # the table of everything recorded so far
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from espnet_cls.data.devbench import DEV_CORPORA  # noqa: E402

METRIC = {"multi-class": "accuracy", "multi-label": "mAP"}


def sh(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` in the repository root, output to ``log``; exit with its tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        sys.exit(f"ERROR: {' '.join(cmd[:3])}... failed (exit {rc}); log {log}:\n" + "\n".join(tail))


def cls_sh(corpus: str, work: Path, nj: int, *extra: str) -> list[str]:
    """The cls.sh command line for ``corpus`` (dirs under ``work``) plus ``extra`` options."""
    ml = DEV_CORPORA[corpus]["type"] == "multi-label"
    cmd = ["./cls.sh", "--ngpu", "0", "--nj", str(nj), "--inference_nj", str(nj),
           "--datadir", str(work / "data" / corpus), "--dumpdir", str(work / "dump" / corpus),
           "--expdir", str(work / "exp" / corpus), "--train_set", "train", "--valid_set", "valid",
           "--test_sets", "test"]  # fmt: skip
    if ml:
        cmd += ["--classification_type", "multi-label", "--inference_model", "valid.mAP.best.pth",
                "--label_fold_length", "20"]  # fmt: skip
    return cmd + list(extra)


def prepare(corpus: str, work: Path, data_seed: int, nj: int, config: str) -> None:
    """Generate the corpus and run stages 2-5 once (markers in the work dir)."""
    data = work / "data" / corpus
    if not (data / "test" / "wav.scp").exists():
        print(f"[{corpus}] generating (seed {data_seed})", flush=True)
        sh([sys.executable, "-m", "espnet_cls.data.devbench", "--corpus", corpus, "--seed", str(data_seed),
            "--nj", str(nj), str(data)], work / "logs" / f"{corpus}.data.log")  # fmt: skip
    marker = work / "exp" / corpus / ".stages_2_5_done"
    if not marker.exists():
        print(f"[{corpus}] cls.sh stages 2-5", flush=True)
        sh(cls_sh(corpus, work, nj, "--stage", "2", "--stop_stage", "5", "--cls_config", config),
           work / "logs" / f"{corpus}.stages2-5.log")  # fmt: skip
        marker.write_text("done\n")


def score(exp: Path, dset: str, metric: str) -> float:
    rep = json.loads((exp / f"cls_{dset}" / "scoring" / "metrics.json").read_text())
    for key in (metric, metric.lower(), "acc" if metric == "accuracy" else metric):
        if key in rep:
            return float(rep[key])
    raise KeyError(f"{metric} not in {exp}/cls_{dset}/scoring/metrics.json (keys: {sorted(rep)[:20]})")


def run_one(corpus: str, work: Path, tag: str, seed: int, config: str, nj: int, extra_args: str) -> dict:
    exp = work / "exp" / corpus / f"cls_{tag}_seed{seed}"
    metric = METRIC[DEV_CORPORA[corpus]["type"]]
    if not (exp / "cls_test" / "scoring" / "metrics.json").exists():
        print(f"[{corpus}] {tag} seed {seed}: training {config}", flush=True)
        t0 = time.perf_counter()
        args = f"--seed {seed} {extra_args}".strip()
        sh(cls_sh(corpus, work, nj, "--stage", "6", "--stop_stage", "8", "--cls_config", config,
                  "--cls_tag", f"{tag}_seed{seed}", "--cls_args", args, "--test_sets", "valid test"),
           work / "logs" / f"{corpus}.{tag}.seed{seed}.log")  # fmt: skip
        wall = time.perf_counter() - t0
    else:
        wall = float("nan")
    res = {"corpus": corpus, "tag": tag, "seed": seed, "config": config, "metric": metric,
           "valid": score(exp, "valid", metric), "test": score(exp, "test", metric), "wall_s": round(wall, 1)}  # fmt: skip
    print(f"[{corpus}] {tag} seed {seed}: valid {metric} {res['valid']:.4f}  test {res['test']:.4f}"
          f"  ({wall:.0f} s)", flush=True)  # fmt: skip
    return res


def mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, s


def load_results(results: Path) -> dict[tuple[str, str, int], dict]:
    """(tag, corpus, seed) -> result; the last line of a (tag, corpus, seed) wins."""
    rows: dict[tuple[str, str, int], dict] = {}
    for line in results.read_text().splitlines() if results.exists() else []:
        r = json.loads(line)
        rows[(r["tag"], r["corpus"], r["seed"])] = r
    return rows


def percent(rows: dict, tag: str, corpus: str, split: str) -> list[float]:
    """The ``split`` metric of every seed of (tag, corpus), in percent."""
    return [100 * r[split] for k, r in sorted(rows.items()) if k[0] == tag and k[1] == corpus]


def report(results: Path, baseline: str | None = None) -> str:
    """The mean +- std table (in percent) of every (tag, corpus) in ``results`` (last result per seed wins).

    ``baseline``: a second table, each tag's valid and test mean minus the baseline's, marked ``*`` where
    the difference exceeds 2 sample std of both (the issue's "beyond 2 std of the seeds"; needs 2+ seeds).
    """
    rows = load_results(results)
    tags = list(dict.fromkeys(k[0] for k in rows))
    out = ["| tag | " + " | ".join(f"{c} valid | {c} test" for c in DEV_CORPORA) + " |",
           "|---|" + "---|---|" * len(DEV_CORPORA)]  # fmt: skip
    for tag in tags:
        cells = []
        for c in DEV_CORPORA:
            for split in ("valid", "test"):
                xs = percent(rows, tag, c, split)
                if not xs:
                    cells.append("-")
                    continue
                m, s = mean_std(xs)
                cells.append(f"{m:.1f} ± {s:.1f} (n={len(xs)})" if len(xs) > 1 else f"{m:.1f} (n=1)")
        out.append(f"| {tag} | " + " | ".join(cells) + " |")
    if baseline is None:
        return "\n".join(out)
    out += ["", f"difference to `{baseline}` (percentage points; * beyond 2 std of both)", "",
            "| tag | " + " | ".join(f"{c} valid | {c} test" for c in DEV_CORPORA) + " |",
            "|---|" + "---|---|" * len(DEV_CORPORA)]  # fmt: skip
    for tag in tags:
        if tag == baseline:
            continue
        cells = []
        for c in DEV_CORPORA:
            for split in ("valid", "test"):
                xs, bs = percent(rows, tag, c, split), percent(rows, baseline, c, split)
                if not xs or not bs:
                    cells.append("-")
                    continue
                (m, s), (bm, bsd) = mean_std(xs), mean_std(bs)
                sure = len(xs) > 1 and len(bs) > 1 and abs(m - bm) > 2 * max(s, bsd)
                cells.append(f"{m - bm:+.1f}{' *' if sure else ''}")
        out.append(f"| {tag} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tag", help="name of the system in the table (e.g. before, after)")
    p.add_argument("--config", default="conf/train_cnn.yaml", help="multi-class config")
    p.add_argument("--multilabel_config", default="conf/train_cnn_multilabel.yaml", help="config for instruments_mix_dev")
    p.add_argument("--corpora", nargs="+", default=list(DEV_CORPORA), choices=list(DEV_CORPORA))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    p.add_argument("--data_seed", type=int, default=0, help="seed of the corpora (fixed: keep 0 to compare)")
    p.add_argument("--cls_args", default="", help="extra training options, e.g. '--max_epoch 30'")
    p.add_argument("--workdir", default=str(REPO / "bench_accuracy"), help="data, dumps, experiments, results.jsonl")
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--report", action="store_true", help="only print the table of recorded results")
    p.add_argument("--baseline", default=None, help="tag to print every other tag's difference to (2-std test)")
    args = p.parse_args()
    work = Path(args.workdir).resolve()
    results = work / "results.jsonl"
    if not args.report:
        if not args.tag:
            p.error("--tag is required unless --report")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("ESPNET_CLS_SKIP_INSTALL", "true")
        for corpus in args.corpora:
            ml = DEV_CORPORA[corpus]["type"] == "multi-label"
            config = args.multilabel_config if ml else args.config
            prepare(corpus, work, args.data_seed, args.nj, config)
            for seed in args.seeds:
                res = run_one(corpus, work, args.tag, seed, config, args.nj, args.cls_args)
                with open(results, "a") as f:
                    f.write(json.dumps(res) + "\n")
    print(report(results, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
