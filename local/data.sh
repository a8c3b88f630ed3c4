#!/usr/bin/env bash
# Stage 1 of cls.sh: write <datadir>/{train,valid,test}/{wav.scp,text,utt2spk,spk2utt}.
#
#   local/data.sh <datadir> [--corpus NAME] [--seed S] [--size small|default] [options]
#
# Demo corpora, made offline from sound that installs from PyPI (see docs/data.md):
#   instruments       multi-class: General MIDI instrument families (default)
#   instruments_mix   multi-label: mixtures of 1-3 families, ~5% noise-only clips (<blank>)
#   lid               multi-class: spoken language identification (eSpeak NG voices)
# Importers for corpora on disk:
#   esc50     [--esc50_root DIR] [--fold K] [--valid_fold K2] [--esc10 true] [--esc50_set_names espnet]
#   audioset  [--audioset_root DIR] [--audioset_audio_dir DIR] (multi-label, train/utt2weight)
#             (the roots default to ESC50 / AUDIOSET of db.sh)
#   folder    --folder_root DIR   (DIR/<label>/*.wav|flac, or DIR/<split>/<label>/...)
#   csv       --csv FILE          (header path,label[;label...][,split][,id]; .tsv: tab)
# The work is done in Python (espnet_cls.data.*); this script only dispatches.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

corpus=instruments     # instruments | instruments_mix | lid | esc50 | audioset | folder | csv
seed=0                 # same seed -> byte-identical demo audio; also seeds the importers' splits
size=default           # demo corpora: small (a few 1-s clips per class) | default
audio_dir=             # demo corpora: where audio is written (default: <datadir>/audio/<corpus>)
nj=2                   # demo corpora: worker processes
num_train=             # demo corpora: override the size's clips per class (train/valid/test;
num_valid=             #   instruments_mix: clips in all) ...
num_test=
duration=              # ... and seconds per clip
programs=core          # instruments corpora: core (4 archetypal GM programs per family) | all (8; harder)
fold=1                 # esc50: test fold (1..5)
valid_fold=            # esc50: validation fold (default: fold mod 5 + 1)
esc10=false            # esc50: keep the ESC-10 subset only
esc50_root=            # esc50: directory holding meta/esc50.csv and audio/ (default: ${ESC50} of db.sh)
esc50_set_names=default  # esc50: default (train/valid/test) | espnet (ESPnet's train<K>/val<K>)
esc50_labels=category  # esc50: category (dog, ...) | espnet (ESPnet's audio_class:<target>)
audioset_root=         # audioset: class_labels_indices.csv and the segment csv files (default: ${AUDIOSET} of db.sh)
audioset_audio_dir=    # audioset: downloaded clips (default: <audioset_root>/audio)
audioset_train_csv=balanced_train_segments.csv
audioset_test_csv=eval_segments.csv
folder_root=           # folder: root/<label>/*.wav|flac
csv=                   # csv: list of clips with a header
valid_fraction=0.1     # folder/csv: share carved for valid (audioset: 5 % of train, see local/prepare_audioset.py)
test_fraction=0.1      # folder/csv without split folders/column: share carved for test
write_utt2weight=auto  # auto (audioset: true, others: false) | true | false
validate=true          # run utils/validate_data_dir.sh --no-feats on each set

if [ -f ./path.sh ]; then  # venv, utils/ on PATH, LC_ALL=C (cls.sh has done it already)
    # shellcheck source=path.sh
    . ./path.sh
fi
if [ -f ./db.sh ]; then  # corpus locations, ESPnet's variable names
    # shellcheck source=db.sh
    . ./db.sh
fi

help_message=$(sed -n '2,17s/^# \{0,1\}//p' "$0")

