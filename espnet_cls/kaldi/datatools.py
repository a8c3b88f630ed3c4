"""More Kaldi data-dir tools: ``combine_data.sh``, ``subset_data_dir.sh``, ``split_data.sh``,
``data/get_utt2dur.sh``, ``data/get_reco2dur.sh``, ``data/get_segments_for_data.sh``; and ``subset_scp.pl``.

Same options, selections, output files and exit codes as Kaldi's scripts (tests/test_utils_kaldi_diff.py runs
both on the same inputs).  Standard library only; durations are read from WAV headers (a command ending in
``|`` is run and its output read), other formats through ``soundfile`` when it is installed.

combine_data.sh [--extra-files "f1 f2"] [--skip-fix true] <dest> <src1> <src2> ...
    Concatenates the tables every source has (utt2uniq and segments are made where missing), sorts them,
    rebuilds spk2utt, then runs fix_data_dir.sh on <dest> (unless --skip-fix true).
subset_data_dir.sh [--speakers|--shortest|--first|--last|--per-spk] <srcdir> <num-utt> <destdir>
subset_data_dir.sh [--spk-list <file>|--utt-list <file>] <srcdir> <destdir>
    Default selection: utterances spread evenly over the list (subset_scp.pl's rule, not random);
    --speakers: shuffled speakers (Kaldi's seed) until <num-utt> utterances.
split_data.sh [--per-utt] <data-dir> <n>
    <data-dir>/split<n>[utt]/{1..n}; speakers kept whole unless --per-utt; skipped when already up to date.
data/get_utt2dur.sh [--frame-shift 0.01] [--nj N] [--cmd C] [--read-entire-file false] <data-dir>
    From segments, from utt2num_frames and frame_shift, or from the audio of wav.scp.
data/get_reco2dur.sh [--frame-shift 0.01] [--nj N] [--cmd C] <data-dir>
data/get_segments_for_data.sh <data-dir>   (segments on stdout: <utt> <utt> 0 <duration>)
perturb_data_dir_speed.sh [--include-spk-prefix true] <factor> <srcdir> <destdir>
    ids prefixed sp<factor>- (or suffixed -sp<factor>), wav.scp entries piped through ``sox ... speed <factor>``,
    segments/utt2dur/reco2dur divided by the factor, utt2uniq made; then fix_data_dir.sh and validation.
subset_scp.pl [--quiet] [--first|--last] <N> <in.scp>
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

from espnet_cls.kaldi.datadir import (
    DataDirError,
    fix,
    keep_lines,
    parse_kaldi_options,
    read_table,
    run_tool,
    spk2utt_from,
)
from espnet_cls.kaldi.scp import ScpError, chunk_sizes, split_by_speaker
from espnet_cls.kaldi.textutil import awk_fields, awk_key, perl_fields, perl_key

# ----------------------------------------------------------------------------------------------- helpers


def _p(d: str, name: str) -> str:
    return os.path.join(d, name)


def _raw(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _lines(data: bytes) -> List[bytes]:
    out = data.split(b"\n")
    if out and out[-1] == b"":
        out.pop()
    return out


def _write(path: str, lines: List[bytes]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.writelines(ln + b"\n" for ln in lines)
    os.replace(tmp, path)


def _keep(ids: List[bytes], lines: List[bytes], where: str) -> List[bytes]:
    """filter_scp.pl: the lines whose first field is the first field of a line of ``ids``."""
    return keep_lines(ids, lines, f", {where}", f", {where}")


def _utt2spk_from_spk2utt(spk2utt: List[bytes], where: str) -> List[bytes]:
    out = []
    for n, ln in enumerate(spk2utt, 1):
        f = perl_fields(ln)
        if len(f) < 2:
            raise DataDirError(f"spk2utt_to_utt2spk.pl: Invalid line in spk2utt file (line {n} of {where} has no utterances)")
        out += [u + b" " + f[0] for u in f[1:]]
    return out


def _awk_num_prefix(s: bytes) -> float:
    """awk's numeric value of a string in arithmetic (its longest numeric prefix, else 0)."""
    import re

    m = re.match(rb"[ \t\n]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", s)
    return float(m.group(1)) if m else 0.0


def _awk_print_num(v: float) -> bytes:
    """awk's ``print`` of a number (integers as integers, else OFMT %.6g)."""
    if v == int(v) and abs(v) < 1e16:
        return str(int(v)).encode()
    return b"%.6g" % v


# ------------------------------------------------------------------------------------------ subset_scp.pl


