"""slurm.pl against a real (local) Slurm cluster: ``tools/slurm_local.sh up`` first.

Marked ``slurm``; skipped when ``sinfo`` is missing or the node is not usable.
"""

import shutil
import subprocess
import time

import pytest

from espnet_cls.kaldi.cluster import slurm_cluster_usable

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module", autouse=True)
def need_cluster():
    if not slurm_cluster_usable():
        pytest.skip("no usable Slurm cluster (tools/slurm_local.sh up)")


@pytest.fixture
def work(tmp_path, repo_root):
    (tmp_path / "conf").mkdir()
    shutil.copy(repo_root / "conf" / "slurm.conf", tmp_path / "conf" / "slurm.conf")
    (tmp_path / "path.sh").write_text(f". {repo_root}/path.sh\n")
    return tmp_path


def run(args, env, cwd, timeout=180):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_array_job(work, shell_env):
    p = run(["slurm.pl", "JOB=1:4", "exp/log/a.JOB.log", "echo", "task", "JOB"], shell_env, work)
    assert p.returncode == 0, p.stderr
    for i in range(1, 5):
        log = (work / "exp" / "log" / f"a.{i}.log").read_text().splitlines()
        assert f"task {i}" in log
        assert "# SLURM_JOB_PARTITION=cpu" in log  # conf/slurm.conf: gpu=0 -> -p cpu
        assert f"# SLURM_ARRAY_TASK_ID={i}" in log
        assert log[-1].startswith("# Ended (code 0)")


def test_max_jobs_run_serialises(work, shell_env):
    # with %1 the tasks cannot overlap: each records its start and end time
    t0 = time.time()
    p = run(["slurm.pl", "--max-jobs-run", "1", "JOB=1:3", "exp/log/m.JOB.log",
             "date", "+%s.%N", ";", "sleep", "0.5", ";", "date", "+%s.%N"], shell_env, work)  # fmt: skip
    assert p.returncode == 0, p.stderr
    spans = []
    for i in range(1, 4):
        lines = [ln for ln in (work / "exp" / "log" / f"m.{i}.log").read_text().splitlines() if not ln.startswith("#")]
        spans.append((float(lines[0]), float(lines[1])))
    spans.sort()
    assert all(spans[k][1] <= spans[k + 1][0] for k in range(2)), spans
    assert "--array 1-3%1" in (work / "exp" / "log" / "q" / "m.sh").read_text()
    assert time.time() - t0 >= 1.5


def test_failing_task(work, shell_env):
    p = run(["slurm.pl", "JOB=1:3", "exp/log/f.JOB.log", "test", "JOB", "-ne", "2"], shell_env, work)
    assert p.returncode != 0
    assert "slurm.pl: 1 / 3 failed, log is in exp/log/f.*.log" in p.stderr
    assert "# Ended (code 1)" in (work / "exp" / "log" / "f.2.log").read_text()


def test_cancelled_job_is_detected(work, shell_env):
    env = dict(shell_env, KALDI_QUEUE_CHECK_EVERY="1", KALDI_QUEUE_GRACE="1")
    proc = subprocess.Popen(["slurm.pl", "--name", "tocancel", "JOB=1:2", "exp/log/c.JOB.log", "sleep", "60"],
                            env=env, cwd=work, stderr=subprocess.PIPE, text=True)  # fmt: skip
    job = None
    for _ in range(100):
        out = subprocess.run(["squeue", "-h", "-n", "tocancel", "-o", "%A"], capture_output=True, text=True).stdout.split()
        if out:
            job = out[0]
            break
        time.sleep(0.2)
    assert job is not None
    subprocess.run(["scancel", "-n", "tocancel"], check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "gone from the queue" in err and "2 / 2 failed" in err
