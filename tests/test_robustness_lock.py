"""Bad-input catalogue, part 3: two writers on one dir (espnet_cls.lock, cls.sh's lock calls).

Two real processes contend for the same directory: the second refuses at once naming the
holder (pid, host, command, since), or waits when asked; a holder killed with kill -9
leaves no lock, and its note is reported as a stale lock taken over.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robust_helpers import assert_one_clear_error, run_worker  # noqa: E402

from espnet_cls.lock import DirLock, LockError, read_holder  # noqa: E402

HOLD = """
import sys, time
from espnet_cls.lock import DirLock
lock = DirLock(sys.argv[1], command="holder-cmd --stage 2").acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def _holder(d: Path, seconds: float, env: dict) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(d), str(seconds)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_refuses_at_once_naming_the_holder(tmp_path, shell_env):
    d = tmp_path / "exp"
    p = _holder(d, 30, shell_env)
    try:
        t0 = time.time()
        with pytest.raises(LockError) as ei:
            DirLock(str(d), command="second").acquire()
        assert time.time() - t0 < 2
        msg = str(ei.value)
        assert msg.startswith(f"{d / '.lock'}: ")
        for part in (f"pid {p.pid}", f"host {socket.gethostname()}", "holder-cmd --stage 2", "since ", "--lock_wait true"):
            assert part in msg, (part, msg)
        assert read_holder(str(d / ".lock"))["pid"] == p.pid  # the refused run changed nothing
    finally:
        p.kill()
        p.wait()


def test_wait_blocks_until_the_holder_is_done(tmp_path, shell_env, caplog):
    d = tmp_path / "dump"
    p = _holder(d, 1.5, shell_env)
    t0 = time.time()
    with DirLock(str(d), command="waiter", wait=True):
        waited = time.time() - t0
        assert read_holder(str(d / ".lock"))["command"] == "waiter"
    p.wait()
    assert waited >= 0.5
    assert any("waiting for it to finish" in r.getMessage() for r in caplog.records)
    assert (d / ".lock").read_text() == ""  # clean release clears the note


def test_holder_killed_with_sigkill_is_a_stale_lock_taken_over(tmp_path, shell_env, caplog):
    d = tmp_path / "exp"
    p = _holder(d, 60, shell_env)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert read_holder(str(d / ".lock"))["pid"] == p.pid  # the note survives the kill
    with DirLock(str(d), command="next"):
        pass
    msgs = [r.getMessage() for r in caplog.records]
    assert any("taking over the stale lock" in m and f"pid {p.pid}" in m and "that process is gone" in m for m in msgs), msgs


def test_lock_entry_point_on_an_inherited_descriptor(tmp_path, shell_env, capsys):
    d = tmp_path / "dump"
    p = _holder(d, 30, shell_env)
    try:
        fd = os.open(d / ".lock", os.O_RDWR)
        rc, out = run_worker("lock", ["--fd", str(fd), "--command", "cls.sh --stage 3", str(d)], capsys)
        os.close(fd)
        assert rc == 1
        assert_one_clear_error(out, str(d / ".lock"), f"pid {p.pid}", "holder-cmd")
    finally:
        p.kill()
        p.wait()


@pytest.fixture()
def recipe(tmp_path, repo_root):
    """A scratch recipe whose stage 1 (local/data.sh) sleeps, so two runs overlap."""
    r = tmp_path / "recipe"
    r.mkdir()
    for f in ["cls.sh", "path.sh", "cmd.sh"]:
        shutil.copy(repo_root / f, r / f)
    shutil.copytree(repo_root / "utils", r / "utils", symlinks=True)
    (r / "local").mkdir()
    (r / "local" / "data.sh").write_text("#!/usr/bin/env bash\nsleep \"${SLEEP:-3}\"\n")
    os.chmod(r / "local" / "data.sh", 0o755)
    return r


ARGS = ["--train_set", "t", "--valid_set", "v", "--test_sets", "x", "--stop_stage", "1"]


def test_two_cls_sh_runs_on_one_dump(recipe, shell_env):
    env = dict(shell_env, SLEEP="4")
    first = subprocess.Popen(["bash", "cls.sh", *ARGS], cwd=recipe, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):  # until the first run holds dump/.lock
            if (recipe / "dump/.lock").exists() and (recipe / "dump/.lock").read_text().strip():
                break
            time.sleep(0.1)
        note = json.loads((recipe / "dump/.lock").read_text())
        t0 = time.time()
        second = subprocess.run(["bash", "cls.sh", *ARGS], cwd=recipe, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert time.time() - t0 < 3.5  # refused at once, not after the first run
        out = second.stdout + second.stderr
        assert_one_clear_error(out, "dump is in use by another run", f"pid {note['pid']}", "cls.sh --train_set t")
        assert "Successfully finished" not in out
        waiter = subprocess.run(["bash", "cls.sh", *ARGS, "--lock_wait", "true"], cwd=recipe, env=dict(env, SLEEP="0"),
                                capture_output=True, text=True, timeout=60)
        assert waiter.returncode == 0, waiter.stdout + waiter.stderr
        assert first.poll() is not None  # the waiter got the lock only after the first run ended
        assert "waiting for it to finish" in waiter.stdout + waiter.stderr
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0
    assert (recipe / "dump/.lock").read_text() == ""  # released cleanly
