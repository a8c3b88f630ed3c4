#!/usr/bin/env python3
"""Kaldi's subset_scp.pl. Usage and logic: espnet_cls/kaldi/datatools.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from espnet_cls.kaldi.datatools import main  # noqa: E402

sys.exit(main("subset_scp.pl"))
