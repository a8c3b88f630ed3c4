"""End to end: run.sh / run_multilabel.sh through every stage on tiny data, in a fresh copy of the repo.

The copy shares the project's venv (ESPNET_CLS_VENV), so tools/install.sh finds it up to date.
Stage 10 runs against a local stand-in for the Hugging Face Hub (tests/test_hub_standin.py), through
the real huggingface_hub client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_hub_standin import SECRET, HubStandin

IGNORE = shutil.ignore_patterns(".venv", ".git", "data", "dump", "exp", "__pycache__", ".pytest_cache", ".ruff_cache",
                                "*.egg-info", "downloads")
SMALL = ["--nj", "2", "--inference_nj", "2", "--ngpu", "0", "--cls_args", "--max_epoch 3 --num_iters_per_epoch none"]


def fresh_copy(repo_root: Path, dest: Path) -> Path:
    shutil.copytree(repo_root, dest, ignore=IGNORE, symlinks=True)
    return dest


def recipe_env() -> dict:
    """Environment for running a recipe copy with the Python that runs the tests.

    In a venv, the copy uses that venv (sys.prefix; not the resolved interpreter path, which is the
    base Python's); outside one, the copy skips tools/install.sh and uses the current environment.
    """
    env = dict(os.environ)
    if sys.prefix != sys.base_prefix:
        env["ESPNET_CLS_VENV"] = sys.prefix
    else:
        env.pop("ESPNET_CLS_VENV", None)
        env["ESPNET_CLS_SKIP_INSTALL"] = "true"
    env["HF_HUB_OFFLINE"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def run(cmd: list[str], cwd: Path, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env={**recipe_env(), **(env or {})}, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        tail = (r.stdout + r.stderr)[-6000:]
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(cwd.glob("**/*.log"))[-4:])
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{tail}\n{logs}")
    return r


def kv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(" ")
        out[k] = v
    return out


def check_sorted(path: Path) -> None:
    keys = [line.split(maxsplit=1)[0] for line in path.read_text().splitlines()]
    assert keys == sorted(keys, key=str.encode), f"{path} is not sorted"


def check_layout(d: Path, multilabel: bool) -> dict:
    """Every artifact of SPEC.md's layout, with content checks. Returns the test metrics."""
    for s in ["train", "valid", "test"]:
        for f in ["wav.scp", "text", "utt2spk", "spk2utt"]:
            assert (d / "data" / s / f).is_file(), f"data/{s}/{f}"
        dump = d / "dump" / s
        for f in ["wav.scp", "text", "utt2spk", "spk2utt", "utt2num_samples"]:
            assert (dump / f).is_file(), f"dump/{s}/{f}"
            check_sorted(dump / f)
        assert (dump / "feats_type").read_text().strip() == "raw"
        scp = kv(dump / "wav.scp")
        n = kv(dump / "utt2num_samples")
        assert scp.keys() == n.keys()
        # every dumped file is mono 16 kHz flac with the recorded length
        for utt, path in list(scp.items())[:5]:
            p = Path(path) if Path(path).is_absolute() else d / path
            info = sf.info(str(p))
            assert info.samplerate == 16000 and info.channels == 1 and p.suffix == ".flac"
            assert info.frames == int(n[utt])

    tokens = (d / "data" / "token_list").read_text().split("\n")[:-1]
    assert tokens[-2:] == ["<blank>", "<unk>"]
    classes = tokens[:-2]
    assert len(classes) >= 3 and len(set(classes)) == len(classes)

    stats = d / "exp" / "cls_stats_16k"
    for s in ["train", "valid"]:
        for f in ["speech_shape", "label_shape"]:
            assert (stats / s / f).is_file(), f"{s}/{f}"
    st = np.load(stats / "train" / "feats_stats.npz")
    assert float(st["count"]) > 0 and st["sum"].shape == st["sum_square"].shape

    exps = [p for p in (d / "exp").glob("cls_*") if p.name != "cls_stats_16k"]
    assert len(exps) == 1, exps
    exp = exps[0]
    for f in ["config.yaml", "train.log", "checkpoint.pth", "valid.acc.best.pth", "RESULTS.md", "report.html"]:
        assert (exp / f).exists(), f
    assert any(exp.glob("*epoch.pth"))
    assert any((exp / "images").glob("*.png"))

    metrics = {}
    for s in ["valid", "test"]:
        cdir = exp / f"cls_{s}"
        text, score = cdir / "text", cdir / "score"
        check_sorted(text)
        check_sorted(score)
        ref = kv(d / "dump" / s / "text")
        hyp = kv(text)
        assert hyp.keys() == ref.keys()
        for line in score.read_text().splitlines():
            vals = np.array(line.split()[1:], dtype=float)
            assert len(vals) == len(classes)
            assert np.all((vals >= 0) & (vals <= 1))
            if not multilabel:
                assert abs(vals.sum() - 1) < 1e-3
        for labels in hyp.values():
            for lab in labels.split():
                assert lab in classes
            if not multilabel:
                assert len(labels.split()) == 1
        assert (cdir / "scoring" / "metrics").is_file()
        metrics[s] = json.loads((cdir / "scoring" / "metrics.json").read_text())
        assert f"cls_{s}" in (exp / "RESULTS.md").read_text() or s in (exp / "RESULTS.md").read_text()

    zips = list(exp.glob("*.zip"))
    model = "valid.mAP.best" if multilabel else "valid.acc.best"
    assert (exp / f"{model}.pth").is_file()
    assert len(zips) == 1 and zips[0].name == f"{exp.name}_{model}.zip"
    names = set(zipfile.ZipFile(zips[0]).namelist())
    for f in ["meta.yaml", "config.yaml", "model.safetensors", "token_list", "RESULTS.md"]:
        assert any(n.endswith(f) for n in names), f"{f} not in the packed model"
    return metrics


def test_run_sh_all_stages_multiclass(repo_root, tmp_path):
    d = fresh_copy(repo_root, tmp_path / "r")
    r = run(["./run.sh", *SMALL, "--local_data_opts", "--corpus instruments --size small"], d)
    assert "RESULTS" in r.stdout or "|" in r.stdout
    m = check_layout(d, multilabel=False)
    exp = d / "exp" / "cls_train_cnn_max_epoch3_num_iters_per_epochnone"
    # the scored accuracy is the accuracy of the written predictions
    ref, hyp = kv(d / "dump" / "test" / "text"), kv(exp / "cls_test" / "text")
    acc = sum(hyp[u] == ref[u] for u in ref) / len(ref)
    assert m["test"]["acc"] == pytest.approx(acc)
    assert 0.0 <= m["test"]["mAP"] <= 1.0

    # re-running finished stages is safe and gives the same predictions
    before = (exp / "cls_test" / "score").read_text()
    run(["./run.sh", *SMALL, "--local_data_opts", "--corpus instruments --size small",
         "--stage", "7", "--stop_stage", "8"], d)
    assert (exp / "cls_test" / "score").read_text() == before

    # stage 10: upload the packed model to the local Hub stand-in
    with HubStandin(tmp_path / "hub", SECRET) as hub:
        r = run(["./run.sh", *SMALL, "--stage", "10", "--skip_upload", "false", "--hf_repo", "demo/instruments-cnn"],
                d, env=hub.env())
    repo = tmp_path / "hub" / "demo" / "instruments-cnn"
    uploaded = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()}
    packed = set(zipfile.ZipFile(next(exp.glob("*.zip"))).namelist())
    assert uploaded == packed | {"README.md"}
    assert "espnet_cls" in (repo / "README.md").read_text()
    assert SECRET not in r.stdout + r.stderr


