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

import os
import re
import sys
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple

from espnet_cls.kaldi.textutil import perl_key


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


def _raw_lines(path: str) -> List[bytes]:
    """Lines as read, line ends kept (the last may lack one), as perl's ``<>`` gives them."""
    f = _open_in(path)
    try:
        return f.readlines()
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _inputs(paths: List[str]) -> Iterable[Tuple[str, int, bytes]]:
    """perl's ``while (<>)``: the lines of each file in turn (stdin when none), with file name and line number."""
    for path in paths or ["-"]:
        for n, ln in enumerate(_raw_lines(path), 1):
            yield path, n, ln


def _show(ln: bytes) -> str:
    return ln.decode(errors="replace").rstrip("\n")


def _id_set(path: str, what: str) -> set:
    """First fields of an id list; a blank line is an error (Kaldi dies on it)."""
    ids = set()
    for n, ln in enumerate(_raw_lines(path), 1):
        k = perl_key(ln)
        if k is None:
            raise ScpError(f"Invalid {what} line (blank line {n} of {path})")
        ids.add(k)
    return ids


def filter_scp(argv: List[str]) -> int:
    """``filter_scp.pl``; returns the exit status."""
    args = list(argv)
    exclude = False
    field = 1
    while args and args[0] in ("--exclude", "-f"):
        if args.pop(0) == "--exclude":
            exclude = True
            continue
        try:
            field = int(args.pop(0)) if args else 0
        except ValueError:
            field = 0
        if field < 1:
            raise ScpError("option -f needs a positive integer (the 1-based field to filter on)")
    if not 1 <= len(args) <= 2:
        raise ScpError(
            "Usage: filter_scp.pl [--exclude] [-f <field-to-filter-on>] id_list [in.scp] > out.scp\n"
            "Prints only the input lines whose f'th field (default: first) is in 'id_list'.\n"
            "Note: only the first field of each line in id_list matters.  With --exclude, prints\n"
            "only the lines that were *not* in id_list."
        )
    ids = _id_set(args[0], "id-list file")
    out = sys.stdout.buffer
    for path, n, ln in _inputs(args[1:]):
        fields = ln.split()
        if not fields:
            raise ScpError(f"Bad line, could not get first field (blank line {n} of {path})")
        if len(fields) < field:
            raise ScpError(f"Invalid scp file line (line {n} of {path} has fewer than {field} fields): {_show(ln)}")
        if (fields[field - 1] in ids) != exclude:
            out.write(ln)
    out.flush()
    return 0


def utt2spk_to_spk2utt(argv: List[str]) -> int:
    """``utt2spk_to_spk2utt.pl [utt2spk]``: spk2utt on stdout (written only when every line is good)."""
    if len(argv) > 1:
        raise ScpError("Usage: utt2spk_to_spk2utt.pl [ utt2spk ] > spk2utt")
    spk2utt: Dict[bytes, List[bytes]] = {}
    for path, n, ln in _inputs(argv):
        fields = ln.split()
        if len(fields) != 2:
            raise ScpError(f"Invalid line in utt2spk file (line {n} of {path} needs 2 fields, has {len(fields)}): {_show(ln)}")
        spk2utt.setdefault(fields[1], []).append(fields[0])
    out = sys.stdout.buffer
    for spk, utts in spk2utt.items():
        out.write(b" ".join([spk, *utts]) + b"\n")
    out.flush()
    return 0


def spk2utt_to_utt2spk(argv: List[str]) -> int:
    """``spk2utt_to_utt2spk.pl [spk2utt]``: utt2spk on stdout, line by line (as Kaldi's, up to a bad line)."""
    out = sys.stdout.buffer
    try:
        for path, n, ln in _inputs(argv):
            fields = ln.split()
            if len(fields) < 2:
                raise ScpError(f"Invalid line in spk2utt file (line {n} of {path} has no utterances): {_show(ln)}")
            for utt in fields[1:]:
                out.write(utt + b" " + fields[0] + b"\n")
    finally:
        out.flush()
    return 0


