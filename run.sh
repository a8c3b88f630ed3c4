#!/usr/bin/env bash
# Demo recipes on the built-in corpora, made offline from sound that installs from PyPI (docs/data.md):
#   ./run.sh                              instruments      multi-class: General MIDI instrument families
#   ./run.sh --corpus instruments_mix     instruments_mix  multi-label: mixtures of 1-3 families (some <blank>)
#   ./run.sh --corpus lid                 lid              multi-class: spoken language identification
# First use creates .venv (tools/install.sh). Every other option goes to cls.sh, as in ESPnet's
# run.sh files, and a later one wins over these settings, e.g.
#   ./run.sh --corpus lid --stage 6 --cls_args "--max_epoch 5"
set -e
set -u
set -o pipefail
cd "$(dirname "$0")"

# --corpus is this script's own option (cls.sh does not know it); the rest is passed on
corpus=instruments
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --corpus) [ $# -ge 2 ] || { echo "$0: --corpus needs a value" >&2; exit 2; }; corpus=$2; shift 2 ;;
        --corpus=*) corpus=${1#*=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

train_set=train
valid_set=valid
test_sets="test"
max_wav_duration=30      # stage 3 runs only with a maximum (ESPnet's rule); the demo clips are 1-4 s
opts=()
case "${corpus}" in
    instruments)
        cls_config=conf/train_cnn.yaml
        ;;
    lid)
        cls_config=conf/train_cnn_lid.yaml   # ties with train_cnn.yaml on lid_dev valid at a third of the compute
        ;;
    instruments_mix)
        cls_config=conf/train_cnn_multilabel.yaml
        opts+=(--classification_type multi-label --inference_model valid.mAP.best.pth --label_fold_length 20)
        ;;
    *)
        echo "$0: unknown --corpus ${corpus} (instruments, instruments_mix or lid)" >&2
        exit 2
        ;;
esac

tools/install.sh

# Train on a GPU when there is one, else on the CPU.
ngpu=$(. ./path.sh && python -c 'import torch; print(min(torch.cuda.device_count(), 1))' 2>/dev/null || echo 0)
nj=$(( $(nproc) < 8 ? $(nproc) : 8 ))

./cls.sh \
    --ngpu "${ngpu}" \
    --nj "${nj}" \
    --inference_nj "${nj}" \
    --local_data_opts "--corpus ${corpus}" \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --cls_config "${cls_config}" \
    --max_wav_duration "${max_wav_duration}" \
    --skip_packing false \
    "${opts[@]}" \
    "${args[@]}"
