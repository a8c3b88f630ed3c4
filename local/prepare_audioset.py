#!/usr/bin/env python3
"""Import AudioSet clips on disk (class_labels_indices.csv + segment csvs) into Kaldi data dirs; see ``python local/prepare_audioset.py --help`` and docs/data.md."""

from espnet_cls.cli import run_main
from espnet_cls.data.audioset import main

if __name__ == "__main__":
    run_main(main)
