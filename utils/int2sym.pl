#!/usr/bin/env python3
"""Kaldi's int2sym.pl. Usage and logic: espnet_cls/kaldi/scp.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from espnet_cls.kaldi.scp import main  # noqa: E402

sys.exit(main("int2sym.pl"))
