#!/usr/bin/env python3
"""Kaldi's ssh.pl: run (array) jobs through the batch system. Options and logic: espnet_cls/kaldi/cluster.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from espnet_cls.kaldi.cluster import main  # noqa: E402

sys.exit(main("ssh.pl"))
