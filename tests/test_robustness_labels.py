"""Bad-input catalogue, part 4: labels at stage 4 (the one label check, espnet_cls.tokens.check_labels).

Each case runs ``make_token_list`` in-process and asserts the exit status, the file:line
of the message, and that no token list is written when the labels are bad.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robust_helpers import assert_one_clear_error, run_worker, write  # noqa: E402

GOOD_TRAIN = "a dog\nb cat\nc dog\n"

# case -> (classification type, train text, valid text, file named, line, fragment)
BAD = {
    "two_labels_multiclass_train": ("multi-class", "a dog\nb cat dog\n", "v dog\n", "train", 2, "2 labels (cat dog) on one line of a multi-class text"),
    "two_labels_multiclass_valid": ("multi-class", GOOD_TRAIN, "v dog\nw cat dog\n", "valid", 2, "on one line of a multi-class text"),
    "blank_as_multiclass_label": ("multi-class", "a dog\nb <blank>\n", "v dog\n", "train", 2, "<blank> is not a class"),
    "unk_as_multiclass_label": ("multi-class", "a <unk>\nb dog\n", "v dog\n", "train", 1, "<unk> is not a class"),
    "unk_as_multilabel_label": ("multi-label", "a dog <unk>\nb dog\n", "v dog\n", "train", 1, "<unk> is not a class"),
    "no_label_multiclass_train": ("multi-class", "a dog\nb\n", "v dog\n", "train", 2, "no label in the training text"),
    "blank_in_multiclass_valid": ("multi-class", GOOD_TRAIN, "v <blank>\n", "valid", 1, "<blank> is not a class"),
    "dup_utt_in_text": ("multi-class", "a dog\na cat\n", "v dog\n", "train", 2, "duplicate utterance id 'a'"),
}


def _run(tmp_path, capsys, ctype, train, valid, extra=()):
    t = write(tmp_path / "train", train)
    v = write(tmp_path / "valid", valid)
    out = tmp_path / "data" / "token_list"
    args = ["--input", t, "--output", out, "--check", v]
    if ctype:
        args += ["--classification_type", ctype]
    rc, console = run_worker("make_token_list", [*args, *extra], capsys)
    return rc, console, out


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_labels_name_file_and_line(case, tmp_path, capsys):
    ctype, train, valid, fname, line, fragment = BAD[case]
    rc, console, out = _run(tmp_path, capsys, ctype, train, valid)
    assert rc == 1
    assert_one_clear_error(console, f"{tmp_path / fname}:{line}:", fragment)
    assert not out.exists() and not (tmp_path / "data").exists()


def test_non_utf8_byte_in_text(tmp_path, capsys):
    write(tmp_path / "train", b"a dog\nb caf\xe9\n")
    rc, console = run_worker("make_token_list", ["--input", tmp_path / "train", "--output", tmp_path / "tl"], capsys)
    assert rc == 1
    assert_one_clear_error(console, f"{tmp_path / 'train'}:2:", "not UTF-8: byte 0xe9")
    assert not (tmp_path / "tl").exists()


def test_bom_and_crlf_in_text(tmp_path, capsys):
    write(tmp_path / "train", b"\xef\xbb\xbfa dog\n")
    rc, console = run_worker("make_token_list", ["--input", tmp_path / "train", "--output", tmp_path / "tl"], capsys)
    assert rc == 1 and "byte-order mark" in console
    write(tmp_path / "train", b"a dog\r\nb cat\r\n")
    rc, console = run_worker("make_token_list", ["--input", tmp_path / "train", "--output", tmp_path / "tl"], capsys)
    assert rc == 1
    assert_one_clear_error(console, f"{tmp_path / 'train'}:1:", "CR (a Windows line end)")


def test_labels_differing_only_in_case_are_two_classes_with_a_warning(tmp_path, capsys):
    rc, console, out = _run(tmp_path, capsys, "multi-class", "a low\nb Low\nc high\n", "v low\n")
    assert rc == 0
    warn = [ln for ln in console.splitlines() if "differ only in case" in ln]
    assert warn and "'low' (line 1)" in warn[0] and "'Low' (line 2)" in warn[0] and "case-sensitive" in warn[0]
    assert out.read_text().splitlines() == ["low", "Low", "high", "<blank>", "<unk>"]


def test_type_from_the_config(tmp_path, capsys):
    cfg = write(tmp_path / "ml.yaml", "model_conf:\n  classification_type: multi-label\n")
    rc, _console, out = _run(tmp_path, capsys, None, "a dog cat\nb <blank>\n", "v dog\n", ["--cls_config", cfg])
    assert rc == 0 and out.read_text().splitlines()[:2] == ["dog", "cat"]
    cfg = write(tmp_path / "mc.yaml", "model_conf:\n  classification_type: multi-class\n")
    rc, console, out2 = _run(tmp_path, capsys, None, "a dog cat\n", "v dog\n", ["--cls_config", cfg, "--output", tmp_path / "tl2"])
    assert rc == 1 and "multi-class" in console


def test_bad_classification_type(tmp_path, capsys):
    rc, console, out = _run(tmp_path, capsys, "multiclass", GOOD_TRAIN, "v dog\n")
    assert rc == 1
    assert_one_clear_error(console, "multiclass")
    assert not out.exists()


def test_unknown_label_in_valid_is_an_error_with_strict(tmp_path, capsys):
    rc, console, out = _run(tmp_path, capsys, "multi-class", GOOD_TRAIN, "v cow\n", ["--strict", "true"])
    assert rc == 1
    assert_one_clear_error(console, str(tmp_path / "valid"), "cow (1)")
    assert not out.exists()