datadir=
if [ $# -gt 0 ] && [[ $1 != -* ]]; then  # cls.sh passes the data dir first
    datadir=$1
    shift
fi
__po_usage_status=2  # usage errors exit 2 (SPEC); Kaldi's parse_options.sh default is 1
# shellcheck source=utils/parse_options.sh
. utils/parse_options.sh
if [ -z "${datadir}" ]; then
    if [ $# -ne 1 ]; then
        echo "${help_message}" >&2
        exit 2
    fi
    datadir=$1
    shift
fi
if [ $# -ne 0 ]; then
    echo "$0: unexpected argument(s): $*" >&2
    exit 2
fi

py=${python:-python3}
need() {  # need <option-name> <value> [db.sh variable]
    if [ -z "$2" ]; then
        local hint=
        if [ $# -ge 3 ]; then
            hint=" (or $3 in db.sh naming an existing directory; it is \"${!3:-}\")"
        fi
        echo "$0: --corpus ${corpus} needs --$1${hint}" >&2
        exit 2
    fi
}
from_db() {  # from_db <db.sh variable>: its value when that directory exists
    if [ -n "${!1:-}" ] && [ -d "${!1}" ]; then echo "${!1}"; fi
}
weights() {  # the --write_utt2weight value for an importer whose own default is $1
    if [ "${write_utt2weight}" = auto ]; then echo "$1"; else echo "${write_utt2weight}"; fi
}

log "preparing ${corpus} in ${datadir}"
case "${corpus}" in
    instruments|instruments_mix|lid)
        opts=(--corpus "${corpus}" --seed "${seed}" --size "${size}" --nj "${nj}" --validate "${validate}")
        if [ -n "${audio_dir}" ]; then opts+=(--audio_dir "${audio_dir}"); fi
        if [ -n "${num_train}" ]; then opts+=(--num_train "${num_train}"); fi
        if [ -n "${num_valid}" ]; then opts+=(--num_valid "${num_valid}"); fi
        if [ -n "${num_test}" ]; then opts+=(--num_test "${num_test}"); fi
        if [ -n "${duration}" ]; then opts+=(--duration "${duration}"); fi
        if [ "${corpus}" != lid ]; then opts+=(--programs "${programs}"); fi
        "${py}" -m espnet_cls.data.prepare "${opts[@]}" "${datadir}"
        ;;
    esc50)
        esc50_root=${esc50_root:-$(from_db ESC50)}
        need esc50_root "${esc50_root}" ESC50
        opts=(--esc50_root "${esc50_root}" --fold "${fold}" --esc10 "${esc10}" --validate "${validate}"
              --set_names "${esc50_set_names}" --labels "${esc50_labels}")
        if [ -n "${valid_fold}" ]; then opts+=(--valid_fold "${valid_fold}"); fi
        "${py}" local/prepare_esc50.py "${opts[@]}" "${datadir}"
        ;;
    audioset)
        audioset_root=${audioset_root:-$(from_db AUDIOSET)}
        need audioset_root "${audioset_root}" AUDIOSET
        opts=(--audioset_root "${audioset_root}" --train_csv "${audioset_train_csv}" --test_csv "${audioset_test_csv}"
              --seed "${seed}" --write_utt2weight "$(weights true)" --validate "${validate}")
        if [ -n "${audioset_audio_dir}" ]; then opts+=(--audio_dir "${audioset_audio_dir}"); fi
        "${py}" local/prepare_audioset.py "${opts[@]}" "${datadir}"
        ;;
    folder)
        need folder_root "${folder_root}"
        "${py}" local/prepare_folder.py --folder_root "${folder_root}" --seed "${seed}" \
            --valid_fraction "${valid_fraction}" --test_fraction "${test_fraction}" --validate "${validate}" "${datadir}"
        ;;
    csv)
        need csv "${csv}"
        "${py}" local/prepare_csv.py --csv "${csv}" --seed "${seed}" --valid_fraction "${valid_fraction}" \
            --test_fraction "${test_fraction}" --write_utt2weight "$(weights false)" --validate "${validate}" "${datadir}"
        ;;
    *)
        echo "$0: unknown --corpus ${corpus} (instruments, instruments_mix, lid, esc50, audioset, folder, csv)" >&2
        exit 2
        ;;
esac
log "done: data dirs in ${datadir}"