def test_run_multilabel_all_stages(repo_root, tmp_path):
    d = fresh_copy(repo_root, tmp_path / "r")
    run(["./run_multilabel.sh", *SMALL, "--local_data_opts", "--corpus instruments_mix --size small"], d)
    m = check_layout(d, multilabel=True)
    assert m["test"]["classification_type"] == "multi-label"
    assert 0.0 <= m["test"]["mAP"] <= 1.0
    # <blank> is in the token list and some clips carry it
    texts = (d / "data" / "train" / "text").read_text() + (d / "data" / "test" / "text").read_text()
    assert "<blank>" in texts


def _kill_when(cmd: list[str], cwd: Path, ready, timeout: float = 600) -> None:
    """Start cmd in its own process group; SIGKILL the whole group as soon as ready() is true."""
    p = subprocess.Popen(cmd, cwd=cwd, env=recipe_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if ready():
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                return
            if p.poll() is not None:
                pytest.fail(f"{cmd} finished before it could be killed (rc={p.returncode})")
            time.sleep(0.05)
        pytest.fail("timed out waiting to kill")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.mark.slow  # ~80-150 s: kept out of ./test.sh's default run; .ci/run runs it after the default suite
def test_kill_and_resume_stages_2_and_6(repo_root, tmp_path):
    """Killing run.sh in stage 2 or 6 and re-running from that stage ends as an uninterrupted run."""
    opts = [*SMALL, "--local_data_opts", "--corpus instruments --size small"]
    ref = fresh_copy(repo_root, tmp_path / "ref")
    run(["./run.sh", *opts, "--stop_stage", "8"], ref)

    d = fresh_copy(repo_root, tmp_path / "k")
    run(["./run.sh", *opts, "--stop_stage", "1"], d)
    # stage 2: kill once some dumped audio exists
    _kill_when(["./run.sh", *opts, "--stage", "2", "--stop_stage", "2"], d,
               lambda: len(list((d / "dump").glob("*/data/format.*/*.flac"))) >= 3)
    run(["./run.sh", *opts, "--stage", "2", "--stop_stage", "5"], d)
    for s in ["train", "valid", "test"]:
        assert kv(d / "dump" / s / "utt2num_samples") == kv(ref / "dump" / s / "utt2num_samples")
    # stage 6: kill after the first epoch's checkpoint
    exp = d / "exp" / "cls_train_cnn_max_epoch3_num_iters_per_epochnone"
    _kill_when(["./run.sh", *opts, "--stage", "6", "--stop_stage", "6"], d, lambda: (exp / "checkpoint.pth").exists())
    run(["./run.sh", *opts, "--stage", "6", "--stop_stage", "8"], d)
    a = kv(ref / "exp" / "cls_train_cnn_max_epoch3_num_iters_per_epochnone" / "cls_test" / "score")
    b = kv(exp / "cls_test" / "score")
    assert a.keys() == b.keys() and len(a) > 0
    for utt in a:
        np.testing.assert_allclose(np.array(a[utt].split(), dtype=float), np.array(b[utt].split(), dtype=float),
                                   atol=1e-5, err_msg=utt)
