"""``slurm.pl``, ``queue.pl`` (Sun Grid Engine) and ``ssh.pl``: Kaldi's batch job runners.

Same command line as ``run.pl`` (see :mod:`espnet_cls.kaldi.jobs`).  What happens:

1. ``--name value`` options are translated to batch-system options by a Kaldi-format config
   (``--config FILE``, else ``conf/slurm.conf`` / ``conf/queue.conf`` when present, else Kaldi's
   built-in default).  Config lines::

       command sbatch --export=PATH          # the submit command and its fixed options
       option mem=* --mem-per-cpu $0         # --mem X  -> --mem-per-cpu X  ($0 is the value)
       option mem=0                          # --mem 0  -> nothing (exact values win over *)
       default gpu=0                         # as if --gpu 0 were given when it is not

   An option the config does not describe is an error, as in Kaldi.  ``--max-jobs-run N`` is special:
   Slurm ``--array a-b%N``, SGE ``-tc N``.  ``--num_threads N`` is also written to the Accounting line.
   Single-dash options (``-pe smp 4``, ``-l ...``) go to the submit command unchanged.
2. A job script ``<logdir>/q/<name>.sh`` is written: it does ``cd <cwd>; . ./path.sh`` (the job sees
   only PATH from the caller: ``--export=PATH`` / ``-v PATH``), replaces the job name by the task id
   (``$SLURM_ARRAY_TASK_ID`` / ``$SGE_TASK_ID``) in the log name and the command, writes the task log in
   Kaldi's format, and touches ``<logdir>/q/done.<pid>.<task>``.
3. The array is submitted (Slurm: ``sbatch ... --open-mode=append -o/-e q/<name>.log --array a-b[%N]``;
   SGE: ``qsub ... -o q/<name>.log -t a:b``), then the runner waits for the sync files, checking every few
   seconds that the job is still known to the scheduler (``squeue -j`` / ``qstat -j``).  A job that is gone
   while tasks never finished (cancelled, killed, node lost) is reported and those tasks count as failed.
4. Exit status 0 when every task's log ends with ``# Ended (code 0)``; else 1 and
   ``slurm.pl: k / n failed, log is in <log with JOB as *>``.
5. SIGINT/SIGTERM cancel the job (``scancel`` / ``qdel``) and exit 130/143.

``ssh.pl`` reads hosts from ``.queue/machines`` (one per line), runs task i on host
``(i - 1) mod #hosts`` as ``ssh <host> bash <script> <task>`` (the same job script; a shared file system
is assumed), at most ``--max-jobs-run`` at once (default: all).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_cls.kaldi.jobs import (
    JobRequest,
    UsageError,
    ended_code,
    main_wrapper,
    parse_job_args,
    report_failures,
)

DEFAULT_SLURM_CONF = """\
command sbatch --export=PATH
option name=* --job-name $0
option time=* --time $0
option mem=* --mem-per-cpu $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option num_nodes=* --nodes $0
option num_tasks=* --ntasks-per-node $0
default num_tasks=1
default gpu=0
option gpu=0 -p shared
option gpu=* -p gpu --gres=gpu:$0 --time 4:0:0
"""

DEFAULT_QUEUE_CONF = """\
command qsub -v PATH -cwd -S /bin/bash -j y -l arch=*64*
option name=* -N $0
option mem=* -l mem_free=$0,ram_free=$0
option mem=0
option num_threads=* -pe smp $0
option num_threads=1
option max_jobs_run=* -tc $0
option num_nodes=* -pe mpi $0
default gpu=0
option gpu=0
option gpu=* -l gpu=$0 -q g.q
"""


@dataclass
class BatchConfig:
    """A parsed Kaldi batch config (``conf/slurm.conf`` / ``conf/queue.conf`` format)."""

    path: str
    command: List[str] = field(default_factory=list)
    exact: Dict[Tuple[str, str], str] = field(default_factory=dict)
    wildcard: Dict[str, str] = field(default_factory=dict)
    defaults: Dict[str, str] = field(default_factory=dict)

    def describes(self, name: str) -> bool:
        """True if the config has any ``option name=...`` line."""
        return name in self.wildcard or any(k[0] == name for k in self.exact)

    def translate(self, options: Dict[str, str]) -> List[str]:
        """Batch-system arguments for the runner's ``--name value`` options (defaults applied).

        Raises UsageError for an option (or value) the config does not describe.
        """
        merged = dict(self.defaults)
        merged.update(options)
        out: List[str] = []
        for name, value in merged.items():
            if (name, value) in self.exact:
                text = self.exact[(name, value)]
            elif name in self.wildcard:
                text = self.wildcard[name].replace("$0", value)
            else:
                raise UsageError(
                    f"Command line option --{name} not described in {self.path} (or value '{value}' not allowed)"
                )
            out += shlex.split(text)
        return out


def parse_batch_config(text: str, path: str) -> BatchConfig:
    """Parse the config text; ``path`` is only used in messages."""
    cfg = BatchConfig(path=path)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if kind == "command":
            cfg.command = shlex.split(rest)
        elif kind in ("option", "default"):
            spec, _, args = rest.partition(" ")
            name, eq, value = spec.partition("=")
            if not eq or not name:
                raise UsageError(f"{path}:{n}: bad line (expected '{kind} name=value ...'): {raw}")
            if kind == "default":
                cfg.defaults[name] = value
            elif value == "*":
                cfg.wildcard[name] = args.strip()
            else:
                cfg.exact[(name, value)] = args.strip()
        else:
            raise UsageError(f"{path}:{n}: unknown line type '{kind}' (expected command/option/default): {raw}")
    if not cfg.command:
        raise UsageError(f"{path}: no 'command' line")
    return cfg


def load_batch_config(req: JobRequest, default_path: str, default_text: str) -> BatchConfig:
    """The config given by ``--config``, else ``default_path`` if it exists, else the built-in text."""
    path = req.options.pop("config", None)
    if path is None and os.path.exists(default_path):
        path = default_path
    if path is None:
        return parse_batch_config(default_text, f"(default {req.prog} config)")
    try:
        with open(path, encoding="utf-8") as f:
            return parse_batch_config(f.read(), path)
    except OSError as e:
        raise UsageError(f"{req.prog}: cannot read config {path}: {e.strerror}") from e


def queue_paths(req: JobRequest) -> Tuple[str, str, str]:
    """(q dir, job script, queue log) for a request, absolute; ``x.JOB.log`` -> ``q/x.sh``, ``q/x.log``."""
    logdir = os.path.dirname(os.path.abspath(req.logfile))
    qdir = os.path.join(logdir, "q")
    base = os.path.basename(req.logfile)
    if req.jobname:
        base = re.sub(r"\.?" + re.escape(req.jobname), "", base)
    base = re.sub(r"\.log$", "", base) or "job"
    return qdir, os.path.join(qdir, base + ".sh"), os.path.join(qdir, base + ".log")


def job_script(req: JobRequest, cwd: str, task_expr: str, sync_prefix: str, threads: int, env_prefix: str) -> str:
    """The bash job script: one task per run, the task id given by ``task_expr`` (e.g. ``${SLURM_ARRAY_TASK_ID}``).

    ``env_prefix``: variables whose names start with it are listed in the log header (``SLURM``, ``SGE``).
    """
    if req.jobname is None:
        task_expr = str(req.start)
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"cd {q(cwd)} || exit 1",
        "if [ -f ./path.sh ]; then . ./path.sh; fi",
        f"_q_task={task_expr}",
        f"_q_log={q(req.logfile)}",
        f"_q_cmd={q(req.command)}",
    ]
    if req.jobname is not None:
        jn = q(req.jobname)
        lines += [f'_q_log=${{_q_log//{jn}/"$_q_task"}}', f'_q_cmd=${{_q_cmd//{jn}/"$_q_task"}}']
    lines += [
        'mkdir -p "$(dirname "$_q_log")"',
        "{",
        "  printf '# %s\\n' \"$_q_cmd\"",
        "  echo \"# Started at $(date)\"",
        "  echo \"# Running on $(hostname)\"",
        f"  set | grep '^{env_prefix}' | sed 's/^/# /'",
        "  echo '#'",
        '} >"$_q_log"',
        "_q_t1=$(date +%s)",
        '( eval "$_q_cmd" ) </dev/null >>"$_q_log" 2>&1',
        "_q_ret=$?",
        "_q_t2=$(date +%s)",
        f'echo "# Accounting: time=$((_q_t2 - _q_t1)) threads={threads}" >>"$_q_log"',
        'echo "# Ended (code $_q_ret) at $(date), elapsed time $((_q_t2 - _q_t1)) seconds" >>"$_q_log"',
        f'touch {q(sync_prefix)}."$_q_task"',
        "exit $((_q_ret ? 1 : 0))",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Backend:
    """How one batch system is driven."""

    prog: str
    conf_path: str
    conf_default: str
    task_expr: str
    env_prefix: str

    def submit_args(self, req: JobRequest, cfg: BatchConfig, qscript: str, qlog: str) -> List[str]:
        """The full submit command line."""
        raise NotImplementedError

    def parse_job_id(self, output: str) -> Optional[str]:
        """The job id from the submit command's output."""
        raise NotImplementedError

    def job_state(self, job_id: str) -> Optional[bool]:
        """True: still queued/running; False: gone; None: could not tell (scheduler error)."""
        raise NotImplementedError

    def cancel(self, job_id: str) -> None:
        """Cancel the job (best effort)."""
        raise NotImplementedError


