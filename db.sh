# shellcheck shell=bash
# Where the corpora are, under ESPnet's variable names (egs2/*/cls1/local/data.sh source this file:
# `. ./db.sh`, then e.g. `python3 local/data_prep_esc50.py ${ESC50} ...`). Edit a line, or set the
# variable in the environment. "downloads" paths are relative to the recipe directory, as in ESPnet.
# Our own local/data.sh reads ESC50 (--corpus esc50) and AUDIOSET (--corpus audioset) when
# --esc50_root / --audioset_root are not given.
# shellcheck disable=SC2034  # read by the scripts that source this file

ESC50=${ESC50:-downloads/ESC-50-master}   # holds LICENSE, meta/esc50.csv and audio/ (the ESC-50 zip's top folder)
AUDIOSET=${AUDIOSET:-downloads/audioset}  # class_labels_indices.csv, the segment csv files, audio/
FSD50K=${FSD50K:-downloads/fsd50k}
VGGSOUND=${VGGSOUND:-downloads/vggsound}
BEANS=${BEANS:-downloads}                 # ESPnet's beans recipe downloads itself when this is "downloads"
MELD=${MELD:-downloads}
