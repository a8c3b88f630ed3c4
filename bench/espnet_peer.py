#!/usr/bin/env python3
"""Side by side with real ESPnet: stages 5 (stats), 6 (training) and 7 (inference) of both toolkits
on the same locally made data and ONE config file, same minutes, OMP_NUM_THREADS=1, nj=2.

    python bench/espnet_peer.py [--oracle_python /work/oracle-venv/bin/python]
                                [--n_train 300 --n_valid 60 --n_test 60 --min_sec 2 --max_sec 4 --epochs 1]
                                [--full]            # the issue's sizes: 1060/220/220 clips, 3 epochs
                                [--data DIR]        # DIR/{train,valid,test}/{wav.scp,text} instead of made data
                                [--workdir DIR] [--nj 2] [--inference_nj 2] [--repeat 2]
                                [--encoder transformer|conformer]   # ESPnet's small transformer (default) or a conformer

ESPnet runs through its own entry points (``espnet2.bin.tokenize_text``, ``cls_train``
``--collect_stats``, ``aggregate_stats_dirs``, ``cls_train``, ``cls_inference`` at batch size 1, the only
one it accepts) from the oracle venv of ``tools/install_espnet_oracle.sh`` (``--oracle_python``, else
``$ESPNET_ORACLE_PYTHON``, else ``$ESPNET_ORACLE_VENV/bin/python``, else ``tools/espnet_oracle_venv``, else
``/work/oracle-venv``); ours through our ``bin/``
workers with the same arguments (what each toolkit's ``cls.sh`` passes). Each stage runs ESPnet then
ours back to back, so a change of the machine's load hits both; the load average is printed with each
stage. Printed rows:

* stage 5 stats (``nj`` jobs + aggregation), stage 6 training (whole run and per epoch; ours includes the
  ``--prepare_only`` call that cls.sh's stage 6 ends with: the ONNX export of the model),
* stage 7 end to end: valid + test sets, ``inference_nj`` parallel jobs per set, as cls.sh runs it (ours:
  the ``--prepare_only`` call, then the jobs), in this order: ESPnet; ours ``--backend onnx`` with the
  export cache removed first, so that the export is charged to stage 7 (a model stage 6 did not export,
  e.g. ``--download_model``); ours ``--backend jit``; ours ``--backend onnx`` again, on the cached export
  (cls.sh's default path: the export was made at the end of stage 6),
* stage 7 compute per clip: each toolkit's trained model on the test clips already in memory, one
  torch thread, rounds ESPnet, ours, ESPnet, ours (best of all). ESPnet: ``Classification.__call__``
  one clip at a time; ours: ``BatchInference`` eager at batch 1, ``--backend jit`` at batch 1 and 4 and
  ``OnnxInference`` (``--backend onnx``, 1 intra-op thread) at batch 1 and 4 (``--batch_sizes``).
  ``--stages 7c`` runs only these rows on a finished ``--workdir``.

Times are wall-clock seconds; on a shared machine only the ratios of one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FS = 16000

# ESPnet's small transformer (conv2d input layer, 2 blocks x 128 dims, 64 mels, utterance MVN):
# every key is one both toolkits read with the same meaning.
CONFIG = """\
# one config for ESPnet 202611 and espnet_cls (bench/espnet_peer.py)
batch_type: folded
batch_size: 32
valid_batch_size: 32
max_epoch: {epochs}
num_workers: 1
optim: adam
optim_conf:
    lr: 0.001
scheduler: warmuplr
scheduler_conf:
    warmup_steps: 100
grad_clip: 5.0
best_model_criterion:
-   - valid
    - acc
    - max
keep_nbest_models: 1
seed: 0
frontend: default
frontend_conf:
    n_fft: 512
    hop_length: 160
    n_mels: 64
specaug: null
normalize: utterance_mvn
{encoder_block}
decoder: linear
decoder_conf:
    pooling: mean
model_conf:
    classification_type: multi-class
