"""Stage-6 launcher (ESPnet's ``espnet2.bin.launch``): one command line for local and Slurm training.

Usage::

    python -m espnet_cls.bin.launch --cmd "<runner> [runner options]" --log exp/x/train.log \\
        --ngpu N --num_nodes M [--num_procs P] -- python -m espnet_cls.bin.cls_train ...

``P`` (processes per node) defaults to ``max(N, 1)``; the world has ``M * P`` processes.  What runs:

* one process in total: ``<runner> --gpu N <log> <command>``;
* several processes, runner ``slurm.pl``:
  ``slurm.pl --gpu N --num_nodes M --num_tasks P <log> srun <python> -m espnet_cls.bin.launch --slurm_task -- <command>``:
  one batch job over M nodes whose ``srun`` step starts P tasks per node; each task's ``--slurm_task`` shim
  sets the env contract below from Slurm's variables and ``exec``s the command;
* several processes, any other runner (``run.pl``, ``stdout.pl``, ``queue.pl``, ``ssh.pl``; one node only):
  ``<runner> --gpu N <log> <python> -m espnet_cls.bin.launch --local_procs P -- <command>``: one job whose
  process starts P local processes (all their output goes to the one log) and fails as soon as one fails
  (the others are then terminated so they do not hang in a collective).

Environment contract for every training process (what ``espnet_cls.train.distributed`` reads)::

    RANK         global rank, 0 .. WORLD_SIZE-1        (Slurm: SLURM_PROCID)
    WORLD_SIZE   number of processes                   (Slurm: SLURM_NTASKS)
    LOCAL_RANK   rank on this node = GPU index to use  (Slurm: SLURM_LOCALID)
    MASTER_ADDR  host of rank 0                        (Slurm: first host of SLURM_JOB_NODELIST; local: 127.0.0.1)
    MASTER_PORT  rendezvous port                       (Slurm: 20000 + SLURM_JOB_ID mod 20000; local: a free port)

Under Slurm the ``SLURM_*`` variables stay set as well, so a trainer may use either set.
Exit status: the runner's (0 when every process succeeded).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from espnet_cls.cli import run_main, str2bool

LAUNCH = "espnet_cls.bin.launch"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list: ``vm`` -> ``vm``, ``gpu[03-05,9],cpu1`` -> ``gpu03``."""
    nodelist = nodelist.strip()
    m = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if not m:
        raise ValueError(f"cannot parse Slurm node list '{nodelist}'")
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def slurm_task_env(env: Dict[str, str]) -> Dict[str, str]:
    """The env contract (module docstring) computed from one Slurm task's ``SLURM_*`` variables."""
    missing = [v for v in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_NODELIST") if v not in env]
    if missing:
        raise RuntimeError(f"--slurm_task outside a Slurm step: {', '.join(missing)} not set (run it through srun)")
    out = dict(env)
    out["RANK"] = env["SLURM_PROCID"]
    out["WORLD_SIZE"] = env["SLURM_NTASKS"]
    out["LOCAL_RANK"] = env["SLURM_LOCALID"]
    out.setdefault("MASTER_ADDR", first_host(env["SLURM_JOB_NODELIST"]))
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or "0"
    out.setdefault("MASTER_PORT", str(20000 + int(job) % 20000))
    return out


def is_slurm(cmd: Sequence[str]) -> bool:
    """True when the runner is slurm.pl."""
    return bool(cmd) and os.path.basename(cmd[0]) == "slurm.pl"


def build_command(
    cmd: str, log: str, ngpu: int, num_nodes: int, num_procs: Optional[int], command: List[str], python: str
) -> List[str]:
    """The runner command line for the given layout (module docstring).  Raises ValueError on a bad layout."""
    runner = shlex.split(cmd)
    if not runner:
        raise ValueError("--cmd is empty")
    if ngpu < 0 or num_nodes < 1 or (num_procs is not None and num_procs < 1):
        raise ValueError(f"bad layout: --ngpu {ngpu} --num_nodes {num_nodes} --num_procs {num_procs}")
    if not command:
        raise ValueError("no command after --")
    procs = num_procs if num_procs is not None else max(ngpu, 1)
    gpu = ["--gpu", str(ngpu)]
    if num_nodes * procs == 1:
        return [*runner, *gpu, log, *command]
    if is_slurm(runner):
        return [*runner, *gpu, "--num_nodes", str(num_nodes), "--num_tasks", str(procs), log,
                "srun", python, "-m", LAUNCH, "--slurm_task", "--", *command]  # fmt: skip
    if num_nodes > 1:
        raise ValueError(f"--num_nodes {num_nodes} needs slurm.pl (cmd_backend=slurm); {runner[0]} runs on one host")
    return [*runner, *gpu, log, python, "-m", LAUNCH, "--local_procs", str(procs), "--", *command]


def spawn_local(procs: int, command: List[str], poll_s: float = 0.2) -> int:
    """Start ``procs`` local processes with the env contract; wait; returns the first non-zero status (or 0)."""
    base = dict(os.environ)
    base.setdefault("MASTER_ADDR", "127.0.0.1")
    base.setdefault("MASTER_PORT", str(free_port()))
    base["WORLD_SIZE"] = str(procs)
    children: List[subprocess.Popen] = []
    for rank in range(procs):
        env = dict(base, RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(procs))
        children.append(subprocess.Popen(command, env=env))
    print(
        f"launch: started {procs} processes (MASTER_ADDR={base['MASTER_ADDR']} MASTER_PORT={base['MASTER_PORT']}): "
        f"pids {' '.join(str(c.pid) for c in children)}",
        file=sys.stderr,
        flush=True,
    )

    def stop_all(signum=signal.SIGTERM, _frame=None) -> None:
        for c in children:
            if c.poll() is None:
                try:
                    c.send_signal(signum)
                except OSError:
                    pass

    def on_signal(signum, frame):
        stop_all(signum, frame)
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        running = set(range(procs))
        while running:
            for r in sorted(running):
                rc = children[r].poll()
                if rc is None:
                    continue
                running.discard(r)
                if rc != 0 and status == 0:
                    status = rc if rc > 0 else 128 - rc
                    print(f"launch: rank {r} failed with status {rc}; stopping the other ranks", file=sys.stderr, flush=True)
                    stop_all()
            if running:
                time.sleep(poll_s)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return status


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (ESPnet spellings)."""
    p = argparse.ArgumentParser(
        prog="python -m espnet_cls.bin.launch",
        description="Run a (distributed) training command through a Kaldi job runner (run.pl, slurm.pl, ...).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cmd", default="run.pl", help="runner and its options, e.g. 'slurm.pl --mem 8G'")
    p.add_argument("--log", default="exp/train.log", help="log file (one for all processes)")
    p.add_argument("--ngpu", type=int, default=0, help="GPUs per node")
    p.add_argument("--num_nodes", type=int, default=1, help="number of nodes (more than 1 needs slurm.pl)")
    p.add_argument("--num_procs", type=int, default=None, help="processes per node (default: max(ngpu, 1))")
    p.add_argument("--init_file_prefix", default=None,
                   help="accepted for ESPnet compatibility and ignored (the rendezvous is env:// over TCP)")
    p.add_argument("--multiprocessing_distributed", type=str2bool, default=True,
                   help="accepted for ESPnet compatibility and ignored (one process per GPU is always used)")
    p.add_argument("--local_procs", type=int, default=None, help=argparse.SUPPRESS)  # internal: spawn mode
    p.add_argument("--slurm_task", action="store_true", help=argparse.SUPPRESS)  # internal: srun task shim
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- <command> [args...]")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = get_parser().parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise SystemExit("launch: no command given (put it after --)")
    if args.slurm_task:
        env = slurm_task_env(dict(os.environ))
        os.environ.update(env)
        os.execvp(command[0], command)
    if args.local_procs is not None:
        return spawn_local(args.local_procs, command)
    try:
        full = build_command(args.cmd, args.log, args.ngpu, args.num_nodes, args.num_procs, command, sys.executable)
    except ValueError as e:
        raise SystemExit(f"launch: {e}") from e
    os.makedirs(os.path.dirname(args.log) or ".", exist_ok=True)
    print(f"launch: {shlex.join(full)}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.Popen(full)
    except FileNotFoundError as e:
        raise SystemExit(f"launch: runner not found: {e.filename} (is utils/ on PATH? source path.sh)") from e

    def forward(signum, _frame):  # let the runner clean up (slurm.pl cancels its job, run.pl stops its tasks)
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    run_main(main)
