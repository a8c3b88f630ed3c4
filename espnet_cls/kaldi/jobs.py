"""Shared parts of the Kaldi job runners (``run.pl``, ``stdout.pl``, ``queue.pl``, ``slurm.pl``, ``ssh.pl``).

Command line (Kaldi's)::

    <runner> [options] [JOB=a:b | JOB=a] [options] <log> <command> [<args>...]

* ``JOB`` may be any identifier; every occurrence of it (plain substring, as in Kaldi) in the log
  name and the joined command is replaced by the task number.
* Options are ``--name value`` or ``--name=value`` (dashes and underscores equivalent in the name),
  single-dash options (``-V``, ``-pe smp 4``, ``-tc N``, ...) are kept raw for the batch system.
* The command words are joined as Kaldi does: a word without white space is used as it is (so
  ``\\|`` and ``\\>`` given as separate words act as shell operators), a word with white space is put in
  single quotes if it contains a double quote, else in double quotes.  The result runs with bash.

Log format (one file per task)::

    # <joined command>
    # Started at <date>
    #
    <stdout and stderr of the command>
    # Accounting: time=<s> threads=<n>
    # Ended (code <rc>) at <date>, elapsed time <s> seconds
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

ARRAY_RE = re.compile(r"^([A-Za-z_]\w*)=(\d+):(\d+)$")
SINGLE_RE = re.compile(r"^([A-Za-z_]\w*)=(\d+)$")
ENDED_RE = re.compile(r"^# Ended \(code (\d+)(?:; signal (\d+))?\)")
# Options that take no value / two values (SGE style), everything else takes one value.
_FLAG_OPTS = {"-V"}
_TWO_VALUE_OPTS = {"-pe"}


class UsageError(Exception):
    """Bad command line for a job runner (the runner prints it and exits 1)."""


@dataclass
class JobRequest:
    """A parsed runner command line.

    options: ``--name value`` options, name normalised to underscores (``max_jobs_run`` excluded).
    raw_opts: single-dash options, kept in order for the batch system.
    """

    prog: str
    logfile: str
    words: List[str]
    jobname: Optional[str] = None
    start: int = 1
    end: int = 1
    max_jobs_run: Optional[int] = None
    options: Dict[str, str] = field(default_factory=dict)
    raw_opts: List[str] = field(default_factory=list)

    @property
    def num_jobs(self) -> int:
        """Number of tasks."""
        return self.end - self.start + 1

    @property
    def is_array(self) -> bool:
        """True when a ``JOB=a:b`` (or ``JOB=a``) spec was given."""
        return self.jobname is not None

    @property
    def command(self) -> str:
        """The joined command line, with ``JOB`` not yet replaced."""
        return join_command(self.words)

    def task_ids(self) -> List[int]:
        """The task numbers, in order."""
        return list(range(self.start, self.end + 1))

    def subst(self, text: str, task: int) -> str:
        """Replace the job name by ``task`` in ``text`` (no-op without a job spec)."""
        return text.replace(self.jobname, str(task)) if self.jobname else text

    def log_for(self, task: int) -> str:
        """Log file of one task."""
        return self.subst(self.logfile, task)

    def command_for(self, task: int) -> str:
        """Joined command of one task."""
        return self.subst(self.command, task)

    def log_pattern(self) -> str:
        """The log name with the job name replaced by ``*`` (for failure messages)."""
        if self.jobname is None:
            return self.logfile
        if self.num_jobs == 1:
            return self.log_for(self.start)
        return self.logfile.replace(self.jobname, "*")

    def int_option(self, name: str, default: int) -> int:
        """An integer option (e.g. ``num_threads``), ``default`` when absent."""
        value = self.options.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError as e:
            raise UsageError(f"{self.prog}: option --{name} needs an integer, got '{value}'") from e


def join_command(words: List[str]) -> str:
    """Join command words the way Kaldi's runners do (see module docstring)."""
    out = []
    for w in words:
        if re.fullmatch(r"\S+", w):
            out.append(w)
        elif '"' in w:
            out.append(f"'{w}'")
        else:
            out.append(f'"{w}"')
    return " ".join(out)


def normalise_option(switch: str) -> str:
    """``--num-threads`` -> ``num_threads``."""
    return switch.lstrip("-").replace("-", "_")


def parse_job_args(prog: str, argv: List[str]) -> JobRequest:
    """Parse ``[options] [JOB=a:b] [options] <log> <command...>`` (Kaldi's grammar).

    Raises UsageError on a bad command line.
    """
    args = list(argv)
    options: Dict[str, str] = {}
    raw: List[str] = []
    max_jobs: Optional[int] = None
    jobname: Optional[str] = None
    start = end = 1
    stop = False
    for _ in range(2):  # options may come before and after the JOB spec
        while not stop and len(args) >= 2 and args[0].startswith("-"):
            switch = args.pop(0)
            if switch == "--":
                stop = True
                break
            if switch in _FLAG_OPTS:
                raw.append(switch)
                continue
            if switch.startswith("--") and "=" in switch:
                switch, value = switch.split("=", 1)
            else:
                value = args.pop(0)
            if switch in ("--max-jobs-run", "--max_jobs_run", "-tc"):
                try:
                    n = int(value)
                except ValueError as e:
                    raise UsageError(f"{prog}: invalid option {switch} {value}") from e
                if n <= 0:
                    raise UsageError(f"{prog}: invalid option {switch} {value}")
                max_jobs = n if max_jobs is None else min(max_jobs, n)
            elif switch.startswith("--"):
                options[normalise_option(switch)] = value
            elif switch in _TWO_VALUE_OPTS:
                if not args:
                    raise UsageError(f"{prog}: option {switch} needs two values")
                raw += [switch, value, args.pop(0)]
            else:
                raw += [switch, value]
        if args and jobname is None:
            m = ARRAY_RE.match(args[0])
            m1 = SINGLE_RE.match(args[0])
            if m:
                jobname, start, end = m.group(1), int(m.group(2)), int(m.group(3))
                if start > end:
                    raise UsageError(f"{prog}: invalid job range {args[0]}")
                if start <= 0:
                    raise UsageError(
                        f"{prog}: invalid job range {args[0]}, start must be strictly positive "
                        "(this is required for GridEngine compatibility)."
                    )
                args.pop(0)
            elif m1:
                jobname, start = m1.group(1), int(m1.group(2))
                end = start
                args.pop(0)
            elif re.match(r".+=.*:.*$", args[0]):
                print(f"{prog}: Warning: suspicious first argument to {prog}: {args[0]}", file=sys.stderr)
    if len(args) < 2:
        raise UsageError(f"usage: {prog} [options] [JOB=1:N] <log-file> <command> [<args>...]")
    logfile = args.pop(0)
    if jobname is not None and jobname not in logfile and end > start:
        raise UsageError(
            f"{prog}: you are trying to run a parallel job but you are putting the output into just "
            f"one log file ({logfile})"
        )
    return JobRequest(
        prog=prog,
        logfile=logfile,
        words=args,
        jobname=jobname,
        start=start,
        end=end,
        max_jobs_run=max_jobs,
        options=options,
        raw_opts=raw,
    )