"""

#: ``--encoder``: the encoder block of CONFIG (ESPnet's option names and meanings, read by both toolkits):
#: the same size for both (2 blocks x 128, 4 heads, 256 units, conv2d input layer) plus each one's own keys
_ENCODER_SIZE = """\
    output_size: 128
    attention_heads: 4
    linear_units: 256
    num_blocks: 2
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    attention_dropout_rate: 0.0
    input_layer: conv2d
    normalize_before: true"""
ENCODERS = {
    "transformer": "encoder: transformer\nencoder_conf:\n" + _ENCODER_SIZE,
    # ESPnet's conformer with the current relative positions (rel_pos_type latest), macaron FFN, conv module
    "conformer": "encoder: conformer\nencoder_conf:\n" + _ENCODER_SIZE + """
    rel_pos_type: latest
    pos_enc_layer_type: rel_pos
    selfattention_layer_type: rel_selfattn
    activation_type: swish
    macaron_style: true
    use_cnn_module: true
    cnn_module_kernel: 15""",
}


def peer_config(epochs: int = 1, encoder: str = "transformer") -> str:
    """The one config file both toolkits train (YAML text)."""
    return CONFIG.format(epochs=epochs, encoder_block=ENCODERS[encoder])


CLASSES = ["flute", "organ", "buzz", "chirp", "pulse"]


# --------------------------------------------------------------------------- data


def _clip(rng, label: str, n: int):
    import numpy as np

    t = np.arange(n) / FS
    f0 = 180.0 * 2 ** (rng.uniform(0, 2))
    x = 0.02 * rng.standard_normal(n)
    if label == "flute":
        x += 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * np.sin(4 * np.pi * f0 * t)
    elif label == "organ":
        x += sum(0.15 / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3, 4, 6, 8))
    elif label == "buzz":
        x += 0.2 * np.sign(np.sin(2 * np.pi * f0 * t))
    elif label == "chirp":
        f = f0 * (1 + 3 * t / t[-1])
        x += 0.3 * np.sin(2 * np.pi * np.cumsum(f) / FS)
    else:  # pulse: noise bursts
        env = (np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0.6).astype(float)
        x += 0.4 * env * rng.standard_normal(n)
    return (x * rng.uniform(0.3, 1.0)).astype("float32")


def make_data(root: Path, sizes: dict[str, int], min_sec: float, max_sec: float, seed: int = 0) -> None:
    """Dump-style dirs root/{train,valid,test}: 16 kHz mono flac, wav.scp, text, utt2spk, utt2num_samples."""
    import numpy as np
    import soundfile as sf

    for k, (name, n) in enumerate(sizes.items()):
        rng = np.random.default_rng(seed + 101 * k)
        d = root / name
        (d / "data").mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(n):
            label = CLASSES[i % len(CLASSES)]
            length = int(FS * rng.uniform(min_sec, max_sec))
            utt = f"{name}_{i:05d}"
            path = d / "data" / f"{utt}.flac"
            sf.write(path, _clip(rng, label, length), FS, subtype="PCM_16")
            rows.append((utt, str(path), label, length))
        rows.sort()
        for fname, col in (("wav.scp", 1), ("text", 2), ("utt2num_samples", 3)):
            (d / fname).write_text("".join(f"{r[0]} {r[col]}\n" for r in rows))
        (d / "utt2spk").write_text("".join(f"{r[0]} {r[0]}\n" for r in rows))
        (d / "feats_type").write_text("raw\n")


def split_lines(src: Path, outs: list[Path]) -> None:
    """Contiguous split of a key file into len(outs) parts (as utils/split_scp.pl)."""
    lines = src.read_text().splitlines(keepends=True)
    n = len(outs)
    for j, out in enumerate(outs):
        a, b = (len(lines) * j) // n, (len(lines) * (j + 1)) // n
        out.write_text("".join(lines[a:b]))


# --------------------------------------------------------------------------- running


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


class Runner:
    def __init__(self, workdir: Path, verbose: bool) -> None:
        self.workdir = workdir
        self.verbose = verbose
        self.env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.env["PYTHONPATH"] = str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")

    def parallel(self, cmds: list[list[str]], logs: list[Path]) -> tuple[float, float, int]:
        """Run commands at once; (wall s, CPU s of all, max ru_maxrss KiB). Raises on failure."""
        t0 = time.perf_counter()
        procs = []
        for cmd, log in zip(cmds, logs):
            log.parent.mkdir(parents=True, exist_ok=True)
            fh = open(log, "w")
            procs.append((subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir), fh, log))
        cpu, rss, failed = 0.0, 0, []
        for p, fh, log in procs:
            _pid, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            fh.close()
            cpu += ru.ru_utime + ru.ru_stime
            rss = max(rss, ru.ru_maxrss)
            if p.returncode != 0:
                failed.append(log)
        wall = time.perf_counter() - t0
        if failed:
            tail = failed[0].read_text()[-3000:]
            raise SystemExit(f"FAILED ({len(failed)} job(s)): {' '.join(cmds[0][:4])} ...; log {failed[0]}:\n{tail}")
        return wall, cpu, rss

    def one(self, cmd: list[str], log: Path) -> tuple[float, float, int]:
        return self.parallel([cmd], [log])


def data_opts(data: Path) -> list[str]:
    out = []
    for mode, d in (("train", data / "train"), ("valid", data / "valid")):
        out += [f"--{mode}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                f"--{mode}_data_path_and_name_and_type", f"{d}/text,label,text"]
    return out


def stage5(r: Runner, py: str, pkg: str, tk: Path, data: Path, config: Path, token_list: Path, nj: int):
    logdir = tk / "stats" / "logdir"
    logdir.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid"):
        split_lines(data / part / "wav.scp", [logdir / f"{part}.{j}.scp" for j in range(1, nj + 1)])
    cmds = []
    for j in range(1, nj + 1):
        cmds.append([py, "-m", f"{pkg}.bin.cls_train", "--collect_stats", "true", "--use_preprocessor", "true",
                     "--token_type", "word", "--token_list", str(token_list), *data_opts(data),
                     "--train_shape_file", str(logdir / f"train.{j}.scp"), "--valid_shape_file", str(logdir / f"valid.{j}.scp"),
                     "--output_dir", str(logdir / f"stats.{j}"), "--config", str(config), "--frontend_conf", "fs=16k"])
    w1, c1, m1 = r.parallel(cmds, [logdir / f"stats.{j}.log" for j in range(1, nj + 1)])
    agg = [py, "-m", f"{pkg}.bin.aggregate_stats_dirs"]
    for j in range(1, nj + 1):
        agg += ["--input_dir", str(logdir / f"stats.{j}")]
    w2, c2, m2 = r.one(agg + ["--output_dir", str(tk / "stats")], logdir / "aggregate.log")
    return w1 + w2, c1 + c2, max(m1, m2)


def stage6(r: Runner, py: str, pkg: str, tk: Path, data: Path, config: Path, token_list: Path, extra: list[str],
           prepare: list[str] | None = None):
    exp = tk / "exp"
    st = tk / "stats"
    cmd = [py, "-m", f"{pkg}.bin.cls_train", "--use_preprocessor", "true", "--token_type", "word",
           "--token_list", str(token_list), "--ngpu", "0", "--resume", "true", "--output_dir", str(exp),
           "--config", str(config), "--frontend_conf", "fs=16k", *data_opts(data),
           "--train_shape_file", str(st / "train" / "speech_shape"), "--train_shape_file", str(st / "train" / "label_shape"),
           "--valid_shape_file", str(st / "valid" / "speech_shape"), "--valid_shape_file", str(st / "valid" / "label_shape"),
           "--fold_length", "160000", "--fold_length", "1", *extra]
    wall, cpu, rss = r.one(cmd, tk / "train.log")
    if prepare is not None:  # ours: cls.sh's stage 6 ends with the ONNX export stage 7's jobs run on
        w, c, m = r.one(prepare_cmd(py, pkg, tk, prepare), tk / "prepare_stage6.log")
        wall, cpu, rss = wall + w, cpu + c, max(rss, m)
    return wall, cpu, rss


def prepare_cmd(py: str, pkg: str, tk: Path, extra: list[str]) -> list[str]:
    """``cls_inference --prepare_only true`` as cls.sh runs it (end of stage 6, start of stage 7)."""
    exp = tk / "exp"
    return [py, "-m", f"{pkg}.bin.cls_inference", "--prepare_only", "true", "--ngpu", "0",
            "--classification_train_config", str(exp / "config.yaml"),
            "--classification_model_file", str(model_file(tk)), *extra]


def model_file(tk: Path) -> Path:
    exp = tk / "exp"
    for name in ("valid.acc.best.pth", "valid.acc.ave_1best.pth", "latest.pth"):
        if (exp / name).exists():
            return exp / name
    raise SystemExit(f"no model in {exp}")


def onnx_stamp(tk: Path) -> Path:
    return Path(str(model_file(tk).with_suffix(".onnx")) + ".stamp")


def stage7(r: Runner, py: str, pkg: str, tk: Path, data: Path, sets: list[str], nj: int, extra: list[str],
           prepare: bool = False):
    """Stage 7 as each cls.sh runs it; ``prepare``: ours' ``--prepare_only`` call first (the cached ONNX
    export, made here when missing or stale), timed as part of the stage."""
    exp = tk / "exp"
    wall = cpu = 0.0
    rss = 0
    if prepare:
        wall, cpu, rss = r.one(prepare_cmd(py, pkg, tk, extra), tk / "prepare.log")
    for dset in sets:
        logdir = tk / f"cls_{dset}" / "logdir"
        if logdir.exists():
            shutil.rmtree(logdir)
        logdir.mkdir(parents=True)
        n = min(nj, len((data / dset / "wav.scp").read_text().splitlines()))
        split_lines(data / dset / "wav.scp", [logdir / f"keys.{j}.scp" for j in range(1, n + 1)])
        cmds = [[py, "-m", f"{pkg}.bin.cls_inference", "--ngpu", "0",
                 "--data_path_and_name_and_type", f"{data / dset}/wav.scp,speech,sound",
                 "--key_file", str(logdir / f"keys.{j}.scp"),
                 "--classification_train_config", str(exp / "config.yaml"),
                 "--classification_model_file", str(model_file(tk)),
                 "--output_dir", str(logdir / f"output.{j}"), "--output_all_probabilities", "true", *extra]
                for j in range(1, n + 1)]
        w, c, m = r.parallel(cmds, [logdir / f"cls_inference.{j}.log" for j in range(1, n + 1)])
        wall, cpu, rss = wall + w, cpu + c, max(rss, m)
        rows = []
        for j in range(1, n + 1):
            rows += (logdir / f"output.{j}" / "prediction" / "text").read_text().splitlines()
        (tk / f"cls_{dset}" / "text").write_text("".join(f"{x}\n" for x in sorted(rows)))
    return wall, cpu, rss


def _timespan(text: str) -> float:
    """Seconds of a humanfriendly timespan as ESPnet logs it ("1 minute and 2.5 seconds", "7.48 seconds")."""
    import re

    unit = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
    return sum(float(v) * unit[u] for v, u in re.findall(r"([0-9.]+) (second|minute|hour|day)s?", text))


def epoch_times(log: Path) -> list[tuple[float, float]]:
    """``[(train s, valid s)]`` per epoch from the ``Nepoch results: [train] ... time=T, ... [valid] ... time=V``
    lines that both toolkits' trainers write."""
    import re

    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = re.search(r"epoch results: \[train\](.*?)\[valid\](.*?)(\[|$)", line)
        if m:
            tr = re.search(r"(?:^|, )time=([^,]+)", m.group(1))
            va = re.search(r"(?:^|, )time=([^,]+)", m.group(2))
            out.append((_timespan(tr.group(1)) if tr else float("nan"), _timespan(va.group(1)) if va else float("nan")))
    return out


