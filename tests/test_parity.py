"""Train/serve parity: one clip, the same scores (<= 1e-4) and decisions on every path.

Paths: stage 2 (16-bit FLAC dump) + stage 7 (``run_inference``), ``Classifier`` on the
original files, on float arrays, on integer arrays and on torch tensors, the ``classify``
CLI, and the exported ONNX / TorchScript model fed with its documented pre-processing
(``load_audio(path, fs)``: mono, libsoxr to the model's rate, float).

Clips are the hard cases: band-limited telephone speech resampled to 16 kHz (empty upper mel
bands, where a float input and its 16-bit copy differ most in a log-mel), very quiet (tens
of LSBs, and under one LSB), clipped float (beyond full scale), 24/32-bit integer files at
44.1 kHz stereo, an 8 kHz file, and plain loud noise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import yaml
from scipy.signal import butter, lfilter

from espnet_cls import Classifier
from espnet_cls.contract import decide
from espnet_cls.tasks.cls import build_model

torch.set_num_threads(1)

ATOL = 1e-4
TOKENS = ["speech", "music", "noise", "tone", "<blank>", "<unk>"]


def _telephone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Speech-like noise band-passed to 300-3400 Hz at 8 kHz, syllable-rate modulated."""
    n = int(8000 * seconds)
    b, a = butter(4, [300 / 4000, 3400 / 4000], btype="band")
    x = lfilter(b, a, rng.standard_normal(n)) * (1 + 0.8 * np.sin(2 * np.pi * 3 * np.arange(n) / 8000))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _clips(folder) -> dict[str, tuple]:
    """name -> (path, subtype); written as a user would have them."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    tel16 = soxr.resample(_telephone(rng, 1.0), 8000, 16000)
    specs = {
        "band_pcm16": (tel16, 16000, "PCM_16"),
        "band_float": (soxr.resample(_telephone(rng, 0.8), 8000, 16000), 16000, "FLOAT"),
        "tel_8k": (_telephone(rng, 0.7), 8000, "PCM_16"),
        "quiet": (tel16 * 1e-3, 16000, "FLOAT"),  # ~10 LSB
        "very_quiet": (tel16 * 5e-5, 16000, "FLOAT"),  # under one LSB
        "clipped": (np.clip(tel16 * 6, -1.8, 1.8), 16000, "FLOAT"),  # beyond full scale
        "int24_stereo": (np.stack([tel16[:11025], 0.5 * tel16[:11025][::-1]], 1), 44100, "PCM_24"),
        "int32": ((0.2 * rng.standard_normal(9000)).astype(np.float32), 44100, "PCM_32"),
        "loud": ((0.3 * rng.standard_normal(12000)).astype(np.float32), 16000, "PCM_16"),
    }
    out = {}
    for name, (x, fs, subtype) in specs.items():
        p = folder / f"{name}.wav"
        sf.write(str(p), np.asarray(x, dtype=np.float32), fs, subtype=subtype)
        out[name] = (p, subtype)
    return out


def _read_scores(path) -> dict[str, np.ndarray]:
    out = {}
    for line in path.read_text().splitlines():
        k, *v = line.split()
        out[k] = np.array([float(t) for t in v])
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model dir (default 80-mel frontend, CNN, utterance MVN), the clips, and stage 2 + 7 on them."""
    from espnet_cls.dump import format_wav_scp
    from espnet_cls.inference import run_inference

    root = tmp_path_factory.mktemp("parity")
    torch.manual_seed(0)
    config = {
        "token_list": TOKENS,
        "frontend": "default",
        "frontend_conf": {"fs": "16k"},
        "normalize": "utterance_mvn",
        "encoder": "cnn",
        "encoder_conf": {"channels": [8, 16], "convs_per_block": 1, "dropout": 0.0},
        "decoder_conf": {"pooling": "mean"},
    }
    model = build_model(config).eval()
    with torch.no_grad():  # BatchNorm statistics off their defaults so that they matter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    exp = root / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    torch.save(model.state_dict(), exp / "valid.acc.best.pth")

    clips = _clips(root / "wav")
    names = sorted(clips)
    data = root / "data" / "test"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text("".join(f"{n} {clips[n][0]}\n" for n in names), encoding="utf-8")
    dump = root / "dump" / "test"
    res = format_wav_scp(str(data / "wav.scp"), str(dump), 16000, audio_format="flac")
    assert not res.errors
    run_inference([f"{dump}/wav.scp,speech,sound"], root / "out", train_config=exp / "config.yaml",
                  model_file=exp / "valid.acc.best.pth", batch_size=4)
    run_inference([f"{dump}/wav.scp,speech,sound"], root / "out_jit", train_config=exp / "config.yaml",
                  model_file=exp / "valid.acc.best.pth", batch_size=4, backend="jit")  # cls_inference's CPU default
    stage7 = _read_scores(root / "out" / "prediction" / "score")
    labels7 = {line.split()[0]: line.split()[1:] for line in (root / "out" / "prediction" / "text").read_text().splitlines()}
    clf = Classifier.from_pretrained(exp)
    return {"root": root, "exp": exp, "model": model, "clips": clips, "names": names, "stage7": stage7,
            "labels7": labels7, "clf": clf}


