"""Stage 9 packing: archive contents, use in a separate process, zip-slip rejection.

Models are the real ``build_model`` CNN with random init (tests/test_pack_support.py).
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_pack_support import make_exp, pack_exp, reference_probs, run_py, write_clips

from espnet_cls.fileio import DataError
from espnet_cls.pack import load_state_dict, pack, read_meta, unpack

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("packexp")
    e = make_exp(root)
    e["zip"] = pack_exp(e)
    return e


def test_archive_contents(packed):
    z = packed["zip"]
    with zipfile.ZipFile(z) as zf:
        names = set(zf.namelist())
        cfg = yaml.safe_load(zf.read("config.yaml"))
        token_list = zf.read("token_list").decode().splitlines()
    assert {"meta.yaml", "config.yaml", "model.safetensors", "token_list", "feats_stats.npz", "RESULTS.md", "images/loss.png",
            "metrics/valid.json", "metrics/test.json"} <= names
    assert not any(n.endswith(".pth") for n in names)  # no pickle in the archive
    assert cfg["normalize_conf"]["stats_file"] == "feats_stats.npz"
    assert cfg["token_list"] == token_list == ["violin", "flute", "piano", "<blank>", "<unk>"]
    meta = read_meta(z)
    for k in ("files", "timestamp", "espnet_cls", "torch", "python", "sha256"):
        assert k in meta
    assert meta["files"]["model"] == "model.safetensors" and meta["source"]["model_name"] == "valid.acc.best.pth"
    assert set(meta["sha256"]) == names - {"meta.yaml"}
    # no temp files left beside the archive
    assert [p.name for p in z.parent.iterdir() if p.name.startswith(".")] == []


def test_weights_equal_checkpoint(packed, tmp_path):
    unpack(packed["zip"], tmp_path / "m")
    st = load_state_dict(tmp_path / "m" / "model.safetensors")
    ref = torch.load(packed["model_file"], weights_only=True)
    assert list(st) == list(ref) or set(st) == set(ref)
    for k, v in ref.items():
        assert torch.equal(st[k], v), k
    np.testing.assert_array_equal(np.load(tmp_path / "m" / "feats_stats.npz")["sum"], np.load(packed["stats"])["sum"])


def test_packed_model_in_separate_process_matches(packed, tmp_path):
    """The zip, unzipped by another process in a fresh folder with the exp dir gone, scores as in-process."""
    ref = reference_probs(packed["model"], packed["clips"])
    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    shutil.copy(packed["zip"], fresh / "model.zip")
    moved = tmp_path / "exp_moved"
    shutil.move(str(packed["root"] / "exp"), moved)  # nothing of the experiment is reachable any more
    try:
        script = (
            "import json, sys, zipfile, torch; torch.set_num_threads(1)\n"
            "zipfile.ZipFile('model.zip').extractall('unzipped')\n"
            "from espnet_cls import Classifier\n"
            "clf = Classifier.from_pretrained('unzipped')\n"
            "one = [clf(c).probs.tolist() for c in sys.argv[1:]]\n"
            "batched = [p.probs.tolist() for p in clf.predict_files(sys.argv[1:], batch_size=4)]\n"
            "fromzip = [p.probs.tolist() for p in Classifier.from_pretrained('model.zip').predict_files(sys.argv[1:])]\n"
            "print(json.dumps({'one': one, 'batched': batched, 'zip': fromzip, 'classes': clf.classes}))\n"
        )
        r = run_py(["-c", script, *packed["clips"]], cwd=fresh)
    finally:
        shutil.move(str(moved), packed["root"] / "exp")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["classes"] == ["violin", "flute", "piano"]
    np.testing.assert_allclose(np.array(out["one"]), ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.array(out["zip"]), ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.array(out["batched"]), ref, rtol=0, atol=1e-6)
    assert not np.allclose(ref, ref[0])  # the clips really get different scores


def test_pack_cli(packed, tmp_path):
    e = packed
    out = tmp_path / "cli.zip"
    r = run_py(["-m", "espnet_cls.bin.pack", "cls", "--classification_train_config", e["config"], "--classification_model_file",
                e["model_file"], "--option", e["exp"] / "RESULTS.md", "--option", e["exp"] / "images", "--outpath", out])
    assert r.returncode == 0, r.stderr
    # the stats file came from normalize_conf.stats_file although no --option named it
    assert "feats_stats.npz" in zipfile.ZipFile(out).namelist()
    r = run_py(["-m", "espnet_cls.bin.pack", "--classification_train_config", e["config"], "--classification_model_file",
                e["model_file"], "--option", tmp_path / "nope.md", "--outpath", tmp_path / "x.zip"])
    assert r.returncode == 1
    assert "nope.md" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.zip").exists()


def test_pack_rejects_pickled_objects(packed, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(1), "obj": Path("x")}, bad)
    with pytest.raises(DataError, match="weights_only|not a tensor"):
        load_state_dict(bad)


def _zip_with(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.yaml", "format: espnet_cls.packed_model\n")
        zf.writestr("config.yaml", "token_list: [a, <unk>]\n")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    "member,symlink",
    [("../evil.txt", False), ("images/../../evil.txt", False), ("/tmp/evil_abs.txt", False), ("C:/evil.txt", False),
     ("images\\..\\..\\evil.txt", False), ("images/link", True)],
)
def test_zip_slip_rejected(tmp_path, member, symlink):
    z = _zip_with(tmp_path / "evil.zip", member, b"/etc/passwd" if symlink else b"pwned", symlink)
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(DataError) as ei:
        unpack(z, out)
    assert repr(member) in str(ei.value) or member in str(ei.value)
    assert not out.exists()  # nothing written, not even the safe members
    assert not (tmp_path / "a" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    # the same archive through the user-facing loader and CLI
    from espnet_cls import Classifier

    with pytest.raises(DataError, match="unsafe archive member"):
        Classifier.from_pretrained(z)
    if member == "../evil.txt":  # and once through the CLI (a subprocess costs a torch import)
        r = run_py(["-m", "espnet_cls.bin.classify", z, tmp_path / "x.wav"])
        assert r.returncode == 1 and "unsafe archive member" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_member_detected(packed, tmp_path):
    bad = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(packed["zip"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "token_list":
                data = data.replace(b"violin", b"viola!")
            dst.writestr(info, data)
    with pytest.raises(DataError, match="sha256"):
        unpack(bad, tmp_path / "out")


def test_beats_model_packs_without_its_checkpoint(tmp_path):
    """A BEATs config names the pre-trained checkpoint; the packed model must not need it."""
    from test_beats_reference import TINY_CFG, random_official_state

    from espnet_cls import Classifier
    from espnet_cls.tasks.cls import build_model

    ckpt = tmp_path / "downloads" / "beats" / "BEATs_tiny.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"cfg": dict(TINY_CFG), "model": random_official_state(TINY_CFG)}, ckpt)
    config = {
        "token_list": ["a", "b", "<blank>", "<unk>"],
        "frontend": "none",
        "input_size": 1,
        "normalize": "none",
        "init": "xavier_normal",
        "encoder": "beats",
        "encoder_conf": {"beats_ckpt_path": str(ckpt), "beats_config": {"dropout": 0.0}},
        "decoder": "linear",
        "decoder_conf": {"pooling": "mean"},
        "model_conf": {"classification_type": "multi-class"},
    }
    exp = tmp_path / "exp" / "cls_beats"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    model = build_model(config).eval()
    torch.save(model.state_dict(), exp / "valid.acc.best.pth")
    clips = write_clips(tmp_path / "clips")[:2]
    ref = reference_probs(model, clips)
    z = exp / "beats.zip"
    pack(exp / "config.yaml", exp / "valid.acc.best.pth", z)
    cfg = yaml.safe_load(zipfile.ZipFile(z).read("config.yaml"))
    assert cfg["encoder_conf"]["beats_ckpt_path"] is None
    assert cfg["encoder_conf"]["beats_config"]["encoder_layers"] == TINY_CFG["encoder_layers"]
    ckpt.unlink()  # the pre-trained checkpoint is gone
    got = np.stack([p.probs for p in Classifier.from_pretrained(z).predict_files(clips)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_missing_stats_only_fatal_for_global_mvn(packed, tmp_path):
    cfg = yaml.safe_load(packed["config"].read_text())
    cfg["normalize_conf"] = {"stats_file": str(tmp_path / "gone.npz")}
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(DataError, match="stats_file not found"):
        pack(bad, packed["model_file"], tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists()
    cfg["normalize"] = "none"  # a leftover stats path that no normalization uses
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(cfg))
    meta = pack(ok, packed["model_file"], tmp_path / "b.zip")
    assert "feats_stats.npz" not in meta["sha256"] and "feats_stats" not in meta["files"]
