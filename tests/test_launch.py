"""espnet_cls.bin.launch: command construction, the Slurm env shim, and a real 2-process gloo all-reduce."""

import shutil
import subprocess
import sys

import pytest

from espnet_cls.bin.launch import build_command, first_host, slurm_task_env
from espnet_cls.kaldi.cluster import slurm_cluster_usable

ALLREDUCE = """
import os, sys
import torch
import torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(f"rank {rank} local {os.environ['LOCAL_RANK']} world {world} sum {t.item():g}", flush=True)
dist.destroy_process_group()
if len(sys.argv) > 1 and int(sys.argv[1]) == rank:
    sys.exit(3)
"""


def test_build_command_single_process():
    cmd = build_command("run.pl --name x", "exp/a/train.log", 1, 1, None, ["python", "-m", "t"], "py")
    assert cmd == ["run.pl", "--name", "x", "--gpu", "1", "exp/a/train.log", "python", "-m", "t"]


def test_build_command_local_multi():
    cmd = build_command("run.pl", "l.log", 0, 1, 2, ["python", "t.py"], "py")
    assert cmd == ["run.pl", "--gpu", "0", "l.log", "py", "-m", "espnet_cls.bin.launch", "--local_procs", "2", "--", "python", "t.py"]
    assert build_command("run.pl", "l.log", 4, 1, None, ["x"], "py")[5:9] == ["-m", "espnet_cls.bin.launch", "--local_procs", "4"]
    with pytest.raises(ValueError, match="needs slurm.pl"):
        build_command("run.pl", "l.log", 1, 2, None, ["x"], "py")


def test_build_command_slurm():
    cmd = build_command("slurm.pl --mem 4G", "l.log", 2, 3, None, ["python", "t.py"], "py")
    assert cmd[:10] == ["slurm.pl", "--mem", "4G", "--gpu", "2", "--num_nodes", "3", "--num_tasks", "2", "l.log"]
    assert cmd[10:] == ["srun", "py", "-m", "espnet_cls.bin.launch", "--slurm_task", "--", "python", "t.py"]


def test_slurm_env_contract():
    assert first_host("vm") == "vm"
    assert first_host("gpu[03-05,9],cpu1") == "gpu03"
    assert first_host("a1,b2") == "a1"
    env = slurm_task_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1",
                          "SLURM_JOB_NODELIST": "n[7-8]", "SLURM_JOB_ID": "12"})  # fmt: skip
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"], env["MASTER_PORT"]) == ("3", "4", "1", "n7", "20012")
    with pytest.raises(RuntimeError, match="srun"):
        slurm_task_env({})


SLEEPER = """
import os, sys, time
print(f"rank {os.environ['RANK']} up", flush=True)
if os.environ["RANK"] == sys.argv[1]:
    sys.exit(3)
time.sleep(120)
"""


def _launch(tmp_path, shell_env, extra_args, script_args=(), code=ALLREDUCE):
    script = tmp_path / "script.py"
    script.write_text(code)
    log = tmp_path / "exp" / "train.log"
    p = subprocess.run(
        [sys.executable, "-m", "espnet_cls.bin.launch", *extra_args, "--log", str(log),
         "--", sys.executable, str(script), *script_args],
        env=shell_env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return p, log


def test_local_two_processes_allreduce(tmp_path, shell_env):
    p, log = _launch(tmp_path, shell_env, ["--cmd", "run.pl", "--ngpu", "0", "--num_procs", "2"])
    assert p.returncode == 0, p.stderr + (log.read_text() if log.exists() else "")
    text = log.read_text()
    assert "rank 0 local 0 world 2 sum 3" in text and "rank 1 local 1 world 2 sum 3" in text
    assert text.splitlines()[-1].startswith("# Ended (code 0)")


def test_local_failing_rank_fails_the_job(tmp_path, shell_env):
    # rank 1 fails at once; rank 0 would sleep 120 s unless the launcher stops it
    p, log = _launch(tmp_path, shell_env, ["--cmd", "run.pl", "--num_procs", "2"], script_args=["1"], code=SLEEPER)
    assert p.returncode != 0
    assert "run.pl: job failed" in p.stderr
    text = log.read_text()
    assert "rank 1 failed with status 3" in text and "# Ended (code 3)" in text


@pytest.mark.slurm
def test_slurm_two_tasks_allreduce(tmp_path, shell_env, repo_root):
    if not slurm_cluster_usable():
        pytest.skip("no Slurm cluster (tools/slurm_local.sh up)")
    (tmp_path / "path.sh").write_text(f". {repo_root}/path.sh\n")
    (tmp_path / "conf").mkdir()
    shutil.copy(repo_root / "conf" / "slurm.conf", tmp_path / "conf" / "slurm.conf")
    p, log = _launch(tmp_path, shell_env, ["--cmd", "slurm.pl --name launchtest", "--ngpu", "0", "--num_procs", "2"])
    assert p.returncode == 0, p.stderr + (log.read_text() if log.exists() else "")
    text = log.read_text()
    assert "rank 0 local 0 world 2 sum 3" in text and "rank 1 local 1 world 2 sum 3" in text
    assert "srun" in text.splitlines()[0]
