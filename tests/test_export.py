"""Export parity: ONNX (onnxruntime) and TorchScript against PyTorch, to 1e-4.

Random-init models from the real ``build_model`` (CNN and transformer encoders, log-mel
frontend and global MVN inside the graph). The batch mixes lengths (0.05 s to 1.3 s,
none equal to the export example's), and every clip is compared with PyTorch scoring it
alone, so the dynamic axes and the padding are checked too.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from test_pack_support import make_config, make_exp, make_stats, pack_exp, run_py

from espnet_cls.export import export, export_onnx, export_torchscript, run_exported

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
FS = 16000


def _model(encoder, tmp_path):
    from espnet_cls.tasks.cls import build_model

    stats = tmp_path / "feats_stats.npz"
    cfg = make_config(encoder, str(stats))
    make_stats(stats, cfg)
    torch.manual_seed(0)
    return build_model(cfg).eval()


def _batch(seed=3):
    g = torch.Generator().manual_seed(seed)
    lens = [int(FS * s) for s in (0.05, 1.3, 0.61, 0.2)]
    x = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        t = torch.arange(n) / FS
        x[i, :n] = 0.3 * torch.sin(2 * np.pi * (300 + 500 * i) * t) + 0.05 * torch.randn(n, generator=g)
    return x, torch.tensor(lens)


def _reference(model, x, lens):
    with torch.no_grad():
        logits = torch.cat([model.forward_logits(x[i : i + 1, : int(n)], lens[i : i + 1]) for i, n in enumerate(lens)])
    return model.logits_to_proba(logits).numpy(), logits.numpy()


@pytest.mark.parametrize("encoder, exporter", [("cnn", "auto"), ("transformer", "dynamo"), ("transformer", "torchscript"),
                                               ("conformer", "torchscript"),
                                               pytest.param("conformer", "dynamo", marks=pytest.mark.slow)])
def test_onnx_matches_pytorch(encoder, exporter, tmp_path):
    if encoder == "cnn":  # through the user-facing path: packed zip -> export() (which self-checks to 1e-4)
        e = make_exp(tmp_path)
        model = e["model"]
        info = export(pack_exp(e), "onnx", tmp_path / "out" / "m.onnx", exporter=exporter)
        assert info["max_abs_diff"] is not None and info["max_abs_diff"] <= 1e-4
        path = info["output"]
    else:
        model = _model(encoder, tmp_path)
        path = export_onnx(model, tmp_path / "m.onnx", FS, exporter=exporter)
    x, lens = _batch()
    ref_p, ref_l = _reference(model, x, lens)
    probs, logits = run_exported(path, x.numpy(), lens.numpy())
    np.testing.assert_allclose(logits, ref_l, rtol=0, atol=1e-4)
    np.testing.assert_allclose(probs, ref_p, rtol=0, atol=1e-4)
    assert np.abs(ref_l).max() > 1e-3 and not np.allclose(ref_p, ref_p[0], atol=1e-4)  # non-trivial outputs
    # another batch size and length
    p1, _ = run_exported(path, x[2:3, : int(lens[2])].numpy(), lens[2:3].numpy())
    np.testing.assert_allclose(p1, ref_p[2:3], rtol=0, atol=1e-4)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["classes"]) == ["violin", "flute", "piano"] and meta["sample_rate"] == "16000"
    assert meta["classification_type"] == "multi-class"


def test_torchscript_matches_pytorch(tmp_path):
    model = _model("cnn", tmp_path)
    path = export_torchscript(model, tmp_path / "m.pt", FS)
    x, lens = _batch(5)
    ref_p, ref_l = _reference(model, x, lens)
    probs, logits = run_exported(path, x.numpy(), lens.numpy())
    np.testing.assert_allclose(logits, ref_l, rtol=0, atol=1e-4)
    np.testing.assert_allclose(probs, ref_p, rtol=0, atol=1e-4)


def test_export_cli(tmp_path):
    e = make_exp(tmp_path)
    z = pack_exp(e)
    r = run_py(["-m", "espnet_cls.bin.export", z, "--format", "torchscript"], timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("cls_tiny_valid.acc.best.pt") and "check: max" in r.stderr
    r = run_py(["-m", "espnet_cls.bin.export", tmp_path / "absent.zip"])
    assert r.returncode == 1 and "absent.zip" in r.stderr and "Traceback" not in r.stderr
