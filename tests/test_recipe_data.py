"""Stage 1 glue: ESPnet's esc50 data-dir names and labels from our importer, db.sh as its default root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_data_importers import make_esc50, validate

from espnet_cls.data.esc50 import espnet_set_names, prepare_esc50
from espnet_cls.fileio import DataError, read_kv


def test_espnet_fold_names_and_split(tmp_path):
    make_esc50(tmp_path / "ESC-50")
    for fold in range(1, 6):
        splits = prepare_esc50(tmp_path / "ESC-50", fold=fold, set_names="espnet")
        assert espnet_set_names(fold) == (f"train{fold}", f"val{fold}")
        assert sorted(splits) == sorted([f"train{fold}", f"val{fold}"])
        # as ESPnet's data_prep_esc50.py: val<K> is fold K, train<K> the four others
        assert sorted(u.uttid for u in splits[f"val{fold}"]) == [f"{fold}-100-A-0", f"{fold}-101-A-1"]
        assert len(splits[f"train{fold}"]) == 8
        assert {u.uttid.split("-")[0] for u in splits[f"train{fold}"]} == {str(k) for k in range(1, 6)} - {str(fold)}
    # labels: category names (ours) or ESPnet's audio_class:<target>
    ours = prepare_esc50(tmp_path / "ESC-50", fold=1, set_names="espnet")
    espnet = prepare_esc50(tmp_path / "ESC-50", fold=1, set_names="espnet", labels="espnet")
    assert {u.labels for u in ours["val1"]} == {("dog",), ("chirping_birds",)}
    assert {u.uttid: u.labels for u in espnet["val1"]} == {"1-100-A-0": ("audio_class:0",), "1-101-A-1": ("audio_class:1",)}
    with pytest.raises(DataError, match="valid_fold"):
        prepare_esc50(tmp_path / "ESC-50", fold=1, valid_fold=2, set_names="espnet")


def test_local_data_sh_esc50_from_db_sh(tmp_path, repo_root, shell_env):
    """--corpus esc50 without --esc50_root reads ESC50 (db.sh, here set in the environment)."""
    make_esc50(tmp_path / "ESC-50")
    out = tmp_path / "data"
    env = {**shell_env, "ESC50": str(tmp_path / "ESC-50")}
    r = subprocess.run(["bash", "local/data.sh", str(out), "--corpus", "esc50", "--fold", "3",
                        "--esc50_set_names", "espnet", "--esc50_labels", "espnet"],
                       cwd=repo_root, env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["train3", "val3"]
    assert read_kv(out / "val3" / "text") == {"3-100-A-0": "audio_class:0", "3-101-A-1": "audio_class:1"}
    assert Path(read_kv(out / "val3" / "wav.scp")["3-100-A-0"]).is_file()
    for d in ["train3", "val3"]:
        validate(repo_root, shell_env, out / d)
    # db.sh's default (downloads/ESC-50-master) that is not there: one clear line
    env = {k: v for k, v in shell_env.items() if k != "ESC50"}
    r = subprocess.run(["bash", "local/data.sh", str(tmp_path / "d2"), "--corpus", "esc50"], cwd=repo_root, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "needs --esc50_root (or ESC50 in db.sh naming an existing directory; it is \"downloads/ESC-50-master\")" in r.stderr
