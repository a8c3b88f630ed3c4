#!/usr/bin/env python3
"""Import a csv/tsv list (path,label[;label...][,split]) into Kaldi data dirs; see ``python local/prepare_csv.py --help`` and docs/data.md."""

from espnet_cls.cli import run_main
from espnet_cls.data.csvlist import main

if __name__ == "__main__":
    run_main(main)
