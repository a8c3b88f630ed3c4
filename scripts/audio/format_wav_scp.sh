#!/usr/bin/env bash
# Stage 2 driver (ESPnet's scripts/audio/format_wav_scp.sh equivalent).
#
# Thin on purpose: the logic is Python (espnet_cls/dump.py, "stage 2 driver"); this script
# only splits the key list, runs the jobs as ${cmd} JOB=1:nj and calls the merge.
#
#   1. format_wav_scp --step begin   validate the source (wav.scp, segments and, with
#                                    --copy-data-dir true, the data dir's tables), clear old
#                                    merged lists, write <logdir>/keys.all, print nj
#   2. utils/split_scp.pl            keys.all -> keys.JOB.scp
#   3. ${cmd} JOB=1:nj ...           format_wav_scp (one job each)
#   4. format_wav_scp --step end     merge into <dir>/wav.scp, utt2num_samples, feats_type, fs
#      (or --step report             after a failed job: one line per bad utterance)
#
# Layout:  <dir>/data/format.JOB/<utt>.<fmt>   audio (mono, 16-bit, at fs)
#          <dir>/data/format.JOB/{wav.scp,utt2num_samples,errors}   each job's part
#          <dir>/logs/{keys.all,keys.JOB.scp,format_wav_scp.JOB.log}
# Re-running after a failure or a kill redoes only what is missing or changed (see
# espnet_cls/dump.py); a bad source writes nothing under <dir>.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)

help_message=$(cat <<EOF
Usage: $0 [options] <wav.scp> <dumpdir> [<logdir> [<audiodir>]]
e.g.:  $0 --nj 8 --cmd run.pl --audio-format flac --fs 16k data/train/wav.scp dump/train
  <logdir> defaults to <dumpdir>/logs, <audiodir> to <dumpdir>/data (as ESPnet's script)

Options:
  --nj <nj>                 # number of parallel jobs (default: 1; at most the number of utterances)
  --cmd <cmd>               # job runner, Kaldi interface: run.pl, slurm.pl ... (default: utils/run.pl)
  --audio-format <fmt>      # flac or wav (a file per clip), flac.ark or wav.ark (a Kaldi ark per job), 16-bit PCM (default: flac)
  --fs <fs>                 # output sampling rate: 16k, 16000, 8k, 44.1k (default: 16k)
  --segments <segments>     # Kaldi segments file (utt rec start end); utterances are its keys
  --max-overshoot <sec>     # a segment ending beyond its recording by <= this is truncated (default: 0.5)
  --copy-data-dir <bool>    # the folder of <wav.scp> is a data dir: validate its tables and copy them (default: false)
  --python <python>         # python interpreter (default: python3)
EOF
)

nj=1
cmd=${root}/utils/run.pl
audio_format=flac
fs=16k
segments=
max_overshoot=0.5
copy_data_dir=false
python=python3

# shellcheck source=../../utils/parse_options.sh
. "${root}/utils/parse_options.sh"

if [ $# -lt 2 ] || [ $# -gt 4 ]; then
    echo "${help_message}" >&2
    exit 2
fi

scp=$1
dir=${2%/}
logdir=${3:-${dir}/logs}
logdir=${logdir%/}
datadir=${4:-${dir}/data}
datadir=${datadir%/}

worker=("${python}" -m espnet_cls.bin.format_wav_scp)
src_opts=(--copy_data_dir "${copy_data_dir}" --logdir "${logdir}" --audiodir "${datadir}")
if [ -n "${segments}" ]; then
    src_opts+=(--segments "${segments}")
fi

# 1. validate the source; nothing is written under ${dir} when it is bad
nj=$("${worker[@]}" --step begin --nj "${nj}" "${src_opts[@]}" "${scp}" "${dir}")
nutt=$(wc -l < "${logdir}/keys.all")

# 2. split
split_scps=()
for n in $(seq "${nj}"); do
    split_scps+=("${logdir}/keys.${n}.scp")
done
"${root}/utils/split_scp.pl" "${logdir}/keys.all" "${split_scps[@]}"

# 3. the jobs
opts=(--fs "${fs}" --audio_format "${audio_format}" --set_name "${dir##*/}" --max_overshoot "${max_overshoot}")
if [ -n "${segments}" ]; then
    opts+=(--segments "${segments}")
fi
mkdir -p "${datadir}"
log "Dumping ${nutt} utterances of ${scp} to ${datadir}/format.{1..${nj}} (fs=${fs}, ${audio_format}, nj=${nj})"
start=$(date +%s.%N)
# shellcheck disable=SC2086
if ! ${cmd} "JOB=1:${nj}" "${logdir}/format_wav_scp.JOB.log" \
    "${worker[@]}" "${opts[@]}" --keys "${logdir}/keys.JOB.scp" "${scp}" "${datadir}/format.JOB"; then
    "${worker[@]}" --step report --nj "${nj}" "${src_opts[@]}" "${scp}" "${dir}" || true
    exit 1
fi

# 4. merge
"${worker[@]}" --step end --nj "${nj}" --fs "${fs}" --audio_format "${audio_format}" "${src_opts[@]}" --log_level WARNING "${scp}" "${dir}"
elapsed=$(awk -v s="${start}" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
rate=$(awk -v n="${nutt}" -v t="${elapsed}" 'BEGIN { printf "%.1f", (t > 0 ? n / t : 0) }')
log "Wrote ${dir}/wav.scp and utt2num_samples: ${nutt} utterances in ${elapsed} s (${rate} clips/s, nj=${nj})"