def subset_lines(lines: List[bytes], n: int, first: bool = False, last: bool = False) -> List[bytes]:
    """subset_scp.pl's choice of ``n`` lines: head, tail, or spread evenly by halving (deterministic)."""
    if first:
        return lines[:n]
    if last:
        return lines[len(lines) - n :]
    out: List[bytes] = []

    def select(start: int, end: int, needed: int) -> None:
        diff = end - start
        if diff == 1:
            if needed > 0:
                out.append(lines[start])
            return
        half = diff // 2
        select(start, start + half, needed // 2)
        select(start + half, end, needed - needed // 2)

    if n > 0:
        select(0, len(lines), n)
    return out


def subset_scp(argv: List[str]) -> int:
    """``subset_scp.pl [--quiet] [--first|--last] N in.scp`` (stdout)."""
    args = list(argv)
    quiet = first = last = False
    if args and args[0] == "--quiet":
        quiet = True
        args.pop(0)
    if args and args[0] == "--first":
        first = True
        args.pop(0)
    if args and args[0] == "--last":
        last = True
        args.pop(0)
    if len(args) < 2:
        raise DataDirError(
            "Usage: subset_scp.pl [--quiet][--first|--last] N in.scp\n"
            " --quiet  causes it to not die if N < num lines in scp.\n"
            " --first and --last make it equivalent to head or tail."
        )
    try:
        n = int(args[0])
    except ValueError:
        n = 0
    if n == 0:
        raise DataDirError(f'First command-line parameter to subset_scp.pl must be an integer, got "{args[0]}"')
    lines = _raw_lines_keep_ends(args[1])
    if n > len(lines):
        if not quiet:
            raise DataDirError(f"You requested from subset_scp.pl more elements than available: {n} > {len(lines)}")
        n = len(lines)
    sys.stdout.buffer.writelines(subset_lines(lines, n, first, last))
    sys.stdout.buffer.flush()
    return 0


def _raw_lines_keep_ends(path: str) -> List[bytes]:
    with open(path, "rb") as f:
        return f.readlines()


# ---------------------------------------------------------------------------------------- combine_data.sh

COMBINE_FILES = [
    "utt2spk", "utt2lang", "utt2dur", "utt2num_frames", "reco2dur", "feats.scp", "text", "cmvn.scp", "vad.scp",
    "reco2file_and_channel", "wav.scp", "spk2gender",
]  # fmt: skip


def combine(argv: List[str]) -> int:
    """``combine_data.sh``; returns the exit status."""
    print("combine_data.sh " + " ".join(argv))
    opts = {"extra_files": "", "skip_fix": "false"}
    args = parse_kaldi_options("combine_data.sh", argv, opts)
    if len(args) < 2:
        print(
            "Usage: combine_data.sh [--extra-files 'file1 file2'] <dest-data-dir> <src-data-dir1> <src-data-dir2> ...\n"
            "Note, files that don't appear in all source dirs will not be combined,\n"
            "with the exception of utt2uniq and segments, which are created where necessary."
        )
        return 1
    dest, srcs = args[0], args[1:]
    if any(os.path.realpath(s) == os.path.realpath(dest) for s in srcs):
        raise DataDirError(f"<dest-data-dir> {dest} is also a source; it would be removed first (Kaldi's script removes it)")
    for s in srcs:
        if not os.path.isfile(_p(s, "utt2spk")):
            raise DataDirError(f"no such file {s}/utt2spk")
    shift_dir = None
    for s in srcs:
        if os.path.isfile(_p(s, "feats.scp")) and os.path.isfile(_p(s, "frame_shift")):
            if shift_dir and _raw(_p(shift_dir, "frame_shift")) != _raw(_p(s, "frame_shift")):
                raise DataDirError(f"error: different frame_shift in directories {s} and {shift_dir}. Cannot combine features.")
            shift_dir = s
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest, exist_ok=True)
    if any(os.path.isfile(_p(s, "utt2uniq")) for s in srcs):
        data = b""
        for s in srcs:
            if os.path.isfile(_p(s, "utt2uniq")):
                data += _raw(_p(s, "utt2uniq"))
            else:
                data += b"".join(awk_key(ln) + b" " + awk_key(ln) + b"\n" for ln in read_table(_p(s, "utt2spk")))
        _write(_p(dest, "utt2uniq"), sorted(_lines(data)))
        print("combine_data.sh: combined utt2uniq")
    else:
        print("combine_data.sh [info]: not combining utt2uniq as it does not exist")
    extra = opts["extra_files"].replace("utt2uniq", "").split()
    if any(os.path.isfile(_p(s, "segments")) for s in srcs):
        data = b""
        for s in srcs:
            if os.path.isfile(_p(s, "segments")):
                data += _raw(_p(s, "segments"))
            else:
                print(f"combine_data.sh [info]: will generate missing segments for {s}", file=sys.stderr)
                data += b"".join(ln + b"\n" for ln in segments_for_data(s))
        _write(_p(dest, "segments"), sorted(_lines(data)))
        print("combine_data.sh: combined segments")
    else:
        print("combine_data.sh [info]: not combining segments as it does not exist")
    for name in [*COMBINE_FILES, *extra]:
        have = [os.path.isfile(_p(s, name)) for s in srcs]
        if all(have):
            data = b"".join(_raw(_p(s, name)) for s in srcs)
            _write(_p(dest, name), sorted(_lines(data)))
            print(f"combine_data.sh: combined {name}")
        elif any(have):
            print(f"combine_data.sh [info]: **not combining {name} as it does not exist everywhere**")
        else:
            print(f"combine_data.sh [info]: not combining {name} as it does not exist")
    _write(_p(dest, "spk2utt"), spk2utt_from(read_table(_p(dest, "utt2spk")), _p(dest, "utt2spk")))
    if shift_dir:
        shutil.copyfile(_p(shift_dir, "frame_shift"), _p(dest, "frame_shift"))
    if opts["skip_fix"] != "true":
        rc = fix([dest])
        if rc != 0:
            return 1
    return 0


# ------------------------------------------------------------------------------------- subset_data_dir.sh

SUBSET_USAGE = """Usage:
  subset_data_dir.sh [--speakers|--shortest|--first|--last|--per-spk] <srcdir> <num-utt> <destdir>
  subset_data_dir.sh [--spk-list <speaker-list-file>] <srcdir> <destdir>
  subset_data_dir.sh [--utt-list <utt-list-file>] <srcdir> <destdir>
By default, randomly selects <num-utt> utterances from the data directory.
With --speakers, randomly selects enough speakers that we have <num-utt> utterances
With --per-spk, selects <num-utt> utterances per speaker, if available.
With --first, selects the first <num-utt> utterances
With --last, selects the last <num-utt> utterances
With --shortest, selects the shortest <num-utt> utterances.
With --spk-list, reads the speakers to keep from <speaker-list-file>
With --utt-list, reads the utterances to keep from <utt-list-file>"""


def _sort_n_key2(line: bytes) -> Tuple[float, bytes]:
    """``sort -n -k2`` (LC_ALL=C): the leading number of field 2 on (no exponent; none = 0), then the line."""
    import re

    from espnet_cls.kaldi.textutil import sort_key2

    m = re.match(rb"[ \t]*(-?(?:\d+\.?\d*|\.\d+))", sort_key2(line))
    return (float(m.group(1)) if m else 0.0, line)


def subset(argv: List[str]) -> int:
    """``subset_data_dir.sh``; returns the exit status."""
    args = list(argv)
    mode = "random"
    lst = None
    expect = 3
    if args and args[0] in ("--first", "--last", "--per-spk", "--shortest", "--speakers"):
        mode = args.pop(0)[2:]
    elif args and args[0] in ("--spk-list", "--utt-list"):
        mode = args.pop(0)[2:]
        lst = args.pop(0) if args else ""
        expect = 2
    elif args and args[0].startswith("--"):
        raise DataDirError(f"invalid option '{args[0]}'")
    if len(args) != expect:
        print(SUBSET_USAGE)
        return 1
    src = args[0]
    numutt = None if lst is not None else args[1]
    dest = args[-1]
    if not os.path.isfile(_p(src, "utt2spk")):
        raise DataDirError(f"no such file {src}/utt2spk")
    u2s_src = read_table(_p(src, "utt2spk"))
    n = 0
    if numutt is not None:
        try:
            n = int(numutt)
        except ValueError as e:
            raise DataDirError(f"<num-utt> must be an integer, got '{numutt}'") from e
        if n > len(u2s_src):
            raise DataDirError("cannot subset to more utterances than you originally had.")
    if mode == "shortest" and not os.path.isfile(_p(src, "feats.scp")):
        raise DataDirError("you selected --shortest but no feats.scp exist.")
    os.makedirs(dest, exist_ok=True)
    if mode == "spk-list":
        spk2utt = _keep(read_table(lst), read_table(_p(src, "spk2utt")), f"{lst} / {src}/spk2utt")
        utt2spk = _utt2spk_from_spk2utt(spk2utt, _p(dest, "spk2utt"))
    elif mode == "utt-list":
        utt2spk = _keep(read_table(lst), u2s_src, f"{lst} / {src}/utt2spk")
        spk2utt = spk2utt_from(utt2spk, _p(dest, "utt2spk"))
    elif mode == "speakers":
        from espnet_cls.kaldi.scp import drand48

        rand = iter(drand48(0))
        shuffled = sorted(((b"%.15g" % next(rand), ln) for ln in read_table(_p(src, "spk2utt"))), key=lambda t: t[0])
        picked, tot = [], 0
        for _, ln in shuffled:
            if tot < n:
                picked.append(ln)
            tot += len(awk_fields(ln)) - 1
        spk2utt = sorted(picked)
        utt2spk = _utt2spk_from_spk2utt(spk2utt, _p(dest, "spk2utt"))
    elif mode == "per-spk":
        spk2utt = []
        for ln in read_table(_p(src, "spk2utt")):
            f = awk_fields(ln)
            nf = len(f)
            skip = 1
            while n * (skip + 1) <= nf - 1:
                skip += 1
            picked = [f[x - 1] for x in range(2, nf + 1, skip) if x <= n * skip + 1]
            spk2utt.append(b"".join(w + b" " for w in [f[0] if f else b"", *picked]))
        utt2spk = _utt2spk_from_spk2utt(spk2utt, _p(dest, "spk2utt"))
    else:
        if mode == "shortest":
            if not os.path.isfile(_p(src, "utt2num_frames")):
                raise DataDirError("--shortest needs utt2num_frames (Kaldi's feat-to-len is not available here)")
            lens = sorted(read_table(_p(src, "utt2num_frames")), key=_sort_n_key2)
            utt2spk = _keep([awk_key(ln) for ln in lens[:n]], u2s_src, f"{src}/utt2spk")
        else:
            utt2spk = subset_lines(u2s_src, n, mode == "first", mode == "last")
        spk2utt = spk2utt_from(utt2spk, _p(dest, "utt2spk"))
    _write(_p(dest, "utt2spk"), utt2spk)
    _write(_p(dest, "spk2utt"), spk2utt)
    for name in ("feats.scp", "vad.scp", "utt2lang", "utt2dur", "utt2num_frames", "utt2uniq", "wav.scp", "utt2warp", "text"):
        if os.path.isfile(_p(src, name)):
            _write(_p(dest, name), _keep(utt2spk, read_table(_p(src, name)), f"{dest}/utt2spk / {src}/{name}"))
    for name in ("spk2warp", "spk2gender", "cmvn.scp"):
        if os.path.isfile(_p(src, name)):
            _write(_p(dest, name), _keep(spk2utt, read_table(_p(src, name)), f"{dest}/spk2utt / {src}/{name}"))
    if os.path.isfile(_p(src, "segments")):
        segs = _keep(utt2spk, read_table(_p(src, "segments")), f"{dest}/utt2spk / {src}/segments")
        _write(_p(dest, "segments"), segs)
        reco = sorted({(awk_fields(ln) + [b"", b""])[1] for ln in segs})
        if os.path.isfile(_p(src, "wav.scp")):
            _write(_p(dest, "wav.scp"), _keep(reco, read_table(_p(src, "wav.scp")), f"recordings / {src}/wav.scp"))
    else:
        wav = read_table(_p(dest, "wav.scp")) if os.path.isfile(_p(dest, "wav.scp")) else []
        reco = sorted({awk_key(ln) for ln in wav})
    for name in ("reco2file_and_channel", "reco2dur"):
        if os.path.isfile(_p(src, name)):
            _write(_p(dest, name), _keep(reco, read_table(_p(src, name)), f"recordings / {src}/{name}"))
    if os.path.isfile(_p(src, "stm")):
        stm = read_table(_p(src, "stm"))
        _write(_p(dest, "stm"), [ln for ln in stm if ln.startswith(b";;")] + _keep(reco, stm, f"recordings / {src}/stm"))
    if os.path.isfile(_p(src, "frame_shift")):
        shutil.copyfile(_p(src, "frame_shift"), _p(dest, "frame_shift"))
    print(f"subset_data_dir.sh: reducing #utt from {len(u2s_src)} to {len(utt2spk)}")
    return 0


# ------------------------------------------------------------------------------------------- split_data.sh

SPLIT_CHECKED = [
    "utt2spk", "spk2utt", "spk2warp", "feats.scp", "text", "wav.scp", "cmvn.scp", "spk2gender", "vad.scp",
    "segments", "reco2file_and_channel", "utt2lang",
]  # fmt: skip


def _split_by_ids(ids_per_job: List[List[bytes]], lines: List[bytes], field: int = 1) -> List[List[bytes]]:
    """filter_scps.pl: each input line to every job whose id list has its first field."""
    jobs: Dict[bytes, List[int]] = {}
    for j, ids in enumerate(ids_per_job):
        for ln in ids:
            k = perl_key(ln)
            if k is None:
                raise DataDirError("filter_scps.pl: Invalid line in id-list file (a blank line)")
            jobs.setdefault(k, []).append(j)
    out: List[List[bytes]] = [[] for _ in ids_per_job]
    for ln in lines:
        k = perl_key(ln)
        if k is None:
            raise DataDirError("filter_scps.pl: Bad line, could not get first field (a blank line)")
        for j in jobs.get(k, []):
            out[j].append(ln)
    return out


def split_data(argv: List[str]) -> int:
    """``split_data.sh``; returns the exit status."""
    args = list(argv)
    per_spk = True
    if args and args[0] == "--per-utt":
        per_spk = False
        args.pop(0)
    if len(args) != 2:
        print(
            "Usage: split_data.sh [--per-utt] <data-dir> <num-to-split>\nE.g.: split_data.sh data/train 50\n"
            "It creates its output in e.g. data/train/split50/{1,2,3,...50}, or if the\n"
            "--per-utt option was given, in e.g. data/train/split50utt/{1,2,3,...50}."
        )
        return 1
    data, num = args
    try:
        nsplit = int(num)
    except ValueError:
        nsplit = 0
    if nsplit <= 0:
        raise DataDirError(f"Invalid num-split argument {num}")
    u2s = read_table(_p(data, "utt2spk"))
    for name in ("feats.scp", "text"):
        if os.path.isfile(_p(data, name)):
            n2 = len(read_table(_p(data, name)))
            if n2 != len(u2s):
                print(f"** split_data.sh: warning, #lines is (utt2spk,{name}) is ({len(u2s)},{n2}); you can ")
                print(f"**  use utils/fix_data_dir.sh {data} to fix this.")
    sub = _p(data, f"split{nsplit}{'' if per_spk else 'utt'}")
    s1 = _p(sub, "1")
    if os.path.isdir(s1):
        stale = any(
            os.path.isfile(_p(data, f))
            and (not os.path.isfile(_p(s1, f)) or os.path.getmtime(_p(s1, f)) < os.path.getmtime(_p(data, f)))
            for f in SPLIT_CHECKED
        )
        if not stale:
            return 0
    dirs = [_p(sub, str(j + 1)) for j in range(nsplit)]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    try:
        if per_spk:
            utt2spk_map = {}
            for ln in u2s:
                f = ln.split()
                if len(f) != 2:
                    raise ScpError(f"Bad line in utt2spk file {data}/utt2spk: {ln.decode(errors='replace')}")
                utt2spk_map[f[0]] = f[1]
            chunks = split_by_speaker([ln + b"\n" for ln in u2s], utt2spk_map, nsplit, _p(data, "utt2spk"), _p(data, "utt2spk"))
            chunks = [[ln[:-1] for ln in c] for c in chunks]
        else:
            chunks, pos = [], 0
            for size in chunk_sizes(len(u2s), nsplit):
                chunks.append(u2s[pos : pos + size])
                pos += size
    except ScpError as e:
        raise DataDirError(f"split_scp.pl: {e}") from e
    spk2utts = []
    for d, c in zip(dirs, chunks):
        _write(_p(d, "utt2spk"), c)
        spk2utts.append(spk2utt_from(c, _p(d, "utt2spk")))
        _write(_p(d, "spk2utt"), spk2utts[-1])
    seg = os.path.isfile(_p(data, "segments"))
    names = ["feats.scp", "text", "vad.scp", "utt2lang", *([] if seg else ["wav.scp"]), "utt2dur", "utt2num_frames"]
    for name in names:
        if os.path.isfile(_p(data, name)):
            for d, part in zip(dirs, _split_by_ids(chunks, read_table(_p(data, name)))):
                _write(_p(d, name), part)
    for name in ("spk2gender", "spk2warp", "cmvn.scp"):
        if os.path.isfile(_p(data, name)):
            for d, part in zip(dirs, _split_by_ids(spk2utts, read_table(_p(data, name)))):
                _write(_p(d, name), part)
    if seg:
        parts = _split_by_ids(chunks, read_table(_p(data, "segments")))
        recos = []
        for d, part in zip(dirs, parts):
            _write(_p(d, "segments"), part)
            recos.append(sorted({(awk_fields(ln) + [b"", b""])[1] for ln in part}))
        for name in ("reco2file_and_channel", "wav.scp"):
            if os.path.isfile(_p(data, name)):
                for d, part in zip(dirs, _split_by_ids(recos, read_table(_p(data, name)))):
                    _write(_p(d, name), part)
    return 0


# ------------------------------------------------------------------------------------------- durations


def _wav_duration(data: bytes, total: int, read_entire: bool, what: str) -> float:
    """Duration of a RIFF/WAVE stream from its header (``data``: its first bytes, ``total``: its full length).

    The header's data size is used unless asked to read everything, or the size is unset (0 or 0xFFFFFFFF, as
    from a pipe) or larger than what is there: then the bytes actually present count.
    """
    if data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise DataDirError(f"{what}: not a WAV file (RIFF/WAVE header missing)")
    pos, rate, align, size, start = 12, 0, 0, None, 0
    while pos + 8 <= len(data):
        cid, csize = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if cid == b"fmt ":
            _, _ch, rate, _, align = struct.unpack("<HHIIH", data[pos + 8 : pos + 22])
        elif cid == b"data":
            size, start = csize, pos + 8
            break
        pos += 8 + csize + (csize & 1)
    if not rate or not align or size is None:
        raise DataDirError(f"{what}: WAV header without fmt/data chunk")
    avail = total - start
    if read_entire or size in (0, 0xFFFFFFFF) or size > avail:
        size = avail
    return size / float(align) / rate


def audio_duration(spec: bytes, read_entire: bool, what: str) -> float:
    """Duration of one wav.scp entry: a file, or a command ending in ``|`` whose output is read."""
    s = spec.strip()
    if s.endswith(b"|"):
        p = subprocess.run(["bash", "-c", s[:-1].decode(errors="surrogateescape")], capture_output=True, check=False)
        if p.returncode != 0:
            raise DataDirError(f"{what}: command failed (exit {p.returncode}): {p.stderr.decode(errors='replace').strip()[-300:]}")
        return _wav_duration(p.stdout, len(p.stdout), True, what)
    path = s.decode(errors="surrogateescape")
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            total = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise DataDirError(f"{what}: cannot open {path}: {e.strerror}") from e
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return _wav_duration(head, total, read_entire, what)
    try:
        import soundfile  # not needed for WAV; other formats when installed
    except ImportError as e:
        raise DataDirError(f"{what}: {path} is not a WAV file and the soundfile package is not installed") from e
    try:
        return float(soundfile.info(path).duration)
    except RuntimeError as e:
        raise DataDirError(f"{what}: cannot read {path}: {e}") from e


def _durations_from_wav(data: str, read_entire: bool) -> List[bytes]:
    out = []
    for n, ln in enumerate(read_table(_p(data, "wav.scp")), 1):
        f = ln.split(None, 1)
        if len(f) != 2:
            raise DataDirError(f"{data}/wav.scp line {n}: expected <id> <file or command |>")
        d = audio_duration(f[1], read_entire, f"{data}/wav.scp line {n} ({f[0].decode(errors='replace')})")
        out.append(f[0] + b" " + (b"%g" % d))
    return out


def _check_len(data: str, name: str, ref: str) -> int:
    n1, n2 = len(read_table(_p(data, ref))), len(read_table(_p(data, name)))
    if n1 != n2:
        print(f"{name}: warning: length of {name} does not equal that of {ref}, {n2} != {n1}")
        if n1 > n2 * 2:
            print("less than half of the entries got a duration: failing.")
            return 1
    return 0


def get_utt2dur(argv: List[str]) -> int:
    """``utils/data/get_utt2dur.sh``; returns the exit status."""
    opts = {"frame_shift": "0.01", "cmd": "run.pl", "nj": "4", "read_entire_file": "false"}
    args = parse_kaldi_options("get_utt2dur.sh", argv, opts)
    if len(args) != 1:
        print("Usage: get_utt2dur.sh [options] <datadir>\ne.g.:\n get_utt2dur.sh data/train\n Options:\n"
              " --frame-shift      # frame shift in seconds. Only relevant when we are getting duration from\n"
              "                    # feats.scp, and only if the file frame_shift does not exist (default: 0.01).")  # fmt: skip
        return 1
    data = args[0]
    u2d = _p(data, "utt2dur")
    if os.path.isfile(u2d) and os.path.getsize(u2d) > 0 and len(read_table(u2d)) == len(read_table(_p(data, "utt2spk"))):
        print(f"get_utt2dur.sh: {u2d} already exists with the expected length.  We won't recompute it.")
        return 0
    segs = _p(data, "segments")
    shift = _p(data, "frame_shift")
    if os.path.isfile(segs) and os.path.getsize(segs) > 0:
        print(f"get_utt2dur.sh: working out {u2d} from {segs}")
        out = []
        for ln in read_table(segs):
            f = awk_fields(ln) + [b""] * 4
            out.append(f[0] + b" " + _awk_print_num(_awk_num_prefix(f[3]) - _awk_num_prefix(f[2])))
    elif os.path.isfile(shift) and os.path.getsize(shift) > 0 and os.path.isfile(_p(data, "utt2num_frames")):
        print(f"get_utt2dur.sh: computing {u2d} from {data}/{{frame_shift,utt2num_frames}}.")
        fs = _awk_num_prefix(_raw(shift).strip())
        out = []
        for ln in read_table(_p(data, "utt2num_frames")):
            f = awk_fields(ln) + [b""]
            out.append(b" ".join([f[0], _awk_print_num((_awk_num_prefix(f[1]) + 1.5) * fs), *f[2:-1]]))
    elif os.path.isfile(_p(data, "wav.scp")):
        print("get_utt2dur.sh: segments file does not exist so getting durations from wave files")
        out = _durations_from_wav(data, opts["read_entire_file"] == "true")
    elif os.path.isfile(_p(data, "feats.scp")):
        raise DataDirError("durations from feats.scp need Kaldi's feat-to-len, which is not available here")
    else:
        raise DataDirError(f"Expected {data}/wav.scp, {data}/segments or {data}/feats.scp to exist")
    _write(u2d, out)
    if _check_len(data, "utt2dur", "utt2spk"):
        return 1
    print(f"get_utt2dur.sh: computed {u2d}")
    return 0


def get_reco2dur(argv: List[str]) -> int:
    """``utils/data/get_reco2dur.sh``; returns the exit status."""
    opts = {"frame_shift": "0.01", "cmd": "run.pl", "nj": "4"}
    args = parse_kaldi_options("get_reco2dur.sh", argv, opts)
    if len(args) != 1:
        print("Usage: get_reco2dur.sh [options] <datadir>\ne.g.:\n get_reco2dur.sh data/train")
        return 1
    data = args[0]
    r2d = _p(data, "reco2dur")
    wav = _p(data, "wav.scp")
    if os.path.isfile(r2d) and os.path.getsize(r2d) > 0 and os.path.isfile(wav) and len(read_table(r2d)) == len(read_table(wav)):
        print(f"get_reco2dur.sh: {r2d} already exists with the expected length.  We won't recompute it.")
        return 0
    u2d = _p(data, "utt2dur")
    segs = _p(data, "segments")
    if (
        os.path.isfile(u2d)
        and os.path.getsize(u2d) > 0
        and len(read_table(u2d)) == len(read_table(_p(data, "utt2spk")))
        and not (os.path.isfile(segs) and os.path.getsize(segs) > 0)
    ):
        print(f"get_reco2dur.sh: {wav} indexed by utt-id; copying utt2dur to reco2dur")
        shutil.copyfile(u2d, r2d)
        return 0
    if not os.path.isfile(wav):
        raise DataDirError(f"Expected {wav} or {data}/feats.scp to exist")
    print("get_reco2dur.sh: obtaining durations from recordings")
    _write(r2d, _durations_from_wav(data, False))
    if _check_len(data, "reco2dur", "wav.scp"):
        return 1
    print(f"get_reco2dur.sh: computed {r2d}")
    return 0


def get_segments_for_data(argv: List[str]) -> int:
    """``utils/data/get_segments_for_data.sh <data>``: ``<utt> <utt> 0 <duration>`` on stdout."""
    if len(argv) != 1:
        print("Usage: get_segments_for_data.sh [options] <datadir>\ne.g.:\n get_segments_for_data.sh data/train > data/train/segments")
        return 1
    out = sys.stdout.buffer
    out.writelines(ln + b"\n" for ln in segments_for_data(argv[0]))
    out.flush()
    return 0


def segments_for_data(data: str) -> List[bytes]:
    """Whole-recording segments from utt2dur (made first when missing)."""
    u2d = _p(data, "utt2dur")
    if not (os.path.isfile(u2d) and os.path.getsize(u2d) > 0):
        stdout = sys.stdout
        sys.stdout = sys.stderr  # Kaldi sends get_utt2dur.sh's messages to stderr here
        try:
            rc = get_utt2dur([data])
        finally:
            sys.stdout = stdout
        if rc != 0:
            raise DataDirError(f"could not get {u2d}")
    out = []
    for ln in read_table(u2d):
        f = awk_fields(ln) + [b"", b""]
        out.append(b" ".join([f[0], f[0], b"0", f[1]]))
    return out


# --------------------------------------------------------------------------------- perturb_data_dir_speed.sh


def _apply(mapping: Dict[bytes, bytes], lines: List[bytes], field: int, what: str) -> List[bytes]:
    """apply_map.pl -f <field>: replace one field (1-based) by its mapping; an unknown key is an error."""
    out = []
    for ln in lines:
        f = ln.split()
        if len(f) >= field:
            k = f[field - 1]
            if k not in mapping:
                raise DataDirError(f"apply_map.pl: undefined key {k.decode(errors='replace')} in {what}")
            f[field - 1] = mapping[k]
        out.append(b" ".join(f))
    return out


def _speed_wav(line: bytes, factor: bytes) -> bytes:
    """Kaldi's wav.scp rewrite: pipe the entry through ``sox -t wav - -t wav - speed <factor> |``."""
    import re

    line = re.sub(rb"\| *$", b" |", line)
    f = awk_fields(line)
    wid, rest = f[0], b"".join(b" " + x for x in f[1:])
    sox = b" sox -t wav - -t wav - speed " + factor + b" |"
    if f[-1] == b"|":
        return wid + rest + sox
    if re.search(rb":[0-9]+$", rest):
        return wid + b" wav-copy" + rest + b" - |" + sox
    return wid + b" sox -t wav" + rest + b" -t wav - speed " + factor + b" |"


def perturb_speed(argv: List[str]) -> int:
    """``perturb_data_dir_speed.sh <factor> <srcdir> <destdir>``; returns the exit status."""
    from espnet_cls.kaldi.datadir import validate

    opts = {"include_spk_prefix": "true"}
    args = parse_kaldi_options("perturb_data_dir_speed.sh", argv, opts)
    if len(args) != 3:
        print("Usage: perturb_data_dir_speed.sh <warping-factor> <srcdir> <destdir>\ne.g.:\n"
              " perturb_data_dir_speed.sh 0.9 data/train_si284 data/train_si284p")  # fmt: skip
        return 1
    factor_s, src, dest = args
    factor = factor_s.encode()
    fval = _awk_num_prefix(factor)
    if fval <= 0:
        raise DataDirError(f"<warping-factor> must be a positive number, got '{factor_s}'")
    if shutil.which("sox") is None:
        print("sox: command not found")
        return 1
    if not os.path.isfile(_p(src, "utt2spk")):
        raise DataDirError(f"no such file {src}/utt2spk")
    if dest == src:
        raise DataDirError("this script requires <srcdir> and <destdir> to be different.")
    if opts["include_spk_prefix"] == "true":
        pre, post = b"sp" + factor + b"-", b""
    else:
        pre, post = b"", b"-sp" + factor

    def ren(k: bytes) -> bytes:
        return pre + k + post

    u2s_src = read_table(_p(src, "utt2spk"))
    spk_map = {awk_key(ln): (pre + awk_key(ln) if pre else awk_key(ln)) for ln in read_table(_p(src, "spk2utt"))}
    utt_map = {awk_key(ln): ren(awk_key(ln)) for ln in u2s_src}
    wav = read_table(_p(src, "wav.scp"))
    reco_map = {awk_key(ln): ren(awk_key(ln)) for ln in wav}
    if os.path.isfile(_p(src, "utt2uniq")):
        uniq = [ren(f[0]) + b" " + (f + [b""])[1] for f in map(awk_fields, read_table(_p(src, "utt2uniq")))]
    else:
        uniq = [ren(awk_key(ln)) + b" " + awk_key(ln) for ln in u2s_src]
    out: Dict[str, List[bytes]] = {"utt2uniq": uniq}
    u2s = _apply(spk_map, _apply(utt_map, u2s_src, 1, "utt_map"), 2, "spk_map")
    out["utt2spk"] = u2s
    out["spk2utt"] = spk2utt_from(u2s, _p(dest, "utt2spk"))
    if os.path.isfile(_p(src, "segments")):
        segs = []
        for ln in _apply(reco_map, _apply(utt_map, read_table(_p(src, "segments")), 1, "utt_map"), 2, "reco_map"):
            f = awk_fields(ln) + [b"", b"", b""]
            st, en = _awk_num_prefix(f[2]) / fval, _awk_num_prefix(f[3]) / fval
            if en > st + 0.01:
                segs.append(b"%s %s %.2f %.2f" % (f[0], f[1], st, en))
        out["segments"] = segs
        out["wav.scp"] = [_speed_wav(ln, factor) for ln in _apply(reco_map, wav, 1, "reco_map")]
        if os.path.isfile(_p(src, "reco2file_and_channel")):
            out["reco2file_and_channel"] = _apply(reco_map, read_table(_p(src, "reco2file_and_channel")), 1, "reco_map")
    else:
        out["wav.scp"] = [_speed_wav(ln, factor) for ln in _apply(utt_map, wav, 1, "utt_map")]
    for name, mp in (("text", utt_map), ("spk2gender", spk_map), ("utt2lang", utt_map)):
        if os.path.isfile(_p(src, name)):
            out[name] = _apply(mp, read_table(_p(src, name)), 1, f"{name} map")
    if not os.path.isfile(_p(src, "utt2dur")) and get_utt2dur([src]) != 0:
        raise DataDirError(f"could not get {src}/utt2dur")
    if not os.path.isfile(_p(src, "reco2dur")) and get_reco2dur([src]) != 0:
        raise DataDirError(f"could not get {src}/reco2dur")
    for name, mp in (("utt2dur", utt_map), ("reco2dur", reco_map)):
        scaled = []
        for ln in _apply(mp, read_table(_p(src, name)), 1, f"{name} map"):
            f = awk_fields(ln) + [b""]
            scaled.append(f[0] + b" " + _awk_print_num(_awk_num_prefix(f[1]) / fval))
        out[name] = scaled
    os.makedirs(dest, exist_ok=True)
    for name, lines in out.items():
        _write(_p(dest, name), lines)
    print(f"perturb_data_dir_speed.sh: generated speed-perturbed version of data in {src}, in {dest}")
    if fix([dest]) != 0:
        return 1
    return validate(["--no-feats", "--no-text", dest])


TOOLS = {
    "combine_data.sh": combine,
    "subset_data_dir.sh": subset,
    "split_data.sh": split_data,
    "get_utt2dur.sh": get_utt2dur,
    "get_reco2dur.sh": get_reco2dur,
    "get_segments_for_data.sh": get_segments_for_data,
    "subset_scp.pl": subset_scp,
    "perturb_data_dir_speed.sh": perturb_speed,
}


def main(prog: str, argv: Optional[List[str]] = None) -> int:
    """Run tool ``prog``; fatal errors -> ``<prog>: <message>`` on stderr, exit status 1."""
    return run_tool(prog, TOOLS, __doc__, argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
