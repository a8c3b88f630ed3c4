#!/usr/bin/env bash
# Demo recipe: spoken language identification (multi-class) on the built-in `lid` corpus,
# synthesized offline with the eSpeak NG voices that espeakng-loader ships.
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
cls_config=conf/train_cnn.yaml
corpus=lid

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
    --skip_packing false \
    "$@"
