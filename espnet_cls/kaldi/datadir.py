"""Kaldi data-dir tools: ``validate_data_dir.sh``, ``fix_data_dir.sh``, ``copy_data_dir.sh``.

A data dir holds key-value tables (``<key> <value...>`` lines, sorted by key in byte order = LC_ALL=C):
utterance tables (``utt2spk``, ``text``, ``segments``, ``feats.scp``, ``utt2dur``, ``utt2num_samples``,
``utt2weight``, ...), speaker tables (``spk2utt``, ``spk2gender``, ``cmvn.scp``) and recording tables
(``wav.scp`` when ``segments`` exists, ``reco2file_and_channel``, ``reco2dur``).  Without ``segments``,
``wav.scp`` is an utterance table.

validate_data_dir.sh [--no-feats] [--no-text] [--no-wav] [--non-print] [--no-spk-sort] <data-dir>
    Kaldi's checks in Kaldi's order; the first failure is printed (naming the file and line) and the exit
    status is 1.  utt2spk/spk2utt exist, 2 fields, sorted and unique (LC_ALL=C), utt2spk sorted by speaker too
    (unless --no-spk-sort), spk2utt expands to exactly utt2spk; text (unless --no-text): no non-printable
    characters (unless --non-print), no CR or other Unicode white space, no <s> </s> #0, same ids; wav.scp:
    no "~" after the id, ids = the utterances, or with segments exactly the recordings segments uses;
    segments: 4 fields, end > start; then feats.scp, cmvn.scp, spk2gender, spk2warp, utt2warp, vad.scp,
    utt2lang, utt2uniq, utt2dur, utt2num_frames, reco2dur as Kaldi checks them.  A --no-xxx file that is
    present is still checked.  Tables Kaldi does not know (utt2num_samples, ...) are not checked.
fix_data_dir.sh [--utt_extra_files "f1 f2"] [--spk_extra_files "f1"] <data-dir>
    Kaldi's filtering: tables sorted by their first field (first of equal keys kept); recordings kept when in
    wav.scp and used by segments; speakers kept when in cmvn.scp/spk2gender; utterances kept when in feats.scp,
    text, segments, utt2lang, wav.scp (no segments), utt2dur/utt2num_frames (value > 0); extra files filtered.
    Everything is computed first: on any failure (no utterance left, utt2spk not sorted by speaker, ...)
    the dir is left exactly as it was (exit 1); else the originals go to <data-dir>/.backup/ and the changed
    tables are replaced.  No validation at the end (as Kaldi's).
copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] [--validate-opts O] <src> <dest>
    Copies the tables, renaming utterances (and speakers), fields re-joined by single spaces, re-sorted;
    then validates <dest> (with --no-feats / --no-text when <src> lacks feats.scp / text).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from typing import Dict, List, Optional, Tuple

from espnet_cls.kaldi.textutil import (
    awk_cmp,
    awk_fields,
    awk_key,
    awk_number,
    grep_word,
    non_printable,
    perl_fields,
    perl_key,
    sort_k1_unique,
    sort_key2,
    sorted_by_k2,
    text_line_problem,
)

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


def keep_lines(ids: List[bytes], lines: List[bytes], ids_at: str, lines_at: str) -> List[bytes]:
    """filter_scp.pl's rule: the lines whose first field is the first field of a line of ``ids``; a blank
    line on either side is an error (``ids_at``/``lines_at`` end the message: where that line was)."""
    want = set()
    for n, ln in enumerate(ids, 1):
        k = perl_key(ln)
        if k is None:
            raise DataDirError(f"filter_scp.pl: Invalid id-list file line (blank line {n}{ids_at})")
        want.add(k)
    out = []
    for n, ln in enumerate(lines, 1):
        k = perl_key(ln)
        if k is None:
            raise DataDirError(f"filter_scp.pl: Bad line, could not get first field (blank line {n}{lines_at})")
        if k in want:
            out.append(ln)
    return out


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


class Invalid(Exception):
    """validate_data_dir.sh's first failed check (the message, printed with the tool's name)."""


class Validator:
    """Kaldi's validate_data_dir.sh checks, in Kaldi's order; the first failure raises :class:`Invalid`.

    Each check decides as Kaldi's script does (awk fields, ``sort -C`` in LC_ALL=C, perl's split, grep -w);
    messages keep Kaldi's wording and add the file and line.
    """

    def __init__(self, data: str, prog: str = "validate_data_dir.sh") -> None:
        self.data = data
        self.prog = prog
        self.notes: List[str] = []  # warnings (stdout), as Kaldi prints them

    def path(self, name: str) -> str:
        """Path of a file of the data dir."""
        return os.path.join(self.data, name)

    def lines(self, name: str) -> List[bytes]:
        """The lines of a table file."""
        return read_table(self.path(name))

    def keys(self, name: str) -> List[bytes]:
        """awk '{print $1}' of a table file."""
        return [awk_key(ln) for ln in self.lines(name)]

    def check_sorted_and_uniq(self, name: str) -> None:
        """Final newline, and awk $1 strictly increasing in byte order (``sort -uC``)."""
        p = self.path(name)
        with open(p, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            raise Invalid(f"file {p} has invalid newline (its last line has no line end)")
        keys = self.keys(name)
        for n in range(1, len(keys)):
            if keys[n] <= keys[n - 1]:
                what = "duplicate key" if keys[n] == keys[n - 1] else "key out of order"
                raise Invalid(
                    f"file {p} is not sorted or has duplicates ({what} '{_s(keys[n])}' at line {n + 1}, after "
                    f"'{_s(keys[n - 1])}'; LC_ALL=C order)"
                )

    def same_list(self, name: str, want: List[bytes], msg: str, ref: str = "utt2spk") -> None:
        """Kaldi's ``cmp`` of the ids (awk $1) of ``name`` with ``want``: error naming the first differing line."""
        got = self.keys(name)
        if got == want:
            return
        p = self.path(name)
        for n, (a, b) in enumerate(zip(got, want), 1):
            if a != b:
                raise Invalid(f"{msg}: {p} line {n} has '{_s(a)}' where {ref} has '{_s(b)}'")
        if len(got) > len(want):
            raise Invalid(f"{msg}: {p} line {len(want) + 1} has '{_s(got[len(want)])}', which {ref} lacks ({len(got)} versus {len(want)} ids)")
        raise Invalid(f"{msg}: {p} lacks '{_s(want[len(got)])}' of {ref} ({len(got)} versus {len(want)} ids)")

    def check_format(self, name: str, ok, what: str) -> None:
        """Every line passes ``ok(fields)`` (awk fields), else error naming the line."""
        for n, ln in enumerate(self.lines(name), 1):
            if not ok(awk_fields(ln)):
                raise Invalid(f"{what} (file {self.path(name)} line {n}: '{_s(ln)}')")

    def isfile(self, name: str) -> bool:
        return os.path.isfile(self.path(name))

    def run(self, no_feats: bool, no_text: bool, no_wav: bool, non_print: bool, no_spk_sort: bool) -> None:
        """All checks; raises :class:`Invalid` at the first failure."""
        d = self.data
        if not os.path.isdir(d):
            raise Invalid(f"no such directory {d}")
        for f in ("spk2utt", "utt2spk"):
            if not self.isfile(f):
                raise Invalid(f"no such file {f} (in {d})")
            if os.path.getsize(self.path(f)) == 0:
                raise Invalid(f"empty file {f} (in {d})")
        self.check_format("utt2spk", lambda f: len(f) == 2, f"{self.path('utt2spk')} has wrong format.")
        with open(self.path("spk2utt"), "rb") as fh:
            if fh.read().count(b"\n") == 1:
                self.notes.append(f"{self.prog}: WARNING: you have only one speaker.  This probably a bad idea.")
        self.check_sorted_and_uniq("utt2spk")
        u2s = self.lines("utt2spk")
        if not no_spk_sort and not sorted_by_k2(u2s):
            bad = next(n for n in range(1, len(u2s)) if not sorted_by_k2(u2s[n - 1 : n + 1]))
            raise Invalid(
                f"utt2spk is not in sorted order when sorted first on speaker-id (fix this by making speaker-ids "
                f"prefixes of utt-ids) ({self.path('utt2spk')} line {bad + 1})"
            )
        self.check_sorted_and_uniq("spk2utt")
        want = [b" ".join(awk_fields(ln)[:2]) for ln in u2s]
        got = []
        for ln in self.lines("spk2utt"):
            f = perl_fields(ln)
            if len(f) < 2:  # Kaldi's spk2utt_to_utt2spk.pl stops here; what it printed so far is compared
                break
            got += [u + b" " + f[0] for u in f[1:]]
        if got != want:
            n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise Invalid(
                f"spk2utt and utt2spk do not seem to match: {self.path('utt2spk')} line {n + 1} is "
                f"'{_s(want[n]) if n < len(want) else '(end of file)'}', {self.path('spk2utt')} gives "
                f"'{_s(got[n]) if n < len(got) else '(nothing more)'}' (make spk2utt with utt2spk_to_spk2utt.pl)"
            )
        utts = [awk_key(ln) for ln in u2s]
        if not self.isfile("text") and not no_text:
            raise Invalid(f"no such file {self.path('text')} (if this is by design, specify --no-text)")
        if not no_text:
            self.check_text(utts, non_print)
        if self.isfile("segments") and not self.isfile("wav.scp"):
            raise Invalid(f"in directory {d}, segments file exists but no wav.scp")
        if not self.isfile("wav.scp") and not no_wav:
            raise Invalid(f"no such file {self.path('wav.scp')} (if this is by design, specify --no-wav)")
        recordings: Optional[List[bytes]] = None
        if self.isfile("wav.scp"):
            self.check_sorted_and_uniq("wav.scp")
            for n, ln in enumerate(self.lines("wav.scp"), 1):
                if re.match(rb"[^ \t\n\r\x0b\x0c]+[ \t\n\r\x0b\x0c]+~", ln):
                    raise Invalid(f"Please do not use tilde (~) in your wav.scp. ({self.path('wav.scp')} line {n})")
            if self.isfile("segments"):
                self.check_sorted_and_uniq("segments")
                self.check_format(
                    "segments",
                    lambda f: len(f) == 4 and awk_cmp(f[3], f[2]) > 0,
                    "badly formatted segments file (need <utt> <reco> <start> <end> with end > start)",
                )
                if self.isfile("text"):
                    self.same_list("segments", utts, f"Utterance list differs between {self.path('utt2spk')} and {self.path('segments')}"
                    )
                recordings = sorted({awk_fields(ln)[1] for ln in self.lines("segments")})
                self.same_list("wav.scp",
                    recordings,
                    f"Error: in {d}, recording-ids extracted from segments and wav.scp differ",
                    "segments",
                )
                self.check_r2fc(recordings, "recording-ids extracted from segments")
            else:
                self.same_list("wav.scp", utts, f"Error: in {d}, utterance lists extracted from utt2spk and wav.scp differ")
                self.check_r2fc(utts, "utterance-ids extracted from utt2spk")
        if not self.isfile("feats.scp") and not no_feats:
            raise Invalid(f"no such file {self.path('feats.scp')} (if this is by design, specify --no-feats)")
        if self.isfile("feats.scp"):
            self.check_sorted_and_uniq("feats.scp")
            self.same_list("feats.scp", utts, f"Error: in {d}, utterance-ids extracted from utt2spk and features differ")
        speakers = self.keys("spk2utt")
        if self.isfile("cmvn.scp"):
            self.check_sorted_and_uniq("cmvn.scp")
            self.same_list("cmvn.scp", speakers, f"Error: in {d}, speaker lists extracted from spk2utt and cmvn differ", "spk2utt")
        if self.isfile("spk2gender"):
            self.check_sorted_and_uniq("spk2gender")
            self.check_format("spk2gender", lambda f: len(f) == 2 and f[1] in (b"m", b"f"), "Mal-formed spk2gender file (need <spk> m|f)")
            self.same_list("spk2gender", speakers, f"Error: in {d}, speaker lists extracted from spk2utt and spk2gender differ", "spk2utt"
            )

        def warp_ok(f: List[bytes]) -> bool:
            return len(f) == 2 and awk_cmp(f[1], 0.5) > 0 and awk_cmp(f[1], 1.5) < 0

        for name, ref, what in (("spk2warp", speakers, "speaker lists extracted from spk2utt"), ("utt2warp", utts, "utterance lists extracted from utt2spk")):
            if self.isfile(name):
                self.check_sorted_and_uniq(name)
                self.check_format(name, warp_ok, f"Mal-formed {name} file (need <id> <warp> with 0.5 < warp < 1.5)")
                self.same_list(name, ref, f"Error: in {d}, {what} and {name} differ", what.split()[-1])
        for name in ("vad.scp", "utt2lang", "utt2uniq"):
            if self.isfile(name):
                self.check_sorted_and_uniq(name)
                self.same_list(name, utts, f"error: in {d}, {name} and utt2spk do not have identical utterance-id list")
        if self.isfile("utt2dur"):
            self.check_sorted_and_uniq("utt2dur")
            self.same_list("utt2dur", utts, f"Error: in {d}, utterance-ids extracted from utt2spk and utt2dur file differ")
            self.check_format("utt2dur", lambda f: len(f) == 2 and awk_cmp(f[1], 0.0) > 0, "Bad line utt2dur (need <utt> <duration > 0>)")
        if self.isfile("utt2num_frames"):
            self.check_sorted_and_uniq("utt2num_frames")
            self.same_list("utt2num_frames", utts, f"Error: in {d}, utterance-ids extracted from utt2spk and utt2num_frames file differ"
            )

            def frames_ok(f: List[bytes]) -> bool:
                if len(f) != 2 or awk_cmp(f[1], 0.0) <= 0:
                    return False
                v = awk_number(f[1])
                return v is not None and v == int(v)

            self.check_format("utt2num_frames", frames_ok, "Bad line utt2num_frames (need <utt> <integer > 0>)")
        if self.isfile("reco2dur"):
            self.check_sorted_and_uniq("reco2dur")
            if recordings is not None:
                self.same_list("reco2dur", recordings, f"Error: in {d}, recording-ids extracted from segments and reco2dur file differ", "segments")
            else:
                self.same_list("reco2dur", utts, f"Error: in {d}, recording-ids extracted from wav.scp and reco2dur file differ")
            self.check_format("reco2dur", lambda f: len(f) == 2 and awk_cmp(f[1], 0.0) > 0, "Bad line reco2dur (need <reco> <duration > 0>)")

    def check_r2fc(self, ref: List[bytes], what: str) -> None:
        """reco2file_and_channel: <reco> <file> A|B (1: warning only), ids equal to ``ref``."""
        if not self.isfile("reco2file_and_channel"):
            return
        self.check_sorted_and_uniq("reco2file_and_channel")
        for n, ln in enumerate(self.lines("reco2file_and_channel"), 1):
            f = awk_fields(ln)
            if len(f) == 3 and f[2] == b"1":
                self.notes.append("The channel should be marked as A or B, not 1! You should change it ASAP! ")
            elif len(f) != 3 or f[2] not in (b"A", b"B"):
                raise Invalid(f"badly formatted reco2file_and_channel file ({self.path('reco2file_and_channel')} line {n}: '{_s(ln)}')")
        self.same_list("reco2file_and_channel", ref, f"Error: in {self.data}, {what} and reco2file_and_channel differ", what.split()[-1])

    def check_text(self, utts: List[bytes], non_print: bool) -> None:
        """text: printable (unless --non-print), validate_text.pl's rules, sorted, no <s> </s> #0, same ids."""
        p = self.path("text")
        lines = self.lines("text")
        if not non_print:
            bad = [n for n, ln in enumerate(lines, 1) if non_printable(ln)]
            if bad:
                raise Invalid(f"text contains {len(bad)} lines with non-printable characters ({p} line {bad[0]}; use --non-print to allow)")
        with open(p, "rb") as f:
            data = f.read()
        if not data:
            raise Invalid(f"ERROR: file '{p}' is empty or does not exist")
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            decoded = None  # Kaldi checks white space only in UTF-8 text
        if decoded is not None:
            for n, ln in enumerate(decoded.split("\n"), 1):
                if n > len(lines):
                    break
                if n == len(lines) and not data.endswith(b"\n"):
                    raise Invalid(f"ERROR: text file '{p}' line {n} has invalid newline")
                prob = text_line_problem(ln)
                if prob:
                    raise Invalid(f"ERROR: text file '{p}' contains disallowed UTF-8 whitespace character(s): line {n} {prob}")
        self.check_sorted_and_uniq("text")
        for sym in (b"<s>", b"</s>", b"#0"):
            for n, ln in enumerate(lines, 1):
                if grep_word(sym, ln):
                    raise Invalid(f"Error: in {self.data}, text contains illegal symbol {_s(sym)} ({p} line {n})")
        self.same_list("text", utts, f"Error: in {self.data}, utterance lists extracted from utt2spk and text differ")


