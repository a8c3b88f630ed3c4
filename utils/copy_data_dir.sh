#!/usr/bin/env bash
# Kaldi's copy_data_dir.sh (same options, outputs and exit codes); usage and logic: espnet_cls/kaldi/datadir.py.
# The package is found from this script's real path, so utils/ may be a symlink (ESPnet's recipe layout)
# and a bare system python3 is enough (standard library only).
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
root=$(dirname "${here}")
[ -d "${root}/espnet_cls" ] || root=$(dirname "${root}")
PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}" exec python3 -m espnet_cls.kaldi.datadir copy_data_dir.sh "$@"
