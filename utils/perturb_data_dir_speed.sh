#!/usr/bin/env bash
# Kaldi's perturb_data_dir_speed.sh (same options, outputs and exit codes); usage and logic: espnet_cls/kaldi/datatools.py.
# The package is found from this script's real path, so utils/ may be a symlink (ESPnet's recipe layout)
# and a bare system python3 is enough (standard library only).
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
root=$(dirname "${here}")
[ -d "${root}/espnet_cls" ] || root=$(dirname "${root}")
PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}" exec python3 -m espnet_cls.kaldi.datatools perturb_data_dir_speed.sh "$@"
