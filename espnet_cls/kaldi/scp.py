"""Kaldi's table tools: ``split_scp.pl``, ``filter_scp.pl``, ``utt2spk_to_spk2utt.pl``, ``spk2utt_to_utt2spk.pl``.

All read and write bytes line by line (no decoding), so any encoding passes through unchanged.

split_scp.pl [--utt2spk=<utt2spk>] <in.scp> <out1> <out2> ...
split_scp.pl -j <num-jobs> <job-id> [--one-based] [--utt2spk=<utt2spk>] <in.scp> [<out>]
    Line mode: chunks of nearly equal size, in order (the first ``lines % N`` chunks get one line
    more); error when N > number of lines.  With --utt2spk, chunks end on speaker boundaries
    (Kaldi's balancing); error when N > number of speakers.  ``-j``: write only chunk <job-id>
    (0-based unless --one-based) to <out> or stdout.

filter_scp.pl [--exclude] [-f <n>] <id-list> [<in.scp>...]
    Keep (or with --exclude drop) the lines whose field n (1-based, default 1) is the first field
    of a line of <id-list>; input from the files or stdin, output to stdout, order of the input.

utt2spk_to_spk2utt.pl [<utt2spk>]   speakers in order of first appearance, utterances in input order.
spk2utt_to_utt2spk.pl [<spk2utt>]   one ``utt spk`` line per utterance, in input order.
"""

from __future__ import annotations

import sys
from typing import BinaryIO, Dict, Iterable, List, Optional


class ScpError(Exception):
    """A fatal error of one of these tools (printed, exit status 1)."""


