"""Stage 3: espnet_cls.bin.filter_data / espnet_cls.filtering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from espnet_cls.bin.filter_data import main
from espnet_cls.fileio import DataError
from espnet_cls.filtering import BACKUP_DIR, filter_data_dir

FS = 16000

# utt: (num_samples, text labels, speaker)
UTTS = {
    "a_ok": (16000, "dog", "s1"),
    "b_short": (1599, "dog", "s1"),  # < 0.1 s
    "c_exact_min": (1600, "cat", "s2"),  # = 0.1 s: kept ("shorter than" is strict)
    "d_long": (16000 * 13, "cat", "s2"),  # > 12 s
    "e_exact_max": (16000 * 12, "cat", "s3"),  # = 12 s: kept
    "f_empty": (16000, "", "s3"),
    "g_blank": (16000, "<blank>", "s4"),  # multi-label "no label": kept
    "h_multi": (32000, "dog cat", "s4"),
}


def make_dump_dir(d: Path, utts=UTTS, weights=True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    keys = sorted(utts)
    (d / "wav.scp").write_text("".join(f"{u} {d}/data/format.1/{u}.flac\n" for u in keys))
    (d / "utt2num_samples").write_text("".join(f"{u} {utts[u][0]}\n" for u in keys))
    (d / "text").write_text("".join(f"{u} {utts[u][1]}\n".replace(" \n", "\n") for u in keys))
    (d / "utt2spk").write_text("".join(f"{u} {utts[u][2]}\n" for u in keys))
    spk = {}
    for u in keys:
        spk.setdefault(utts[u][2], []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk.items())))
    if weights:
        (d / "utt2weight").write_text("".join(f"{u} {i + 1}.5\n" for i, u in enumerate(keys)))
    (d / "feats_type").write_text("raw\n")
    return d


def keys(path: Path) -> list[str]:
    return [ln.split()[0] for ln in path.read_text().splitlines()]


def test_filter_keeps_every_file_consistent(tmp_path, capsys):
    d = make_dump_dir(tmp_path / "dump" / "train")
    orig = {f.name: f.read_text() for f in d.iterdir() if f.is_file()}
    assert main(["--fs", "16k", "--min_wav_duration", "0.1", "--max_wav_duration", "12", str(d)]) == 0
    err = capsys.readouterr().err
    assert "kept 5 of 8 (too short: 1, too long: 1, empty text: 1)" in err
    kept = ["a_ok", "c_exact_min", "e_exact_max", "g_blank", "h_multi"]
    for name in ("wav.scp", "utt2num_samples", "text", "utt2spk", "utt2weight"):
        assert keys(d / name) == kept, name
    # lines are kept as they were
    assert (d / "utt2weight").read_text().splitlines()[0] == "a_ok 1.5"
    assert (d / "text").read_text().splitlines()[-1] == "h_multi dog cat"
    assert (d / "spk2utt").read_text() == "s1 a_ok\ns2 c_exact_min\ns3 e_exact_max\ns4 g_blank h_multi\n"
    # originals backed up
    for name, content in orig.items():
        if name != "feats_type":
            assert (d / BACKUP_DIR / name).read_text() == content
    assert not list(d.glob(".*.tmp"))


def test_no_upper_bound_by_default_and_idempotent_rerun(tmp_path):
    d = make_dump_dir(tmp_path / "train")
    r = filter_data_dir(str(d), FS, 0.1, 12.0)
    assert len(r.kept) == 5
    # re-run with the same settings: same result, filtered from the backup (counts over all 8)
    r2 = filter_data_dir(str(d), FS, 0.1, 12.0)
    assert r2.total == 8 and r2.kept == r.kept and r2.source.endswith(BACKUP_DIR)
    # a looser setting brings back the long one (filtering from the backup, not the filtered dir)
    r3 = filter_data_dir(str(d), FS, 0.1, None)
    assert r3.total == 8 and r3.too_long == 0 and "d_long" in keys(d / "wav.scp")
    assert "--max_wav_duration" in subprocess.run(
        [sys.executable, "-m", "espnet_cls.bin.filter_data", "--help"], capture_output=True, text=True
    ).stdout


def test_rewritten_dir_becomes_the_new_original(tmp_path):
    d = make_dump_dir(tmp_path / "train")
    filter_data_dir(str(d), FS, 0.1, 12.0)
    # stage 2 runs again with fewer utterances: the new files are the originals now
    fewer = {k: v for k, v in UTTS.items() if k not in ("a_ok", "b_short")}
    make_dump_dir(d, fewer)
    r = filter_data_dir(str(d), FS, 0.1, 12.0)
    assert r.total == 6 and r.source == str(d)
    assert keys(d / BACKUP_DIR / "wav.scp") == sorted(fewer)
    assert keys(d / "wav.scp") == ["c_exact_min", "e_exact_max", "g_blank", "h_multi"]


def test_bad_dirs(tmp_path):
    d = make_dump_dir(tmp_path / "x")
    (d / "utt2num_samples").write_text("a_ok 16000\nb_short zz\n")
    with pytest.raises(DataError, match="utt2num_samples:2: not a number"):
        filter_data_dir(str(d), FS, 0.1)
    d = make_dump_dir(tmp_path / "y")
    (d / "utt2num_samples").write_text("a_ok 16000\n")
    with pytest.raises(DataError, match="wav.scp:2: utterance 'b_short' is not in"):
        filter_data_dir(str(d), FS, 0.1)
    d = make_dump_dir(tmp_path / "z", {"a": (100, "dog", "s"), "b": (16000, "", "s")})
    with pytest.raises(DataError, match="no utterance left"):
        filter_data_dir(str(d), FS, 0.1)
    assert keys(d / "wav.scp") == ["a", "b"]  # untouched
    d = make_dump_dir(tmp_path / "w")
    (d / "feats_type").write_text("fbank\n")
    with pytest.raises(DataError, match="feats_type"):
        filter_data_dir(str(d), FS, 0.1)


def test_interrupted_run_is_recovered_from_the_backup(tmp_path):
    """A kill between the per-file writes leaves a mix of originals and outputs: still filtered from the backup."""
    d = make_dump_dir(tmp_path / "train")
    filter_data_dir(str(d), FS, 0.1, 12.0)
    (d / "text").write_text((d / BACKUP_DIR / "text").read_text())  # as if only text was not yet rewritten
    r = filter_data_dir(str(d), FS, 0.1, 12.0)
    assert r.source.endswith(BACKUP_DIR) and r.total == 8
    assert keys(d / "text") == keys(d / "wav.scp") == ["a_ok", "c_exact_min", "e_exact_max", "g_blank", "h_multi"]
