#!/usr/bin/env python3
"""Stage-8 scorer (ESPnet's ``cls_score.py`` interface); logic in :mod:`espnet_cls.bin.score_cls`.

    score_cls.py -gtxt REF_TEXT -ptxt HYP_TEXT -pscore SCORE -tok TOKEN_LIST [-o OUTDIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, when not installed

from espnet_cls.bin.score_cls import main  # noqa: E402
from espnet_cls.cli import run_main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