def _open_in(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise ScpError(f"cannot open {path}: {e.strerror}") from e


def _read_lines(path: str) -> List[bytes]:
    f = _open_in(path)
    try:
        lines = f.readlines()
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    return [ln if ln.endswith(b"\n") else ln + b"\n" for ln in lines]


def _write_lines(path: str, lines: Iterable[bytes]) -> None:
    if path == "-":
        out = sys.stdout.buffer
        out.writelines(lines)
        out.flush()
        return
    try:
        with open(path, "wb") as f:
            f.writelines(lines)
    except OSError as e:
        raise ScpError(f"could not open scp file {path} for writing: {e.strerror}") from e


def chunk_sizes(num_lines: int, num_chunks: int) -> List[int]:
    """Kaldi's line-mode chunk sizes: ``num_lines // n`` each, the first ``num_lines % n`` one more."""
    if num_chunks <= 0:
        raise ScpError("number of output files must be positive")
    base = num_lines // num_chunks
    if base < 1:
        raise ScpError(
            f"You are splitting into too many pieces! [reduce $nj]: {num_chunks} pieces of {num_lines} lines"
        )
    rem = num_lines - base * num_chunks
    return [base + (1 if i < rem else 0) for i in range(num_chunks)]


def split_by_speaker(
    lines: List[bytes], utt2spk: Dict[bytes, bytes], num_chunks: int, utt2spk_path: str, scp_path: str
) -> List[List[bytes]]:
    """Split lines into chunks on speaker boundaries, balancing the utterance counts (Kaldi's method)."""
    spk_order: List[bytes] = []
    spk_lines: Dict[bytes, List[bytes]] = {}
    for ln in lines:
        fields = ln.split()
        if not fields:
            raise ScpError(f"Empty or space-only line in scp file {scp_path}")
        spk = utt2spk.get(fields[0])
        if spk is None:
            raise ScpError(f"No utterance {fields[0].decode(errors='replace')} in utt2spk file {utt2spk_path}")
        if spk not in spk_lines:
            spk_order.append(spk)
            spk_lines[spk] = []
        spk_lines[spk].append(ln)
    nspk = len(spk_order)
    if nspk < num_chunks:
        raise ScpError(
            f"Refusing to split data because number of speakers {nspk} is less than the number of "
            f"output .scp files {num_chunks}"
        )
    groups: List[List[bytes]] = [[] for _ in range(num_chunks)]
    counts = [0] * num_chunks
    for i, spk in enumerate(spk_order):
        j = (i * num_chunks) // nspk
        groups[j].append(spk)
        counts[j] += len(spk_lines[spk])
    changed = True
    while changed:  # move boundary speakers while that reduces the size difference of neighbours
        changed = False
        for j in range(num_chunks):
            if j < num_chunks - 1 and groups[j]:
                spk = groups[j][-1]
                c = len(spk_lines[spk])
                if abs((counts[j + 1] + c) - (counts[j] - c)) < abs(counts[j + 1] - counts[j]):
                    groups[j].pop()
                    groups[j + 1].insert(0, spk)
                    counts[j] -= c
                    counts[j + 1] += c
                    changed = True
            if j > 0 and groups[j]:
                spk = groups[j][0]
                c = len(spk_lines[spk])
                if abs((counts[j] - c) - (counts[j - 1] + c)) < abs(counts[j] - counts[j - 1]):
                    groups[j].pop(0)
                    groups[j - 1].append(spk)
                    counts[j] -= c
                    counts[j - 1] += c
                    changed = True
    return [[ln for spk in g for ln in spk_lines[spk]] for g in groups]


def read_utt2spk(path: str) -> Dict[bytes, bytes]:
    """utt -> spk from a 2-field file."""
    out: Dict[bytes, bytes] = {}
    for n, ln in enumerate(_read_lines(path), 1):
        fields = ln.split()
        if len(fields) != 2:
            raise ScpError(f"Bad line {n} in utt2spk file {path}: {ln.decode(errors='replace').rstrip()}")
        out[fields[0]] = fields[1]
    return out


def split_scp(argv: List[str]) -> int:
    """``split_scp.pl``; returns the exit status."""
    args = list(argv)
    num_jobs = 0
    job_id = 0
    one_based = False
    utt2spk_path = ""
    for _ in range(3):
        if args and args[0] == "-j":
            if len(args) < 3:
                raise ScpError("option -j needs <num-jobs> <job-id>")
            try:
                num_jobs, job_id = int(args[1]), int(args[2])
            except ValueError as e:
                raise ScpError(f"Invalid job number/index values for '-j {args[1]} {args[2]}'") from e
            del args[:3]
        if args and args[0].startswith("--utt2spk="):
            utt2spk_path = args.pop(0).split("=", 1)[1]
        if args and args[0].startswith("--utt2dur="):
            args.pop(0)  # accepted for compatibility; splitting stays by utterance count
        if args and args[0] == "--one-based":
            one_based = True
            args.pop(0)
    if num_jobs != 0:
        if num_jobs < 0 or job_id - one_based < 0 or job_id - one_based >= num_jobs:
            raise ScpError(f"Invalid job number/index values for '-j {num_jobs} {job_id}" + (" --one-based'" if one_based else "'"))
        job_id -= one_based
    if (num_jobs == 0 and len(args) < 2) or (num_jobs > 0 and not 1 <= len(args) <= 2):
        raise ScpError(
            "Usage: split_scp.pl [--utt2spk=<utt2spk_file>] in.scp out1.scp out2.scp ...\n"
            "   or: split_scp.pl -j num-jobs job-id [--one-based] [--utt2spk=<utt2spk_file>] in.scp [out.scp]\n"
            " ... where 0 <= job-id < num-jobs, or 1 <= job-id <= num-jobs if --one-based."
        )
    in_scp = args.pop(0)
    if num_jobs == 0:
        outputs: List[Optional[str]] = list(args)
    else:
        outputs = [None] * num_jobs
        outputs[job_id] = args[0] if args else "-"
    lines = _read_lines(in_scp)
    if not lines:
        raise ScpError(f"error: empty input scp file {in_scp}")
    if utt2spk_path:
        chunks = split_by_speaker(lines, read_utt2spk(utt2spk_path), len(outputs), utt2spk_path, in_scp)
    else:
        chunks = []
        pos = 0
        for size in chunk_sizes(len(lines), len(outputs)):
            chunks.append(lines[pos : pos + size])
            pos += size
    status = 0
    for out, chunk in zip(outputs, chunks):
        if out is None:
            continue
        if not chunk:
            print(f"split_scp.pl: Error: producing empty .scp file {out} (too many splits and too few speakers?)", file=sys.stderr)
            status = 1
        _write_lines(out, chunk)
    return status


def filter_scp(argv: List[str]) -> int:
    """``filter_scp.pl``; returns the exit status."""
    args = list(argv)
    exclude = False
    field = 1
    while args and args[0].startswith("-") and args[0] != "-":
        opt = args.pop(0)
        if opt == "--exclude":
            exclude = True
        elif opt == "-f" and args:
            try:
                field = int(args.pop(0))
            except ValueError as e:
                raise ScpError("option -f needs a positive integer") from e
            if field < 1:
                raise ScpError("option -f needs a positive integer")
        else:
            raise ScpError(f"unknown option {opt}")
    if not args:
        raise ScpError(
            "Usage: filter_scp.pl [--exclude] [-f <field-to-filter-on>] id_list [in.scp] > out.scp\n"
            " Prints only the input lines whose f'th field (default: first) is in 'id_list'."
        )
    ids = {ln.split()[0] for ln in _read_lines(args[0]) if ln.split()}
    inputs = args[1:] or ["-"]
    out = sys.stdout.buffer
    for path in inputs:
        for n, ln in enumerate(_read_lines(path), 1):
            fields = ln.split()
            if len(fields) < field:
                raise ScpError(f"{path}:{n}: line has fewer than {field} fields: {ln.decode(errors='replace').rstrip()}")
            if (fields[field - 1] in ids) != exclude:
                out.write(ln)
    out.flush()
    return 0


def utt2spk_to_spk2utt(argv: List[str]) -> int:
    """``utt2spk_to_spk2utt.pl [utt2spk]``: spk2utt on stdout."""
    path = argv[0] if argv else "-"
    spk2utt: Dict[bytes, List[bytes]] = {}
    for n, ln in enumerate(_read_lines(path), 1):
        fields = ln.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ScpError(f"{path}:{n}: utt2spk line must have 2 fields: {ln.decode(errors='replace').rstrip()}")
        spk2utt.setdefault(fields[1], []).append(fields[0])
    out = sys.stdout.buffer
    for spk, utts in spk2utt.items():
        out.write(b" ".join([spk, *utts]) + b"\n")
    out.flush()
    return 0


def spk2utt_to_utt2spk(argv: List[str]) -> int:
    """``spk2utt_to_utt2spk.pl [spk2utt]``: utt2spk on stdout."""
    path = argv[0] if argv else "-"
    out = sys.stdout.buffer
    for n, ln in enumerate(_read_lines(path), 1):
        fields = ln.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ScpError(f"{path}:{n}: spk2utt line has no utterances: {ln.decode(errors='replace').rstrip()}")
        for utt in fields[1:]:
            out.write(utt + b" " + fields[0] + b"\n")
    out.flush()
    return 0


TOOLS = {
    "split_scp.pl": split_scp,
    "filter_scp.pl": filter_scp,
    "utt2spk_to_spk2utt.pl": utt2spk_to_spk2utt,
    "spk2utt_to_utt2spk.pl": spk2utt_to_utt2spk,
}


def main(prog: str, argv: Optional[List[str]] = None) -> int:
    """Run tool ``prog`` with ``argv``; errors -> ``<prog>: <message>`` on stderr, exit status 1."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--help"], ["-h"]):
        print(__doc__)
        return 0
    try:
        return TOOLS[prog](args)
    except ScpError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 141
