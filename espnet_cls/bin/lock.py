"""Take the one-writer lock of a directory on a descriptor the calling shell keeps open.

    exec {fd}>>"${dir}/.lock"
    python -m espnet_cls.bin.lock --fd "${fd}" --pid $$ --command "$0 $*" [--wait true] "${dir}"

Exit status 0: the shell now holds the lock (until it closes the descriptor or exits).
Exit status 1: another run holds it; the one ERROR line names it (pid, host, since, command).
``--release true`` clears the holder note and unlocks. See espnet_cls.lock.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none
from espnet_cls.lock import lock_fd, release_fd


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description="Lock a dump/exp directory against a second writer (flock on DIR/.lock, on an inherited descriptor).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("directory", help="the directory to lock (its lock file is DIR/.lock)")
    p.add_argument("--fd", type=int, required=True, help="open descriptor of DIR/.lock, kept by the calling shell")
    p.add_argument("--pid", type=int, default=None, help="the holder named in the note (default: the parent process)")
    p.add_argument("--command", type=str_or_none, default="", help="the holder's command line, for the note")
    p.add_argument("--wait", type=str2bool, default=False, help="wait for the holder to finish instead of refusing")
    p.add_argument("--what", type=str_or_none, default=None, help="name used in messages (default: the directory)")
    p.add_argument("--release", type=str2bool, default=False, help="clear the note and unlock instead")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Lock (or release); 1 with one ERROR line when another run holds the lock."""
    import os

    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.release:
        release_fd(args.fd)
        return 0
    pid = args.pid if args.pid is not None else os.getppid()
    lock_fd(args.fd, args.directory, (args.command or "").strip(), args.wait, args.what, pid=pid)
    return 0


if __name__ == "__main__":
    run_main(main)
