"""Bad-input catalogue, part 2: stages 2-3 (the source data dir, the dump, the filter).

Source problems are found by ``format_wav_scp --step begin`` before anything is written:
each case asserts exit status 1, one ERROR line naming the SOURCE file and line, and that
``dump/<set>`` does not exist afterwards. Decoding problems (truncated wav, disk full) run
the real driver script (scripts/audio/format_wav_scp.sh, run.pl) and assert that no
``wav.scp`` is written. See docs/robustness.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robust_helpers import assert_one_clear_error, listing, no_temp_files, run_worker, tmpfs, write  # noqa: E402

FS = 16000


def _wav(path: Path, dur: float = 0.3, f: float = 440.0) -> str:
    t = np.arange(int(dur * FS)) / FS
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(2 * np.pi * f * t), FS, subtype="PCM_16")
    return str(path)


@pytest.fixture()
def good(tmp_path) -> Path:
    """data/x: three clips with wav.scp, text, utt2spk (sorted, clean)."""
    d = tmp_path / "data" / "x"
    wavs = {u: _wav(tmp_path / "wav" / f"{u}.wav", f=300 + 100 * i) for i, u in enumerate(["a1", "b2", "c3"])}
    write(d / "wav.scp", "".join(f"{u} {p}\n" for u, p in wavs.items()))
    write(d / "text", "a1 dog\nb2 cat\nc3 dog\n")
    write(d / "utt2spk", "a1 a1\nb2 b2\nc3 c3\n")
    return d


@pytest.fixture()
def segdir(tmp_path) -> Path:
    """data/s: one 2 s recording, two segments, text."""
    d = tmp_path / "data" / "s"
    write(d / "wav.scp", f"rec {_wav(tmp_path / 'wav' / 'rec.wav', dur=2.0)}\n")
    write(d / "segments", "s1 rec 0.0 1.0\ns2 rec 1.0 2.0\n")
    write(d / "text", "s1 dog\ns2 cat\n")
    return d


def _begin(d: Path, capsys, segments: bool = False):
    dump = d.parent.parent / "dump" / d.name
    args = ["--step", "begin", "--nj", "2", "--copy_data_dir", "true", str(d / "wav.scp"), str(dump)]
    if segments:
        args[:0] = ["--segments", str(d / "segments")]
    rc, out = run_worker("format_wav_scp", args, capsys)
    return rc, out, dump


def _edit(path: Path, fn) -> None:
    path.write_bytes(fn(path.read_bytes()))


def _line(path: Path, n: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[n - 1] = new
    path.write_text("\n".join(lines) + "\n")


# case -> (edit of the clean data dir, file named, line, fragment of the message)
SOURCE_CASES = {
    "dup_wav_id": (lambda d: _line(d / "wav.scp", 2, (d / "wav.scp").read_text().splitlines()[0]), "wav.scp", 2, "duplicate utterance id 'a1' (first on line 1)"),
    "dup_text_id": (lambda d: _line(d / "text", 3, "a1 cat"), "text", 3, "duplicate utterance id 'a1'"),
    "text_extra_id": (lambda d: _line(d / "text", 3, "zz dog"), "text", 3, "utterance 'zz' is not in wav.scp"),
    "text_missing_id": (lambda d: (d / "text").write_text("a1 dog\nb2 cat\n"), "text", None, "'c3' (wav.scp line 3) has no line in text"),
    "utt2spk_extra_id": (lambda d: _line(d / "utt2spk", 1, "a0 a0"), "utt2spk", 1, "utterance 'a0' is not in wav.scp"),
    "utt2spk_3_fields": (lambda d: _line(d / "utt2spk", 2, "b2 spk x"), "utt2spk", 2, "expected 'utt speaker', got 3 fields"),
    "empty_wav_scp": (lambda d: (d / "wav.scp").write_text(""), "wav.scp", None, "wav.scp is empty"),
    "bom_wav_scp": (lambda d: _edit(d / "wav.scp", lambda b: b"\xef\xbb\xbf" + b), "wav.scp", 1, "byte-order mark"),
    "bom_text": (lambda d: _edit(d / "text", lambda b: b"\xef\xbb\xbf" + b), "text", 1, "byte-order mark"),
    "crlf_wav_scp": (lambda d: _edit(d / "wav.scp", lambda b: b.replace(b"\n", b"\r\n")), "wav.scp", 1, "CR (a Windows line end)"),
    "crlf_text": (lambda d: _edit(d / "text", lambda b: b.replace(b"\n", b"\r\n", 2)), "text", 1, "CR (a Windows line end)"),
    "non_utf8_text": (lambda d: _line(d / "text", 2, "b2 caf\udce9"), "text", 2, "not UTF-8: byte 0xe9 at column 7"),
    "blank_line_wav_scp": (lambda d: _edit(d / "wav.scp", lambda b: b.replace(b"\n", b"\n\n", 1)), "wav.scp", 2, "empty line"),
    "key_only_wav_scp": (lambda d: _line(d / "wav.scp", 3, "c3"), "wav.scp", 3, "has a key ('c3') but no value"),
    "slash_in_id": (lambda d: [_line(d / f, 1, ln) for f, ln in (("wav.scp", "a/1 " + (d / "wav.scp").read_text().split()[1]), ("text", "a/1 dog"), ("utt2spk", "a/1 a1"))], "wav.scp", 1, "cannot be used as a file name"),
    "dot_id": (lambda d: [_line(d / f, 1, ln) for f, ln in (("wav.scp", ".a1 " + (d / "wav.scp").read_text().split()[1]), ("text", ".a1 dog"), ("utt2spk", ".a1 a1"))], "wav.scp", 1, "cannot be used as a file name"),
    "missing_wav_scp": (lambda d: (d / "wav.scp").unlink(), "wav.scp", None, "cannot open"),
}


def _write_non_utf8(d: Path) -> None:
    data = (d / "text").read_bytes().replace(b"b2 cat", b"b2 caf\xe9")
    (d / "text").write_bytes(data)


@pytest.mark.parametrize("case", sorted(SOURCE_CASES))
def test_bad_source_dir_names_source_file_and_line_and_writes_nothing(case, good, capsys):
    edit, fname, line, fragment = SOURCE_CASES[case]
    if case == "non_utf8_text":
        _write_non_utf8(good)
    else:
        edit(good)
    rc, out, dump = _begin(good, capsys)
    assert rc == 1
    where = f"{good / fname}:{line}:" if line else f"{good / fname}:"
    assert_one_clear_error(out, where, fragment)
    assert not dump.exists(), listing(dump)


SEGMENT_CASES = {
    "end_before_start": ("s2 rec 1.0 0.5", 2, "segment end 0.5 s is not after its start 1 s"),
    "negative_start": ("s2 rec -0.5 1.0", 2, "segment start -0.5 s is negative"),
    "missing_recording": ("s2 nosuch 0.0 1.0", 2, "recording 'nosuch' is not in"),
    "three_fields": ("s2 rec 1.0", 2, "expected 'utt recording start end', got 3 fields"),
    "not_a_number": ("s2 rec one 2.0", 2, "start/end are not numbers"),
    "infinite": ("s2 rec 0 inf", 2, "not finite"),
    "dup_segment": ("s1 rec 1.0 2.0", 2, "duplicate utterance id 's1'"),
}


@pytest.mark.parametrize("case", sorted(SEGMENT_CASES))
def test_bad_segments_name_the_segments_line(case, segdir, capsys):
    new, line, fragment = SEGMENT_CASES[case]
    _line(segdir / "segments", 2, new)
    if case == "dup_segment":
        (segdir / "text").write_text("s1 dog\n")
    rc, out, dump = _begin(segdir, capsys, segments=True)
    assert rc == 1
    assert_one_clear_error(out, f"{segdir / 'segments'}:{line}:", fragment)
    assert not dump.exists()


def test_empty_segments(segdir, capsys):
    (segdir / "segments").write_text("")
    rc, out, dump = _begin(segdir, capsys, segments=True)
    assert rc == 1
    assert_one_clear_error(out, str(segdir / "segments"), "segments is empty")
    assert not dump.exists()


def test_text_id_not_in_segments(segdir, capsys):
    (segdir / "text").write_text("s1 dog\ns3 cat\n")
    rc, out, dump = _begin(segdir, capsys, segments=True)
    assert rc == 1
    assert_one_clear_error(out, f"{segdir / 'text'}:2:", "utterance 's3' is not in segments")
    assert not dump.exists()


# ---- the real driver: unsorted dirs, fs record, truncated audio, disk full ------------------


def run_driver(work: Path, args: list[str], shell_env: dict, repo_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(repo_root / "scripts/audio/format_wav_scp.sh"), "--cmd", "run.pl", "--copy-data-dir", "true", *args],
        cwd=work, env=shell_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_unsorted_dirs_with_and_without_segments_are_sorted_alike(good, segdir, tmp_path, shell_env, repo_root):
    for d in (good, segdir):
        for name in ("wav.scp", "text", "utt2spk", "segments"):
            p = d / name
            if p.exists():
                p.write_text("".join(reversed(p.read_text().splitlines(keepends=True))))
    r = run_driver(tmp_path, ["--nj", "2", "data/x/wav.scp", "dump/x"], shell_env, repo_root)
    assert r.returncode == 0, r.stderr
    r = run_driver(tmp_path, ["--nj", "2", "--segments", "data/s/segments", "data/s/wav.scp", "dump/s"], shell_env, repo_root)
    assert r.returncode == 0, r.stderr
    for name, keys in (("x", ["a1", "b2", "c3"]), ("s", ["s1", "s2"])):
        dump = tmp_path / "dump" / name
        for f in ("wav.scp", "text", "utt2num_samples"):
            assert [ln.split()[0] for ln in (dump / f).read_text().splitlines()] == keys, (name, f)
        assert (dump / "fs").read_text() == "16000\n"  # the dump records its rate
        assert (dump / "feats_type").read_text() == "raw\n"
    assert (tmp_path / "dump/x/spk2utt").read_text() == "a1 a1\nb2 b2\nc3 c3\n"
    assert not (tmp_path / "dump/s/segments").exists()  # the dump is per utterance


def test_truncated_wav_fails_naming_the_line(good, tmp_path, shell_env, repo_root):
    wav = Path((good / "wav.scp").read_text().splitlines()[1].split()[1])
    _wav(wav, dur=0.6)
    data = wav.read_bytes()
    wav.write_bytes(data[: int(len(data) * 0.4)])  # header says 0.6 s, file cut at 40 %
    r = run_driver(tmp_path, ["--nj", "1", "data/x/wav.scp", "dump/x"], shell_env, repo_root)
    assert r.returncode == 1
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR: ")]
    assert len(errs) == 1, r.stderr
    assert errs[0].startswith("ERROR: data/x/wav.scp:2: set x, utt b2: truncated file: its header declares 9600 frames (0.600 s)")
    assert not (tmp_path / "dump/x/wav.scp").exists() and not (tmp_path / "dump/x/text").exists()
    assert no_temp_files(tmp_path / "dump")


def test_rerun_after_fixing_the_source_completes(good, tmp_path, shell_env, repo_root, capsys):
    _line(good / "text", 3, "zz dog")
    assert _begin(good, capsys)[0] == 1
    _line(good / "text", 3, "c3 dog")
    r = run_driver(tmp_path, ["--nj", "2", "data/x/wav.scp", "dump/x"], shell_env, repo_root)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "dump/x/wav.scp").read_text().splitlines()) == 3


def test_disk_full_during_dump(good, tmp_path, shell_env, repo_root):
    full = tmp_path / "dump"
    umount = tmpfs(full, "48k")
    if umount is None:
        pytest.skip("needs root to mount a tmpfs")
    try:
        for i in range(12):  # ~ 150 KiB of audio: does not fit
            u = f"d{i:02d}"
            _wav(tmp_path / "wav" / f"{u}.wav", dur=0.4)
        (good / "wav.scp").write_text("".join(f"d{i:02d} {tmp_path / 'wav' / f'd{i:02d}.wav'}\n" for i in range(12)))
        (good / "text").write_text("".join(f"d{i:02d} dog\n" for i in range(12)))
        (good / "utt2spk").write_text("".join(f"d{i:02d} s\n" for i in range(12)))
        r = run_driver(tmp_path, ["--nj", "1", "--audio-format", "wav", "data/x/wav.scp", "dump/x"], shell_env, repo_root)
        assert r.returncode != 0
        assert "No space left on device" in r.stderr, r.stderr[-2000:]
        assert not (full / "x/wav.scp").exists()
        assert no_temp_files(full)
    finally:
        umount()


# ---- stage 3 -----------------------------------------------------------------------------


def _dumped(tmp_path: Path, shell_env, repo_root, good: Path) -> Path:
    r = run_driver(tmp_path, ["--nj", "1", "data/x/wav.scp", "dump/x"], shell_env, repo_root)
    assert r.returncode == 0, r.stderr
    return tmp_path / "dump/x"


def test_filter_with_another_fs_than_the_dump(good, tmp_path, shell_env, repo_root, capsys):
    dump = _dumped(tmp_path, shell_env, repo_root, good)
    before = listing(dump)
    rc, out = run_worker("filter_data", ["--fs", "8k", str(dump)], capsys)
    assert rc == 1
    assert_one_clear_error(out, f"{dump / 'fs'}:1:", "16000 Hz", "8000 Hz")
    assert listing(dump) == before


def test_filter_bad_utt2num_samples(good, tmp_path, shell_env, repo_root, capsys):
    dump = _dumped(tmp_path, shell_env, repo_root, good)
    _line(dump / "utt2num_samples", 2, "b2 many")
    rc, out = run_worker("filter_data", ["--fs", "16k", str(dump)], capsys)
    assert rc == 1
    assert_one_clear_error(out, f"{dump / 'utt2num_samples'}:2:", "not a number of samples")
    assert not (dump / ".filter_backup").exists()


def test_filter_nothing_left(good, tmp_path, shell_env, repo_root, capsys):
    dump = _dumped(tmp_path, shell_env, repo_root, good)
    rc, out = run_worker("filter_data", ["--fs", "16k", "--min_wav_duration", "5", str(dump)], capsys)
    assert rc == 1
    assert_one_clear_error(out, str(dump), "no utterance left")
    assert (dump / "wav.scp").read_text().count("\n") == 3  # untouched


def test_filter_non_utf8_text_in_the_dump(good, tmp_path, shell_env, repo_root, capsys):
    dump = _dumped(tmp_path, shell_env, repo_root, good)
    (dump / "text").write_bytes(b"a1 dog\nb2 caf\xe9\nc3 dog\n")  # edited by hand after stage 2
    rc, out = run_worker("filter_data", ["--fs", "16k", str(dump)], capsys)
    assert rc == 1
    assert_one_clear_error(out, f"{dump / 'text'}:2:", "not UTF-8: byte 0xe9 at column 7")
    assert not (dump / ".filter_backup").exists()
