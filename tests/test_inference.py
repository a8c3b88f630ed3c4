"""Batched inference: padding invariance with real encoders, windows, output files, CLI, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_cls import inference as I
from espnet_cls.bin import cls_inference
from espnet_cls.fileio import DataError
from espnet_cls.tasks.cls import build_model

torch.set_num_threads(1)

TOKENS = ["dog", "cat", "bird", "<blank>", "<unk>"]
ENCODERS = {
    "cnn": {"channels": [8, 16, 16]},
    "transformer": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 2},
}
FS = 16000


def tiny_config(encoder: str = "cnn", ctype: str = "multi-class") -> dict:
    return {
        "token_list": list(TOKENS),
        "frontend": "default",
        "frontend_conf": {"fs": "16k", "n_mels": 32},
        "normalize": "utterance_mvn",
        "encoder": encoder,
        "encoder_conf": dict(ENCODERS[encoder]),
        "decoder": "linear",
        "decoder_conf": {"pooling": "mean"},
        "model_conf": {"classification_type": ctype},
    }


def clips(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lens = rng.integers(1600, 9000, size=n)
    return [(0.1 * rng.standard_normal(int(k))).astype(np.float32) for k in lens]


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
def test_batch_32_equals_batch_1(encoder):
    torch.manual_seed(0)
    model = build_model(tiny_config(encoder)).eval()
    waves = clips(12)
    p1 = I.BatchInference(model, FS, batch_size=1).predict(waves)
    p32 = I.BatchInference(model, FS, batch_size=32).predict(waves)
    p5 = I.BatchInference(model, FS, batch_size=5).predict(waves)
    assert p1.shape == (12, 3)
    np.testing.assert_allclose(p32, p1, atol=1e-5, rtol=0)
    np.testing.assert_allclose(p5, p1, atol=1e-5, rtol=0)


def test_window_bounds_and_aggregation():
    assert I.window_bounds(100, None, None) == [(0, 100)]
    assert I.window_bounds(100, 100, 50) == [(0, 100)]
    assert I.window_bounds(250, 100, None) == [(0, 100), (100, 200), (150, 250)]
    assert I.window_bounds(200, 100, 50) == [(0, 100), (50, 150), (100, 200)]

    class Echo(torch.nn.Module):  # "probability" = mean of the window's samples
        def predict_proba(self, x, lens):
            return (x.sum(1) / lens)[:, None]

    wave = np.concatenate([np.zeros(100), np.ones(100)]).astype(np.float32)
    short = np.full(50, 0.5, np.float32)
    mean = I.BatchInference(Echo(), fs=100, batch_size=3, window_sec=1.0, window_aggregation="mean").predict([wave, short])
    mx = I.BatchInference(Echo(), fs=100, batch_size=3, window_sec=1.0, window_aggregation="max").predict([wave, short])
    np.testing.assert_allclose(mean[:, 0], [0.5, 0.5])
    np.testing.assert_allclose(mx[:, 0], [1.0, 0.5])


def test_length_sorted_batches():
    lens = [5, 9, 1, 7, 3]
    assert I.length_sorted_batches(lens, 2) == [[1, 3], [0, 4], [2]]
    # at most 14 padded samples: 9+7 -> 18 too many; 7*2=14 ok; 3*2, then 1
    assert I.length_sorted_batches(lens, 8, batch_bins=14) == [[1], [3, 0], [4, 2]]
    assert I.length_sorted_batches([20, 2], 8, batch_bins=10) == [[0], [1]]


@pytest.fixture
def exp(tmp_path):
    """A data dir with wav files (+ a pipe entry) and a saved random multi-label CNN model."""
    d = tmp_path / "dump" / "test"
    (d / "data").mkdir(parents=True)
    waves = clips(5, seed=1)
    lines = []
    for i, w in enumerate(waves):
        p = d / "data" / f"utt{i}.flac"
        sf.write(p, w, FS, subtype="PCM_16")
        lines.append(f"utt{i} {p}")
    lines[4] = f"utt4 cat {d / 'data' / 'utt4.flac'} |"
    (d / "wav.scp").write_text("\n".join(sorted(lines, reverse=True)) + "\n")  # unsorted on purpose
    e = tmp_path / "exp"
    e.mkdir()
    torch.manual_seed(0)
    cfg = tiny_config("cnn", "multi-label")
    model = build_model(cfg).eval()
    torch.save(model.state_dict(), e / "valid.acc.best.pth")
    (e / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path, d, e


def _argv(d, e, out, *extra):
    return [
        "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
        "--classification_train_config", str(e / "config.yaml"),
        "--classification_model_file", str(e / "valid.acc.best.pth"),
        "--output_dir", str(out), "--num_workers", "0", *extra,
    ]  # fmt: skip


def _read(path):
    return [ln.split() for ln in path.read_text().splitlines()]


def test_cli_outputs_sorted_and_consistent(exp):
    root, d, e = exp
    out = root / "out"
    assert cls_inference.main(_argv(d, e, out, "--output_all_probabilities", "true", "--threshold", "0.5")) == 0
    score = _read(out / "prediction" / "score")
    text = _read(out / "prediction" / "text")
    assert [r[0] for r in score] == [f"utt{i}" for i in range(5)] == [r[0] for r in text]
    assert all(len(r) == 4 for r in score)
    probs = np.array([[float(v) for v in r[1:]] for r in score])
    for r, p in zip(text, probs):
        assert r[1:] == [TOKENS[k] for k in range(3) if p[k] >= 0.5]
    # batch size and worker threads do not change the scores
    out2 = root / "out2"
    argv = _argv(d, e, out2, "--output_all_probabilities", "true", "--batch_size", "1")
    argv[argv.index("--num_workers") + 1] = "2"
    assert cls_inference.main(argv) == 0
    probs2 = np.array([[float(v) for v in r[1:]] for r in _read(out2 / "prediction" / "score")])
    np.testing.assert_allclose(probs2, probs, atol=1e-5)
    # only the predicted classes' probabilities, a key file, a per-class threshold file
    (root / "keys").write_text("utt3 x\nutt1 x\n")
    thr = root / "thr"
    thr.write_text("dog 0.0\ncat 1.1\n")  # dog always, cat never, bird at --threshold 0.5
    out3 = root / "out3"
    assert cls_inference.main(_argv(d, e, out3, "--key_file", str(root / "keys"), "--threshold_file", str(thr))) == 0
    text3 = _read(out3 / "prediction" / "text")
    score3 = _read(out3 / "prediction" / "score")
    assert [r[0] for r in text3] == ["utt1", "utt3"]
    for r, s in zip(text3, score3):
        i = int(r[0][3:])
        expect = ["dog"] + (["bird"] if probs[i, 2] >= 0.5 else [])
        assert r[1:] == expect and len(s) == 1 + len(expect)
        np.testing.assert_allclose([float(v) for v in s[1:]], [probs[i, TOKENS.index(lab)] for lab in expect], atol=1e-6)


def test_errors_name_file_and_line(exp):
    root, d, e = exp
    (root / "keys").write_text("nope x\n")
    with pytest.raises(DataError, match="'nope' is not in"):
        cls_inference.main(_argv(d, e, root / "o", "--key_file", str(root / "keys")))
    (d / "wav.scp").write_text(f"utt0 {d}/data/missing.flac\n")
    with pytest.raises(DataError, match=r"wav.scp:1: file not found"):
        cls_inference.main(_argv(d, e, root / "o"))


def test_cli_error_is_one_line(exp, repo_root, shell_env):
    root, d, e = exp
    cmd = [sys.executable, "-m", "espnet_cls.bin.cls_inference", *_argv(d, e, root / "o")]
    cmd[cmd.index("--classification_model_file") + 1] = str(root / "missing.pth")
    r = subprocess.run(cmd, capture_output=True, text=True, env=shell_env, cwd=repo_root)
    assert r.returncode == 1 and "model file not found" in r.stderr and "Traceback" not in r.stderr


def test_packed_model_and_scoring_of_outputs(exp):
    from espnet_cls import pack
    from espnet_cls.bin import score_cls

    root, d, e = exp
    zip_path = e / "cls_exp_valid.acc.best.zip"
    pack.pack(e / "config.yaml", e / "valid.acc.best.pth", zip_path)
    out_a, out_b = root / "a", root / "b"
    assert cls_inference.main(_argv(d, e, out_a, "--output_all_probabilities", "true")) == 0
    argv = ["--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound", "--model_file", str(zip_path),
            "--output_dir", str(out_b), "--num_workers", "0", "--output_all_probabilities", "true"]
    assert cls_inference.main(argv) == 0
    assert (out_a / "prediction" / "score").read_text() == (out_b / "prediction" / "score").read_text()
    # the stage-8 scorer reads what stage 7 wrote
    (root / "token_list").write_text("\n".join(TOKENS) + "\n")
    (root / "ref").write_text("utt0 dog\nutt1 cat bird\nutt2 <blank>\nutt3 bird\nutt4 dog cat\n")
    pred = out_a / "prediction"
    assert score_cls.main(["-gtxt", str(root / "ref"), "-ptxt", str(pred / "text"), "-pscore", str(pred / "score"),
                           "-tok", str(root / "token_list"), "-o", str(root / "scoring")]) == 0
    assert (root / "scoring" / "metrics").read_text().startswith("|Split|mAP|")


def test_dtypes_close_to_float32():
    torch.manual_seed(0)
    model = build_model(tiny_config("cnn")).eval()
    waves = clips(3, seed=2)
    p32 = I.BatchInference(model, FS, batch_size=4).predict(waves)
    p16 = I.BatchInference(model, FS, batch_size=4, dtype=torch.bfloat16).predict(waves)  # autocast
    np.testing.assert_allclose(p16, p32, atol=2e-2)
    m64 = build_model(tiny_config("cnn")).eval()
    m64.load_state_dict(model.state_dict())
    p64 = I.BatchInference(m64.to(torch.float64), FS, batch_size=4, dtype=torch.float64).predict(waves)
    np.testing.assert_allclose(p64, p32, atol=1e-5)
