#!/usr/bin/env bash
# Kaldi's fix_data_dir.sh (same options and messages); usage and logic: espnet_cls/kaldi/datadir.py.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}" exec python3 -m espnet_cls.kaldi.datadir fix_data_dir.sh "$@"
