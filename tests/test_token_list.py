"""Stage 4: espnet_cls.bin.make_token_list / espnet_cls.tokens."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from espnet_cls.bin.make_token_list import main
from espnet_cls.fileio import DataError
from espnet_cls.tokens import make_token_list, unknown_labels


def write(path, lines):
    path.write_text("".join(f"{ln}\n" for ln in lines))
    return path


def espnet_vocabulary(lines):
    """What ESPnet's tokenize_text --token_type word --write_vocabulary gives: Counter.most_common over the words."""
    c = Counter()
    for ln in lines:
        c.update(ln.split()[1:])
    return [w for w, _ in c.most_common()]


def test_frequency_order_ties_by_first_occurrence_case_sensitive(tmp_path):
    lines = [
        "u01 dog",
        "u02 Cat",
        "u03 cat",
        "u04 bird",
        "u05 cat",
        "u06 Cat",
        "u07 dog",
        "u08 emu",
        "u09 cat",
    ]
    text = write(tmp_path / "text", lines)
    toks = make_token_list(text)
    # cat 3; dog 2, Cat 2 (dog seen first); bird 1, emu 1 (bird first); Cat != cat
    assert toks == ["cat", "dog", "Cat", "bird", "emu", "<blank>", "<unk>"]
    assert toks[:-2] == espnet_vocabulary(lines)


def test_multilabel_blank_is_not_a_class(tmp_path):
    lines = ["a x y", "b <blank>", "c y", "d <blank>", "e z x y"]
    text = write(tmp_path / "text", lines)
    toks = make_token_list(text)
    assert toks == ["y", "x", "z", "<blank>", "<unk>"]
    assert toks.count("<blank>") == 1 and toks[-2:] == ["<blank>", "<unk>"]


def test_cli_writes_atomically_and_reports_unknown_labels(tmp_path, capsys):
    train = write(tmp_path / "train_text", ["a dog", "b cat", "c dog"])
    valid = write(tmp_path / "valid_text", ["v1 dog", "v2 cow", "v3 cow", "v4 <blank>", "v5 dog Cat"])
    test = write(tmp_path / "test_text", ["t1 cat"])
    out = tmp_path / "data" / "token_list"
    # multi-label: several labels and <blank> are allowed on a line
    args = ["--input", str(train), "--output", str(out), "--classification_type", "multi-label", "--check", str(valid), str(test)]
    assert main(args) == 0
    assert out.read_text() == "dog\ncat\n<blank>\n<unk>\n"
    warn = [ln for ln in capsys.readouterr().err.splitlines() if "WARNING" in ln and "not in" in ln]
    assert len(warn) == 1  # test_text is clean
    assert str(valid) in warn[0] and "cow (2)" in warn[0] and "Cat (1)" in warn[0] and "<blank>" not in warn[0]
    assert list((tmp_path / "data").iterdir()) == [out]  # no temp file left
    assert unknown_labels(["dog", "cat", "<blank>", "<unk>"], valid) == Counter({"cow": 2, "Cat": 1})


def test_strict_makes_unknown_labels_an_error(tmp_path, repo_root, shell_env):
    train = write(tmp_path / "train_text", ["a dog", "b cat"])
    valid = write(tmp_path / "valid_text", ["v1 dog", "v2 cow"])
    out = tmp_path / "token_list"
    with pytest.raises(DataError, match="cow \\(1\\)"):
        main(["--input", str(train), "--output", str(out), "--check", str(valid), "--strict", "true"])
    assert not out.exists()
    # as a process: one ERROR line naming the file, exit 1
    p = subprocess.run(
        [sys.executable, "-m", "espnet_cls.bin.make_token_list", "--input", str(train), "--output", str(out),
         "--check", str(valid), "--strict", "true"],
        capture_output=True, text=True, env=shell_env, cwd=repo_root,
    )
    assert p.returncode == 1
    errs = [ln for ln in p.stderr.splitlines() if "ERROR" in ln]
    assert len(errs) == 1 and str(valid) in errs[0] and "cow (1)" in errs[0]


def test_empty_check_list_and_no_labels(tmp_path):
    train = write(tmp_path / "text", ["a dog"])
    assert main(["--input", str(train), "--output", str(tmp_path / "tl"), "--check"]) == 0
    empty = write(tmp_path / "empty", ["a", "b <blank>"])
    with pytest.raises(DataError, match="no labels"):
        main(["--input", str(empty), "--output", str(tmp_path / "tl2"), "--classification_type", "multi-label"])
    with pytest.raises(DataError, match=r"empty:1: utt a: no label in the training text"):
        main(["--input", str(empty), "--output", str(tmp_path / "tl2")])
