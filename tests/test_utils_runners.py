"""run.pl / stdout.pl as executables; command joining and option parsing of the runners."""

import re
import subprocess

import pytest

from espnet_cls.kaldi.jobs import UsageError, join_command, parse_job_args


def run(args, env, cwd=None):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_join_command_like_kaldi():
    assert join_command(["echo", "a b", 'say "hi"', "|", "x"]) == "echo \"a b\" 'say \"hi\"' | x"
    assert join_command(["echo", ""]) == 'echo ""'


def test_parse_job_args():
    r = parse_job_args("run.pl", ["--mem", "2G", "JOB=2:4", "--num-threads", "3", "log/a.JOB.log", "echo", "JOB"])
    assert (r.jobname, r.start, r.end, r.logfile) == ("JOB", 2, 4, "log/a.JOB.log")
    assert r.options == {"mem": "2G", "num_threads": "3"}
    assert r.command_for(3) == "echo 3" and r.log_pattern() == "log/a.*.log"
    with pytest.raises(UsageError, match="just one log file"):
        parse_job_args("run.pl", ["JOB=1:2", "log/a.log", "echo"])
    with pytest.raises(UsageError, match="strictly positive"):
        parse_job_args("run.pl", ["JOB=0:2", "log/a.JOB.log", "echo"])


def test_run_pl_array_logs_and_failures(tmp_path, shell_env):
    p = run(["run.pl", "JOB=1:3", "log/x.JOB.log", "echo", "task", "JOB", ";", "test", "JOB", "-ne", "2"], shell_env, tmp_path)
    assert p.returncode == 1
    assert "run.pl: 1 / 3 failed, log is in log/x.*.log" in p.stderr
    for i in (1, 2, 3):
        log = (tmp_path / "log" / f"x.{i}.log").read_text().splitlines()
        assert log[0] == f"# echo task {i} ; test {i} -ne 2"
        assert log[1].startswith("# Started at ")
        assert f"task {i}" in log
        assert re.match(r"# Accounting: time=\d+ threads=1", log[-2])
        assert log[-1].startswith(f"# Ended (code {1 if i == 2 else 0}) at ")


def test_run_pl_success_and_single_job_failure(tmp_path, shell_env):
    p = run(["run.pl", "JOB=1:2", "log/ok.JOB.log", "true"], shell_env, tmp_path)
    assert p.returncode == 0 and p.stderr == ""
    p = run(["run.pl", "log/one.log", "bash", "-c", "exit 3"], shell_env, tmp_path)
    assert p.returncode == 1
    assert "run.pl: job failed, log is in log/one.log" in p.stderr
    assert "# Ended (code 3)" in (tmp_path / "log" / "one.log").read_text()


def test_run_pl_max_jobs_run_limits_concurrency(tmp_path, shell_env):
    # each task records the number of tasks running at the same time (mkdir-based lock-free count)
    script = tmp_path / "task.sh"
    script.write_text(
        "#!/bin/bash\n"
        'touch "running.$1"; n=$(ls running.* | wc -l); echo "$n" > "peak.$1"; sleep 0.3; rm "running.$1"\n'
    )
    script.chmod(0o755)
    p = run(["run.pl", "--max-jobs-run", "2", "JOB=1:6", "log/c.JOB.log", str(script), "JOB"], shell_env, tmp_path)
    assert p.returncode == 0, p.stderr
    peaks = [int((tmp_path / f"peak.{i}").read_text()) for i in range(1, 7)]
    assert max(peaks) <= 2
    p = run(["run.pl", "--max-jobs-run", "6", "JOB=1:6", "log/c.JOB.log", str(script), "JOB"], shell_env, tmp_path)
    peaks = [int((tmp_path / f"peak.{i}").read_text()) for i in range(1, 7)]
    assert max(peaks) > 2


