"""Stage 2 worker (one JOB): decode wav.scp entries, write mono ``fs`` flac/wav files.

Usually run by ``scripts/audio/format_wav_scp.sh`` through ``${cmd} JOB=1:nj``; it can
also be run by hand on a whole ``wav.scp``::

    python -m espnet_cls.bin.format_wav_scp --fs 16k --audio_format flac \\
        [--segments data/x/segments] [--keys dump/x/logs/keys.1.scp] data/x/wav.scp dump/x/data/format.1

Exit status 1 when any utterance failed (one ERROR line each) or an input file is malformed.

The driver's other steps (see espnet_cls.dump, "stage 2 driver") run the same entry point
with ``--step``::

    --step begin  --nj N [--segments S] [--copy_data_dir true] data/x/wav.scp dump/x
                  # validate the source, print the number of jobs, write dump/x/logs/keys.all
    --step report --nj N data/x/wav.scp dump/x   # after a failed ${cmd}: the bad utterances
    --step end    --nj N --fs 16k [--segments S] [--copy_data_dir true] data/x/wav.scp dump/x
                  # merge the parts; write wav.scp, utt2num_samples, feats_type, fs
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from espnet_cls.audio import ARK_AUDIO_FORMATS, AUDIO_FORMATS, DEFAULT_MAX_OVERSHOOT
from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none
from espnet_cls.contract import parse_fs
from espnet_cls.dump import dump_begin, dump_end, failed_jobs_report, format_wav_scp


def _fs(value: str) -> int:
    try:
        return parse_fs(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description="Decode wav.scp entries (path or 'cmd |', optional segments), downmix to mono, "
        "resample to --fs and write 16-bit flac/wav files plus this job's wav.scp and utt2num_samples.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("scp", help="input wav.scp (the whole file; --keys selects this job's part)")
    p.add_argument("outdir", help="output folder for <utt>.<fmt>, wav.scp and utt2num_samples")
    p.add_argument(
        "--step",
        default="job",
        choices=["begin", "job", "report", "end"],
        help="begin: validate the source and plan the jobs; job: dump one job's utterances (OUTDIR: its format.JOB); "
        "report: list a failed run's bad utterances; end: merge the jobs' parts (OUTDIR: the dump dir)",
    )
    p.add_argument("--nj", type=int, default=1, help="number of jobs (steps begin, report, end)")
    p.add_argument(
        "--copy_data_dir",
        type=str2bool,
        default=False,
        help="steps begin/end: the scp's folder is a data dir: validate its tables (text, utt2spk, ...) and copy them",
    )
    p.add_argument("--logdir", type=str_or_none, default=None, help="steps begin/report: default OUTDIR/logs")
    p.add_argument("--audiodir", type=str_or_none, default=None, help="steps report/end: default OUTDIR/data")
    p.add_argument("--fs", type=_fs, default=None, help="target sampling rate: 16k, 16000, 8k, 44.1k (steps job, end)")
    p.add_argument("--audio_format", "--audio-format", default="flac", choices=sorted([*AUDIO_FORMATS, *ARK_AUDIO_FORMATS]),
                   help="flac/wav: one file per clip; flac.ark/wav.ark: one Kaldi ark per job (ESPnet's), wav.scp holds ark:offset")
    p.add_argument("--segments", type=str_or_none, default=None, help="Kaldi segments file: utt rec start end")
    p.add_argument("--keys", type=str_or_none, default=None, help="file whose first column lists the utts of this job")
    p.add_argument("--set_name", type=str_or_none, default=None, help="name used in messages (default: scp's folder)")
    p.add_argument(
        "--max_overshoot",
        type=float,
        default=DEFAULT_MAX_OVERSHOOT,
        help="a segment ending beyond its recording by at most this many seconds is truncated (Kaldi's default)",
    )
    p.add_argument("--out_filename", type=str_or_none, default=None, help="default: OUTDIR/wav.scp")
    p.add_argument("--utt2num_samples", type=str_or_none, default=None, help="default: OUTDIR/utt2num_samples")
    p.add_argument("--log_every", type=int, default=1000, help="log progress every N clips (0: only the summary)")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one job; 0 if every utterance was written, 1 otherwise."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.step in ("job", "end") and args.fs is None:
        parser.error(f"--step {args.step} needs --fs")
    if args.step == "begin":
        nj = dump_begin(args.scp, args.outdir, args.nj, args.segments, args.logdir, args.copy_data_dir, args.set_name)
        print(nj)
        return 0
    if args.step == "report":
        for line in failed_jobs_report(args.outdir, args.nj, args.logdir, args.audiodir):
            print(line, file=sys.stderr)
        return 1
    if args.step == "end":
        n = dump_end(
            args.scp, args.outdir, args.nj, args.fs, args.segments, args.copy_data_dir, args.audiodir, args.set_name, args.audio_format
        )
        logging.getLogger("espnet_cls").info("merged %d utterances into %s/wav.scp", n, args.outdir)
        return 0
    res = format_wav_scp(
        args.scp,
        args.outdir,
        fs=args.fs,
        audio_format=args.audio_format,
        segments=args.segments,
        keys=args.keys,
        set_name=args.set_name,
        max_overshoot=args.max_overshoot,
        log_every=args.log_every,
        out_wav_scp=args.out_filename,
        out_num_samples=args.utt2num_samples,
        show_progress=sys.stderr.isatty(),
    )
    if res.errors:
        # the last ERROR line of the job log (what run.pl/slurm.pl show) names the first bad utterance
        logging.getLogger("espnet_cls").error(
            "%d of %d utterance(s) failed, this job's %s not written; first: %s",
            len(res.errors), res.n_total, args.out_filename or "wav.scp", res.errors[0],
        )  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
