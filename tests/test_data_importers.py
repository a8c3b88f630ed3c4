"""Importers of stage 1 (ESC-50, AudioSet, folder per class, csv/tsv) on tiny layouts written here."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_cls.data.audioset import prepare_audioset
from espnet_cls.data.common import write_splits
from espnet_cls.data.csvlist import prepare_csvlist
from espnet_cls.data.esc50 import HEADER, prepare_esc50
from espnet_cls.data.folder import prepare_folder
from espnet_cls.fileio import DataError, read_kv


def tone(path: Path, freq: float = 440.0, fs: int = 16000, seconds: float = 0.1, fmt: str | None = None) -> None:
    """Write a short real audio file (wav or flac by extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(fs * seconds)) / fs
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), fs, format=fmt)


def validate(repo_root: Path, env: dict, d: Path) -> None:
    proc = subprocess.run(["bash", "utils/validate_data_dir.sh", "--no-feats", str(d)], cwd=repo_root, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def run_script(repo_root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=repo_root, env=env, capture_output=True, text=True)


# ----------------------------------------------------------------------------- ESC-50
def make_esc50(root: Path, rows_extra: list[list[str]] = ()) -> None:
    """Two classes x five folds (one clip each), plus one listed clip that is missing."""
    rows = []
    for fold in range(1, 6):
        for target, cat in ((0, "dog"), (1, "chirping_birds")):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            tone(root / "audio" / name, 300 + 100 * fold + target)
            rows.append([name, str(fold), str(target), cat, "True" if target == 0 else "False", "100", "A"])
    rows.append(["5-999-A-0.wav", "5", "0", "dog", "True", "999", "A"])  # listed, not on disk
    rows += list(rows_extra)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def test_esc50_folds(tmp_path, repo_root, shell_env, caplog):
    make_esc50(tmp_path / "ESC-50")
    with caplog.at_level(logging.WARNING, logger="espnet_cls.data"):
        splits = prepare_esc50(tmp_path / "ESC-50", fold=2)
    assert "1 of 11 clips" in caplog.text  # the missing clip is counted
    assert sorted(u.uttid for u in splits["test"]) == ["2-100-A-0", "2-101-A-1"]
    assert sorted(u.uttid for u in splits["valid"]) == ["3-100-A-0", "3-101-A-1"]
    assert len(splits["train"]) == 6 and {u.labels for u in splits["train"]} == {("dog",), ("chirping_birds",)}
    assert prepare_esc50(tmp_path / "ESC-50", fold=5)["valid"][0].uttid.startswith("1-")  # wraps around
    assert len(prepare_esc50(tmp_path / "ESC-50", fold=1, esc10=True)["test"]) == 1

    out = tmp_path / "data"
    proc = subprocess.run(["bash", "local/data.sh", str(out), "--corpus", "esc50", "--esc50_root", str(tmp_path / "ESC-50"),
                           "--fold", "4"], cwd=repo_root, env=shell_env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_kv(out / "test" / "text") == {"4-100-A-0": "dog", "4-101-A-1": "chirping_birds"}
    assert Path(read_kv(out / "test" / "wav.scp")["4-100-A-0"]).is_file()
    for s in ("train", "valid", "test"):
        validate(repo_root, shell_env, out / s)


def test_esc50_malformed_row(tmp_path, repo_root, shell_env):
    make_esc50(tmp_path / "ESC-50", rows_extra=[["1-5-A-0.wav", "1", "0", "dog"]])
    with pytest.raises(DataError) as e:
        prepare_esc50(tmp_path / "ESC-50", fold=1)
    assert e.value.line == 13 and e.value.path.endswith("esc50.csv") and "7 fields" in e.value.msg
    proc = run_script(repo_root, shell_env, "local/prepare_esc50.py", "--esc50_root", str(tmp_path / "ESC-50"), str(tmp_path / "d"))
    assert proc.returncode == 1
    assert "esc50.csv:13: expected 7 fields, found 4" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- AudioSet
LABELS = [("0", "/m/09x0r", "Speech"), ("1", "/m/05zppz", "Male speech, man speaking"), ("2", "/m/0jbk", "Animal"),
          ("3", "/m/04rlf", "Music")]  # fmt: skip


def make_audioset(root: Path, bad_row: str | None = None) -> None:
    with open(root / "class_labels_indices.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        w.writerows(LABELS)
    head = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=4, num_segs=4, num_pos_labels=6\n# YTID, start_seconds, end_seconds, positive_labels\n"
    train = [
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz"',
        'aaaaaaaaaaa, 0.000, 10.000, "/m/0jbk"',
        'bbbbbbbbbbb, 10.000, 20.000, "/m/04rlf,/m/0jbk"',
        'ccccccccccc, 5.000, 15.000, "/m/04rlf"',
        'missingclip, 0.000, 10.000, "/m/04rlf"',
    ]
    if bad_row:
        train.append(bad_row)
    (root / "balanced_train_segments.csv").write_text(head + "\n".join(train) + "\n")
    (root / "eval_segments.csv").write_text(head + 'ddddddddddd, 20.000, 30.000, "/m/09x0r"\n' + 'eeeeeeeeeee, 0.000, 10.000, "/m/0jbk"\n')
    audio = root / "audio"
    tone(audio / "Y--PJHxphWEs.wav")  # Y<YTID>
    tone(audio / "sub" / "aaaaaaaaaaa_0.000.flac")  # <YTID>_<start as in csv>, in a sub-folder
    tone(audio / "bbbbbbbbbbb_10_20.wav")  # <YTID>_<start>_<end> as integers
    tone(audio / "ccccccccccc.wav")
    tone(audio / "ddddddddddd.wav")
    tone(audio / "eeeeeeeeeee.flac")


def test_audioset(tmp_path, repo_root, shell_env, caplog):
    root = tmp_path / "as"
    root.mkdir()
    make_audioset(root)
    with caplog.at_level(logging.WARNING, logger="espnet_cls.data"):
        splits = prepare_audioset(root, valid_fraction=0.25, seed=0)
    assert "1 of 5 clips not found" in caplog.text
    everything = {u.uttid: u for s in splits.values() for u in s}
    assert everything["Y--PJHxphWEs"].labels == ("Speech", "Male_speech_man_speaking")
    assert everything["Ybbbbbbbbbbb"].labels == ("Music", "Animal")
    assert len(splits["valid"]) == 1 and len(splits["train"]) == 3 and len(splits["test"]) == 2

    out = tmp_path / "data"
    proc = subprocess.run(["bash", "local/data.sh", str(out), "--corpus", "audioset", "--audioset_root", str(root)],
                          cwd=repo_root, env=shell_env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "not found under the audio directory; skipped" in proc.stderr
    text = {**read_kv(out / "train" / "text"), **read_kv(out / "valid" / "text")}
    assert text["Y--PJHxphWEs"] == "Speech Male_speech_man_speaking"
    weights = {k: float(v) for k, v in read_kv(out / "train" / "utt2weight").items()}
    assert set(weights) == set(read_kv(out / "train" / "wav.scp"))
    # inverse label frequency over the training set, summed over a clip's labels
    counts: dict[str, int] = {}
    for utt in weights:
        for lab in set(read_kv(out / "train" / "text")[utt].split()):
            counts[lab] = counts.get(lab, 0) + 1
    for utt, w in weights.items():
        assert w == pytest.approx(sum(1 / counts[lab] for lab in set(read_kv(out / "train" / "text")[utt].split())), rel=1e-5)
    for s in ("train", "valid", "test"):
        validate(repo_root, shell_env, out / s)


@pytest.mark.parametrize(
    "bad,msg",
    [("zzz, abc, 10.000, \"/m/04rlf\"", "not numbers"), ("zzz, 1.0", "found 2 fields"), ('zzz, 0.0, 10.0, "/m/nope"', "unknown label id")],
)
def test_audioset_malformed_row(tmp_path, bad, msg):
    root = tmp_path / "as"
    root.mkdir()
    make_audioset(root, bad_row=bad)
    with pytest.raises(DataError) as e:
        prepare_audioset(root)
    assert e.value.path.endswith("balanced_train_segments.csv") and e.value.line == 9 and msg in e.value.msg


# ----------------------------------------------------------------------------- folder per class
def test_folder_per_class(tmp_path, repo_root, shell_env):
    root = tmp_path / "sounds"
    for label in ("cat", "dog bark"):
        for i in range(10):
            tone(root / label / f"clip{i}.{'wav' if i % 2 else 'flac'}", 200 + 10 * i)
    tone(root / "cat" / "nested" / "deep.wav")
    (root / "empty").mkdir()
    (root / "cat" / "notes.txt").write_text("not audio")
    a = prepare_folder(root, 0.2, 0.2, seed=1)
    assert a == prepare_folder(root, 0.2, 0.2, seed=1)
    assert a != prepare_folder(root, 0.2, 0.2, seed=2)
    labels = {u.uttid: u.labels[0] for s in a.values() for u in s}
    assert len(labels) == 21 and set(labels.values()) == {"cat", "dog_bark"} and "cat-nested-deep" in labels
    assert [sum(u.labels == ("dog_bark",) for u in a[s]) for s in ("train", "valid", "test")] == [6, 2, 2]
    write_splits(tmp_path / "data", a)
    for s in ("train", "valid", "test"):
        validate(repo_root, shell_env, tmp_path / "data" / s)

    split_root = tmp_path / "presplit"
    for s in ("train", "valid", "test"):
        for label in ("x", "y"):
            tone(split_root / s / label / f"{s}{label}.wav")
    b = prepare_folder(split_root)
    assert [u.uttid for u in b["valid"]] == ["x-validx", "y-validy"]
    (tmp_path / "bad").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        prepare_folder(tmp_path / "bad")


# ----------------------------------------------------------------------------- csv / tsv
def test_csv_list_multilabel(tmp_path, repo_root, shell_env, caplog):
    for name in ("a.wav", "b.flac", "c.wav", "d.wav"):
        tone(tmp_path / "clips" / name)
    (tmp_path / "list.csv").write_text(
        "path,label,split\n"
        "clips/a.wav,Speech;Music,train\n"
        "clips/b.flac,Dog bark,train\n"
        "clips/c.wav,,valid\n"
        f"{tmp_path / 'clips' / 'd.wav'},Music,test\n"
        "clips/gone.wav,Music,test\n"
    )
    with caplog.at_level(logging.WARNING, logger="espnet_cls.data"):
        splits = prepare_csvlist(tmp_path / "list.csv")
    assert "1 of 5 listed files not found" in caplog.text
    assert [(u.uttid, u.labels) for u in splits["train"]] == [("clips-a", ("Speech", "Music")), ("clips-b", ("Dog_bark",))]
    assert splits["valid"][0].labels == ()
    out = tmp_path / "data"
    proc = subprocess.run(["bash", "local/data.sh", str(out), "--corpus", "csv", "--csv", str(tmp_path / "list.csv"),
                           "--write_utt2weight", "true"], cwd=repo_root, env=shell_env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_kv(out / "valid" / "text") == {"clips-c": "<blank>"}
    assert read_kv(out / "train" / "utt2weight") == {"clips-a": "2", "clips-b": "1"}
    for s in ("train", "valid", "test"):
        validate(repo_root, shell_env, out / s)


def test_tsv_without_split_column(tmp_path):
    lines = ["id\tpath\tlabels"]
    for i in range(12):
        tone(tmp_path / f"{i}.wav")
        lines.append(f"utt{i:02d}\t{i}.wav\t{'a' if i % 2 else 'b'}")
    (tmp_path / "list.tsv").write_text("\n".join(lines) + "\n")
    s = prepare_csvlist(tmp_path / "list.tsv", valid_fraction=1 / 6, test_fraction=1 / 6, seed=0)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [8, 2, 2]
    assert s == prepare_csvlist(tmp_path / "list.tsv", valid_fraction=1 / 6, test_fraction=1 / 6, seed=0)


def test_csv_malformed_row(tmp_path, repo_root, shell_env):
    tone(tmp_path / "a.wav")
    (tmp_path / "list.csv").write_text("path,label\na.wav,x\na.wav,x,extra\n")
    with pytest.raises(DataError) as e:
        prepare_csvlist(tmp_path / "list.csv")
    assert (e.value.line, Path(e.value.path).name) == (3, "list.csv") and "expected 2 fields" in e.value.msg
    (tmp_path / "nohdr.csv").write_text("a.wav,x\n")
    with pytest.raises(DataError, match="header must name"):
        prepare_csvlist(tmp_path / "nohdr.csv")
    (tmp_path / "split.csv").write_text("path,label,split\na.wav,x,dev\n")
    proc = run_script(repo_root, shell_env, "local/prepare_csv.py", "--csv", str(tmp_path / "split.csv"), str(tmp_path / "d"))
    assert proc.returncode == 1 and "split.csv:2: split must be one of train, valid, test, got 'dev'" in proc.stderr


def test_data_sh_usage_errors(tmp_path, repo_root, shell_env):
    def run(*args):
        return subprocess.run(["bash", "local/data.sh", *args], cwd=repo_root, env=shell_env, capture_output=True, text=True)

    r = run(str(tmp_path / "d"), "--corpus", "esc50")
    assert r.returncode == 2 and "--corpus esc50 needs --esc50_root" in r.stderr
    r = run(str(tmp_path / "d"), "--corpus", "nope")
    assert r.returncode == 2 and "unknown --corpus nope" in r.stderr
    r = run(str(tmp_path / "d"), "--no_such_option", "1")
    assert r.returncode == 2 and "no_such_option" in r.stderr
    r = run("--corpus", "instruments")  # no data dir
    assert r.returncode == 2
    assert not (tmp_path / "d").exists()
