"""``run.pl`` and ``stdout.pl``: run Kaldi-style (array) jobs on this machine.

``run.pl [options] [JOB=a:b] <log> <command...>`` runs one bash process per task, at most
``--max-jobs-run`` at once, each writing its own log (format in :mod:`espnet_cls.kaldi.jobs`).
Exit status 0 when every task succeeded, else 1 with ``run.pl: k / n failed, log is in <log*>``.

Options: ``--max-jobs-run N`` (default as Kaldi: the number of CPUs, raised to the number of tasks when
that is below 1.4 x CPUs; with ``--gpu N>0`` the number of GPUs from ``nvidia-smi -L``),
``--pick all|failed|incomplete|none`` (rerun only some tasks, judged from their old logs),
``--num_threads N`` (only written to the Accounting line); ``--gpu``, ``--mem``, ``--time``,
``--config`` and any other option are accepted and ignored, as in Kaldi.

``stdout.pl`` is the same but also copies every task's output to its own stdout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Set

from espnet_cls.kaldi.jobs import (
    JobRequest,
    UsageError,
    ended_code,
    ensure_parent,
    log_footer,
    log_header,
    main_wrapper,
    parse_job_args,
    report_failures,
)

PICK_VALUES = ("all", "none", "failed", "incomplete")


def count_gpus() -> int:
    """Number of GPUs listed by ``nvidia-smi -L`` (0 when it is missing or fails)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.strip())


def default_max_jobs(num_jobs: int, gpus: int) -> int:
    """Kaldi's default parallelism: CPUs (or GPUs with ``--gpu``), rounded up to num_jobs when close."""
    if gpus > 0:
        n = count_gpus()
        if n == 0:
            print("run.pl: Warning: failed to detect number of GPUs from nvidia-smi, using 1", file=sys.stderr)
            n = 1
        return n
    n = os.cpu_count() or 10
    if n < num_jobs < 1.4 * n:
        n = num_jobs
    return n


def should_run(logfile: str, pick: str) -> Optional[int]:
    """Kaldi's ``--pick``: None to run the task, else the status to report without running it."""
    if pick == "all" or not os.path.exists(logfile):
        return None
    code = ended_code(logfile)
    if code is None:
        return None  # incomplete tasks always run
    if code == 0:
        return 0
    return None if pick == "failed" else 1


class LocalRunner:
    """Runs the tasks of one JobRequest; ``tee`` copies their output to our stdout."""

    def __init__(self, req: JobRequest, tee: bool = False) -> None:
        self.req = req
        self.tee = tee
        self.threads = req.int_option("num_threads", 1)
        self.gpus = req.int_option("gpu", 0)
        self.pick = req.options.get("pick", "all")
        if self.pick not in PICK_VALUES:
            raise UsageError(f"{req.prog}: ERROR: --pick argument must be one of 'all', 'none', 'failed' or 'incomplete'")
        self._procs: Set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._stopping = False

    def run_task(self, task: int) -> int:
        """Run one task; returns its bash exit status (0 = success)."""
        req = self.req
        logfile = req.log_for(task)
        cmd = req.command_for(task)
        skip = should_run(logfile, self.pick)
        if skip is not None:
            return skip
        if self._stopping:
            return 1
        extra = []
        if self.gpus > 0:
            extra.append(f"Note: {req.prog} ignores --gpu {self.gpus}: the job runs on this host as it is")
        try:
            ensure_parent(logfile)
            with open(logfile, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(log_header(cmd, extra))
        except OSError as e:
            print(f"{req.prog}: Error opening log file {logfile}: {e.strerror}", file=sys.stderr)
            return 1
        t0 = int(time.time())
        with open(logfile, "ab") as f:
            proc = subprocess.Popen(
                ["bash", "-c", cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.tee else f,
                stderr=subprocess.STDOUT if self.tee else f,
            )
            with self._lock:
                self._procs.add(proc)
            if self.tee:
                assert proc.stdout is not None
                while True:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    f.write(chunk)
                    f.flush()
                    with self._out_lock:
                        sys.stdout.buffer.write(chunk)
                        sys.stdout.flush()
            rc = proc.wait()
            with self._lock:
                self._procs.discard(proc)
        elapsed = int(time.time()) - t0
        with open(logfile, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(log_footer(rc, elapsed, self.threads))
        return rc

    def terminate(self) -> None:
        """Stop starting tasks and send SIGTERM to the running ones."""
        self._stopping = True
        with self._lock:
            for p in list(self._procs):
                try:
                    p.terminate()
                except OSError:
                    pass

    def run(self) -> int:
        """Run all tasks; returns the number that failed."""
        req = self.req
        max_jobs = req.max_jobs_run or default_max_jobs(req.num_jobs, self.gpus)
        with ThreadPoolExecutor(max_workers=max(1, min(max_jobs, req.num_jobs))) as pool:
            codes: List[int] = list(pool.map(self.run_task, req.task_ids()))
        return sum(1 for c in codes if c != 0)


def run_local(prog: str, argv: List[str], tee: bool = False) -> int:
    """Entry point of ``run.pl`` (tee=False) and ``stdout.pl`` (tee=True); returns the exit status."""
    req = parse_job_args(prog, argv)
    runner = LocalRunner(req, tee=tee)

    def on_signal(signum, _frame):
        runner.terminate()
        print(f"{prog}: got signal {signum}, stopped the running tasks", file=sys.stderr)
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        failed = runner.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    report_failures(req, failed)
    return 1 if failed else 0


def main(prog: str, argv: Optional[List[str]] = None, tee: bool = False) -> int:
    """CLI wrapper: usage errors -> message + status 1."""
    return main_wrapper(prog, lambda p, a: run_local(p, a, tee=tee), sys.argv[1:] if argv is None else argv, __doc__ or "")
