"""slurm.pl / queue.pl / ssh.pl against fake sbatch/squeue/scancel/qsub/qstat/ssh on PATH (no cluster).

The real-cluster tests are in tests/test_slurm_cluster.py (marker ``slurm``).
"""

import signal
import subprocess
import time

import pytest

from espnet_cls.kaldi.cluster import DEFAULT_SLURM_CONF, parse_batch_config
from espnet_cls.kaldi.jobs import UsageError

FAKE_SBATCH = r"""#!/usr/bin/env bash
# records its arguments; runs the array tasks one after another unless FAKE_NO_RUN is set
printf '%s\n' "$@" > "$FAKE_DIR/sbatch.args"
array=""; script=""
while [ $# -gt 0 ]; do
  case "$1" in
    --array) array=$2; shift 2 ;;
    -o|-e|-p|-c|--job-name|--time|--mem-per-cpu|--cpus-per-task|--nodes|--ntasks-per-node|--gres) shift 2 ;;
    -*) shift ;;
    *) script=$1; shift ;;
  esac
done
range=${array%%%*}; a=${range%-*}; b=${range#*-}
[ -z "$array" ] && a=1 && b=1
if [ -z "${FAKE_NO_RUN:-}" ]; then
  for i in $(seq "$a" "$b"); do SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=42 bash "$script"; done
fi
echo "Submitted batch job 42"
"""
FAKE_SQUEUE = '#!/bin/sh\n[ -n "$FAKE_SQUEUE_OUT" ] && echo "$FAKE_SQUEUE_OUT"\nexit 0\n'
FAKE_SCANCEL = '#!/bin/sh\necho "$@" > "$FAKE_DIR/scancel.args"\n'
FAKE_QSUB = r"""#!/usr/bin/env bash
printf '%s\n' "$@" > "$FAKE_DIR/qsub.args"
t=""; for x in "$@"; do [ "$prev" = -t ] && t=$x; prev=$x; script=$x; done
a=${t%:*}; b=${t#*:}
for i in $(seq "$a" "$b"); do SGE_TASK_ID=$i bash "$script"; done
echo "Your job-array 7.$a-$b:1 (\"x\") has been submitted"
"""
FAKE_QSTAT = "#!/bin/sh\nexit 1\n"
FAKE_SSH = r"""#!/usr/bin/env bash
# fake ssh: ssh -o X host "command"
while [ "$1" = -o ]; do shift 2; done
echo "$1" >> "$FAKE_DIR/ssh.hosts"; shift
eval "$*"
"""


@pytest.fixture
def fake_env(tmp_path, shell_env):
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, text in [
        ("sbatch", FAKE_SBATCH),
        ("squeue", FAKE_SQUEUE),
        ("scancel", FAKE_SCANCEL),
        ("qsub", FAKE_QSUB),
        ("qstat", FAKE_QSTAT),
        ("ssh", FAKE_SSH),
    ]:
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    env = dict(shell_env)
    env.update(PATH=f"{fake}:{env['PATH']}", FAKE_DIR=str(fake), KALDI_QUEUE_CHECK_EVERY="0.3", KALDI_QUEUE_GRACE="0.3")
    work = tmp_path / "work"
    work.mkdir()
    return env, work, fake


def run(args, env, cwd):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_config_translation(repo_root):
    cfg = parse_batch_config((repo_root / "conf" / "slurm.conf").read_text(), "conf/slurm.conf")
    assert cfg.command == ["sbatch", "--export=PATH"]
    assert cfg.translate({"gpu": "0", "num_nodes": "2"}) == ["--time", "24:00:00", "-p", "cpu", "--nodes", "2"]
    cfg = parse_batch_config(DEFAULT_SLURM_CONF, "default")
    assert cfg.translate({"mem": "2G"}) == ["--ntasks-per-node", "1", "-p", "shared", "--mem-per-cpu", "2G"]
    assert cfg.translate({"gpu": "2", "mem": "0"})[:4] == ["--ntasks-per-node", "1", "-p", "gpu"]
    with pytest.raises(UsageError, match="not described"):
        cfg.translate({"foo": "1"})


