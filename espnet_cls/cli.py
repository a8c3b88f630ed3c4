"""Helpers shared by the entry points in :mod:`espnet_cls.bin`."""

from __future__ import annotations

import argparse
import logging
import sys
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


def run_main(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Run ``main(argv)`` and exit with its return code.

    :class:`DataError` (bad input) becomes a single ``ERROR: file:line: message``
    log line and exit status 1, not a traceback. Ctrl-C exits 130.
    """
    try:
        rc = main(argv)
    except DataError as e:
        logging.getLogger("espnet_cls").error("%s", e)
        if not logging.getLogger().handlers:
            print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rc or 0)
