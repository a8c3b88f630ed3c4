#!/usr/bin/env bash
# espnet_cls: the ten-stage audio classification recipe (ESPnet's egs2/TEMPLATE/cls1/cls.sh, compatible options).
#
#   ./cls.sh --train_set train --valid_set valid --test_sets "test" --cls_config conf/train_cnn.yaml [options]
#
# Stages: 1 data prep, 2 wav dump, 3 filtering, 4 token list, 5 statistics, 6 training,
#         7 inference, 8 scoring, 9 packing, 10 Hugging Face upload.
# Options are parsed by utils/parse_options.sh: --foo-bar and --foo_bar both set foo_bar.

# Set bash to 'strict' mode; it exits on a) an error, b) an undefined variable, c) an error in a pipeline.
set -e
set -u
set -o pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
min() {
    local a="$1"
    for b in "$@"; do
        [ "${b}" -le "${a}" ] && a="${b}"
    done
    echo "${a}"
}
SECONDS=0

# ==== General options ====
stage=1                  # Processes starts from the specified stage.
stop_stage=10000         # Processes is stopped at the specified stage.
skip_data_prep=false     # Skip data preparation stages (1-4).
skip_train=false         # Skip training stages (5-6).
skip_eval=false          # Skip inference and scoring stages (7-8).
skip_packing=true        # Skip the packing stage (9), unless skip_upload=false [ours; ESPnet packs only with skip_upload=false].
skip_upload=true         # Skip packing and uploading stages (9-10); they run only when false.
ngpu=1                   # The number of GPUs for training; 0 trains on CPU.
num_nodes=1              # The number of nodes for training.
num_procs=               # Training processes per node (empty: max(ngpu, 1)); >1 on CPU uses gloo [ours].
nj=32                    # The number of parallel jobs for stages 2 and 5.
inference_nj=4           # The number of parallel jobs in inference (stage 7).
gpu_inference=false      # Whether to perform gpu inference.
datadir=data             # Directory of the stage-1 data dirs; the token list goes to ${datadir}/token_list.
dumpdir=dump             # Directory to dump features (stage 2).
expdir=exp               # Directory to save experiments.
python=python3           # Specify python to execute espnet_cls commands.
use_lightning=false      # Accepted for ESPnet compatibility and ignored: our trainer does both task types.
lock_wait=false          # If another run writes the same dump/stats/exp dir: wait for it (true) or refuse at once (false) [ours].

# ==== Data preparation options ====
local_data_opts=         # Options passed to local/data.sh: local/data.sh ${datadir} ${local_data_opts}.

# ==== Audio and filtering options ====
audio_format=flac        # Audio format of the dump: wav, flac, wav.ark or flac.ark (ESPnet's list).
fs=16k                   # Sampling rate of the dump (and of the frontend).
min_wav_duration=0.1     # Minimum duration in seconds (stage 3, train and valid sets).
max_wav_duration=        # Maximum duration in seconds; empty skips stage 3 altogether (as ESPnet).
speech_fold_length=160000  # Fold length for speech (samples), used by the folded batch type.
label_fold_length=1      # Fold length for labels; set it above the class count for multi-label.

# ==== Model options ====
cls_tag=                 # Suffix of the experiment dir exp/cls_${cls_tag} (default: config name + cls_args).
cls_config=              # Training configuration (yaml).
cls_args=                # Arguments for training that override the config, e.g. "--max_epoch 10".
cls_stats_dir=           # Statistics dir (default: ${expdir}/cls_stats_${fs}).
feats_normalize=uttmvn   # global_mvn overrides the config's normalize (stage-5 stats); uttmvn, utterance_mvn, none keep the config's.
pretrained_model=        # Initialize the model from these weights (--init_param).
ignore_init_mismatch=false  # Ignore shape mismatches when loading pretrained_model.
classification_type=     # multi-class or multi-label (empty: from the config; if given, it must agree) [ours].

# ==== Inference and upload options ====
inference_model=valid.acc.best.pth  # Checkpoint in the experiment dir used for inference and packing.
inference_args=          # Extra arguments for cls_inference, e.g. "--batch_size 32"; CPU jobs run ONNX Runtime, "--backend jit" PyTorch [ours].
inference_tag=           # Suffix of the inference dirs: ${cls_exp}/cls_<set>_<tag> (empty: ESPnet's ${cls_exp}/cls_<set>).
output_all_probabilities=true  # Write every class's probability to the score file (else only predicted ones).
download_model=          # Hugging Face repo id of a model to download and evaluate (runs stages 7-8).
hf_repo=                 # Hugging Face repo to upload the packed model to (stage 10).