def validate(argv: List[str]) -> int:
    """``validate_data_dir.sh``; returns the exit status."""
    flags = {"--no-feats": False, "--no-text": False, "--no-wav": False, "--non-print": False, "--no-spk-sort": False}
    data = None
    for a in argv:  # Kaldi's loop: the five flags anywhere, one data dir, anything else is the data dir
        if a in flags:
            flags[a] = True
        elif data is None:
            data = a
        else:
            raise DataDirError(VALIDATE_USAGE)
    if data is None:
        raise DataDirError(VALIDATE_USAGE)
    v = Validator(data)
    try:
        v.run(
            no_feats=flags["--no-feats"],
            no_text=flags["--no-text"],
            no_wav=flags["--no-wav"],
            non_print=flags["--non-print"],
            no_spk_sort=flags["--no-spk-sort"],
        )
    except Invalid as e:
        for note in v.notes:
            print(note)
        print(f"validate_data_dir.sh: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"validate_data_dir.sh: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    for note in v.notes:
        print(note)
    print(f"validate_data_dir.sh: Successfully validated data-directory {data}")
    return 0


VALIDATE_USAGE = (
    "Usage: validate_data_dir.sh [--no-feats] [--no-text] [--non-print] [--no-wav] [--no-spk-sort] <data-dir>\n"
    "The --no-xxx options mean that the script does not require xxx.scp to be present, but it will check it if it "
    "is present.\n--no-spk-sort means that the script does not require the utt2spk to be sorted by the speaker-id "
    "in addition to being sorted by utterance-id.\n--non-print ignore the presence of non-printable characters."
)


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


FIX_SORTED = [
    "utt2spk", "spk2utt", "feats.scp", "text", "segments", "wav.scp", "cmvn.scp", "vad.scp",
    "reco2file_and_channel", "spk2gender", "utt2lang", "utt2uniq", "utt2dur", "reco2dur", "utt2num_frames",
]  # fmt: skip


class Fixer:
    """Kaldi's fix_data_dir.sh, step by step, on the tables held in memory (nothing is written until the end)."""

    def __init__(self, data: str, utt_extra: List[str], spk_extra: List[str]) -> None:
        self.data = data
        self.utt_extra = utt_extra
        self.spk_extra = spk_extra
        self.t: Dict[str, List[bytes]] = {}
        self.orig: Dict[str, bytes] = {}

    def path(self, name: str) -> str:
        return os.path.join(self.data, name)

    def has(self, name: str) -> bool:
        return name in self.t

    def say(self, msg: str) -> None:
        print(f"fix_data_dir.sh: {msg}")

    def filter(self, ids: List[bytes], id_name: str, lines: List[bytes], in_name: str) -> List[bytes]:
        """filter_scp.pl: the lines of ``lines`` whose first field is the first field of a line of ``ids``."""
        return keep_lines(ids, lines, f" of {id_name}", f" of {in_name}")

    def filter_file(self, ids: List[bytes], id_name: str, name: str) -> None:
        old = self.t[name]
        new = self.filter(ids, id_name, old, self.path(name))
        if len(new) != len(old):
            self.say(f"filtered {self.path(name)} from {len(old)} to {len(new)} lines based on filter {id_name}.")
        self.t[name] = new

    def load(self) -> None:
        names = [*FIX_SORTED, *self.utt_extra, *self.spk_extra]
        for name in dict.fromkeys(names):
            p = self.path(name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    self.orig[name] = f.read()
                lines = read_table(p)
                srt = sort_k1_unique(lines)
                if srt != lines or not self.orig[name].endswith(b"\n") and self.orig[name]:
                    self.say(f"file {p} is not in sorted order or not unique, sorting it")
                self.t[name] = srt

    def recordings(self) -> None:
        if not self.has("segments"):
            return
        if not self.has("wav.scp"):
            raise DataDirError(f"{self.path('segments')} exists but not {self.path('wav.scp')}")
        recos = [b"" if len(awk_fields(ln)) < 2 else awk_fields(ln)[1] for ln in self.t["segments"]]
        recos = sorted(set(recos))
        if not recos:
            raise DataDirError(f"Empty list of recordings (bad file {self.path('segments')})?")
        recos = self.filter(self.t["wav.scp"], self.path("wav.scp"), recos, "the recordings of segments")

        def swap(ln: bytes) -> bytes:
            f = awk_fields(ln) + [b""] * 4
            return b" ".join([f[1], f[0], f[2], f[3]])

        self.t["segments"] = [swap(ln) for ln in self.t["segments"]]
        self.filter_file(recos, "the recordings of segments", "segments")
        self.t["segments"] = [swap(ln) for ln in self.t["segments"]]
        for name in ("wav.scp", "reco2file_and_channel", "reco2dur"):
            if self.has(name):
                self.filter_file(recos, "the recordings of segments", name)

    def speakers(self) -> None:
        self.t["spk2utt"] = spk2utt_from(self.t["utt2spk"], self.path("utt2spk"))
        spks = [awk_key(ln) for ln in self.t["spk2utt"]]
        for name in ("cmvn.scp", "spk2gender"):
            if self.has(name):
                spks = self.filter(self.t[name], self.path(name), spks, "the speakers of spk2utt")
        self.filter_file(spks, "the speakers", "spk2utt")
        self.t["utt2spk"] = [u + b" " + f[0] for f in map(perl_fields, self.t["spk2utt"]) for u in f[1:]]
        for name in dict.fromkeys(["cmvn.scp", "spk2gender", *self.spk_extra]):
            if self.has(name):
                self.filter_file(spks, "the speakers", name)

    def utterances(self) -> None:
        u2s = self.t["utt2spk"]
        utts = [awk_key(ln) for ln in u2s]
        if sorted(u2s) != u2s:
            raise DataDirError("utt2spk is not in sorted order (fix this yourself)")
        if sorted(u2s, key=lambda ln: (sort_key2(ln), ln)) != u2s:
            raise DataDirError(
                "utt2spk is not in sorted order when sorted first on speaker-id "
                "(fix this by making speaker-ids prefixes of utt-ids)"
            )
        if sorted(self.t["spk2utt"]) != self.t["spk2utt"]:
            raise DataDirError("spk2utt is not in sorted order (fix this yourself)")
        if self.has("utt2uniq") and sorted(self.t["utt2uniq"]) != self.t["utt2uniq"]:
            raise DataDirError("utt2uniq is not in sorted order (fix this yourself)")
        segments = self.has("segments")
        filters = [n for n in ("feats.scp", "text", "segments", "utt2lang") if self.has(n)]
        if not segments and self.has("wav.scp"):
            filters.append("wav.scp")
        for n in filters:
            utts = self.filter(self.t[n], self.path(n), utts, "the utterances of utt2spk")
        for n in ("utt2dur", "utt2num_frames"):
            if self.has(n):
                ok = [ln for ln in self.t[n] if len(awk_fields(ln)) == 2 and awk_cmp(awk_fields(ln)[1], 0.0) > 0]
                utts = self.filter(ok, self.path(n), utts, "the utterances of utt2spk")
        if not utts:
            raise DataDirError(f"no utterances remained: not proceeding further. (nothing in {self.data} was changed)")
        if len(utts) != len(u2s):
            self.say(f"kept {len(utts)} utterances out of {len(u2s)}")
        else:
            self.say(f"kept all {len(u2s)} utterances.")
        names = ["utt2spk", "utt2uniq", "feats.scp", "vad.scp", "text", "segments", "utt2lang", "utt2dur", "utt2num_frames"]
        if not segments:
            names += ["wav.scp"]
            if self.orig.get("reco2dur"):
                names += ["reco2dur"]
        for n in dict.fromkeys([*names, *self.utt_extra]):
            if self.has(n):
                self.t[n] = self.filter(utts, "the kept utterances", self.t[n], self.path(n))

    def run(self) -> None:
        self.load()
        self.recordings()
        self.speakers()
        self.utterances()
        self.speakers()
        self.recordings()
        self.t["spk2utt"] = spk2utt_from(self.t["utt2spk"], self.path("utt2spk"))

    def write(self) -> None:
        """Back up the original files in <data>/.backup, then replace the changed ones (temp file + rename)."""
        backup = self.path(".backup")
        os.makedirs(backup, exist_ok=True)
        for name, data in self.orig.items():
            _write_bytes(os.path.join(backup, name), data)
        for name, lines in self.t.items():
            data = b"".join(ln + b"\n" for ln in lines)
            if self.orig.get(name) != data:
                _write_bytes(self.path(name), data)


def _write_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def spk2utt_from(utt2spk: List[bytes], name: str) -> List[bytes]:
    """utt2spk_to_spk2utt.pl: speakers in order of first appearance; each line must have exactly 2 fields."""
    d: Dict[bytes, List[bytes]] = {}
    for n, ln in enumerate(utt2spk, 1):
        f = perl_fields(ln)
        if len(f) != 2:
            raise DataDirError(f"utt2spk_to_spk2utt.pl: Invalid line in utt2spk file: {name} line {n}: '{_s(ln)}'")
        d.setdefault(f[1], []).append(f[0])
    return [b" ".join([s, *u]) for s, u in d.items()]


FIX_USAGE = (
    "Usage: utils/data/fix_data_dir.sh <data-dir>\n"
    "e.g.: utils/data/fix_data_dir.sh data/train\n"
    "This script helps ensure that the various files in a data directory\n"
    "are correctly sorted and filtered, for example removing utterances\n"
    "that have no features (if feats.scp is present)"
)


def fix(argv: List[str]) -> int:
    """``fix_data_dir.sh``; returns the exit status."""
    opts = {"utt_extra_files": "", "spk_extra_files": ""}
    args = parse_kaldi_options("fix_data_dir.sh", argv, opts)
    if len(args) != 1:
        print(FIX_USAGE)
        return 1
    data = args[0]
    if not os.path.isdir(data):
        raise DataDirError(f"no such directory {data}")
    if not os.path.isfile(os.path.join(data, "utt2spk")):
        raise DataDirError(f"no such file {data}/utt2spk")
    fx = Fixer(data, opts["utt_extra_files"].split(), opts["spk_extra_files"].split())
    fx.run()
    fx.write()
    print(f"fix_data_dir.sh: old files are kept in {data}/.backup")
    return 0


def parse_kaldi_options(prog: str, argv: List[str], opts: Dict[str, str]) -> List[str]:
    """utils/parse_options.sh's rules: ``--name value`` (dashes = underscores), unknown name or
    ``--name=value`` is an error (exit 1), true/false options take only true/false; returns the rest."""
    args = list(argv)
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if "=" in opt:
            raise DataDirError(f"options to scripts must be of the form --name value, got '{opt}'")
        name = opt[2:].replace("-", "_")
        if name not in opts:
            raise DataDirError(f"invalid option {opt}")
        if not args:
            raise DataDirError(f"option {opt} needs a value")
        val = args.pop(0)
        if opts[name] in ("true", "false") and val not in ("true", "false"):
            raise DataDirError(f'expected "true" or "false": {opt} {val}')
        opts[name] = val
    return args


def copy(argv: List[str]) -> int:
    """``copy_data_dir.sh``; returns the exit status."""
    opts = {"utt_prefix": "", "utt_suffix": "", "spk_prefix": "", "spk_suffix": "", "validate_opts": ""}
    args = parse_kaldi_options("copy_data_dir.sh", argv, opts)
    if len(args) != 2:
        raise DataDirError(
            "Usage: copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] "
            "[--validate_opts OPTS] <srcdir> <destdir>"
        )
    src, dest = args
    u2s_path = os.path.join(src, "utt2spk")
    if not os.path.isfile(u2s_path):
        raise DataDirError(f"no such file {u2s_path}")
    if dest == src:
        raise DataDirError("this script requires <srcdir> and <destdir> to be different.")
    up, us = opts["utt_prefix"].encode(), opts["utt_suffix"].encode()
    sp, ss = opts["spk_prefix"].encode(), opts["spk_suffix"].encode()
    os.makedirs(dest, exist_ok=True)

    def mapped(name: str, kmap) -> None:
        p = os.path.join(src, name)
        if not os.path.isfile(p):
            return
        out = []
        for n, ln in enumerate(read_table(p), 1):  # apply_map.pl -f 1: fields re-joined by single spaces
            f = perl_fields(ln)
            if not f:
                raise DataDirError(f"apply_map.pl: blank line {n} in {p}")
            out.append(b" ".join([kmap(f[0]), *f[1:]]))
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
    for name, opt in (("feats.scp", "--no-feats"), ("text", "--no-text")):  # Kaldi's rule: by the source dir
        if not os.path.isfile(os.path.join(src, name)):
            vopts.append(opt)
    return validate([*vopts, dest])


TOOLS = {"validate_data_dir.sh": validate, "fix_data_dir.sh": fix, "copy_data_dir.sh": copy}


def run_tool(prog: str, tools: Dict[str, object], doc: Optional[str], argv: Optional[List[str]] = None) -> int:
    """Run ``tools[prog]`` on ``argv`` as a shell tool: ``--help`` prints ``doc``; a closed output pipe
    stops quietly (141); fatal errors -> ``<prog>: <message>`` on stderr, exit status 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args in (["--help"], ["-h"]):
            print(doc)
            return 0
        return tools[prog](args)
    except BrokenPipeError:  # e.g. `... --help | head`: stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except DataDirError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{prog}: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1


def main(prog: str, argv: Optional[List[str]] = None) -> int:
    """Run tool ``prog``; fatal errors -> ``<prog>: <message>`` on stderr, exit status 1."""
    return run_tool(prog, TOOLS, __doc__, argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
