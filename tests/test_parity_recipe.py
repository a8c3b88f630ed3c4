"""Parity through the real recipe: ``Classifier.from_pretrained(<stage-9 zip>)`` on the original
files of the test set gives stage 7's scores (<= 1e-4) and decisions (slow: runs run.sh).

The demo's test clips are replaced after stage 1 by float-wav versions that are hard for a
16-bit dump: telephone band (through 8 kHz and back), some very quiet, some at 44.1 kHz."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
from test_e2e import SMALL, fresh_copy, kv, run

from espnet_cls import Classifier


@pytest.mark.slow
def test_from_pretrained_on_raw_files_equals_stage7(repo_root, tmp_path):
    d = fresh_copy(repo_root, tmp_path / "r")
    opts = [*SMALL, "--local_data_opts", "--corpus instruments --size small"]
    run(["./run.sh", *opts, "--stop_stage", "1"], d)
    scp = d / "data" / "test" / "wav.scp"
    raw = d / "raw_test"
    raw.mkdir()
    lines = []
    for i, (k, v) in enumerate(sorted(kv(scp).items())):
        x, fs = sf.read(v if v.startswith("/") else str(d / v), dtype="float64")
        x = soxr.resample(soxr.resample(x, fs, 8000), 8000, fs)  # telephone band: empty upper mel bands
        x *= (1e-3, 1.0, 3e-5)[i % 3]  # quiet, plain, under one 16-bit LSB
        out_fs = 44100 if i % 2 else fs
        sf.write(str(raw / f"{k}.wav"), soxr.resample(x, fs, out_fs).astype(np.float32), out_fs, subtype="FLOAT")
        lines.append(f"{k} {raw / f'{k}.wav'}\n")
    scp.write_text("".join(lines))
    run(["./run.sh", *opts, "--stage", "2", "--stop_stage", "9"], d)
    exp = d / "exp" / "cls_train_cnn_max_epoch3_num_iters_per_epochnone"
    (zip_path,) = exp.glob("*.zip")
    clf = Classifier.from_pretrained(zip_path)
    wav = kv(d / "data" / "test" / "wav.scp")  # the originals, not the dump
    keys = sorted(wav)
    assert all(not v.endswith("|") for v in wav.values())
    preds = clf.predict_files([wav[k] if wav[k].startswith("/") else str(d / wav[k]) for k in keys], batch_size=4)
    score, text = kv(exp / "cls_test" / "score"), kv(exp / "cls_test" / "text")
    worst = 0.0
    for k, p in zip(keys, preds):
        ref = np.array([float(v) for v in score[k].split()])
        worst = max(worst, float(np.abs(p.probs - ref).max()))
        assert p.labels == text[k].split(), k
    print(f"{len(keys)} clips: max |p - stage 7| = {worst:.2e}, decisions equal")
    assert worst <= 1e-4, worst
