"""Stage 5: collect_stats jobs + aggregate_stats_dirs (nj=1 vs nj=2 agree; frontend none)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from espnet_cls.bin.aggregate_stats_dirs import main as aggregate
from espnet_cls.bin.cls_train import main as cls_train
from espnet_cls.fileio import DataError, read_kv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_helpers import make_corpus, write_yaml  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stats")
    return root, make_corpus(root, multilabel=True, n_train=10, n_valid=5)


def _split(scp: Path, n: int, dest: Path, prefix: str) -> list[Path]:
    lines = scp.read_text().splitlines(keepends=True)
    out = []
    for j in range(n):
        p = dest / f"{prefix}.{j + 1}.scp"
        p.write_text("".join(lines[j * len(lines) // n:(j + 1) * len(lines) // n]))
        out.append(p)
    return out


def _run_stats(root: Path, c: dict, yaml_path: Path, nj: int, tag: str) -> Path:
    logdir = root / tag / "logdir"
    logdir.mkdir(parents=True)
    tr = _split(c["train"] / "wav.scp", nj, logdir, "train")
    va = _split(c["valid"] / "wav.scp", nj, logdir, "valid")
    for j in range(nj):
        assert cls_train([
            "--collect_stats", "true", "--use_preprocessor", "true", "--token_type", "word",
            "--train_data_path_and_name_and_type", f"{c['train']}/wav.scp,speech,sound",
            "--train_data_path_and_name_and_type", f"{c['train']}/text,label,text",
            "--valid_data_path_and_name_and_type", f"{c['valid']}/wav.scp,speech,sound",
            "--valid_data_path_and_name_and_type", f"{c['valid']}/text,label,text",
            "--train_shape_file", str(tr[j]), "--valid_shape_file", str(va[j]),
            "--output_dir", str(logdir / f"stats.{j + 1}"), "--token_list", str(c["token_list"]),
            "--config", str(yaml_path), "--frontend_conf", "fs=16k", "--batch_size", "3",
        ]) == 0
    out = root / tag / "stats"
    inputs = [a for j in range(nj) for a in ("--input_dir", str(logdir / f"stats.{j + 1}"))]
    assert aggregate([*inputs, "--output_dir", str(out)]) == 0
    return out


def test_stats_nj1_equals_nj2_and_counts_frames(corpus):
    root, c = corpus
    y = write_yaml(root, multilabel=True)
    s1 = _run_stats(root, c, y, 1, "nj1")
    s2 = _run_stats(root, c, y, 2, "nj2")
    for mode in ("train", "valid"):
        for name in ("speech_shape", "label_shape"):
            assert (s1 / mode / name).read_text() == (s2 / mode / name).read_text()
        shapes = read_kv(s1 / mode / "speech_shape")
        u2n = read_kv(c[mode] / "utt2num_samples")
        assert shapes == u2n
        texts = read_kv(c[mode] / "text")
        assert read_kv(s1 / mode / "label_shape") == {k: str(len(v.split())) for k, v in texts.items()}
        a, b = np.load(s1 / mode / "feats_stats.npz"), np.load(s2 / mode / "feats_stats.npz")
        assert int(a["count"]) == int(b["count"]) == sum(int(n) // 160 + 1 for n in u2n.values())
        assert a["sum"].shape == (32,) and a["sum"].dtype == np.float64
        np.testing.assert_allclose(a["sum"], b["sum"], rtol=1e-6)
        np.testing.assert_allclose(a["sum_square"], b["sum_square"], rtol=1e-6)
    # the stats agree with features computed clip by clip
    import yaml

    from espnet_cls.tasks.cls import build_model
    from espnet_cls.train.dataset import ClsDataset

    cfg = yaml.safe_load(y.read_text())
    cfg.update(token_list=c["token_list"].read_text().split(), normalize=None)
    model = build_model(cfg).eval()
    ds = ClsDataset([f"{c['train']}/wav.scp,speech,sound"])
    tot = np.zeros(32)
    for k in ds.keys:
        x = torch.from_numpy(ds[k][1]["speech"])[None]
        f, _ = model.extract_feats(x, torch.tensor([x.shape[1]]))
        tot += f[0].double().sum(0).numpy()
    np.testing.assert_allclose(np.load(s1 / "train" / "feats_stats.npz")["sum"], tot, rtol=1e-5)


def test_frontend_none_writes_shapes_only(corpus, tmp_path):
    root, c = corpus
    y = tmp_path / "raw.yaml"
    y.write_text("frontend: none\ninput_size: 1\nnormalize: none\nencoder: transformer\n"
                 "model_conf: {classification_type: multi-label}\n")
    out = _run_stats(tmp_path, c, y, 1, "raw")
    assert (out / "train" / "speech_shape").exists() and (out / "valid" / "label_shape").exists()
    assert not (out / "train" / "feats_stats.npz").exists()


def test_aggregate_missing_dir_is_clear_error(tmp_path):
    with pytest.raises(DataError) as e:
        aggregate(["--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")])
    assert "nope" in str(e.value)