# ==== Data options ====
train_set=               # Name of the training set.
valid_set=               # Name of the validation set used for monitoring and model selection.
test_sets=               # Names of the test sets (several allowed, space-separated).
text_classes=            # Text file the class list is built from (default: the training set's dumped text).
# ==== End of options ====

help_message=$(cat <<EOF
Usage: $0 --train_set <train_set_name> --valid_set <valid_set_name> --test_sets "<test_set_names>" [options]
Options marked [ours] are not in ESPnet's cls.sh; every other option has ESPnet's name and default.

$(awk '
    /^# ==== End of options ====/ {exit}
    /^# ==== .* ====$/ {sub(/^# ==== /, ""); sub(/ ====$/, ""); printf "\n  %s:\n", $0; go=1; next}
    go && /^[a-z_]+=/ {
        name=$0; sub(/=.*/, "", name)
        val=$0; sub(/^[a-z_]+=/, "", val); cmt=val
        sub(/[ \t]*#.*/, "", val); sub(/^[^#]*#[ \t]*/, "", cmt)
        printf "    --%-26s # %s (default=\"%s\")\n", name, cmt, val
    }' "$0")
EOF
)

log "$0 $*"
# Save the command line for the resume scripts exp/*/run.sh
run_args=$(printf '%q ' "$0" "$@")
__po_usage_status=2  # usage errors exit 2 (SPEC); Kaldi's parse_options.sh default is 1
. utils/parse_options.sh

if [ $# -ne 0 ]; then
    log "Error: positional arguments are not allowed: $*"
    log "${help_message}"
    exit 2
fi

. ./path.sh
. ./cmd.sh

# Check required arguments
for _var in train_set valid_set test_sets; do
    if [ -z "${!_var}" ]; then
        log "Error: --${_var} is required"
        exit 2
    fi
done
if "${use_lightning}"; then
    log "Info: --use_lightning true is accepted and ignored: the espnet_cls trainer does multi-class and multi-label itself"
fi

# The config must be a readable yaml mapping before anything reads it (one ERROR line otherwise)
if [ -n "${cls_config}" ] && ! ${python} -m espnet_cls.bin.check_yaml "${cls_config}"; then
    log "Error: bad --cls_config ${cls_config} (see the line above)"
    exit 2
fi

# Derived values
[ -z "${cls_stats_dir}" ] && cls_stats_dir="${expdir}/cls_stats_${fs}"

if [ -z "${cls_tag}" ]; then
    if [ -n "${cls_config}" ]; then
        cls_tag="$(basename "${cls_config}" .yaml)"
    else
        cls_tag="train"
    fi
    # Add overwritten arg's info
    if [ -n "${cls_args}" ]; then
        cls_tag+="$(echo "${cls_args}" | sed -e "s/--/\_/g" -e "s/[ |=/]//g")"
    fi
fi
cls_exp="${expdir}/cls_${cls_tag}"
# Where stage 7 writes a set's text/score and stage 8 its scoring/: ESPnet's ${cls_exp}/cls_<set>;
# --inference_tag T makes it ${cls_exp}/cls_<set>_T, so a second checkpoint's results sit beside the first
# (espnet_cls.contract.ExpLayout.decode_dir names the same dir).
inference_dir() {
    echo "${cls_exp}/cls_${1}${inference_tag:+_${inference_tag}}"
}

# Stage 7's backend on CPU: ONNX Runtime jobs without torch (--inference_args "--backend jit" overrides:
# argparse takes the last one); GPU inference runs PyTorch.
if "${gpu_inference}"; then inference_backend_opts=; else inference_backend_opts="--backend onnx"; fi
# The export of ${cls_exp}/${inference_model} cached beside it (X.onnx + X.onnx.stamp), made once, not by
# the parallel jobs: at the end of stage 6 (where its cost is charged) and checked again before stage 7's
# jobs (a no-op when fresh or unused; re-made when the checkpoint changed; a model that does not export
# is noted and the jobs run PyTorch).
prepare_inference_model() {
    # shellcheck disable=SC2086
    ${python} -m espnet_cls.bin.cls_inference --prepare_only true --ngpu "$("${gpu_inference}" && echo 1 || echo 0)" \
        --classification_train_config "${cls_exp}/config.yaml" \
        --classification_model_file "${cls_exp}/${inference_model}" \
        ${inference_backend_opts} ${inference_args}
}
token_list="${datadir}/token_list"
[ -z "${text_classes}" ] && text_classes="${dumpdir}/${train_set}/text"

# The sets evaluated in stages 7-8: valid and tests, each once
eval_sets="${valid_set}"
for _dset in ${test_sets}; do
    case " ${eval_sets} " in *" ${_dset} "*) ;; *) eval_sets+=" ${_dset}" ;; esac
done

if [ -n "${download_model}" ]; then
    skip_data_prep=true
    skip_train=true
fi

# The sets dumped in stage 2: train, valid and tests, each once
dump_sets="${train_set}"
for _dset in ${eval_sets}; do
    case " ${dump_sets} " in *" ${_dset} "*) ;; *) dump_sets+=" ${_dset}" ;; esac