def parse_field_range(spec: str) -> Tuple[Optional[int], Optional[int]]:
    """Kaldi's ``-f`` field range (1-based in, 0-based out): ``3``, ``2-4``, ``2-``, ``-3`` (``:`` also)."""
    begin = end = None
    if re.fullmatch(r"\d+", spec):
        begin = end = int(spec) - 1
    m = re.match(r"(\d*)[-:](\d*)", spec)
    if m:
        if m.group(1):
            begin = int(m.group(1)) - 1
        if m.group(2):
            end = int(m.group(2)) - 1
    if begin is None and end is None:
        raise ScpError(f"Bad argument to -f option: {spec}")
    return begin, end


def _in_range(x: int, rng: Tuple[Optional[int], Optional[int]]) -> bool:
    return (rng[0] is None or x >= rng[0]) and (rng[1] is None or x <= rng[1])


def apply_map(argv: List[str]) -> int:
    """``apply_map.pl [-f range] [--permissive] map < in > out``."""
    args = list(argv)
    rng: Tuple[Optional[int], Optional[int]] = (None, None)
    permissive = False
    for _ in range(3):
        if args and args[0] == "-f":
            args.pop(0)
            rng = parse_field_range(args.pop(0) if args else "")
        if args and args[0] == "--permissive":
            args.pop(0)
            permissive = True
    if len(args) != 1:
        raise ScpError(
            "Invalid usage: " + " ".join(args) + "\n"
            "Usage: apply_map.pl [options] map <input >output\n options: [-f <field-range> ] [--permissive]\n"
            "   Applies the map 'map' (first field -> the other fields) to the fields of the input;\n"
            "   with --permissive, fields not in the map are left as they were."
        )
    mapping: Dict[bytes, bytes] = {}
    for n, ln in enumerate(_raw_lines(args[0]), 1):
        f = ln.split()
        if not f:
            raise ScpError(f"empty line (line {n} of map file {args[0]})")
        mapping[f[0]] = b" ".join(f[1:])
    out = sys.stdout.buffer
    try:
        for n, ln in enumerate(sys.stdin.buffer, 1):
            f = ln.split()
            for x, a in enumerate(f):
                if _in_range(x, rng):
                    if a in mapping:
                        f[x] = mapping[a]
                    elif permissive:
                        print(f"apply_map.pl: warning! missing key {_show(a)} in {args[0]}", file=sys.stderr)
                    else:
                        raise ScpError(f"undefined key {_show(a)} in {args[0]} (input line {n})")
            out.write(b" ".join(f) + b"\n")
    finally:
        out.flush()
    return 0


def _perl_num(s: bytes) -> bytes:
    """perl's ``$x + 0`` printed back (leading number of the string, else 0)."""
    m = re.match(rb"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", s)
    v = float(m.group(1)) if m else 0.0
    if v == int(v) and abs(v) < 1e15:
        return str(int(v)).encode()
    return (b"%.15g" % v)


