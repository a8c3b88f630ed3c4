#!/usr/bin/env python3
"""Kaldi's run.pl: run (array) jobs locally. Logic and options: espnet_cls/kaldi/local.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from espnet_cls.kaldi.local import main  # noqa: E402

sys.exit(main("run.pl"))