done

# One writer per directory (espnet_cls/lock.py): a stage that writes the dump, stats or exp
# dir first takes its lock; a second run on the same dir refuses at once naming the holder
# (or waits: --lock_wait true). The lock is held on a descriptor of this shell until it
# exits; a clean exit clears the holder note (a kill -9 leaves a note, reported as stale).
_lock_files=()
lock_dir() {
    local _fd _f
    for _f in "${_lock_files[@]}"; do
        [ "${_f}" = "$1/.lock" ] && return 0
    done
    mkdir -p "$1"
    exec {_fd}>>"$1/.lock"
    if ! ${python} -m espnet_cls.bin.lock --fd "${_fd}" --pid $$ --wait "${lock_wait}" \
        --command "${run_args}" --log_level WARNING "$1"; then
        exit 1
    fi
    _lock_files+=("$1/.lock")
}
release_locks() {
    local _f
    for _f in "${_lock_files[@]}"; do
        : > "${_f}"
    done
}
trap release_locks EXIT

# Fail with a clear message when a stage's Python worker is not there (yet)
need_worker() {
    if ! ${python} -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' "$1" 2>/dev/null; then
        log "Error: stage $2 needs the worker $1, which is not installed (is the venv active? see tools/install.sh)"
        exit 1
    fi
}

# Run one stage block: stage_begin N "title" / stage_end N
stage_begin() { _stage_t0=${SECONDS}; log "Stage $1: $2"; }
stage_end() { log "Stage $1 done in $((SECONDS - _stage_t0)) s"; }
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

# The facts of the config that stages 5-7 need, decided in Python (espnet_cls/bin/config_facts.py):
# cls.sh does not read the yaml. One "key=value" line each, read without eval. Asked once, before
# stage 1 when the run reaches stages 5-7, so a config that does not fit fails before data prep.
fact_frontend_opts='' fact_normalize_opts='' fact_model_opts='' fact_speech_type=sound fact_info=''
if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 5 ] && { ! "${skip_train}" || ! "${skip_eval}"; }; then
    need_worker espnet_cls.bin.config_facts 5
    if ! _facts=$(${python} -m espnet_cls.bin.config_facts --config "${cls_config}" --cls_args "${cls_args}" \
            --feats_normalize "${feats_normalize}" --stats_file "${cls_stats_dir}/train/feats_stats.npz" --fs "${fs}" \
            --audio_format "${audio_format}" --classification_type "${classification_type}"); then
        log "Error: the options above do not fit together (espnet_cls.bin.config_facts)"
        exit 2
    fi
    while IFS= read -r _line; do
        printf -v "fact_${_line%%=*}" '%s' "${_line#*=}"
    done <<< "${_facts}"
    if [ -n "${fact_info}" ]; then
        log "Info: ${fact_info}"
    fi
fi