def test_run_pl_accepts_gpu_and_quotes(tmp_path, shell_env):
    p = run(["run.pl", "--gpu", "1", "--mem", "4G", "log/g.log", "echo", "a  b", "|", "tr", "a", "A"], shell_env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "A  b" in (tmp_path / "log" / "g.log").read_text()


def test_stdout_pl_tees(tmp_path, shell_env):
    p = run(["stdout.pl", "log/s.log", "echo", "hello"], shell_env, tmp_path)
    assert p.returncode == 0
    assert p.stdout == "hello\n"
    assert "hello" in (tmp_path / "log" / "s.log").read_text()


def test_run_pl_pick_failed_reruns_only_failed(tmp_path, shell_env):
    marker = tmp_path / "ok2"
    cmd = ["run.pl", "JOB=1:3", "log/p.JOB.log", "echo", "ran", "JOB", ";", "test", "JOB", "-ne", "2", "-o", "-e", str(marker)]
    assert run(cmd, shell_env, tmp_path).returncode == 1
    before = {i: (tmp_path / "log" / f"p.{i}.log").read_text() for i in (1, 3)}
    marker.touch()
    p = run(["run.pl", "--pick", "failed", *cmd[1:]], shell_env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "# Ended (code 0)" in (tmp_path / "log" / "p.2.log").read_text()
    assert {i: (tmp_path / "log" / f"p.{i}.log").read_text() for i in (1, 3)} == before  # not rerun


def test_run_pl_prints_the_failed_tasks_error_line_first(tmp_path, shell_env):
    (tmp_path / "t.py").write_text(
        "import sys\nprint('working on', sys.argv[1])\ndef f():\n    raise ValueError('bad value ' + sys.argv[1])\n"
        "if sys.argv[1] == '2':\n    f()\n"
    )
    p = run(["run.pl", "JOB=1:3", "log/x.JOB.log", "python3", "t.py", "JOB"], shell_env, tmp_path)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[-2] == "run.pl: ValueError: bad value 2   [from log/x.2.log]"
    assert lines[-1] == "run.pl: 1 / 3 failed, log is in log/x.*.log"  # Kaldi's line is kept, last


def test_run_pl_error_line_of_a_single_job_and_fallback(tmp_path, shell_env):
    cmd = "echo 'LOG (prog[5.5]:main():x.cc:1) starting'; echo 'ERROR (prog[5.5]:main():x.cc:9) No such file foo.ark' >&2; echo done; exit 1"
    p = run(["run.pl", "log/one.log", "bash", "-c", cmd], shell_env, tmp_path)
    assert p.stderr.splitlines() == [
        "run.pl: ERROR (prog[5.5]:main():x.cc:9) No such file foo.ark   [from log/one.log]",
        "run.pl: job failed, log is in log/one.log",
    ]
    p = run(["run.pl", "log/two.log", "bash", "-c", "echo 'nothing to see'; exit 4"], shell_env, tmp_path)
    assert p.stderr.splitlines()[0] == "run.pl: nothing to see   [from log/two.log]"  # no error-like line: the last one
    p = run(["run.pl", "log/three.log", "bash", "-c", "exit 4"], shell_env, tmp_path)
    assert p.stderr.splitlines() == ["run.pl: job failed, log is in log/three.log"]  # the command printed nothing


def test_error_line_picks(tmp_path):
    from espnet_cls.kaldi.jobs import error_line

    log = tmp_path / "a.log"
    log.write_text(
        "# python x.py\n# Started at now\n#\nusage: x.py [-h]\nx.py: error: argument --n: invalid int value: 'a'\n"
        "# Accounting: time=0 threads=1\n# Ended (code 2) at now, elapsed time 0 seconds\n"
    )
    assert error_line(str(log)) == "x.py: error: argument --n: invalid int value: 'a'"
    log.write_text("# c\n#\nwriting\nOSError: [Errno 28] No space left on device\nlater cleanup line\n# Ended (code 1) at x\n")
    assert error_line(str(log)) == "OSError: [Errno 28] No space left on device"
    assert error_line(str(tmp_path / "missing.log")) is None
