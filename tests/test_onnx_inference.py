"""cls_inference --backend onnx: the torch-free stage-7 job against the PyTorch (jit) job.

Tiny random-init models of the repository's encoders (CNN multi-label, transformer and conformer
multi-class, conv2d input layers), a wav.scp of flac files, a pipe and Kaldi ark entries, with a
clip shorter than the conv2d input layer needs: same decisions, scores within 1e-5, the same files
line for line; the job imports no torch; the export cache beside the checkpoint is re-made when the
checkpoint or the config changes; what the onnx backend cannot do runs PyTorch, with one log line.
"""

from __future__ import annotations

import json
import logging
import shutil

import kaldiio
import numpy as np
import onnxruntime
import pytest
import soundfile as sf
import torch
from test_pack_support import make_exp, run_py

from espnet_cls import onnx_inference as O
from espnet_cls.bin import cls_inference
from espnet_cls.inference import BatchInference, load_inference_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
FS = 16000
CASES = {"cnn": "multi-label", "transformer": "multi-class", "conformer": "multi-class"}


def _data(root):
    """dump-style dir: 7 clips (0.0125-2.4 s; one of 200 samples), flac files, a pipe, 2 ark entries."""
    d = root / "dump" / "test"
    (d / "data").mkdir(parents=True)
    rng = np.random.default_rng(5)
    lens = [200, 4000, 38400, 12000, 25000, 9000, 17000]
    lines, arks = [], {}
    for i, n in enumerate(lens):
        t = np.arange(n) / FS
        w = (0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
        key = f"utt{i}"
        if i >= 5:
            arks[key] = (FS, np.round(w * 32767).astype(np.int16))
            continue
        p = d / "data" / f"{key}.flac"
        sf.write(p, w, FS, subtype="PCM_16")
        lines.append(f"{key} cat {p} |" if i == 3 else f"{key} {p}")
    kaldiio.save_ark(str(d / "data" / "clips.ark"), arks, scp=str(d / "data" / "ark.scp"), write_function="soundfile")
    lines += (d / "data" / "ark.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(sorted(lines)) + "\n")
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    d = _data(root)
    exps = {}
    for enc, ctype in CASES.items():
        e = make_exp(root / enc, enc, classification_type=ctype)
        path, why = O.ensure_onnx(e["config"], e["model_file"])
        assert path is not None, why
        exps[enc] = e
    return {"root": root, "data": d, "exps": exps}


def _argv(d, e, out, *extra):
    return ["--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
            "--classification_train_config", str(e["config"]), "--classification_model_file", str(e["model_file"]),
            "--output_dir", str(out), *extra]  # fmt: skip


def _rows(path):
    return [ln.split() for ln in path.read_text().splitlines()]


def _assert_same_outputs(a, b, atol=1e-5):
    for f in ("text", "token"):
        assert (a / "prediction" / f).read_text() == (b / "prediction" / f).read_text(), f
    sa, sb = _rows(a / "prediction" / "score"), _rows(b / "prediction" / "score")
    assert [r[0] for r in sa] == [r[0] for r in sb] and [len(r) for r in sa] == [len(r) for r in sb]
    pa = np.array([float(v) for r in sa for v in r[1:]])
    pb = np.array([float(v) for r in sb for v in r[1:]])
    np.testing.assert_allclose(pa, pb, atol=atol, rtol=0)
    return pa


@pytest.mark.parametrize("encoder", sorted(CASES))
@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_onnx_job_equals_the_torch_job(world, encoder, batch_size, tmp_path, caplog, monkeypatch):
    e, d = world["exps"][encoder], world["data"]
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(cls_inference, "setup_logging", lambda level: None)  # keep caplog's handler
    extra = ["--batch_size", batch_size, "--output_all_probabilities", "true"]
    assert cls_inference.main(_argv(d, e, tmp_path / "jit", "--backend", "jit", *extra)) == 0
    assert "ONNX Runtime" not in caplog.text
    assert cls_inference.main(_argv(d, e, tmp_path / "onnx", "--backend", "onnx", *extra)) == 0
    assert f"ONNX Runtime {onnxruntime.__version__} on {O.cache_path(e['model_file'])}, 1 thread(s)" in caplog.text
    assert "exporting" not in caplog.text and "jit backend" not in caplog.text  # the cached export ran
    probs = _assert_same_outputs(tmp_path / "onnx", tmp_path / "jit")
    assert len(probs) == 7 * 3 and np.all((probs >= 0) & (probs <= 1))
    if CASES[encoder] == "multi-label":  # per-class thresholds and the predicted-only score format
        thr = tmp_path / "thr"
        thr.write_text("violin 0.2\nflute 0.6\npiano 0.5\n")
        extra = ["--threshold_file", str(thr), "--output_all_probabilities", "false"]
        assert cls_inference.main(_argv(d, e, tmp_path / "jit2", "--backend", "jit", *extra)) == 0
        assert cls_inference.main(_argv(d, e, tmp_path / "onnx2", "--backend", "onnx", *extra)) == 0
        _assert_same_outputs(tmp_path / "onnx2", tmp_path / "jit2")


def test_cache_starts_at_the_power_spectrum(world):
    """The stage-7 cache takes the STFT power spectrum (computed by the job in numpy), not the waveform."""
    for e in world["exps"].values():
        path = O.cache_path(e["model_file"])
        sess = O.open_session(path)
        assert [i.name for i in sess.get_inputs()] == ["power", "speech_lengths"]
        assert O.OnnxInference(sess, FS).spectrum is not None
        stamp = json.loads((path.parent / (path.name + O.STAMP_SUFFIX)).read_text())
        assert stamp["sources"]["cache_format"] == O.CACHE_FORMAT == 2 and stamp["max_abs_diff"] <= O.ATOL


def test_default_batch_size_per_backend(world, tmp_path, monkeypatch):
    """No --batch_size: 1 for the onnx backend (its fastest on CPU), 4 for jit; a given one is kept."""
    import espnet_cls.inference as I
    from espnet_cls.inference_core import DEFAULT_BATCH_SIZE

    seen = []
    monkeypatch.setattr(O, "run_onnx_inference", lambda *a, **kw: seen.append(("onnx", kw["batch_size"])))
    monkeypatch.setattr(I, "run_inference", lambda *a, **kw: seen.append(("jit", kw["batch_size"])))
    e, d = world["exps"]["cnn"], world["data"]
    for backend, extra in (("onnx", []), ("jit", []), ("onnx", ["--batch_size", "8"])):
        assert cls_inference.main(_argv(d, e, tmp_path / backend, "--backend", backend, *extra)) == 0
    assert seen == [("onnx", DEFAULT_BATCH_SIZE["onnx"]), ("jit", DEFAULT_BATCH_SIZE["jit"]), ("onnx", 8)]
    assert DEFAULT_BATCH_SIZE["onnx"] == 1


def test_onnx_windows_key_file_and_long_batch_fallback(world, tmp_path):
    e, d = world["exps"]["transformer"], world["data"]
    keys = tmp_path / "keys"
    keys.write_text("utt2 x\nutt4 x\nutt0 x\n")
    extra = ["--key_file", str(keys), "--window_sec", "0.5", "--hop_sec", "0.25", "--window_aggregation", "max"]
    assert cls_inference.main(_argv(d, e, tmp_path / "jit", "--backend", "jit", *extra)) == 0
    assert cls_inference.main(_argv(d, e, tmp_path / "onnx", "--backend", "onnx", *extra)) == 0
    _assert_same_outputs(tmp_path / "onnx", tmp_path / "jit")
    assert [r[0] for r in _rows(tmp_path / "onnx" / "prediction" / "text")] == ["utt0", "utt2", "utt4"]
    # a batch longer than the traced graph's limit is scored by the PyTorch model, same scores
    model, _ = load_inference_model(e["config"], e["model_file"])
    waves = [np.random.default_rng(1).standard_normal(n).astype(np.float32) * 0.1 for n in (30000, 800)]
    built = []
    engine = O.OnnxInference(O.open_session(O.cached_onnx(e["config"], e["model_file"])), FS, batch_size=1, max_sec=1.0,
                             fallback=lambda: built.append(1) or BatchInference(model, FS, 1, backend="eager"))
    np.testing.assert_allclose(engine.predict(waves), BatchInference(model, FS, 1, backend="eager").predict(waves),
                               atol=1e-5, rtol=0)
    assert built == [1]  # built once, for the long clip only


def test_onnx_job_imports_no_torch(world, tmp_path):
    e, d = world["exps"]["cnn"], world["data"]
    code = ("import sys; from espnet_cls.bin import cls_inference; rc = cls_inference.main(sys.argv[1:]); "
            "print('TORCH', 'torch' in sys.modules, rc)")
    r = run_py(["-c", code, *_argv(d, e, tmp_path / "o", "--backend", "onnx")])
    assert r.returncode == 0, r.stderr
    assert "TORCH False 0" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "o" / "prediction" / "score").is_file()


def test_stale_cache_is_exported_again(world, tmp_path):
    src = world["exps"]["cnn"]
    e = dict(src, model_file=tmp_path / "exp" / "valid.acc.best.pth", config=tmp_path / "exp" / "config.yaml")
    (tmp_path / "exp").mkdir()
    shutil.copy(src["config"], e["config"])
    shutil.copy(src["model_file"], e["model_file"])
    assert O.cache_state(e["config"], e["model_file"])[0] == "missing"
    prep = ["--classification_train_config", str(e["config"]), "--classification_model_file", str(e["model_file"]),
            "--backend", "onnx", "--prepare_only", "true"]
    assert cls_inference.main(prep) == 0
    state, onnx_path, _ = O.cache_state(e["config"], e["model_file"])
    assert state == "fresh" and onnx_path == tmp_path / "exp" / "valid.acc.best.onnx"
    stamp = json.loads((tmp_path / "exp" / "valid.acc.best.onnx.stamp").read_text())
    assert stamp["ok"] and stamp["max_abs_diff"] <= O.ATOL
    mtime = onnx_path.stat().st_mtime_ns
    assert cls_inference.main(prep) == 0 and onnx_path.stat().st_mtime_ns == mtime  # fresh: not exported again
    # "retrain": other weights, same size and name
    state_dict = torch.load(e["model_file"])
    torch.save({k: (v + 0.05 if v.is_floating_point() else v) for k, v in state_dict.items()}, e["model_file"])
    assert O.cache_state(e["config"], e["model_file"])[0] == "stale"
    d = world["data"]
    assert cls_inference.main(_argv(d, e, tmp_path / "onnx", "--backend", "onnx")) == 0  # exports itself first
    assert O.cache_state(e["config"], e["model_file"])[0] == "fresh"
    assert cls_inference.main(_argv(d, e, tmp_path / "jit", "--backend", "jit")) == 0
    _assert_same_outputs(tmp_path / "onnx", tmp_path / "jit")
    # an edited config makes it stale too; a corrupted .onnx does not pass for fresh
    with open(e["config"], "a") as f:
        f.write("# edited\n")
    assert O.cache_state(e["config"], e["model_file"])[0] == "stale"
    assert O.ensure_onnx(e["config"], e["model_file"])[0] == onnx_path
    with open(onnx_path, "ab") as f:
        f.write(b"\0")
    assert O.cache_state(e["config"], e["model_file"])[0] == "stale"


def test_fallbacks_run_pytorch_with_one_log_line(world, tmp_path, caplog, monkeypatch):
    src, d = world["exps"]["cnn"], world["data"]
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(cls_inference, "setup_logging", lambda level: None)  # keep caplog's handler
    # --dtype float64: the PyTorch model in float64, as --backend jit would run it
    assert cls_inference.main(_argv(d, src, tmp_path / "f64", "--backend", "onnx", "--dtype", "float64")) == 0
    assert "--backend onnx runs float32 only: --dtype float64 uses the PyTorch model" in caplog.text
    assert cls_inference.main(_argv(d, src, tmp_path / "f64jit", "--backend", "jit", "--dtype", "float64")) == 0
    assert (tmp_path / "f64" / "prediction" / "score").read_text() == (tmp_path / "f64jit" / "prediction" / "score").read_text()
    # --ngpu 1: never the CPU-only onnx path (here no GPU either: the torch path's own error)
    caplog.clear()
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="no CUDA device"):
            cls_inference.main(_argv(d, src, tmp_path / "gpu", "--backend", "onnx", "--ngpu", "1"))
        assert "--backend onnx runs on the CPU only: --ngpu 1 uses the PyTorch model" in caplog.text
    # a model that does not export: the failure is stamped once, later jobs run jit at once
    exp = tmp_path / "exp"
    exp.mkdir()
    e = dict(src, config=exp / "config.yaml", model_file=exp / "valid.acc.best.pth")
    shutil.copy(src["config"], e["config"])
    shutil.copy(src["model_file"], e["model_file"])
    calls = []

    def broken(*a, **k):
        calls.append(k.get("exporter"))
        raise RuntimeError("ONNX export failed: UnsupportedOperatorError: no")

    monkeypatch.setattr("espnet_cls.export.export_onnx", broken)
    caplog.clear()
    assert cls_inference.main(_argv(d, e, tmp_path / "o1", "--backend", "onnx")) == 0
    assert calls == ["torchscript", "dynamo"]
    lines = [r.getMessage() for r in caplog.records if "does not export to ONNX" in r.getMessage()]
    assert len(lines) == 1 and "using the jit backend" in lines[0] and "UnsupportedOperatorError" in lines[0]
    stamp = json.loads((exp / "valid.acc.best.onnx.stamp").read_text())
    assert stamp["ok"] is False and not (exp / "valid.acc.best.onnx").exists()
    assert cls_inference.main(_argv(d, e, tmp_path / "o2", "--backend", "onnx")) == 0
    assert calls == ["torchscript", "dynamo"]  # not retried for the same checkpoint
    assert cls_inference.main(_argv(d, e, tmp_path / "jit", "--backend", "jit")) == 0
    for f in ("text", "score", "token"):
        assert (tmp_path / "o2" / "prediction" / f).read_text() == (tmp_path / "jit" / "prediction" / f).read_text()


def test_prepare_only_needs_no_data_and_jobs_need_it(world, tmp_path, capsys):
    e = world["exps"]["cnn"]
    base = ["--classification_train_config", str(e["config"]), "--classification_model_file", str(e["model_file"])]
    assert cls_inference.main([*base, "--prepare_only", "true", "--backend", "jit"]) == 0  # nothing to prepare
    with pytest.raises(SystemExit):
        cls_inference.main([*base, "--backend", "onnx"])
    assert "--output_dir" in capsys.readouterr().err