def sym2int(argv: List[str]) -> int:
    """``sym2int.pl [--map-oov SYM] [-f range] symtab [input...]``."""
    args = list(argv)
    rng: Tuple[Optional[int], Optional[int]] = (None, None)
    map_oov: Optional[bytes] = None
    for _ in range(2):
        if args and args[0] == "--map-oov":
            args.pop(0)
            v = args.pop(0) if args else ""
            if v in ("-f", "") or v.endswith("words.txt"):
                raise ScpError("the --map-oov option requires an argument")
            map_oov = v.encode()
        if args and args[0] == "-f":
            args.pop(0)
            rng = parse_field_range(args.pop(0) if args else "")
    if not args:
        raise ScpError(
            "Usage: sym2int.pl [options] symtab [input transcriptions] > output transcriptions\n"
            "options: [--map-oov <oov-symbol> ]  [-f <field-range> ]\n"
            "note: <field-range> can look like 4-5, or 4-, or 5-, or 1."
        )
    symtab = args.pop(0)
    table: Dict[bytes, bytes] = {}
    for n, ln in enumerate(_raw_lines(symtab), 1):
        f = ln.split()
        if len(f) != 2:
            raise ScpError(f"bad line in symbol table file (line {n} of {symtab}): {_show(ln)}")
        table[f[0]] = _perl_num(f[1])
    if map_oov is not None and not re.fullmatch(rb"\d+", map_oov):
        if map_oov not in table:
            raise ScpError(f"OOV symbol {_show(map_oov)} not defined.")
        map_oov = table[map_oov]
    warned = 0
    out = sys.stdout.buffer
    try:
        for path, n, ln in _inputs(args):
            f = ln.split()
            for x, a in enumerate(f):
                if not _in_range(x, rng):
                    continue
                i = table.get(a)
                if i is None:
                    if map_oov is None:
                        raise ScpError(f"undefined symbol {_show(a)} (in position {x + 1}) (line {n} of {path})")
                    warned += 1
                    if warned <= 20:
                        print(f"sym2int.pl: replacing {_show(a)} with {_show(map_oov)}", file=sys.stderr)
                        if warned == 20:
                            print("sym2int.pl: not warning for OOVs any more times", file=sys.stderr)
                    i = map_oov
                f[x] = i
            out.write(b" ".join(f) + b"\n")
    finally:
        out.flush()
    if warned:
        print(f"** Replaced {warned} instances of OOVs with {_show(map_oov or b'')}", file=sys.stderr)
    return 0


def int2sym(argv: List[str]) -> int:
    """``int2sym.pl [-f range] symtab [input...]`` (each output field followed by a space, as Kaldi's)."""
    args = list(argv)
    rng: Tuple[Optional[int], Optional[int]] = (None, None)
    if args and args[0] == "-f":
        args.pop(0)
        rng = parse_field_range(args.pop(0) if args else "")
    if not args:
        raise ScpError("Usage: int2sym.pl [options] symtab [input] > output\noptions: [-f (<field>|<field_start>-<field-end>)]\ne.g.: -f 2, or -f 3-4")
    symtab = args.pop(0)
    table: Dict[bytes, bytes] = {}
    for n, ln in enumerate(_raw_lines(symtab), 1):
        f = ln.split()
        if len(f) != 2:
            raise ScpError(f"bad line in symbol table file (line {n} of {symtab}): {_show(ln)}")
        table[f[1]] = f[0]
    out = sys.stdout.buffer
    try:
        for path, n, ln in _inputs(args):
            for x, a in enumerate(ln.split()):
                if _in_range(x, rng):
                    if not re.fullmatch(rb"\d+", a):
                        raise ScpError(f"found noninteger token {_show(a)} [in position {x + 1}] (line {n} of {path})")
                    if a not in table:
                        raise ScpError(f"integer {_show(a)} not in symbol table {symtab}. (line {n} of {path})")
                    a = table[a]
                out.write(a + b" ")
            out.write(b"\n")
    finally:
        out.flush()
    return 0


def drand48(seed: int) -> Iterable[float]:
    """perl's ``srand(seed); rand()`` sequence (perl >= 5.20 uses its own drand48 on every platform)."""
    x = ((seed & 0xFFFFFFFF) << 16) + 0x330E
    while True:
        x = (x * 0x5DEECE66D + 0xB) & ((1 << 48) - 1)
        yield x / float(1 << 48)


