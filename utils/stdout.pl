#!/usr/bin/env python3
"""Kaldi-style stdout.pl: run.pl that also copies the output to stdout. Logic: espnet_cls/kaldi/local.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from espnet_cls.kaldi.local import main  # noqa: E402

sys.exit(main("stdout.pl", tee=True))
