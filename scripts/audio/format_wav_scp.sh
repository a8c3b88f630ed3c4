#!/usr/bin/env bash
# Stage 2 driver (ESPnet's scripts/audio/format_wav_scp.sh equivalent).
#
# Splits the utterance list (wav.scp, or segments when given) into nj parts, runs
# `python -m espnet_cls.bin.format_wav_scp` as ${cmd} JOB=1:nj, then merges the parts
# into <dir>/wav.scp and <dir>/utt2num_samples (sorted, written via temp + rename, only
# when every job succeeded) and writes <dir>/feats_type (raw).
#
# Layout:  <dir>/data/format.JOB/<utt>.<fmt>   audio (mono, 16-bit, at fs)
#          <dir>/data/format.JOB/{wav.scp,utt2num_samples}   each job's part
#          <dir>/logs/{keys.JOB.scp,format_wav_scp.JOB.log}
#
# Re-running after a failure or a kill redoes only what is missing or changed: each audio
# file is written atomically (temp + rename) and tagged with its source (the wav.scp
# entry and segment, in the file's metadata comment); a job keeps an existing file that
# is mono, 16-bit, of the right format and rate, carries the current tag and is not
# older than its source file, and moves such a file from another format.* folder when
# the split changed. After a successful merge, audio no longer listed is removed.
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
  --audio-format <fmt>      # flac or wav, 16-bit PCM (default: flac)
  --fs <fs>                 # output sampling rate: 16k, 16000, 8k, 44.1k (default: 16k)
  --segments <segments>     # Kaldi segments file (utt rec start end); utterances are its keys
  --max-overshoot <sec>     # a segment ending beyond its recording by <= this is truncated (default: 0.5)
  --python <python>         # python interpreter (default: python3)
EOF
)

nj=1
cmd=${root}/utils/run.pl
audio_format=flac
fs=16k
segments=
max_overshoot=0.5
python=python3

# Kaldi-style option parsing (--foo-bar and --foo_bar both set foo_bar)
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "${help_message}"
            exit 0
            ;;
        --*=*)
            echo "$0: use '--option value', not '$1'" >&2
            exit 2
            ;;
        --*)
            name=${1#--}
            name=${name//-/_}
            case "${name}" in
                nj|cmd|audio_format|fs|segments|max_overshoot|python) ;;
                *)
                    echo "$0: invalid option $1" >&2
                    echo "${help_message}" >&2
                    exit 2
                    ;;
            esac
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value" >&2
                exit 2
            fi
            printf -v "${name}" '%s' "$2"
            shift 2
            ;;
        *)
            break
            ;;
    esac
done

if [ $# -lt 2 ] || [ $# -gt 4 ]; then
    echo "${help_message}" >&2
    exit 2
fi

scp=$1
dir=${2%/}
set_name=$(basename "${dir}")
logdir=${3:-${dir}/logs}
logdir=${logdir%/}
datadir=${4:-${dir}/data}
datadir=${datadir%/}

case "${audio_format}" in
    flac|wav) ;;
    *)
        echo "$0: --audio-format must be flac or wav, got '${audio_format}'" >&2
        exit 2
        ;;
