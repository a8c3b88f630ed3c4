"""Helpers shared by the entry points in :mod:`espnet_cls.bin`.

:func:`run_main` is THE one place where an exception of a worker becomes what the
user reads: one ``ERROR:`` line (the file and line, or utterance, where one is known)
and a non-zero exit status. :func:`error_line` says how each kind of failure reads:

==========================================  ============================================
exception                                   console line
==========================================  ============================================
DataError / AudioError / DataDirError ...   ``path:line: what is wrong``
yaml.YAMLError                              ``path:line: invalid yaml: ...``
OSError ENOSPC (disk full)                  ``No space left on device: <path>``
other OSError                               ``<strerror>: <path>``
pickle.UnpicklingError                      the weights-only hint (never weights_only=False)
ValueError / TypeError / KeyError           ``<message>`` (bad configuration values)
anything else (a bug)                       the traceback in the log, then one line
==========================================  ============================================

Exit status: 1 for bad input and faults, 130 for Ctrl-C, argparse's 2 for bad options.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import logging
import os
import pickle
import sys
import traceback
from typing import Callable, Optional, Sequence

from espnet_cls.fileio import DataError

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def str2bool(value: str) -> bool:
    """argparse type for ESPnet-style booleans: true/false (also yes/no, 1/0)."""
    v = str(value).strip().lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def str_or_none(value: str) -> Optional[str]:
    """argparse type: the strings none/null/'' mean None."""
    return None if str(value).strip().lower() in ("none", "null", "") else value


def setup_logging(level: str = "INFO") -> None:
    """One line per event, ESPnet's format, to stderr."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT, stream=sys.stderr, force=True)


#: glibc's mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4

#: set to 0/false to keep glibc's default allocator settings (see :func:`tune_malloc`)
MALLOC_TUNING_ENV = "ESPNET_CLS_MALLOC_TUNING"


def tune_malloc() -> bool:
    """Keep freed memory in the process instead of handing it back to the kernel (glibc only).

    glibc serves every allocation above 128 KiB-32 MiB (its dynamic ``mmap`` threshold) with a
    fresh ``mmap`` and unmaps it on free, so each large tensor of every step (a conv2d input
    layer's activations: tens of MB per batch) is page-faulted in and zeroed again by the kernel.
    On a 2-core machine that was ~30 % of the training process's CPU time, as system time
    (docs/benchmarks.md, stage-6 section). With ``mmap`` off (``M_MMAP_MAX`` 0) and no trimming of
    the heap (``M_TRIM_THRESHOLD``), freed blocks are reused; the price is that the process keeps
    its peak memory until it exits. Numerics do not change. Called by :func:`run_main` (every
    worker); ``ESPNET_CLS_MALLOC_TUNING=0`` keeps glibc's defaults. Returns whether it applied.
    """
    if os.environ.get(MALLOC_TUNING_ENV, "1").strip().lower() in ("0", "false", "no"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def _input_error_types() -> tuple[type, ...]:
    """Exception types that mean bad input (their message is the whole story)."""
    types: list[type] = [DataError]
    for mod, name in (
        ("espnet_cls.audio", "AudioError"),
        ("espnet_cls.kaldi.datadir", "DataDirError"),
        ("espnet_cls.kaldi.scp", "ScpError"),
        ("espnet_cls.kaldi.jobs", "UsageError"),
        ("espnet_cls.lock", "LockError"),
    ):
        m = sys.modules.get(mod)  # only those already imported can have been raised
        if m is not None and hasattr(m, name):
            types.append(getattr(m, name))
    return tuple(types)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def error_line(e: BaseException) -> tuple[str, bool]:
    """``(one-line message, is_bug)`` for an exception that ended a worker.

    ``is_bug`` is True for exceptions that do not describe bad input or a fault of the
    environment (their traceback is worth logging).
    """
    if isinstance(e, _input_error_types()):
        return " ".join(str(e).split("\n")), False
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(e, yaml.YAMLError):
        mark = getattr(e, "problem_mark", None)
        where = ""
        if mark is not None:
            where = f"{mark.name}:{mark.line + 1}: " if mark.name and not mark.name.startswith("<") else f"line {mark.line + 1}: "
        problem = getattr(e, "problem", None) or _first_line(e)
        return f"{where}invalid yaml: {problem}", False
    if isinstance(e, pickle.UnpicklingError):
        from espnet_cls.weights import PICKLE_HINT

        return f"a file {PICKLE_HINT}", False
    if isinstance(e, OSError):
        fname = e.filename if e.filename is not None else ""
        if e.errno == errno.ENOSPC:
            return f"No space left on device{': ' + str(fname) if fname else ''}", False
        if e.errno == errno.EDQUOT:
            return f"Disk quota exceeded{': ' + str(fname) if fname else ''}", False
        if e.strerror:
            return f"{e.strerror}{': ' + str(fname) if fname else ''}", False
        return _first_line(e), False
    if isinstance(e, (ValueError, TypeError, KeyError)):
        msg = _first_line(e) if not isinstance(e, KeyError) else f"missing key {e}"
        return msg, isinstance(e, (TypeError, KeyError))
    if isinstance(e, MemoryError):
        return "out of memory (MemoryError): reduce the batch size or the clip length", False
    if isinstance(e, RuntimeError) and "No space left on device" in str(e):
        return "No space left on device", False
    return f"{type(e).__name__}: {_first_line(e)}", True


def report_error(e: BaseException) -> None:
    """Log ``e`` as the one ``ERROR:`` line (after its traceback when it looks like a bug)."""
    msg, is_bug = error_line(e)
    log = logging.getLogger("espnet_cls")
    if is_bug:
        log.error("unexpected error, traceback follows:\n%s", "".join(traceback.format_exception(type(e), e, e.__traceback__)))
    if logging.getLogger().handlers:
        log.error("%s", msg)
    else:
        print(f"ERROR: {msg}", file=sys.stderr)


def run_main(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Run ``main(argv)`` and exit with its return code; any exception becomes one error line.

    Bad input and faults (see the module doc) give a single ``ERROR: ...`` line and exit
    status 1, not a traceback; an unexpected exception logs its traceback and then the
    same single line, also with status 1. Ctrl-C exits 130; ``SystemExit`` (argparse)
    passes through. First applies :func:`tune_malloc`.
    """
    tune_malloc()
    try:
        rc = main(argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - this is the one place that reports them
        report_error(e)
        sys.exit(1)
    sys.exit(rc or 0)
