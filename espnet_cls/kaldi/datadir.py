"""Kaldi data-dir tools: ``validate_data_dir.sh``, ``fix_data_dir.sh``, ``copy_data_dir.sh``.

A data dir holds key-value tables (``<key> <value...>`` lines, sorted by key in byte order = LC_ALL=C):
utterance tables (``utt2spk``, ``text``, ``segments``, ``feats.scp``, ``utt2dur``, ``utt2num_samples``,
``utt2weight``, ...), speaker tables (``spk2utt``, ``spk2gender``, ``cmvn.scp``) and recording tables
(``wav.scp`` when ``segments`` exists, ``reco2file_and_channel``, ``reco2dur``).  Without ``segments``,
``wav.scp`` is an utterance table.

validate_data_dir.sh [--no-feats] [--no-text] [--no-wav] [--non-print] [--no-spk-sort] <data-dir>
    Every error names its file; all errors are printed, then exit status 1.  Checks: required files exist,
    non-empty, end in a newline, keys sorted (C order) with no duplicates, utt2spk has exactly 2 fields,
    spk2utt equals the one made from utt2spk, text/segments/wav.scp/feats.scp/utt2* cover exactly the
    utterances of utt2spk, segments' recordings exist in wav.scp, utt2spk is also sorted by speaker
    (unless --no-spk-sort), text is printable UTF-8 (unless --non-print).
fix_data_dir.sh [--utt_extra_files "f1 f2"] [--spk_extra_files "f1"] <data-dir>
    Keeps the utterances present in every utterance table (and whose recording exists), sorts every
    table, drops duplicate keys (first kept), rebuilds spk2utt, filters speaker/recording tables,
    backs the old files up in <data-dir>/.backup/, prints "fix_data_dir.sh: kept N utterances out of M",
    then validates the result.
copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] [--validate_opts O] <src> <dest>
    Copies the tables, renaming utterances (and speakers), re-sorted; then validates <dest>.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import Dict, List, Optional, Set, Tuple

UTT_FILES = [
    "text",
    "segments",
    "feats.scp",
    "utt2dur",
    "utt2num_frames",
    "utt2num_samples",
    "utt2weight",
    "utt2lang",
    "utt2uniq",
    "utt2warp",
    "utt2category",
    "vad.scp",
]
SPK_FILES = ["spk2gender", "spk2warp", "cmvn.scp"]
RECO_FILES = ["reco2file_and_channel", "reco2dur"]

Line = Tuple[bytes, bytes]  # (key, whole line without "\n")


class DataDirError(Exception):
    """A fatal error (printed with the tool's name, exit status 1)."""


def read_table(path: str) -> List[bytes]:
    """The lines of a table file, without line ends (the last may lack a newline)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def key_of(line: bytes) -> bytes:
    """First white-space separated field (b"" for a blank line)."""
    fields = line.split(None, 1)
    return fields[0] if fields else b""


def _s(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


class Validator:
    """Collects the errors of one data dir (``errors``: list of messages, each naming a file)."""

    def __init__(self, data: str, prog: str = "validate_data_dir.sh") -> None:
        self.data = data.rstrip("/") or data
        self.prog = prog
        self.errors: List[str] = []

    def path(self, name: str) -> str:
        """Path of a file of the data dir."""
        return os.path.join(self.data, name)

    def err(self, msg: str) -> None:
        """Record one error."""
        self.errors.append(f"{self.prog}: {msg}")

    def table(self, name: str, required: bool = True) -> Optional[List[bytes]]:
        """Read and check one table (exists, non-empty, final newline, sorted, unique); its lines or None."""
        p = self.path(name)
        if not os.path.isfile(p):
            if required:
                self.err(f"no such file {p}")
            return None
        with open(p, "rb") as f:
            data = f.read()
        if not data:
            self.err(f"file {p} is empty")
            return []
        if not data.endswith(b"\n"):
            self.err(f"file {p} does not end in a newline")
        lines = read_table(p)
        prev = None
        for n, line in enumerate(lines, 1):
            k = key_of(line)
            if not k:
                self.err(f"file {p} line {n} is empty or has no key")
                continue
            if prev is not None:
                if k == prev:
                    self.err(f"file {p} has a duplicate key '{_s(k)}' at line {n}")
                elif k < prev:
                    self.err(f"file {p} is not sorted (LC_ALL=C): '{_s(k)}' at line {n} comes after '{_s(prev)}'")
            prev = k
        return lines

    def same_keys(self, name: str, keys: List[bytes], ref_keys: Set[bytes], ref_name: str) -> None:
        """Error if a table's keys differ from the reference set."""
        got = set(keys)
        if got == ref_keys:
            return
        missing = sorted(ref_keys - got)
        extra = sorted(got - ref_keys)
        parts = []
        if missing:
            parts.append(f"{len(missing)} ids of {ref_name} missing (e.g. '{_s(missing[0])}')")
        if extra:
            parts.append(f"{len(extra)} ids not in {ref_name} (e.g. '{_s(extra[0])}')")
        self.err(f"ids in {self.path(name)} and {self.path(ref_name)} differ: " + "; ".join(parts))

    def run(self, no_feats: bool, no_text: bool, no_wav: bool, non_print: bool, no_spk_sort: bool) -> List[str]:
        """All checks; returns the error messages."""
        if not os.path.isdir(self.data):
            self.err(f"no such directory {self.data}")
            return self.errors
        utt2spk = self.table("utt2spk")
        if utt2spk is None:
            return self.errors
        utts: List[bytes] = []
        spks: List[bytes] = []
        for n, line in enumerate(utt2spk, 1):
            fields = line.split()
            if len(fields) != 2:
                self.err(f"file {self.path('utt2spk')} has wrong format at line {n}: expected 2 fields, got {len(fields)}")
                continue
            utts.append(fields[0])
            spks.append(fields[1])
        uttset = set(utts)
        if not no_spk_sort and any(b < a for a, b in zip(spks, spks[1:])):
            self.err(
                f"file {self.path('utt2spk')} is not in sorted order when sorted first on speaker-id "
                "(fix this by making speaker-ids prefixes of utt-ids, or use --no-spk-sort)"
            )
        spk2utt = self.table("spk2utt")
        if spk2utt is not None:
            expect: Dict[bytes, List[bytes]] = {}
            for u, s in zip(utts, spks):
                expect.setdefault(s, []).append(u)
            got = {key_of(ln): ln.split()[1:] for ln in spk2utt if key_of(ln)}
            if {k: sorted(v) for k, v in got.items()} != {k: sorted(v) for k, v in expect.items()}:
                self.err(
                    f"file {self.path('spk2utt')} does not match {self.path('utt2spk')} "
                    "(make it with utt2spk_to_spk2utt.pl)"
                )
        if not no_text:
            text = self.table("text")
            if text is not None:
                self.same_keys("text", [key_of(ln) for ln in text], uttset, "utt2spk")
                if not non_print:
                    self.check_printable(text)
        segments = self.table("segments", required=False)
        recos: Optional[Set[bytes]] = None
        if segments is not None:
            self.same_keys("segments", [key_of(ln) for ln in segments], uttset, "utt2spk")
            recos = set()
            for n, line in enumerate(segments, 1):
                f = line.split()
                if len(f) != 4:
                    self.err(f"file {self.path('segments')} has wrong format at line {n}: expected 4 fields <utt> <reco> <start> <end>")
                    continue
                try:
                    start, end = float(f[2]), float(f[3])
                    if start < 0 or (end != -1 and end <= start):
                        raise ValueError
                except ValueError:
                    self.err(f"file {self.path('segments')} line {n}: bad start/end times '{_s(f[2])} {_s(f[3])}'")
                recos.add(f[1])
        if not no_wav:
            wav = self.table("wav.scp")
            if wav is not None:
                wkeys = [key_of(ln) for ln in wav]
                if recos is None:
                    self.same_keys("wav.scp", wkeys, uttset, "utt2spk")
                else:
                    missing = sorted(recos - set(wkeys))
                    if missing:
                        self.err(
                            f"file {self.path('segments')} refers to {len(missing)} recordings not in "
                            f"{self.path('wav.scp')} (e.g. '{_s(missing[0])}')"
                        )
        if not no_feats:
            feats = self.table("feats.scp")
            if feats is not None:
                self.same_keys("feats.scp", [key_of(ln) for ln in feats], uttset, "utt2spk")
        for name in UTT_FILES:
            if name in ("text", "segments", "feats.scp"):
                continue
            lines = self.table(name, required=False)
            if lines is not None:
                self.same_keys(name, [key_of(ln) for ln in lines], uttset, "utt2spk")
        spkset = set(spks)
        for name in SPK_FILES:
            lines = self.table(name, required=False)
            if lines is not None:
                self.same_keys(name, [key_of(ln) for ln in lines], spkset, "spk2utt")
        return self.errors

    def check_printable(self, text: List[bytes]) -> None:
        """text must be UTF-8 without control characters (other than tab)."""
        for n, line in enumerate(text, 1):
            try:
                s = line.decode("utf-8")
            except UnicodeDecodeError:
                self.err(f"file {self.path('text')} line {n} is not valid UTF-8 (use --non-print to allow)")
                return
            if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in s):
                self.err(f"file {self.path('text')} line {n} contains non-printable characters (use --non-print to allow)")
                return