esac
if ! [[ "${nj}" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: --nj must be a positive integer, got '${nj}'" >&2
    exit 2
fi
if [ ! -f "${scp}" ]; then
    echo "$0: ERROR: no such file: ${scp}" >&2
    exit 1
fi
keysrc=${scp}
if [ -n "${segments}" ]; then
    if [ ! -f "${segments}" ]; then
        echo "$0: ERROR: no such file: ${segments}" >&2
        exit 1
    fi
    keysrc=${segments}
fi
nutt=$(wc -l < "${keysrc}")
if [ "${nutt}" -eq 0 ]; then
    echo "$0: ERROR: ${keysrc} is empty" >&2
    exit 1
fi
if [ "${nj}" -gt "${nutt}" ]; then
    log "Reducing nj from ${nj} to the number of utterances, ${nutt}"
    nj=${nutt}
fi

mkdir -p "${logdir}" "${datadir}"
# never leave an old merged list behind: it is rewritten below once every job succeeded
rm -f "${dir}/wav.scp" "${dir}/utt2num_samples"

split_scps=()
for n in $(seq "${nj}"); do
    split_scps+=("${logdir}/keys.${n}.scp")
done
"${root}/utils/split_scp.pl" "${keysrc}" "${split_scps[@]}"

opts=(--fs "${fs}" --audio_format "${audio_format}" --set_name "${set_name}" --max_overshoot "${max_overshoot}")
if [ -n "${segments}" ]; then
    opts+=(--segments "${segments}")
fi

log "Dumping ${nutt} utterances of ${scp} to ${datadir}/format.{1..${nj}} (fs=${fs}, ${audio_format}, nj=${nj})"
start=$(date +%s.%N)
# shellcheck disable=SC2086
if ! ${cmd} "JOB=1:${nj}" "${logdir}/format_wav_scp.JOB.log" \
    "${python}" -m espnet_cls.bin.format_wav_scp "${opts[@]}" \
    --keys "${logdir}/keys.JOB.scp" "${scp}" "${datadir}/format.JOB"; then
    # one line per bad utterance, from the job logs
    errs=$(grep -h -E "ERROR: .*: set [^ ]+, utt " "${logdir}"/format_wav_scp.*.log 2> /dev/null | sed 's/^.*ERROR: /ERROR: /' || true)
    nerr=$(printf '%s' "${errs}" | grep -c . || true)
    if [ "${nerr}" -gt 0 ]; then
        printf '%s\n' "${errs}" | head -n 20 >&2
        if [ "${nerr}" -gt 20 ]; then
            echo "... and $((nerr - 20)) more" >&2
        fi
    fi
    if [ "${nerr}" -eq 0 ]; then
        # not a bad utterance: a malformed input file (the same line from every job) or a crash
        other=$(grep -h "ERROR: " "${logdir}"/format_wav_scp.*.log 2> /dev/null | grep -v "utterance(s) failed" \
            | sed 's/^.*ERROR: /ERROR: /' | LC_ALL=C sort -u || true)
        if [ -n "${other}" ]; then
            printf '%s\n' "${other}" | head -n 20 >&2
        else
            for f in "${logdir}"/format_wav_scp.*.log; do
                if grep -q "^# Ended (code [1-9]" "${f}" 2> /dev/null; then
                    echo "--- tail of ${f}:" >&2
                    grep -v "^#" "${f}" | tail -n 5 >&2
                fi
            done
        fi
    fi
    if [ "${nerr}" -gt 0 ]; then
        what="${nerr} bad utterance(s) in set ${set_name}"
    else
        what="failed for set ${set_name}"
    fi
    echo "$0: ERROR: ${what}; ${dir}/wav.scp not written. Logs: ${logdir}/format_wav_scp.*.log" >&2
    exit 1
fi

# merge: sorted (C locale), via temp + rename, and only if every part is complete
parts_scp=()
parts_n=()
for n in $(seq "${nj}"); do
    for f in wav.scp utt2num_samples; do
        if [ ! -f "${datadir}/format.${n}/${f}" ]; then
            echo "$0: ERROR: job ${n} left no ${datadir}/format.${n}/${f}; see ${logdir}/format_wav_scp.${n}.log" >&2
            exit 1
        fi
    done
    parts_scp+=("${datadir}/format.${n}/wav.scp")
    parts_n+=("${datadir}/format.${n}/utt2num_samples")
done
cat "${parts_scp[@]}" | LC_ALL=C sort -k1,1 > "${dir}/.wav.scp.tmp"
cat "${parts_n[@]}" | LC_ALL=C sort -k1,1 > "${dir}/.utt2num_samples.tmp"
nout=$(wc -l < "${dir}/.wav.scp.tmp")
ndup=$(cut -d' ' -f1 "${dir}/.wav.scp.tmp" | LC_ALL=C uniq -d | wc -l)
if [ "${nout}" -ne "${nutt}" ] || [ "${ndup}" -ne 0 ] || [ "$(wc -l < "${dir}/.utt2num_samples.tmp")" -ne "${nutt}" ]; then
    echo "$0: ERROR: merged ${nout} lines (${ndup} duplicate keys) for ${nutt} utterances of ${keysrc}" >&2
    rm -f "${dir}/.wav.scp.tmp" "${dir}/.utt2num_samples.tmp"
    exit 1
fi
mv "${dir}/.utt2num_samples.tmp" "${dir}/utt2num_samples"
mv "${dir}/.wav.scp.tmp" "${dir}/wav.scp"
echo raw > "${dir}/.feats_type.tmp"
mv "${dir}/.feats_type.tmp" "${dir}/feats_type"

# remove audio of earlier runs that the new wav.scp does not list (changed inputs, nj or format)
find "${datadir}" -mindepth 2 -maxdepth 2 -type f -path "${datadir}/format.*/*" \( -name '*.flac' -o -name '*.wav' \) \
    | LC_ALL=C sort > "${logdir}/.all_audio"
cut -d' ' -f2- "${dir}/wav.scp" | LC_ALL=C sort > "${logdir}/.listed_audio"
nstale=$(LC_ALL=C comm -23 "${logdir}/.all_audio" "${logdir}/.listed_audio" | wc -l)
nfound=$(LC_ALL=C comm -12 "${logdir}/.all_audio" "${logdir}/.listed_audio" | wc -l)
if [ "${nfound}" -ne "${nutt}" ]; then
    # the listed paths must all be found, else the path spellings differ: delete nothing
    log "Warning: only ${nfound} of the ${nutt} listed files found by find; not removing old audio"
elif [ "${nstale}" -gt 0 ]; then
    log "Removing ${nstale} audio file(s) of earlier runs not listed in ${dir}/wav.scp"
    LC_ALL=C comm -23 "${logdir}/.all_audio" "${logdir}/.listed_audio" | tr '\n' '\0' | xargs -0 rm -f --
fi
rm -f "${logdir}/.all_audio" "${logdir}/.listed_audio"
for d in "${datadir}"/format.*; do
    n=${d##*/format.}
    if [[ "${n}" =~ ^[0-9]+$ ]] && [ "${n}" -gt "${nj}" ]; then
        rm -rf "${d}"
    fi
done

elapsed=$(awk -v s="${start}" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
rate=$(awk -v n="${nutt}" -v t="${elapsed}" 'BEGIN { printf "%.1f", (t > 0 ? n / t : 0) }')
log "Wrote ${dir}/wav.scp and utt2num_samples: ${nutt} utterances in ${elapsed} s (${rate} clips/s, nj=${nj})"
