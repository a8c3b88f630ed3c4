#!/usr/bin/env python3
"""Import a folder-per-class tree (root/<label>/*.wav|flac) into Kaldi data dirs; see ``python local/prepare_folder.py --help`` and docs/data.md."""

from espnet_cls.cli import run_main
from espnet_cls.data.folder import main

if __name__ == "__main__":
    run_main(main)