def validate(argv: List[str]) -> int:
    """``validate_data_dir.sh``; returns the exit status."""
    flags = {"--no-feats": False, "--no-text": False, "--no-wav": False, "--non-print": False, "--no-spk-sort": False}
    args = list(argv)
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt not in flags:
            raise DataDirError(f"unknown option {opt} (known: {' '.join(flags)})")
        flags[opt] = True
    if len(args) != 1:
        raise DataDirError(
            "Usage: validate_data_dir.sh [--no-feats] [--no-text] [--no-wav] [--non-print] [--no-spk-sort] <data-dir>"
        )
    v = Validator(args[0])
    errors = v.run(
        no_feats=flags["--no-feats"],
        no_text=flags["--no-text"],
        no_wav=flags["--no-wav"],
        non_print=flags["--non-print"],
        no_spk_sort=flags["--no-spk-sort"],
    )
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"validate_data_dir.sh: Successfully validated data-directory {args[0]}")
    return 0


def auto_validate_opts(data: str) -> List[str]:
    """Kaldi's rule: add --no-feats / --no-text / --no-wav for the files a dir does not have."""
    opts = []
    for name, opt in (("feats.scp", "--no-feats"), ("text", "--no-text"), ("wav.scp", "--no-wav")):
        if not os.path.exists(os.path.join(data, name)):
            opts.append(opt)
    return opts


