"""``espnet_cls.Classifier`` and the ``classify`` CLI on a packed real-CNN model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_pack_support import make_exp, pack_exp, reference_probs, run_py

from espnet_cls import Classifier
from espnet_cls.fileio import DataError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("clfexp")
    e = make_exp(root)
    e["zip"] = pack_exp(e)
    e["clf"] = Classifier.from_pretrained(e["zip"])
    return e


def test_prediction_fields(packed):
    clf = packed["clf"]
    assert clf.classes == ["violin", "flute", "piano"] and clf.sample_rate == 16000
    assert clf.classification_type == "multi-class" and "3 classes" in repr(clf)
    ref = reference_probs(packed["model"], packed["clips"])
    for clip, r in zip(packed["clips"], ref):
        p = clf(clip, top_k=2)
        assert len(p.scores) == 2 and p.scores[0][1] >= p.scores[1][1]
        assert p.labels == [clf.classes[int(np.argmax(r))]] == [p.scores[0][0]]
        np.testing.assert_allclose(p.probs, r, rtol=0, atol=1e-6)
        assert abs(sum(clf(clip).to_dict()["scores"].values()) - 1) < 1e-5  # softmax over all classes
        json.dumps(p.to_dict())  # JSON-ready floats
    assert len(clf(packed["clips"][0]).scores) == 3


def test_arrays_equal_files(packed):
    clf = packed["clf"]
    c_path, d_path = packed["clips"][2], packed["clips"][3]  # 22.05 kHz stereo float, 8 kHz int16
    x, fs = sf.read(str(c_path), dtype="float32")
    from_file = clf(c_path).probs
    np.testing.assert_allclose(clf(x, sample_rate=fs).probs, from_file, rtol=0, atol=1e-6)
    np.testing.assert_allclose(clf(torch.from_numpy(x.T.copy()), sample_rate=fs).probs, from_file, rtol=0, atol=1e-6)  # [ch, T]
    xi, fs_d = sf.read(str(d_path), dtype="int16")
    np.testing.assert_allclose(clf(xi, sample_rate=fs_d).probs, clf(d_path).probs, rtol=0, atol=1e-6)
    mixed = clf.predict([c_path, x], sample_rate=fs, batch_size=2)
    np.testing.assert_allclose(mixed[0].probs, mixed[1].probs, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="sample_rate"):
        clf(x)
    with pytest.raises(DataError):
        clf(packed["root"] / "missing.wav")


def test_exp_dir_equals_zip(packed):
    from_dir = Classifier.from_pretrained(packed["exp"])  # config.yaml + valid.acc.best.pth
    a = np.stack([p.probs for p in from_dir.predict_files(packed["clips"], batch_size=4)])
    b = np.stack([p.probs for p in packed["clf"].predict_files(packed["clips"], batch_size=2)])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_multi_label_threshold(tmp_path):
    e = make_exp(tmp_path, classification_type="multi-label")
    clips = e["clips"]
    clf = Classifier.from_pretrained(pack_exp(e))
    p = clf(clips[0])
    assert p.labels == [c for c, v in zip(clf.classes, p.probs) if v >= 0.5]
    clf.threshold = 0.0
    assert clf(clips[0]).labels == clf.classes
    clf.threshold = 1.01
    assert clf(clips[0]).labels == []
    np.testing.assert_allclose(p.probs, reference_probs(e["model"], clips[:1])[0], rtol=0, atol=1e-6)


def test_classify_cli(packed):
    clips = [str(c) for c in packed["clips"][:2]]
    r = run_py(["-m", "espnet_cls.bin.classify", packed["zip"], *clips, "--top_k", "2", "--json"])
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["file"] for row in rows] == clips
    ref = reference_probs(packed["model"], packed["clips"][:2])
    for row, ref_p in zip(rows, ref):
        assert len(row["scores"]) == 2
        best = max(range(3), key=lambda i: ref_p[i])
        assert row["labels"] == [packed["clf"].classes[best]]
        assert abs(row["scores"][row["labels"][0]] - ref_p[best]) < 1e-6
    r = run_py(["-m", "espnet_cls.bin.classify", packed["zip"], clips[0]])
    assert r.returncode == 0 and r.stdout.startswith(clips[0] + "\t[")
    # the console-script entry point returns 1 (no traceback) on bad input
    r = run_py(["-c", "from espnet_cls.bin.classify import console_main; console_main()", packed["zip"], "nope.wav"])
    assert r.returncode == 1 and "nope.wav" in r.stderr and "Traceback" not in r.stderr