def test_slurm_pl_script_and_sbatch_command(fake_env, repo_root):
    env, work, fake = fake_env
    (work / "conf").mkdir()
    (work / "conf" / "slurm.conf").write_text((repo_root / "conf" / "slurm.conf").read_text())
    (work / "path.sh").write_text("export FROM_PATH_SH=yes\n")
    p = run(
        ["slurm.pl", "--max-jobs-run", "2", "--mem", "1G", "--num-threads", "2", "--name", "myjob",
         "JOB=1:3", "exp/log/t.JOB.log", "echo", "x$FROM_PATH_SH", "JOB", ";", "test", "JOB", "-ne", "3"],
        env, work,
    )  # fmt: skip
    assert p.returncode == 1
    assert "slurm.pl: 1 / 3 failed, log is in exp/log/t.*.log" in p.stderr
    args = (fake / "sbatch.args").read_text().splitlines()
    qdir = work / "exp" / "log" / "q"
    assert args[0] == "--export=PATH"
    joined = " ".join(args)
    for part in ["--mem-per-cpu 1G", "--cpus-per-task 2", "--job-name myjob", "-p cpu", "--array 1-3%2",
                 f"-o {qdir}/t.log", "--open-mode=append"]:  # fmt: skip
        assert part in joined, part
    assert args[-1] == str(qdir / "t.sh")
    script = (qdir / "t.sh").read_text()
    assert f"cd {work}" in script and ". ./path.sh" in script and "${SLURM_ARRAY_TASK_ID}" in script
    log2 = (work / "exp" / "log" / "t.2.log").read_text().splitlines()
    assert log2[0] == "# echo x$FROM_PATH_SH 2 ; test 2 -ne 3"
    assert "xyes 2" in log2  # path.sh was sourced, JOB replaced
    assert "# SLURM_ARRAY_TASK_ID=2" in log2
    assert log2[-1].startswith("# Ended (code 0)")
    assert (work / "exp" / "log" / "t.3.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    assert "threads=2" in log2[-2]


def test_slurm_pl_default_config_and_single_job(fake_env):
    env, work, fake = fake_env
    p = run(["slurm.pl", "--gpu", "1", "log/one.log", "true"], env, work)
    assert p.returncode == 0, p.stderr
    joined = " ".join((fake / "sbatch.args").read_text().splitlines())
    assert "-p gpu --gres=gpu:1" in joined and "--array" not in joined


def test_slurm_pl_detects_vanished_job(fake_env):
    env, work, _ = fake_env
    env = dict(env, FAKE_NO_RUN="1")
    t0 = time.time()
    p = run(["slurm.pl", "JOB=1:2", "log/v.JOB.log", "true"], env, work)
    assert p.returncode == 1
    assert "gone from the queue" in p.stderr and "2 / 2 failed" in p.stderr
    assert time.time() - t0 < 20


def test_slurm_pl_cancels_on_sigterm(fake_env):
    env, work, fake = fake_env
    env = dict(env, FAKE_NO_RUN="1", FAKE_SQUEUE_OUT="42_1 RUNNING")
    proc = subprocess.Popen(["slurm.pl", "JOB=1:2", "log/c.JOB.log", "true"], env=env, cwd=work, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if (fake / "sbatch.args").exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert (fake / "scancel.args").read_text().split() == ["42"]
    assert "cancelled job 42" in err


def test_queue_pl_qsub_command(fake_env):
    env, work, fake = fake_env
    p = run(["queue.pl", "--mem", "2G", "--max-jobs-run", "1", "JOB=1:2", "log/q.JOB.log", "echo", "JOB"], env, work)
    assert p.returncode == 0, p.stderr
    joined = " ".join((fake / "qsub.args").read_text().splitlines())
    assert joined.startswith("-v PATH -cwd -S /bin/bash -j y")
    assert "-l mem_free=2G,ram_free=2G" in joined and "-t 1:2" in joined and "-tc 1" in joined
    assert "${SGE_TASK_ID}" in (work / "log" / "q" / "q.sh").read_text()
    assert "\n2\n" in (work / "log" / "q.2.log").read_text()


def test_ssh_pl_round_robin(fake_env):
    env, work, fake = fake_env
    (work / ".queue").mkdir()
    (work / ".queue" / "machines").write_text("hostA\nhostB\n")
    p = run(["ssh.pl", "JOB=1:3", "log/s.JOB.log", "echo", "JOB", ";", "test", "JOB", "-ne", "2"], env, work)
    assert p.returncode == 1 and "1 / 3 failed" in p.stderr
    assert sorted((fake / "ssh.hosts").read_text().split()) == ["hostA", "hostA", "hostB"]
    assert "# Ended (code 0)" in (work / "log" / "s.3.log").read_text()


def test_unknown_option_refused(fake_env):
    env, work, _ = fake_env
    p = run(["slurm.pl", "--foo", "1", "log/x.log", "true"], env, work)
    assert p.returncode == 1 and "--foo not described" in p.stderr


def test_slurm_pl_prints_the_error_line_of_a_failed_task(fake_env):
    env, work, _ = fake_env
    cmd = "echo starting JOB; if [ JOB = 2 ]; then echo 'RuntimeError: CUDA out of memory (task JOB)' >&2; exit 1; fi"
    p = run(["slurm.pl", "JOB=1:2", "exp/log/e.JOB.log", "bash", "-c", cmd], env, work)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[-2] == "slurm.pl: RuntimeError: CUDA out of memory (task 2)   [from exp/log/e.2.log]"
    assert lines[-1] == "slurm.pl: 1 / 2 failed, log is in exp/log/e.*.log"


def test_queue_pl_prints_the_error_line_of_a_failed_task(fake_env):
    env, work, _ = fake_env
    cmd = "if [ JOB = 1 ]; then echo 'train.py: error: the following arguments are required: --x'; exit 2; fi"
    p = run(["queue.pl", "JOB=1:2", "log/qe.JOB.log", "bash", "-c", cmd], env, work)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[-2] == "queue.pl: train.py: error: the following arguments are required: --x   [from log/qe.1.log]"
    assert lines[-1] == "queue.pl: 1 / 2 failed, log is in log/qe.*.log"