def _check(world, name, probs, what):
    ref = world["stage7"][name]
    probs = np.asarray(probs, dtype=np.float64)
    assert np.abs(probs - ref).max() <= ATOL, f"{what} on {name}: {probs} vs stage 7 {ref}"
    assert decide(probs, "multi-class").tolist() == decide(ref, "multi-class").tolist(), f"{what} on {name}: decision"


def test_the_clips_decide_differently(world):
    """The model is not constant: the clips get at least two different stage-7 decisions."""
    assert len({tuple(v) for v in world["labels7"].values()}) >= 2, world["labels7"]


def test_stage7_backends_agree(world):
    jit = _read_scores(world["root"] / "out_jit" / "prediction" / "score")
    for n in world["names"]:
        _check(world, n, jit[n], "stage 7 (jit backend)")


def test_classifier_on_files_equals_stage7(world):
    clf = world["clf"]
    preds = clf.predict_files([world["clips"][n][0] for n in world["names"]], batch_size=3)
    for n, p in zip(world["names"], preds):
        _check(world, n, p.probs, "Classifier(path)")
        assert p.labels == world["labels7"][n]


def test_classifier_on_arrays_equals_stage7(world):
    clf = world["clf"]
    for n in world["names"]:
        path, subtype = world["clips"][n]
        x, fs = sf.read(str(path), dtype="float32")
        _check(world, n, clf(x, sample_rate=fs).probs, "Classifier(float array)")
        _check(world, n, clf(torch.from_numpy(np.ascontiguousarray(x.T)), sample_rate=fs).probs, "Classifier(tensor)")
        if subtype.startswith("PCM"):
            dtype = "int16" if subtype == "PCM_16" else "int32"
            xi, _ = sf.read(str(path), dtype=dtype)
            _check(world, n, clf(xi, sample_rate=fs).probs, f"Classifier({dtype} array)")


def test_classify_cli_equals_stage7(world, capsys):
    from espnet_cls.bin import classify

    paths = [str(world["clips"][n][0]) for n in world["names"]]
    assert classify.main([str(world["exp"]), *paths, "--json", "--top_k", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    classes = world["clf"].classes
    for n, row in zip(world["names"], rows):
        _check(world, n, [row["scores"][c] for c in classes], "classify CLI")
        assert row["labels"] == world["labels7"][n]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_equals_stage7(world, fmt):
    """The exported graph with its documented pre-processing: load_audio(path, fs) -> float samples."""
    from espnet_cls.audio import load_audio
    from espnet_cls.export import export_onnx, export_torchscript, run_exported

    out = world["root"] / f"model.{fmt}"
    if fmt == "onnx":  # the exporter stage 7's cached export uses (tests/test_export.py covers dynamo's graph)
        export_onnx(world["model"], out, 16000, exporter="torchscript")
    else:
        export_torchscript(world["model"], out, 16000)
    waves = [load_audio(str(world["clips"][n][0]), fs=16000)[0] for n in world["names"]]
    lens = np.array([len(w) for w in waves], dtype=np.int64)
    speech = np.zeros((len(waves), int(lens.max())), dtype=np.float32)
    for i, w in enumerate(waves):
        speech[i, : len(w)] = w
    probs, _logits = run_exported(out, speech, lens)
    for n, p in zip(world["names"], probs):
        _check(world, n, p, fmt)


def test_float_input_differs_without_the_pcm16_grid(world):
    """The control: with ``pcm16_input: false`` (ESPnet's frontend as is) the float and dump
    paths disagree on the band-limited, quiet and clipped clips by more than the tolerance
    (the bug this fixes); with the default they agree exactly."""
    from espnet_cls.audio import load_audio
    from espnet_cls.fileio import read_kv

    model = world["model"]
    dumped = read_kv(world["root"] / "dump" / "test" / "wav.scp")
    worst = {}
    for n in ("band_float", "quiet", "clipped"):
        x = torch.from_numpy(load_audio(str(world["clips"][n][0]), fs=16000)[0])[None]
        q = torch.from_numpy(sf.read(dumped[n], dtype="float32")[0])[None]
        lens = torch.tensor([x.size(1)])
        try:
            with torch.no_grad():
                model.pcm16_input = False
                worst[n] = float((model.predict_proba(x, lens) - model.predict_proba(q, lens)).abs().max())
                model.pcm16_input = True
                assert float((model.predict_proba(x, lens) - model.predict_proba(q, lens)).abs().max()) == 0.0
        finally:
            model.pcm16_input = True
    assert min(worst.values()) > ATOL, worst