# ========================== Data preparation ==========================
if ! "${skip_data_prep}"; then
    if run_stage 1; then
        stage_begin 1 "Data preparation: local/data.sh ${datadir} ${local_data_opts}"
        lock_dir "${dumpdir}"
        # shellcheck disable=SC2086
        local/data.sh "${datadir}" ${local_data_opts}
        stage_end 1
    fi

    if run_stage 2; then
        stage_begin 2 "Format wav.scp: ${datadir}/ -> ${dumpdir}/"
        need_worker espnet_cls.bin.format_wav_scp 2
        lock_dir "${dumpdir}"
        for dset in ${dump_sets}; do
            _opts=
            if [ -e "${datadir}/${dset}/segments" ]; then
                _opts="--segments ${datadir}/${dset}/segments"
            fi
            # validates the source data dir first (nothing is written when it is bad), then
            # dumps the audio and copies its tables, sorted (see espnet_cls/dump.py)
            # shellcheck disable=SC2086
            scripts/audio/format_wav_scp.sh --nj "${nj}" --cmd "${train_cmd}" \
                --audio-format "${audio_format}" --fs "${fs}" --copy-data-dir true ${_opts} \
                "${datadir}/${dset}/wav.scp" "${dumpdir}/${dset}"
        done
        stage_end 2
    fi

    # As ESPnet's cls.sh: without --max_wav_duration there is no stage 3 (no filtering at all)
    if [ -z "${max_wav_duration}" ] && run_stage 3; then
        log "max_wav_duration is not set, skipping stage 3 (Modify long/short data)"
    elif run_stage 3; then
        stage_begin 3 "Remove short/long utterances and empty text: train and valid sets"
        need_worker espnet_cls.bin.filter_data 3
        lock_dir "${dumpdir}"
        for dset in "${train_set}" "${valid_set}"; do
            ${python} -m espnet_cls.bin.filter_data --fs "${fs}" \
                --min_wav_duration "${min_wav_duration}" --max_wav_duration "${max_wav_duration}" "${dumpdir}/${dset}"
        done
        stage_end 3
    fi

    if run_stage 4; then
        stage_begin 4 "Token list: ${text_classes} -> ${token_list}"
        need_worker espnet_cls.bin.make_token_list 4
        lock_dir "${dumpdir}"
        _check=
        for dset in ${eval_sets}; do
            _check+=" ${dumpdir}/${dset}/text"
        done
        # shellcheck disable=SC2086
        ${python} -m espnet_cls.bin.make_token_list --input "${text_classes}" --output "${token_list}" \
            --cls_config "${cls_config}" --classification_type "${classification_type}" --check ${_check}
        stage_end 4
    fi
else
    log "Skip the stages for data preparation"
fi