def accuracy(pred: Path, ref: Path) -> float:
    p = dict(line.split(maxsplit=1) for line in pred.read_text().splitlines() if " " in line)
    g = dict(line.split(maxsplit=1) for line in ref.read_text().splitlines())
    return sum(p.get(k, "").strip() == v.strip() for k, v in g.items()) / max(1, len(g))


# --------------------------------------------------------------------------- compute workers


def worker_compute(args: argparse.Namespace) -> int:
    """Run inside each toolkit's interpreter: time the model on in-memory clips; print JSON."""
    import soundfile as sf
    import torch

    torch.set_num_threads(1)
    keys, waves = [], []
    for line in Path(args.scp).read_text().splitlines():
        k, p = line.split(maxsplit=1)
        keys.append(k)
        waves.append(sf.read(p, dtype="float32")[0])
    res: dict = {"n": len(waves), "audio_sec": sum(len(w) for w in waves) / FS}
    if args.worker == "espnet":
        from espnet2.bin.cls_inference import Classification

        clf = Classification(args.train_config, args.model_file)

        def run():
            return [clf(w)[1].numpy() for w in waves]

        run_b = {"1": run}
    else:
        from espnet_cls.cli import tune_malloc
        from espnet_cls.inference import BatchInference, load_inference_model

        tune_malloc()  # as our cls_inference does (espnet_cls.cli.run_main)
        model, _ = load_inference_model(args.train_config, args.model_file)
        from inference import parse_specs  # bench/inference.py: one grammar for both benches

        run_b = {}
        for spec, (backend, bs) in zip([s.strip() for s in args.batch_sizes.split(",")], parse_specs(args.batch_sizes)):
            if backend == "onnx":  # stage 7's CPU default
                from espnet_cls.onnx_inference import OnnxInference, ensure_onnx, open_session

                path, why = ensure_onnx(args.train_config, args.model_file)  # untimed: the export is stage 7's
                if path is None:
                    raise SystemExit(f"no ONNX export: {why}")
                eng = OnnxInference(open_session(path, 1), FS, batch_size=bs)
            else:
                eng = BatchInference(model, FS, batch_size=bs, backend=backend)
            run_b[spec] = (lambda e: (lambda: e.predict(waves)))(eng)
    for name, fn in run_b.items():
        fn()  # warm-up
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        res[name] = best
    print("RESULT " + json.dumps(res))
    return 0


