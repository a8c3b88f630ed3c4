"""One writer per directory: an advisory ``flock`` on ``<dir>/.lock`` that names its holder.

A second run that would write the same dump or experiment dir refuses at once, naming the
holder (pid, host, command, since when), or waits for it when asked (``wait=True``;
``cls.sh --lock_wait true``). The lock is the kernel's ``flock`` on the open lock file, so
it ends with the process (and its children that inherited the descriptor): a run killed
with ``kill -9`` leaves no lock, only its holder note, which the next run reports as a
stale lock it takes over.

The lock file holds one JSON line, the holder note: ``{"pid", "host", "command",
"since"}``; an empty file means a clean release.

Two ways to hold it:

- in Python: ``with DirLock("exp/cls_x", command="..."):`` (the lock lives as long as
  the ``with`` block);
- from bash (cls.sh): open the file on a descriptor the shell keeps, and let
  ``python -m espnet_cls.bin.lock --fd N DIR`` take the lock on that descriptor; the lock
  then lasts as long as the shell (see :func:`lock_fd`)::

      exec {fd}>>"${dir}/.lock"
      python -m espnet_cls.bin.lock --fd "${fd}" --command "$0 $*" "${dir}"
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from typing import Optional

from espnet_cls.fileio import DataError

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class LockError(DataError):
    """The directory is locked by another writer."""


def lock_path(directory: str) -> str:
    """The lock file of ``directory``."""
    return os.path.join(directory, LOCK_NAME)


def _note(command: str, pid: Optional[int] = None) -> dict:
    return {
        "pid": os.getpid() if pid is None else int(pid),
        "host": socket.gethostname(),
        "command": command,
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "since_epoch": time.time(),
    }


def read_holder(path: str) -> Optional[dict]:
    """The holder note of a lock file, or None (empty, missing or unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        note = json.loads(text.splitlines()[0])
    except ValueError:
        return {"raw": text[:200]}
    return note if isinstance(note, dict) else {"raw": text[:200]}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError, TypeError):
        return False
    return True


def describe(note: Optional[dict]) -> str:
    """``pid 123 on host h since <time> (<age> ago): <command>``."""
    if not note:
        return "an unknown process (no holder note)"
    if "raw" in note:
        return f"an unknown process (holder note: {note['raw']!r})"
    age = ""
    if isinstance(note.get("since_epoch"), (int, float)):
        s = max(0, int(time.time() - note["since_epoch"]))
        age = f" ({s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s ago)" if s >= 3600 else f" ({s // 60}m{s % 60:02d}s ago)"
    return f"pid {note.get('pid')} on host {note.get('host')} since {note.get('since')}{age}: {note.get('command')}"


def _flock_nb(fd: int, path: str, grace: float = 5.0) -> None:
    """``flock(LOCK_EX | LOCK_NB)``; while the noted holder is a dead process of this host (its
    children still exiting after a kill -9 of the whole group), retry for up to ``grace`` s."""
    t0 = time.time()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = read_holder(path)
            dead = bool(holder and holder.get("host") == socket.gethostname() and holder.get("pid") and not pid_alive(holder["pid"]))
            if not dead or time.time() - t0 > grace:
                raise
            time.sleep(0.1)


def _write_note(fd: int, note: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(note) + "\n").encode("utf-8"), 0)
    os.fsync(fd)


def lock_fd(
    fd: int, directory: str, command: str = "", wait: bool = False, what: Optional[str] = None, pid: Optional[int] = None
) -> None:
    """Take the exclusive lock of ``directory`` on the open descriptor ``fd`` of its lock file.

    Refuses at once (:class:`LockError` naming the holder) when another process holds it,
    unless ``wait``, which blocks until it is released. A holder note left by a process
    that is gone (killed) is reported as a stale lock taken over. ``pid``: the process the
    note names as holder (default: this one; from bash, the shell that keeps ``fd``).
    """
    path = lock_path(directory)
    what = what or directory
    try:
        _flock_nb(fd, path)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        holder = read_holder(path)
        extra = ""
        if holder and holder.get("host") == socket.gethostname() and holder.get("pid") and not pid_alive(holder["pid"]):
            extra = " (that process is gone, but a child of it still holds the lock)"
        if not wait:
            raise LockError(
                f"{what} is in use by another run: {describe(holder)}{extra}. Wait for it to finish, "
                "or ask to wait for it (cls.sh --lock_wait true)",
                path,
            ) from None
        logger.warning("%s is in use by %s%s; waiting for it to finish", what, describe(holder), extra)
        t0 = time.time()
        fcntl.flock(fd, fcntl.LOCK_EX)
        logger.info("got the lock of %s after %.0f s", what, time.time() - t0)
    else:
        holder = read_holder(path)
        if holder:
            gone = "pid" in holder and holder.get("host") == socket.gethostname() and not pid_alive(holder["pid"])
            why = "that process is gone" if gone else "it no longer holds it"
            logger.warning("taking over the stale lock of %s left by %s (%s)", what, describe(holder), why)
    _write_note(fd, _note(command, pid))


def release_fd(fd: int) -> None:
    """Clear the holder note (a clean release) and unlock."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)


class DirLock:
    """``with DirLock(dir, command=..., wait=False):`` one writer of ``dir`` at a time."""

    def __init__(self, directory: str, command: str = "", wait: bool = False, what: Optional[str] = None):
        self.directory = str(directory)
        self.command = command
        self.wait = wait
        self.what = what
        self.fd: Optional[int] = None

    def acquire(self) -> DirLock:
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(lock_path(self.directory), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            lock_fd(fd, self.directory, self.command, self.wait, self.what)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            release_fd(self.fd)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
