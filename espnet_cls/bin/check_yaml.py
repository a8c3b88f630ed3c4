"""Check that a yaml file exists and holds a mapping (cls.sh's early check of --cls_config).

    python -m espnet_cls.bin.check_yaml conf/train.yaml

Exit 0 when it is a readable yaml mapping; else one ERROR line naming the file (and the
line of a yaml syntax error) and exit 1. Light on purpose (PyYAML only, no torch): the
keys and values are checked by the stage workers (espnet_cls.config), with the same kind
of one-line message.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging
from espnet_cls.fileio import DataError


def check_yaml(path: str) -> dict:
    """The mapping in ``path``; :class:`DataError` (file[:line]) for anything else."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise DataError(f"cannot open config: {e.strerror}", path) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})", path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DataError(f"invalid yaml: {problem}", path, None if mark is None else mark.line + 1) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(f"the config must be a yaml mapping of key: value, not a {type(data).__name__}", path)
    return data


def main(argv: Optional[Sequence[str]] = None) -> int:
    """0 when the file is a yaml mapping."""
    p = argparse.ArgumentParser(description="Check that a yaml file exists and holds a mapping.")
    p.add_argument("path")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    check_yaml(args.path)
    return 0


if __name__ == "__main__":
    run_main(main)