# ========================== Training ==========================
if ! "${skip_train}"; then
    _train_dir="${dumpdir}/${train_set}"
    _valid_dir="${dumpdir}/${valid_set}"
    _common_opts=
    [ -n "${cls_config}" ] && _common_opts+="--config ${cls_config} "
    _common_opts+="${fact_frontend_opts} "
    _data_opts="--train_data_path_and_name_and_type ${_train_dir}/wav.scp,speech,${fact_speech_type} "
    _data_opts+="--train_data_path_and_name_and_type ${_train_dir}/text,label,text "
    _data_opts+="--valid_data_path_and_name_and_type ${_valid_dir}/wav.scp,speech,${fact_speech_type} "
    _data_opts+="--valid_data_path_and_name_and_type ${_valid_dir}/text,label,text "

    if run_stage 5; then
        stage_begin 5 "Collect stats: ${_train_dir} -> ${cls_stats_dir}"
        need_worker espnet_cls.bin.cls_train 5
        need_worker espnet_cls.bin.aggregate_stats_dirs 5
        lock_dir "${cls_stats_dir}"
        _logdir="${cls_stats_dir}/logdir"
        mkdir -p "${_logdir}"
        _nj=$(min "${nj}" "$(wc -l < "${_train_dir}/wav.scp")" "$(wc -l < "${_valid_dir}/wav.scp")")
        for _part in train valid; do
            if [ "${_part}" = train ]; then _dir="${_train_dir}"; else _dir="${_valid_dir}"; fi
            _split_scps=
            for n in $(seq "${_nj}"); do
                _split_scps+=" ${_logdir}/${_part}.${n}.scp"
            done
            # shellcheck disable=SC2086
            utils/split_scp.pl "${_dir}/wav.scp" ${_split_scps}
        done
        # Generate run.sh to resume from this stage
        echo "${run_args} --stage 5 \"\$@\"; exit \$?" > "${cls_stats_dir}/run.sh"
        chmod +x "${cls_stats_dir}/run.sh"

        log "Statistics: ${_nj} jobs, log in ${_logdir}/stats.*.log"
        rm -rf "${_logdir}"/stats.*
        # shellcheck disable=SC2086
        ${train_cmd} JOB=1:"${_nj}" "${_logdir}"/stats.JOB.log \
            ${python} -m espnet_cls.bin.cls_train \
                --collect_stats true \
                --use_preprocessor true \
                --token_type word \
                --token_list "${token_list}" \
                ${_data_opts} \
                --train_shape_file "${_logdir}/train.JOB.scp" \
                --valid_shape_file "${_logdir}/valid.JOB.scp" \
                --output_dir "${_logdir}/stats.JOB" \
                ${_common_opts} ${cls_args}

        _stats_dirs=
        for n in $(seq "${_nj}"); do
            _stats_dirs+=" --input_dir ${_logdir}/stats.${n}"
        done
        # shellcheck disable=SC2086
        ${python} -m espnet_cls.bin.aggregate_stats_dirs ${_stats_dirs} --output_dir "${cls_stats_dir}"
        stage_end 5
    fi

    if run_stage 6; then
        stage_begin 6 "Training: ${cls_exp}"
        need_worker espnet_cls.bin.launch 6
        need_worker espnet_cls.bin.cls_train 6
        lock_dir "${cls_exp}"
        # normalization as ESPnet's cls.sh: only --feats_normalize global_mvn overrides the config
        _opts="${_common_opts}${fact_normalize_opts} ${fact_model_opts} "
        [ -n "${pretrained_model}" ] && _opts+="--init_param ${pretrained_model} --ignore_init_mismatch ${ignore_init_mismatch} "

        mkdir -p "${cls_exp}"
        echo "${run_args} --stage 6 \"\$@\"; exit \$?" > "${cls_exp}/run.sh"
        chmod +x "${cls_exp}/run.sh"

        if [ "${cuda_cmd}" = queue.pl ] || [ "${cuda_cmd}" = queue-freegpu.pl ]; then
            jobname="$(basename "${cls_exp}")"
        else
            jobname="${cls_exp}/train.log"
        fi
        _launch_opts=
        [ -n "${num_procs}" ] && _launch_opts="--num_procs ${num_procs}"

        log "Training: log in ${cls_exp}/train.log"
        # shellcheck disable=SC2086
        ${python} -m espnet_cls.bin.launch \
            --cmd "${cuda_cmd} --name ${jobname}" \
            --log "${cls_exp}/train.log" \
            --ngpu "${ngpu}" \
            --num_nodes "${num_nodes}" ${_launch_opts} \
            -- \
            ${python} -m espnet_cls.bin.cls_train \
                --use_preprocessor true \
                --token_type word \
                --token_list "${token_list}" \
                --ngpu "${ngpu}" \
                --resume true \
                --output_dir "${cls_exp}" \
                ${_data_opts} \
                --train_shape_file "${cls_stats_dir}/train/speech_shape" \
                --train_shape_file "${cls_stats_dir}/train/label_shape" \
                --valid_shape_file "${cls_stats_dir}/valid/speech_shape" \
                --valid_shape_file "${cls_stats_dir}/valid/label_shape" \
                --fold_length "${speech_fold_length}" \
                --fold_length "${label_fold_length}" \
                ${_opts} ${cls_args}
        # stage 7's export, charged here; a problem with it is stage 7's (which checks again), not training's
        if ! "${skip_eval}" && [ -f "${cls_exp}/${inference_model}" ]; then
            prepare_inference_model || log "Warning: preparing ${cls_exp}/${inference_model} for stage 7 failed (stage 7 tries again)"
        fi
        stage_end 6
    fi
else
    log "Skip the training stages"
fi

if [ -n "${download_model}" ]; then
    log "Use ${download_model} for decoding and evaluation"
    cls_exp="${expdir}/${download_model##*/}"
    mkdir -p "${cls_exp}"
    ${python} -m espnet_cls.bin.download --repo_id "${download_model}" --output_dir "${cls_exp}"
    # The downloaded model dir holds config.yaml, model.safetensors and its own token_list
    # (see espnet_cls/bin/download.py); score with the model's classes.
    inference_model=model.safetensors
    token_list="${cls_exp}/token_list"
fi

