#!/usr/bin/env python3
"""Import ESC-50 (meta/esc50.csv + audio/) into Kaldi data dirs; see ``python local/prepare_esc50.py --help`` and docs/data.md."""

from espnet_cls.cli import run_main
from espnet_cls.data.esc50 import main

if __name__ == "__main__":
    run_main(main)