def compute(r: Runner, py: str, which: str, tk: Path, scp: Path, repeat: int, batch_sizes: str) -> dict:
    cmd = [py, str(Path(__file__).resolve()), "--worker", which, "--scp", str(scp),
           "--train_config", str(tk / "exp" / "config.yaml"), "--model_file", str(model_file(tk)),
           "--repeat", str(repeat), "--batch_sizes", batch_sizes]
    log = tk / f"compute_{which}.log"
    r.one(cmd, log)
    for line in log.read_text().splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"no result in {log}")


# --------------------------------------------------------------------------- main


def oracle_python(arg: str | None) -> str:
    if arg:
        return arg
    if os.environ.get("ESPNET_ORACLE_PYTHON"):
        return os.environ["ESPNET_ORACLE_PYTHON"]
    if os.environ.get("ESPNET_ORACLE_VENV"):
        return str(Path(os.environ["ESPNET_ORACLE_VENV"]) / "bin" / "python")
    for venv in (REPO / "tools" / "espnet_oracle_venv", Path("/work/oracle-venv")):  # install_espnet_oracle.sh's default
        if (venv / "bin" / "python").exists():
            return str(venv / "bin" / "python")
    return str(REPO / "tools" / "espnet_oracle_venv" / "bin" / "python")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oracle_python", default=None, help="python of the ESPnet 202611 venv")
    ap.add_argument("--python", default=sys.executable, help="python of espnet_cls's venv")
    ap.add_argument("--data", default=None, help="DIR with train/valid/test Kaldi dirs (16 kHz audio) instead of made data")
    ap.add_argument("--workdir", default=None, help="keep everything here (default: a temp dir, removed)")
    ap.add_argument("--n_train", type=int, default=300)
    ap.add_argument("--n_valid", type=int, default=60)
    ap.add_argument("--n_test", type=int, default=60)
    ap.add_argument("--min_sec", type=float, default=2.0)
    ap.add_argument("--max_sec", type=float, default=4.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--encoder", default="transformer", choices=sorted(ENCODERS),
                    help="the config's encoder: ESPnet's small transformer (the issue's) or a conformer of the same size")
    ap.add_argument("--full", action="store_true", help="the issue's sizes: 1060/220/220 clips of 2-4 s, 3 epochs")
    ap.add_argument("--nj", type=int, default=2)
    ap.add_argument("--inference_nj", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="compute rows: best of this many passes")
    ap.add_argument("--batch_sizes", default="e1,1,4,o1,o4",
                    help="ours, compute rows: N = --backend jit at batch N, eN = eager, oN = onnx (stage 7's CPU default)")
    ap.add_argument("--ours_train_args", default="",
                    help="extra cls_train arguments for ours (default: none, i.e. one intra-op thread under "
                         "OMP_NUM_THREADS=1 as ESPnet, plus the config's loader worker; '--num_threads 2' uses a "
                         "second core for the kernels: slower than one thread at load ~5 on 2 cores, "
                         "docs/benchmarks.md peer section)")
    ap.add_argument("--ours_inference_args", default="", help="extra cls_inference arguments for ours")
    ap.add_argument("--stages", default="5,6,7", help="subset of 5,6,7 (7 needs a trained workdir); "
                    "7c: only the compute rows of 7")
    ap.add_argument("--verbose", action="store_true")
    # internal: compute worker
    ap.add_argument("--worker", choices=["espnet", "ours"], help=argparse.SUPPRESS)
    ap.add_argument("--scp", help=argparse.SUPPRESS)
    ap.add_argument("--train_config", help=argparse.SUPPRESS)
    ap.add_argument("--model_file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_compute(args)
    if args.full:
        args.n_train, args.n_valid, args.n_test, args.epochs = 1060, 220, 220, 3
    espy = oracle_python(args.oracle_python)
    if not Path(espy).exists():
        raise SystemExit(f"ESPnet oracle python not found: {espy} (see tools/install_espnet_oracle.sh; --oracle_python)")
    stages = set(args.stages.split(","))
    tmp = None
    if args.workdir:
        work = Path(args.workdir).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="espnet_peer_")
        work = Path(tmp)
    r = Runner(work, args.verbose)
    es, us = work / "espnet", work / "ours"
    try:
        if args.data:
            data = Path(args.data).resolve()
        else:
            data = work / "data"
            if not (data / "test" / "wav.scp").exists():
                t0 = time.perf_counter()
                make_data(data, {"train": args.n_train, "valid": args.n_valid, "test": args.n_test}, args.min_sec, args.max_sec)
                print(f"data: made in {time.perf_counter() - t0:.1f} s")
        n = {s: len((data / s / "wav.scp").read_text().splitlines()) for s in ("train", "valid", "test")}
        config = work / "config.yaml"
        config.write_text(peer_config(args.epochs, args.encoder))
        print(f"data: {data}: {n['train']}/{n['valid']}/{n['test']} clips; config {config} "
              f"({args.encoder} 2 x 128, conv2d, 64 mels, utterance MVN), {args.epochs} epoch(s)")
        print(f"ESPnet: {espy}; ours: {args.python}; OMP_NUM_THREADS=1, nj={args.nj}, inference_nj={args.inference_nj}; "
              f"machine {os.cpu_count()} CPUs")
        print(f"ours: cls_train {args.ours_train_args or '(no extra arguments)'}; "
              f"cls_inference {args.ours_inference_args or '(defaults)'}")
        # token lists (stage 4, untimed), each toolkit its own tool
        for tk in (es, us):
            tk.mkdir(parents=True, exist_ok=True)
        if not (es / "token_list").exists():
            r.one([espy, "-m", "espnet2.bin.tokenize_text", "--token_type", "word", "--field", "2-", "--input",
                   str(data / "train" / "text"), "--output", str(es / "token_list"), "--write_vocabulary", "true",
                   "--add_symbol", "<unk>:-1"], es / "token_list.log")
            r.one([args.python, "-m", "espnet_cls.bin.make_token_list", "--input", str(data / "train" / "text"),
                   "--output", str(us / "token_list")], us / "token_list.log")
        rows = []

        def row(name: str, e: tuple, o: tuple, note: str = "") -> None:
            ratio = o[0] / e[0] if e[0] > 0 else float("nan")
            rows.append((name, e[0], o[0], ratio, note))
            print(f"  {name:<42s} ESPnet {e[0]:8.2f} s  ours {o[0]:8.2f} s  ratio {ratio:5.2f}x  "
                  f"(CPU {e[1]:.1f} / {o[1]:.1f} s; load {load()}) {note}", flush=True)

        if "5" in stages:
            print(f"stage 5 (load {load()})", flush=True)
            e = stage5(r, espy, "espnet2", es, data, config, es / "token_list", args.nj)
            o = stage5(r, args.python, "espnet_cls", us, data, config, us / "token_list", args.nj)
            row("5 stats", e, o)
        if "6" in stages:
            print(f"stage 6 (load {load()})", flush=True)
            for tk in (es, us):
                if (tk / "exp").exists():
                    shutil.rmtree(tk / "exp")
            e = stage6(r, espy, "espnet2", es, data, config, es / "token_list", [])
            o = stage6(r, args.python, "espnet_cls", us, data, config, us / "token_list", args.ours_train_args.split(),
                       prepare=["--backend", "onnx", *args.ours_inference_args.split()])
            print(f"  (ours includes the ONNX export at the end of stage 6: "
                  f"{json.loads(onnx_stamp(us).read_text()).get('export_seconds', '?')} s of it)")
            row(f"6 train, {args.epochs} epoch(s), whole run", e, o)
            row("6 train, per epoch (whole run / epochs)", (e[0] / args.epochs, e[1] / args.epochs),
                (o[0] / args.epochs, o[1] / args.epochs))
            te, to = epoch_times(es / "train.log"), epoch_times(us / "train.log")
            if te and to:
                ne, no = len(te), len(to)
                row("6 train, training pass per epoch (train.log)", (sum(t[0] for t in te) / ne, 0.0),
                    (sum(t[0] for t in to) / no, 0.0), "[train] time= of the epoch lines")
                row("6 train, validation per epoch (train.log)", (sum(t[1] for t in te) / ne, 0.0),
                    (sum(t[1] for t in to) / no, 0.0))
        if "7" in stages:
            print(f"stage 7 (load {load()})", flush=True)
            sets, nj, extra = ["valid", "test"], args.inference_nj, args.ours_inference_args.split()
            for f in (model_file(us).with_suffix(".onnx"), onnx_stamp(us)):
                f.unlink(missing_ok=True)  # the first onnx run pays the export (a model stage 6 did not export)
            # ESPnet; ours onnx with the export made here; ours jit; ours onnx on the cached export (cls.sh:
            # made at the end of stage 6)
            e = stage7(r, espy, "espnet2", es, data, sets, nj, [])
            o_cold = stage7(r, args.python, "espnet_cls", us, data, sets, nj, ["--backend", "onnx", *extra], prepare=True)
            o_jit = stage7(r, args.python, "espnet_cls", us, data, sets, nj, ["--backend", "jit", *extra], prepare=True)
            o_warm = stage7(r, args.python, "espnet_cls", us, data, sets, nj, ["--backend", "onnx", *extra], prepare=True)
            name = f"7 inference end to end, valid+test, {nj} jobs"
            row(f"{name}, ours onnx (cls.sh: export from stage 6)", e, o_warm, f"speed-up {e[0] / o_warm[0]:.1f}x")
            row(f"{name}, ours onnx + export in stage 7", e, o_cold,
                f"speed-up {e[0] / o_cold[0]:.1f}x (no stage-6 export, e.g. --download_model)")
            row(f"{name}, ours jit", e, o_jit, f"speed-up {e[0] / o_jit[0]:.1f}x")
            stamp = json.loads(onnx_stamp(us).read_text())
            print(f"  ONNX export: {stamp.get('exporter')} exporter, {stamp.get('export_seconds')} s inside the prepare "
                  f"step, max |ONNX - PyTorch| {stamp.get('max_abs_diff')}")
            for dset in ("valid", "test"):
                print(f"  {dset} accuracy: ESPnet {accuracy(es / f'cls_{dset}' / 'text', data / dset / 'text'):.3f}, "
                      f"ours {accuracy(us / f'cls_{dset}' / 'text', data / dset / 'text'):.3f}")
        if "7" in stages or "7c" in stages:
            ce: dict = {}
            co: dict = {}
            for _round in range(2):  # ESPnet, ours, ESPnet, ours: a change of load hits both; best of all
                for res, py, which, tk, bss in ((ce, espy, "espnet", es, "1"), (co, args.python, "ours", us, args.batch_sizes)):
                    got = compute(r, py, which, tk, data / "test" / "wav.scp", args.repeat, bss)
                    for k, v in got.items():
                        res[k] = min(res.get(k, v), v) if k not in ("n", "audio_sec") else v
            nclip = ce["n"]
            print(f"  7 compute only, {nclip} test clips ({ce['audio_sec']:.0f} s audio) in memory, 1 thread, best of 2 x {args.repeat}:")
            for bs in args.batch_sizes.split(","):
                ratio = co[bs] / ce["1"]
                kind = {"e": "eager", "o": "onnx"}.get(bs[0], "jit")
                name = f"7 compute per clip, ours {kind} batch {bs.lstrip('eo')}"
                rows.append((name, ce["1"] / nclip, co[bs] / nclip, ratio, ""))
                print(f"  {name:<42s} ESPnet {1e3 * ce['1'] / nclip:7.2f} ms  "
                      f"ours {1e3 * co[bs] / nclip:7.2f} ms  ratio {ratio:5.2f}x  (load {load()})")
        print("\n| stage | ESPnet | espnet_cls | ratio (ours / ESPnet) |\n|---|---|---|---|")
        for name, e, o, ratio, note in rows:
            unit = "ms" if "per clip" in name else "s"
            k = 1e3 if unit == "ms" else 1.0
            print(f"| {name} | {k * e:.2f} {unit} | {k * o:.2f} {unit} | {ratio:.2f}x {note} |")
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"load average at the end: {load()}; children CPU {ru.ru_utime + ru.ru_stime:.0f} s")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