def date_str(t: Optional[float] = None) -> str:
    """``date``'s default format in the C locale, e.g. ``Thu Nov 26 05:42:04 UTC 2026``."""
    return time.strftime("%a %b %e %H:%M:%S %Z %Y", time.localtime(t))


def log_header(cmd: str, extra: Optional[List[str]] = None) -> str:
    """The first lines of a task log."""
    lines = [f"# {cmd}", f"# Started at {date_str()}"]
    lines += [f"# {x}" for x in extra or []]
    lines.append("#")
    return "\n".join(lines) + "\n"


def log_footer(returncode: int, elapsed: int, threads: int) -> str:
    """The last two lines of a task log.  A negative ``returncode`` means killed by that signal."""
    code = f"code {returncode}" if returncode >= 0 else f"code {128 - returncode}; signal {-returncode}"
    return (
        f"# Accounting: time={elapsed} threads={threads}\n"
        f"# Ended ({code}) at {date_str()}, elapsed time {elapsed} seconds\n"
    )


def ended_code(logfile: str) -> Optional[int]:
    """The exit code in a task log's last ``# Ended (code N)`` line (or ``# Finished ... status N``); None if absent."""
    try:
        with open(logfile, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in reversed(lines[-20:] if len(lines) > 20 else lines):
        m = ENDED_RE.match(line)
        if m:
            return int(m.group(1))
        m = re.match(r"^# Finished at .* with status (\d+)", line)
        if m:
            return int(m.group(1))
    return None


_ERROR_RE = re.compile(
    r"(^|[\s:(\[])(ERROR|Error|error|FATAL|Fatal|fatal)\b"  # Kaldi's "ERROR (...)", argparse's "x: error: ..."
    r"|^\w+(\.\w+)*(Error|Exception|Interrupt|Exit)\b"  # a Python exception line
    r"|No space left on device|Killed|Segmentation fault|command not found|No such file or directory"
)


def error_line(logfile: str) -> Optional[str]:
    """The line of a failed task's log a user should read first, or None (no log, or nothing in it).

    The last line that looks like an error (``ERROR ...``, ``... error: ...``, a Python exception line such as
    the final line of a traceback, ``No space left on device``, ...); else the last line the command printed.
    """
    try:
        with open(logfile, encoding="utf-8", errors="replace") as f:
            lines = [ln.rstrip("\n") for ln in f]
    except OSError:
        return None
    body = []
    header = True
    for ln in lines:
        if header:
            header = ln.startswith("#")  # "# <command>", "# Started at ...", "#"
            if header:
                continue
        if ln.startswith(("# Accounting:", "# Ended (", "# Finished at")):
            continue
        if ln.strip():
            body.append(ln.strip())
    for ln in reversed(body):
        if _ERROR_RE.search(ln) and not ln.startswith(("File ", "Traceback (most recent call last)")):
            return ln[:500]
    return body[-1][:500] if body else None


def report_failures(req: JobRequest, failed: int) -> None:
    """Print the first failed task's error line, then Kaldi's failure line, on stderr (nothing when no failure)."""
    if failed == 0:
        return
    bad = [t for t in req.task_ids() if ended_code(req.log_for(t)) not in (0, None)]
    if bad:
        log = req.log_for(bad[0])
        line = error_line(log)
        if line:
            more = f" (and {len(bad) - 1} more failed)" if len(bad) > 1 else ""
            print(f"{req.prog}: {line}   [from {log}{more}]", file=sys.stderr)
    if req.num_jobs == 1:
        print(f"{req.prog}: job failed, log is in {req.log_pattern()}", file=sys.stderr)
    else:
        print(f"{req.prog}: {failed} / {req.num_jobs} failed, log is in {req.log_pattern()}", file=sys.stderr)


def ensure_parent(path: str) -> None:
    """``mkdir -p $(dirname path)``."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)


def main_wrapper(prog: str, fn, argv: List[str], doc: str = "") -> int:
    """Run ``fn(prog, argv)``; turn UsageError into a message on stderr and exit status 1.

    ``--help``/``-h`` as the only argument prints ``doc`` (the runner's module docstring) and this module's.
    """
    if argv in (["--help"], ["-h"]):
        print(f"{prog}: Kaldi-compatible job runner.\n{doc}\n{__doc__}")
        return 0
    try:
        return fn(prog, argv)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 1