def shuffle_list(argv: List[str]) -> int:
    """``shuffle_list.pl [--srand N] [input]``: the same order as Kaldi's for the same seed."""
    args = list(argv)
    seed = 0
    if args and args[0] == "--srand":
        n = args[1] if len(args) > 1 else ""
        if not re.search(r"\d+", n):
            raise ScpError(f'Bad argument to --srand option: "{n}"')
        m = re.match(r"\s*[+-]?\d+", n)
        seed = int(m.group(0)) if m else 0
        del args[:2]
    if len(args) > 1 or (args and re.match(r"-.+", args[0])):
        print("Usage: shuffle_list.pl [--srand N] [input file]  > output\nrandomizes the order of lines of input.")
        return 1
    rand = iter(drand48(seed))
    keyed = [(b"%.15g" % next(rand), ln) for _, _, ln in _inputs(args)]
    keyed.sort(key=lambda t: t[0])  # perl's sort { $a->[0] cmp $b->[0] }: string order, stable
    out = sys.stdout.buffer
    out.writelines(ln for _, ln in keyed)
    out.flush()
    return 0


def filter_scps(argv: List[str]) -> int:
    """``filter_scps.pl [-f n] [--no-warn] JOB=a:b <filter-pattern> <in.scp> <out-pattern>``."""
    args = list(argv)
    field = 1
    warn = True
    shifted = True
    while shifted:
        shifted = False
        if args and args[0] == "-f":
            try:
                field = int(args[1])
            except (IndexError, ValueError):
                field = 0
            if field < 1:
                raise ScpError("option -f needs a positive integer")
            del args[:2]
            shifted = True
        if args and args[0] == "--no-warn":
            warn = False
            args.pop(0)
            shifted = True
    if len(args) != 4:
        raise ScpError(
            "Usage: utils/filter_scps.pl [-f <field-to-filter-on>] <job-range-specifier> <filter-pattern> "
            "<input-scp> <output-scp-pattern>\n"
            "e.g.:  utils/filter_scps.pl  JOB=1:10 data/train/split10/JOB/spk2utt data/train/feats.scp "
            "data/train/split10/JOB/feats.scp"
        )
    m = re.fullmatch(r"([A-Za-z_]\w*)=(\d+):(\d+)", args[0])
    if not m:
        raise ScpError(f"bad job-range specifier {args[0]}: expected e.g. JOB=1:10")
    name, start, end = m.group(1), int(m.group(2)), int(m.group(3))
    if start > end:
        raise ScpError(f"invalid job range {args[0]}")
    idpat, infile, outpat = args[1:]
    if name not in idpat and end > start:
        raise ScpError(f"you are trying to use multiple filter files as filter patterns but you are providing just one filter file ({idpat})")
    if name not in outpat and end > start:
        raise ScpError(f"you are trying to create multiple filtered files but you are providing just one output file ({outpat})")
    id2jobs: Dict[bytes, List[int]] = {}
    for job in range(start, end + 1):
        for k in _id_set(idpat.replace(name, str(job)), "id-list file"):
            id2jobs.setdefault(k, []).append(job)
    outs: Dict[int, List[bytes]] = {job: [] for job in range(start, end + 1)}
    uncovered = multiple = False
    for n, ln in enumerate(_raw_lines(infile), 1):
        f = ln.split()
        if len(f) < field:
            raise ScpError(f"Invalid scp file line (line {n} of {infile} has fewer than {field} fields)")
        jobs = id2jobs.get(f[field - 1])
        if jobs is None:
            uncovered = True
            continue
        multiple |= len(jobs) > 1
        for job in jobs:
            outs[job].append(ln)
    for job, lines in outs.items():
        _write_lines(outpat.replace(name, str(job)), lines)
    if uncovered and warn:
        print("filter_scps.pl: warning: some input lines did not get output", file=sys.stderr)
    if multiple and warn:
        print("filter_scps.pl: warning: some input lines were output to multiple files [OK if splitting per utt]", file=sys.stderr)
    return 0


TOOLS = {
    "split_scp.pl": split_scp,
    "apply_map.pl": apply_map,
    "sym2int.pl": sym2int,
    "int2sym.pl": int2sym,
    "shuffle_list.pl": shuffle_list,
    "filter_scps.pl": filter_scps,
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
    except BrokenPipeError:  # e.g. `filter_scp.pl ids big.scp | head`: stop quietly, as perl does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