# ========================== Evaluation ==========================
if ! "${skip_eval}"; then
    if run_stage 7; then
        stage_begin 7 "Inference: ${cls_exp}/${inference_model} on ${eval_sets}"
        need_worker espnet_cls.bin.cls_inference 7
        lock_dir "${cls_exp}"
        if "${gpu_inference}"; then
            _cmd="${cuda_cmd}"
            _ngpu=1
        else
            _cmd="${decode_cmd}"
            _ngpu=0
        fi
        echo "${run_args} --stage 7 \"\$@\"; exit \$?" > "${cls_exp}/run_inference.sh"
        chmod +x "${cls_exp}/run_inference.sh"
        prepare_inference_model
        for dset in ${eval_sets}; do
            _data="${dumpdir}/${dset}"
            _dir=$(inference_dir "${dset}")
            _logdir="${_dir}/logdir"
            mkdir -p "${_logdir}"
            _nj=$(min "${inference_nj}" "$(wc -l < "${_data}/wav.scp")")
            key_file="${_data}/wav.scp"
            split_scps=
            for n in $(seq "${_nj}"); do
                split_scps+=" ${_logdir}/keys.${n}.scp"
            done
            # shellcheck disable=SC2086
            utils/split_scp.pl "${key_file}" ${split_scps}
            rm -rf "${_logdir}"/output.*

            log "Inference on ${dset}: ${_nj} jobs, log in ${_logdir}/cls_inference.*.log"
            # shellcheck disable=SC2086
            ${_cmd} --gpu "${_ngpu}" JOB=1:"${_nj}" "${_logdir}"/cls_inference.JOB.log \
                ${python} -m espnet_cls.bin.cls_inference \
                    --ngpu "${_ngpu}" \
                    --data_path_and_name_and_type "${_data}/wav.scp,speech,${fact_speech_type}" \
                    --key_file "${_logdir}/keys.JOB.scp" \
                    --classification_train_config "${cls_exp}/config.yaml" \
                    --classification_model_file "${cls_exp}/${inference_model}" \
                    --output_dir "${_logdir}/output.JOB" \
                    --output_all_probabilities "${output_all_probabilities}" \
                    ${inference_backend_opts} ${inference_args}

            for f in text score; do
                if [ -f "${_logdir}/output.1/prediction/${f}" ]; then
                    for n in $(seq "${_nj}"); do
                        cat "${_logdir}/output.${n}/prediction/${f}"
                    done | LC_ALL=C sort -k1,1 > "${_dir}/${f}.tmp"
                    mv "${_dir}/${f}.tmp" "${_dir}/${f}"
                fi
            done
        done
        stage_end 7
    fi

    if run_stage 8; then
        stage_begin 8 "Scoring"
        need_worker espnet_cls.scoring 8
        need_worker espnet_cls.bin.make_results 8
        need_worker espnet_cls.bin.report 8
        lock_dir "${cls_exp}"
        for dset in ${eval_sets}; do
            _data="${dumpdir}/${dset}"
            _dir=$(inference_dir "${dset}")
            mkdir -p "${_dir}/scoring"
            ${python} pyscripts/utils/score_cls.py \
                -gtxt "${_data}/text" \
                -ptxt "${_dir}/text" \
                -pscore "${_dir}/score" \
                -tok "${token_list}" \
                --classification_train_config "${cls_exp}/config.yaml" \
                -o "${_dir}/scoring"
        done
        ${python} -m espnet_cls.bin.make_results "${cls_exp}"
        ${python} -m espnet_cls.bin.report "${cls_exp}"
        cat "${cls_exp}/RESULTS.md"
        log "Report: ${cls_exp}/report.html"
        stage_end 8
    fi
else
    log "Skip the evaluation stages"
fi

packed_model="${cls_exp}/${cls_exp##*/}_${inference_model%.*}.zip"
if ! "${skip_upload}" || ! "${skip_packing}"; then
    if run_stage 9; then
        stage_begin 9 "Pack model: ${packed_model}"
        need_worker espnet_cls.bin.pack 9
        lock_dir "${cls_exp}"
        # the packer adds the global-MVN statistics itself when the trained config uses them
        _opts=
        [ -f "${cls_exp}/RESULTS.md" ] && _opts+="--option ${cls_exp}/RESULTS.md "
        [ -d "${cls_exp}/images" ] && _opts+="--option ${cls_exp}/images "
        # shellcheck disable=SC2086
        ${python} -m espnet_cls.bin.pack \
            --classification_train_config "${cls_exp}/config.yaml" \
            --classification_model_file "${cls_exp}/${inference_model}" \
            --option "${token_list}" ${_opts} \
            --outpath "${packed_model}"
        stage_end 9
    fi
else
    log "Skip the packing stage"
fi

if ! "${skip_upload}"; then
    if run_stage 10; then
        stage_begin 10 "Upload model to Hugging Face: ${hf_repo}"
        if [ -z "${hf_repo}" ]; then
            log "Error: --hf_repo is required for stage 10 (e.g. --hf_repo user/my_model)"
            exit 1
        fi
        need_worker espnet_cls.bin.upload 10
        ${python} -m espnet_cls.bin.upload --packed_model "${packed_model}" --hf_repo "${hf_repo}"
        stage_end 10
    fi
else
    log "Skip the uploading stage"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
