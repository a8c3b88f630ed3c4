"""The demo recipe on a real Slurm cluster (tools/slurm_local.sh up) vs the same run on the local backend.

Both runs train with two processes (gloo): under Slurm as two tasks of one job (srun), locally as two
processes started by espnet_cls.bin.launch. Dumps and token list must be equal, metrics equal within
1e-6 (same data, same seeds, same collective arithmetic). A failing array task must fail the stage and
name the log. The comparison is printed (run with -s to see it in the CI log).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_e2e import fresh_copy, kv, recipe_env

pytestmark = pytest.mark.slurm

OPTS = ["--nj", "2", "--inference_nj", "2", "--ngpu", "0", "--num_procs", "2", "--stop_stage", "8",
        "--cls_args", "--max_epoch 2 --num_iters_per_epoch none", "--local_data_opts", "--corpus instruments --size small"]


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return r.returncode == 0 and any(state in r.stdout for state in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module", autouse=True)
def need_cluster():
    if not cluster_up():
        pytest.skip("no Slurm cluster (tools/slurm_local.sh up)")


def run_recipe(d: Path, backend: str, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    env = recipe_env()
    env["cmd_backend"] = backend
    r = subprocess.run(["timeout", "900", "./run.sh", *args], cwd=d, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        pytest.fail(f"{backend} run failed ({r.returncode}):\n{(r.stdout + r.stderr)[-5000:]}")
    return r


def metrics(d: Path) -> dict:
    out = {}
    for p in sorted(d.glob("exp/cls_*/cls_*/scoring/metrics.json")):
        out[p.parent.parent.name] = json.loads(p.read_text())
    return out


def test_slurm_equals_local(repo_root, tmp_path):
    loc = fresh_copy(repo_root, tmp_path / "local")
    slu = fresh_copy(repo_root, tmp_path / "slurm")
    run_recipe(loc, "local", OPTS)
    r = run_recipe(slu, "slurm", OPTS)
    # the jobs really went through Slurm, training as two tasks of one job
    assert list(slu.glob("dump/train/logs/q/*.sh")), "stage 2 did not go through slurm.pl"
    log = next(slu.glob("exp/cls_*/train.log")).read_text()
    assert "srun" in log and "rank 1/2" in log, log[-3000:]
    assert "Successfully finished" in r.stdout

    for s in ["train", "valid", "test"]:
        assert kv(slu / f"dump/{s}/utt2num_samples") == kv(loc / f"dump/{s}/utt2num_samples")
        assert (slu / f"dump/{s}/text").read_text() == (loc / f"dump/{s}/text").read_text()
    assert (slu / "data/token_list").read_text() == (loc / "data/token_list").read_text()

    ml, ms = metrics(loc), metrics(slu)
    assert ml.keys() == ms.keys() and ml
    print("\nSlurm vs local (2 training processes each):")
    print(f"{'set':<12}{'metric':<10}{'local':>10}{'slurm':>10}")
    for s in ml:
        for k in ["acc", "mAP", "mean_auc", "macro_f1"]:
            print(f"{s:<12}{k:<10}{ml[s][k]:>10.4f}{ms[s][k]:>10.4f}")
            assert ms[s][k] == pytest.approx(ml[s][k], abs=1e-6), (s, k)


def test_failing_array_task_fails_the_stage(repo_root, tmp_path):
    d = fresh_copy(repo_root, tmp_path / "bad")
    run_recipe(d, "local", [*OPTS, "--stop_stage", "1"])
    scp = d / "data/test/wav.scp"
    lines = scp.read_text().splitlines()
    utt = lines[-1].split()[0]
    lines[-1] = f"{utt} {d / 'no_such_file.wav'}"
    scp.write_text("\n".join(lines) + "\n")
    r = run_recipe(d, "slurm", [*OPTS, "--stage", "2", "--stop_stage", "2"], check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "slurm.pl: 1 / 2 failed, log is in dump/test/logs/format_wav_scp.*.log" in out, out[-3000:]
    assert not (d / "dump/test/wav.scp").exists()
    logs = "".join(p.read_text() for p in (d / "dump/test/logs").glob("format_wav_scp.*.log"))
    assert utt in logs and "no_such_file.wav" in logs
