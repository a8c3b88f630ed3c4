#!/usr/bin/env bash
# Demo recipe: multi-label tagging of instrument mixtures on the built-in `instruments_mix`
# corpus (1-3 families per clip; about 5 % of clips hold no instrument and carry <blank>).
# First use creates .venv (tools/install.sh). Any cls.sh option can be appended, e.g.
#   ./run.sh --stage 6 --cls_args "--max_epoch 5"
set -e
set -u
set -o pipefail
cd "$(dirname "$0")"
tools/install.sh

train_set=train
valid_set=valid
test_sets="test"
cls_config=conf/train_cnn_multilabel.yaml
corpus=instruments_mix

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
    --classification_type multi-label \
    --inference_model valid.mAP.best.pth \
    --label_fold_length 20 \
    --skip_packing false \
    "$@"