class SlurmBackend(Backend):
    """Slurm: sbatch --array, squeue -j, scancel."""

    def __init__(self) -> None:
        super().__init__("slurm.pl", "conf/slurm.conf", DEFAULT_SLURM_CONF, "${SLURM_ARRAY_TASK_ID}", "SLURM")

    def submit_args(self, req: JobRequest, cfg: BatchConfig, qscript: str, qlog: str) -> List[str]:
        args = cfg.command + cfg.translate(req.options) + req.raw_opts
        args += ["--open-mode=append", "-e", qlog, "-o", qlog]
        if req.jobname is not None:
            spec = f"{req.start}-{req.end}"
            if req.max_jobs_run:
                spec += f"%{req.max_jobs_run}"
            args += ["--array", spec]
        return args + [qscript]

    def parse_job_id(self, output: str) -> Optional[str]:
        m = re.search(r"Submitted batch job (\d+)", output)
        return m.group(1) if m else None

    def job_state(self, job_id: str) -> Optional[bool]:
        try:
            p = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        if p.returncode != 0:
            return False if "Invalid job id" in p.stderr else None
        return bool(p.stdout.strip())

    def cancel(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], capture_output=True, check=False)


class SgeBackend(Backend):
    """Sun Grid Engine: qsub -t, qstat -j, qdel."""

    def __init__(self) -> None:
        super().__init__("queue.pl", "conf/queue.conf", DEFAULT_QUEUE_CONF, "${SGE_TASK_ID}", "SGE")

    def submit_args(self, req: JobRequest, cfg: BatchConfig, qscript: str, qlog: str) -> List[str]:
        opts = dict(req.options)
        extra: List[str] = []
        if req.max_jobs_run and req.jobname is not None:
            if cfg.describes("max_jobs_run"):
                opts["max_jobs_run"] = str(req.max_jobs_run)
            else:
                extra = ["-tc", str(req.max_jobs_run)]
        args = cfg.command + cfg.translate(opts) + req.raw_opts + ["-o", qlog]
        if req.jobname is not None:
            args += ["-t", f"{req.start}:{req.end}"] + extra
        return args + [qscript]

    def parse_job_id(self, output: str) -> Optional[str]:
        m = re.search(r"Your job(?:-array)? (\d+)", output)
        return m.group(1) if m else None

    def job_state(self, job_id: str) -> Optional[bool]:
        try:
            p = subprocess.run(["qstat", "-j", job_id], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        return p.returncode == 0

    def cancel(self, job_id: str) -> None:
        subprocess.run(["qdel", job_id], capture_output=True, check=False)


def _sleep_schedule() -> float:
    return float(os.environ.get("KALDI_QUEUE_POLL_MAX", "1"))


def wait_for_tasks(
    backend: Backend, req: JobRequest, job_id: str, sync_prefix: str, check_every: float = 5.0, grace: float = 3.0
) -> Dict[int, str]:
    """Wait until every task touched its sync file; returns {task: reason} for tasks that never finished."""
    pending = set(req.task_ids())
    delay = 0.1
    last_check = time.monotonic()
    unknown = 0
    while pending:
        pending = {t for t in pending if not os.path.exists(f"{sync_prefix}.{t}")}
        if not pending:
            break
        if time.monotonic() - last_check >= check_every:
            last_check = time.monotonic()
            state = backend.job_state(job_id)
            unknown = unknown + 1 if state is None else 0
            if state is False or unknown >= 10:
                deadline = time.monotonic() + grace  # let a just-finished task's files appear
                while pending and time.monotonic() < deadline:
                    time.sleep(0.2)
                    pending = {t for t in pending if not os.path.exists(f"{sync_prefix}.{t}")}
                why = "gone from the queue" if state is False else "unknown to the scheduler"
                return {t: f"job {job_id} is {why} but task {t} never finished (cancelled or killed?)" for t in pending}
        time.sleep(delay)
        delay = min(delay * 1.5, _sleep_schedule())
    return {}


def run_batch(backend: Backend, argv: Sequence[str]) -> int:
    """Submit, wait and report (module docstring); returns the exit status."""
    req = parse_job_args(backend.prog, list(argv))
    cfg = load_batch_config(req, backend.conf_path, backend.conf_default)
    threads = req.int_option("num_threads", 1)
    qdir, qscript, qlog = queue_paths(req)
    os.makedirs(qdir, exist_ok=True)
    sync_prefix = os.path.join(qdir, f"done.{os.getpid()}")
    with open(qscript, "w", encoding="utf-8") as f:
        f.write(job_script(req, os.getcwd(), backend.task_expr, sync_prefix, threads, backend.env_prefix))
    os.chmod(qscript, 0o755)
    args = backend.submit_args(req, cfg, qscript, qlog)
    with open(qscript, "a", encoding="utf-8") as f:
        f.write("## submitted with:\n# " + shlex.join(args) + "\n")
    for t in req.task_ids():
        if os.path.exists(f"{sync_prefix}.{t}"):
            os.remove(f"{sync_prefix}.{t}")
    try:
        p = subprocess.run(args, capture_output=True, text=True)
    except OSError as e:
        print(f"{backend.prog}: cannot run {args[0]}: {e.strerror}", file=sys.stderr)
        return 1
    with open(qlog, "a", encoding="utf-8") as f:
        f.write(f"# {shlex.join(args)}\n{p.stdout}{p.stderr}")
    job_id = backend.parse_job_id(p.stdout + p.stderr) if p.returncode == 0 else None
    if job_id is None:
        print(
            f"{backend.prog}: error submitting jobs to queue (return status was {p.returncode})\n"
            f"queue log file is {qlog}, command was {shlex.join(args)}\n{p.stdout}{p.stderr}",
            file=sys.stderr,
            end="",
        )
        return 1

    def on_signal(signum, _frame):
        backend.cancel(job_id)
        print(f"{backend.prog}: got signal {signum}, cancelled job {job_id}", file=sys.stderr)
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        lost = wait_for_tasks(
            backend,
            req,
            job_id,
            sync_prefix,
            check_every=float(os.environ.get("KALDI_QUEUE_CHECK_EVERY", "5")),
            grace=float(os.environ.get("KALDI_QUEUE_GRACE", "3")),
        )
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    failed = 0
    for t in req.task_ids():
        code = ended_code(req.log_for(t))
        if t in lost and code is None:
            print(f"{backend.prog}: {lost[t]}; log is {req.log_for(t)}", file=sys.stderr)
            failed += 1
        elif code is None:
            print(f"{backend.prog}: task {t} finished but its log {req.log_for(t)} has no '# Ended' line", file=sys.stderr)
            failed += 1
        elif code != 0:
            failed += 1
        if os.path.exists(f"{sync_prefix}.{t}"):
            os.remove(f"{sync_prefix}.{t}")
    report_failures(req, failed)
    return 1 if failed else 0


@functools.lru_cache(maxsize=1)
def slurm_cluster_usable() -> bool:
    """True when ``sinfo`` exists and shows a node that can run jobs (idle/mixed/allocated); cached."""
    if shutil.which("sinfo") is None:
        return False
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return p.returncode == 0 and any(s in p.stdout for s in ("idle", "mixed", "allocated"))


def read_machines(path: str = ".queue/machines") -> List[str]:
    """Host names for ssh.pl (one per line, ``#`` comments and blank lines ignored)."""
    try:
        with open(path, encoding="utf-8") as f:
            hosts = [ln.split("#", 1)[0].strip() for ln in f]
    except OSError as e:
        raise UsageError(f"ssh.pl: cannot read {path}: {e.strerror} (one host name per line)") from e
    hosts = [h for h in hosts if h]
    if not hosts:
        raise UsageError(f"ssh.pl: no hosts in {path}")
    return hosts


def run_ssh(argv: Sequence[str]) -> int:
    """``ssh.pl``: run the tasks on the hosts of ``.queue/machines`` over ssh; returns the exit status."""
    req = parse_job_args("ssh.pl", list(argv))
    hosts = read_machines()
    threads = req.int_option("num_threads", 1)
    qdir, qscript, _ = queue_paths(req)
    os.makedirs(qdir, exist_ok=True)
    sync_prefix = os.path.join(qdir, f"done.{os.getpid()}")
    with open(qscript, "w", encoding="utf-8") as f:
        f.write(job_script(req, os.getcwd(), '"$1"', sync_prefix, threads, "SSH_"))
    os.chmod(qscript, 0o755)

    def one(task: int) -> int:
        host = hosts[(task - req.start) % len(hosts)]
        remote = f"bash {shlex.quote(qscript)} {task}"
        p = subprocess.run(["ssh", "-o", "BatchMode=yes", host, remote], stdin=subprocess.DEVNULL, check=False)
        code = ended_code(req.log_for(task))
        if code is None:
            print(f"ssh.pl: task {task} on {host}: ssh exit status {p.returncode}, no '# Ended' line in {req.log_for(task)}", file=sys.stderr)
            return p.returncode or 1
        return code

    with ThreadPoolExecutor(max_workers=max(1, min(req.max_jobs_run or req.num_jobs, req.num_jobs))) as pool:
        codes = list(pool.map(one, req.task_ids()))
    for t in req.task_ids():
        if os.path.exists(f"{sync_prefix}.{t}"):
            os.remove(f"{sync_prefix}.{t}")
    failed = sum(1 for c in codes if c != 0)
    report_failures(req, failed)
    return 1 if failed else 0


def main(prog: str, argv: Optional[List[str]] = None) -> int:
    """CLI of ``slurm.pl`` / ``queue.pl`` / ``ssh.pl``."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--help"], ["-h"]):
        return main_wrapper(prog, lambda _p, _a: 0, args, __doc__ or "")
    if prog == "slurm.pl":
        return main_wrapper(prog, lambda _p, a: run_batch(SlurmBackend(), a), args)
    if prog == "queue.pl":
        return main_wrapper(prog, lambda _p, a: run_batch(SgeBackend(), a), args)
    if prog == "ssh.pl":
        return main_wrapper(prog, lambda _p, a: run_ssh(a), args)
    raise ValueError(prog)