def _sorted_unique(lines: List[bytes]) -> List[bytes]:
    """Lines sorted by key (stable), blank lines and repeated keys (after the first) dropped."""
    seen: Set[bytes] = set()
    out = []
    for ln in sorted((ln for ln in lines if key_of(ln)), key=key_of):
        k = key_of(ln)
        if k not in seen:
            seen.add(k)
            out.append(ln)
    return out


def _write(path: str, lines: List[bytes]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.writelines(ln + b"\n" for ln in lines)
    os.replace(tmp, path)


def spk2utt_lines(utt2spk: List[bytes]) -> List[bytes]:
    """spk2utt lines (sorted by speaker) from utt2spk lines."""
    d: Dict[bytes, List[bytes]] = {}
    for ln in utt2spk:
        u, s = ln.split()[:2]
        d.setdefault(s, []).append(u)
    return [b" ".join([s, *d[s]]) for s in sorted(d)]


def fix(argv: List[str]) -> int:
    """``fix_data_dir.sh``; returns the exit status."""
    args = list(argv)
    utt_extra: List[str] = []
    spk_extra: List[str] = []
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        name, eq, val = opt.partition("=")
        if not eq:
            if not args:
                raise DataDirError(f"option {opt} needs a value")
            val = args.pop(0)
        name = name.replace("-", "_")
        if name == "__utt_extra_files":
            utt_extra += val.split()
        elif name == "__spk_extra_files":
            spk_extra += val.split()
        else:
            raise DataDirError(f"unknown option {opt} (known: --utt_extra_files, --spk_extra_files)")
    if len(args) != 1:
        raise DataDirError('Usage: fix_data_dir.sh [--utt_extra_files "f1 f2"] [--spk_extra_files "f1"] <data-dir>')
    data = args[0]
    u2s_path = os.path.join(data, "utt2spk")
    if not os.path.isfile(u2s_path):
        raise DataDirError(f"no such file {u2s_path}")
    backup = os.path.join(data, ".backup")
    os.makedirs(backup, exist_ok=True)
    tables: Dict[str, List[bytes]] = {}
    names = ["utt2spk", "spk2utt", "wav.scp", *UTT_FILES, *utt_extra, *SPK_FILES, *spk_extra, *RECO_FILES]
    for name in dict.fromkeys(names):
        p = os.path.join(data, name)
        if os.path.isfile(p):
            shutil.copy2(p, os.path.join(backup, name))
            tables[name] = read_table(p)
    raw_u2s = [ln for ln in tables["utt2spk"] if key_of(ln)]
    n_old = len({key_of(ln) for ln in raw_u2s})
    bad = [ln for ln in raw_u2s if len(ln.split()) != 2]
    if bad:
        print(f"fix_data_dir.sh: dropping {len(bad)} lines of {u2s_path} without exactly 2 fields", file=sys.stderr)
    utt2spk = _sorted_unique([ln for ln in raw_u2s if len(ln.split()) == 2])
    keep = {key_of(ln) for ln in utt2spk}
    segments = _sorted_unique(tables.get("segments", [])) if "segments" in tables else None
    utt_tables = [n for n in dict.fromkeys([*UTT_FILES, *utt_extra]) if n in tables]
    if segments is None and "wav.scp" in tables:
        utt_tables.append("wav.scp")
    for name in utt_tables:
        keep &= {key_of(ln) for ln in tables[name]}
    if segments is not None:
        if "wav.scp" in tables:
            recos = {key_of(ln) for ln in tables["wav.scp"]}
            keep &= {key_of(ln) for ln in segments if len(ln.split()) == 4 and ln.split()[1] in recos}
        else:
            keep &= {key_of(ln) for ln in segments if len(ln.split()) == 4}
    utt2spk = [ln for ln in utt2spk if key_of(ln) in keep]
    _write(u2s_path, utt2spk)
    for name in utt_tables:
        _write(os.path.join(data, name), [ln for ln in _sorted_unique(tables[name]) if key_of(ln) in keep])
    if segments is not None:
        segs = [ln for ln in segments if key_of(ln) in keep]
        used = {ln.split()[1] for ln in segs}
        for name in ["wav.scp", *RECO_FILES]:
            if name in tables:
                _write(os.path.join(data, name), [ln for ln in _sorted_unique(tables[name]) if key_of(ln) in used])
    spks = {ln.split()[1] for ln in utt2spk}
    _write(os.path.join(data, "spk2utt"), spk2utt_lines(utt2spk))
    for name in dict.fromkeys([*SPK_FILES, *spk_extra]):
        if name in tables:
            _write(os.path.join(data, name), [ln for ln in _sorted_unique(tables[name]) if key_of(ln) in spks])
    if len(keep) == n_old:
        print(f"fix_data_dir.sh: kept all {n_old} utterances.")
    else:
        print(f"fix_data_dir.sh: kept {len(keep)} utterances out of {n_old}")
    print(f"fix_data_dir.sh: old files are kept in {backup}")
    if not keep:
        print(f"fix_data_dir.sh: no utterances left in {data}", file=sys.stderr)
        return 1
    return validate([*auto_validate_opts(data), "--no-spk-sort", data])


def copy(argv: List[str]) -> int:
    """``copy_data_dir.sh``; returns the exit status."""
    args = list(argv)
    opts = {"utt_prefix": "", "utt_suffix": "", "spk_prefix": "", "spk_suffix": "", "validate_opts": ""}
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        name, eq, val = opt.partition("=")
        name = name[2:].replace("-", "_")
        if name not in opts:
            raise DataDirError(f"invalid option {opt} (known: {', '.join('--' + k for k in opts)})")
        if not eq:
            if not args:
                raise DataDirError(f"option {opt} needs a value")
            val = args.pop(0)
        opts[name] = val
    if len(args) != 2:
        raise DataDirError(
            "Usage: copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] "
            "[--validate_opts OPTS] <srcdir> <destdir>"
        )
    src, dest = args
    u2s_path = os.path.join(src, "utt2spk")
    if not os.path.isfile(u2s_path):
        raise DataDirError(f"no such file {u2s_path}")
    up, us = opts["utt_prefix"].encode(), opts["utt_suffix"].encode()
    sp, ss = opts["spk_prefix"].encode(), opts["spk_suffix"].encode()
    os.makedirs(dest, exist_ok=True)

    def mapped(name: str, kmap) -> None:
        p = os.path.join(src, name)
        if not os.path.isfile(p):
            return
        out = []
        for ln in read_table(p):
            k = key_of(ln)
            if not k:
                continue
            out.append(kmap(k) + ln[len(k) :] if ln.startswith(k) else ln)
        _write(os.path.join(dest, name), sorted(out, key=key_of))

    def umap(k: bytes) -> bytes:
        return up + k + us

    def smap(k: bytes) -> bytes:
        return sp + k + ss

    u2s = []
    for ln in read_table(u2s_path):
        f = ln.split()
        if len(f) == 2:
            u2s.append(umap(f[0]) + b" " + smap(f[1]))
        elif f:
            raise DataDirError(f"{u2s_path}: line without exactly 2 fields: {_s(ln)}")
    u2s.sort(key=key_of)
    _write(os.path.join(dest, "utt2spk"), u2s)
    _write(os.path.join(dest, "spk2utt"), spk2utt_lines(u2s))
    has_segments = os.path.isfile(os.path.join(src, "segments"))
    extra_utt = sorted(
        n for n in os.listdir(src) if n.startswith("utt2") and n not in ("utt2spk", *UTT_FILES) and os.path.isfile(os.path.join(src, n))
    )
    for name in [*UTT_FILES, *extra_utt]:
        mapped(name, umap)
    for name in SPK_FILES:
        mapped(name, smap)
    if has_segments:
        for name in ["wav.scp", *RECO_FILES]:
            if os.path.isfile(os.path.join(src, name)):
                shutil.copyfile(os.path.join(src, name), os.path.join(dest, name))
    else:
        mapped("wav.scp", umap)
    for name in ("feats_type", "audio_format", "frame_shift"):
        if os.path.isfile(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dest, name))
    print(f"copy_data_dir.sh: copied data from {src} to {dest}")
    vopts = shlex.split(opts["validate_opts"])
    return validate([*vopts, *(o for o in auto_validate_opts(dest) if o not in vopts), dest])


TOOLS = {"validate_data_dir.sh": validate, "fix_data_dir.sh": fix, "copy_data_dir.sh": copy}


def main(prog: str, argv: Optional[List[str]] = None) -> int:
    """Run tool ``prog``; fatal errors -> ``<prog>: <message>`` on stderr, exit status 1."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--help"], ["-h"]):
        print(__doc__)
        return 0
    try:
        return TOOLS[prog](args)
    except DataDirError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{prog}: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
