"""Stage-8 scorer: file parsing, error messages, outputs, CLI, threshold tuning."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from espnet_cls import scoring
from espnet_cls.bin import score_cls
from espnet_cls.fileio import DataError


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def ml_set(tmp_path):
    """A small multi-label set: 3 classes, a <blank> clip, an unknown label."""
    d = tmp_path / "cls_test"
    d.mkdir()
    tok = _write(tmp_path / "token_list", ["dog", "cat", "bird", "<blank>", "<unk>"])
    ref = _write(tmp_path / "ref", ["u1 dog", "u2 cat bird", "u3 <blank>", "u4 fish dog"])
    hyp = _write(d / "text", ["u1 dog", "u2 cat", "u3", "u4 bird"])
    sc = _write(d / "score", ["u1 0.9 0.1 0.2", "u2 0.2 0.7 0.4", "u3 0.1 0.2 0.3", "u4 0.3 0.2 0.6"])
    return tmp_path, ref, hyp, sc, tok


def test_read_classes(tmp_path):
    assert scoring.read_classes(_write(tmp_path / "t", ["a", "b", "<blank>", "<unk>"])) == ["a", "b"]
    assert scoring.read_classes(_write(tmp_path / "t2", ["a", "b", "<unk>"])) == ["a", "b"]  # ESPnet's list
    with pytest.raises(DataError, match=r"t3:3: class 'b' after"):
        scoring.read_classes(_write(tmp_path / "t3", ["a", "<blank>", "b"]))
    with pytest.raises(DataError, match="duplicate"):
        scoring.read_classes(_write(tmp_path / "t4", ["a", "a"]))


def test_multilabel_report(ml_set):
    root, ref, hyp, sc, tok = ml_set
    inp = scoring.load_scoring_inputs(ref, hyp, sc, tok)
    assert inp.classification_type == "multi-label"
    assert inp.unknown_labels == {"fish": 1}
    assert inp.y_true.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 0]]
    rep = scoring.score(inp, "cls_test")
    m = rep
    s = np.array([[0.9, 0.1, 0.2], [0.2, 0.7, 0.4], [0.1, 0.2, 0.3], [0.3, 0.2, 0.6]])
    t = inp.y_true
    expect = np.mean([average_precision_score(t[:, k], s[:, k]) for k in range(3)])
    assert m["mAP"] == pytest.approx(expect)
    # top-1: u1 dog hit, u2 cat hit, u4 bird miss (u3 <blank> left out)
    assert m["top1_hit_rate"] == pytest.approx(2 / 3) and m["n_labelled_instances"] == 3
    # decisions from the hypothesis text: u1 exact, u3 exact (empty), u2/u4 wrong
    assert m["subset_acc"] == pytest.approx(0.5)
    assert rep["n_unknown_label_occurrences"] == 1 and rep["left_out_classes"] == []
    # thresholds recompute decisions from scores: at 0.35 u2 -> {cat, bird} is exact
    rep2 = scoring.score(inp, "cls_test", threshold=0.35)
    assert rep2["subset_acc"] == pytest.approx(0.75)


def test_left_out_class_and_espnet_compat(ml_set):
    root, ref, hyp, sc, tok = ml_set
    _write(ref, ["u1 dog", "u2 cat", "u3 <blank>", "u4 dog"])  # no bird
    inp = scoring.load_scoring_inputs(ref, hyp, sc, tok)
    rep = scoring.score(inp)
    assert rep["left_out_classes"] == ["bird"] and rep["n_classes_left_out"] == 1
    rc = scoring.score(inp, espnet_compat=True)
    assert rc["mAP"] == pytest.approx(rep["mAP"] * 2 / 3)


def test_multiclass_inferred_and_partial_scores(tmp_path):
    tok = _write(tmp_path / "tok", ["a", "b", "<blank>", "<unk>"])
    ref = _write(tmp_path / "ref", ["x1 a", "x2 b", "x3 b"])
    hyp = _write(tmp_path / "hyp", ["x1 a", "x2 a", "x3 b"])
    full = _write(tmp_path / "score", ["x1 0.8 0.2", "x2 0.6 0.4", "x3 0.1 0.9"])
    inp = scoring.load_scoring_inputs(ref, hyp, full, tok)
    assert inp.classification_type == "multi-class"
    m = scoring.score(inp)
    assert m["acc"] == pytest.approx(2 / 3) and m["mAP"] == pytest.approx(1.0)
    part = _write(tmp_path / "score_p", ["x1 0.8", "x2 0.6", "x3 0.9"])
    inp = scoring.load_scoring_inputs(ref, hyp, part, tok)
    rep = scoring.score(inp)
    assert inp.y_score is None and rep["scores"] == "predicted_only"
    assert rep["acc"] == pytest.approx(2 / 3)
    assert "|-|" in scoring.format_markdown(rep)  # mAP shown as "-"


@pytest.mark.parametrize(
    "which,lines,pattern",
    [
        ("score", ["u1 0.9 0.1 0.2", "u2 0.2 0.7", "u3 0.1 0.2 0.3", "u4 0.3 0.2 0.6"], r"score:2: 2 scores"),
        ("score", ["u1 0.9 0.1 0.2", "u2 0.2 0.7 x", "u3 0.1 0.2 0.3", "u4 0.3 0.2 0.6"], r"score:2: a value is not"),
        ("score", ["u1 0.9 0.1 0.2", "u2 0.2 0.7 0.4", "u3 0.1 0.2 0.3"], r"'u4' \(reference line 4\) has no line"),
        ("text", ["u1 dog", "u2 cat", "u3", "u4 bird", "u5 dog"], r"text:5: utterance 'u5' is not in the reference"),
        ("text", ["u1 dog", "u2 cow", "u3", "u4 bird"], r"text:2: predicted label 'cow'"),
    ],
)
def test_bad_input_names_file_and_line(ml_set, which, lines, pattern):
    root, ref, hyp, sc, tok = ml_set
    _write(sc if which == "score" else hyp, lines)
    with pytest.raises(DataError, match=pattern):
        scoring.load_scoring_inputs(ref, hyp, sc, tok)


def test_strict_unknown_label_is_fatal(ml_set):
    root, ref, hyp, sc, tok = ml_set
    with pytest.raises(DataError, match=r"ref:4: label 'fish' is not in the token list"):
        scoring.load_scoring_inputs(ref, hyp, sc, tok, strict=True)


def test_cli_writes_outputs_and_thresholds(ml_set, capsys):
    root, ref, hyp, sc, tok = ml_set
    out = root / "cls_test" / "scoring"
    thr = root / "thresholds"
    argv = ["-gtxt", str(ref), "-ptxt", str(hyp), "-pscore", str(sc), "-tok", str(tok), "-o", str(out)]
    assert score_cls.main([*argv, "--tune_thresholds", str(thr)]) == 0
    md = (out / "metrics").read_text().splitlines()
    assert md[0].startswith("|Split|mAP|") and md[2].startswith("|cls_test|")
    js = json.loads((out / "metrics.json").read_text())
    assert js["split"] == "cls_test" and len(js["per_class"]) == 3 and js["unknown_labels"] == {"fish": 1}
    lines = thr.read_text().split("\n")
    assert [ln.split()[0] for ln in lines if ln] == ["dog", "cat", "bird"]
    # scoring with the tuned thresholds file reaches at least the text's micro F1 on the same data
    assert score_cls.main([*argv[:-2], "--threshold_file", str(thr)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("|Split|")


def test_wrapper_script_error_is_one_line(ml_set, repo_root, shell_env):
    root, ref, hyp, sc, tok = ml_set
    _write(sc, ["u1 0.9 0.1", "u2 0.2 0.7 0.4", "u3 0.1 0.2 0.3", "u4 0.3 0.2 0.6"])
    cmd = [sys.executable, str(repo_root / "pyscripts/utils/score_cls.py"), "-gtxt", str(ref), "-ptxt", str(hyp)]
    cmd += ["-pscore", str(sc), "-tok", str(tok)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=shell_env)
    assert r.returncode == 1
    assert "score:1:" in r.stderr and "Traceback" not in r.stderr


def test_make_results_two_sets(tmp_path, ml_set):
    from espnet_cls.bin import make_results

    root, ref, hyp, sc, tok = ml_set
    exp = tmp_path / "exp" / "cls_demo"
    # multi-label set (the fixture), scored into exp/cls_demo/cls_test/scoring
    (exp / "cls_test").mkdir(parents=True)
    argv = ["-gtxt", str(ref), "-ptxt", str(hyp), "-pscore", str(sc), "-tok", str(tok)]
    assert score_cls.main([*argv, "-o", str(exp / "cls_test" / "scoring")]) == 0
    # a multi-class set
    ref2 = _write(tmp_path / "ref2", ["v1 dog", "v2 cat", "v3 cat", "v4 bird"])
    hyp2 = _write(tmp_path / "hyp2", ["v1 dog", "v2 dog", "v3 cat", "v4 bird"])
    sc2 = _write(tmp_path / "sc2", ["v1 0.8 0.1 0.1", "v2 0.5 0.4 0.1", "v3 0.2 0.7 0.1", "v4 0.1 0.1 0.8"])
    assert score_cls.main(["-gtxt", str(ref2), "-ptxt", str(hyp2), "-pscore", str(sc2), "-tok", str(tok),
                           "-o", str(exp / "cls_valid" / "scoring"), "--split_name", "cls_valid"]) == 0
    js = json.loads((exp / "cls_valid" / "scoring" / "metrics.json").read_text())
    assert js["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert make_results.main([str(exp)]) == 0
    text = (exp / "RESULTS.md").read_text()
    assert "# RESULTS" in text and "## Environments" in text and "- pytorch version:" in text
    assert "|cls_valid|75.00|" in text  # multi-class acc first
    assert "### cls_test" in text and "### cls_valid" in text
    assert "fish (1)" in text  # unknown label reported
    assert (exp / "images" / "cls_valid_confusion_matrix.png").stat().st_size > 1000
    assert (exp / "images" / "cls_test_per_class_ap.png").stat().st_size > 1000
    with pytest.raises(DataError, match="no \\*/scoring/metrics.json"):
        make_results.main([str(tmp_path)])


def test_classification_type_from_config(tmp_path):
    tok = _write(tmp_path / "tok", ["a", "b", "<blank>", "<unk>"])
    ref = _write(tmp_path / "ref", ["x1 a", "x2 b"])  # one label each: inferred multi-class
    hyp = _write(tmp_path / "hyp", ["x1 a", "x2 b"])
    sc = _write(tmp_path / "score", ["x1 0.8 0.2", "x2 0.3 0.9"])
    cfg = _write(tmp_path / "config.yaml", ["model_conf:", "  classification_type: multi-label"])
    out = tmp_path / "s"
    argv = ["-gtxt", str(ref), "-ptxt", str(hyp), "-pscore", str(sc), "-tok", str(tok), "-o", str(out)]
    assert score_cls.main([*argv, "--classification_train_config", str(cfg)]) == 0
    js = json.loads((out / "metrics.json").read_text())
    assert js["classification_type"] == "multi-label" and js["subset_acc"] == 1.0
    assert score_cls.main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["classification_type"] == "multi-class"
