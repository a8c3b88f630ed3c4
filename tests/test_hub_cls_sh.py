"""cls.sh stages 9-10 and ``--download_model`` (stages 7-8) on a prepared experiment (slow).

Stage 10 talks to the local Hub stand-in of tests/test_hub_standin.py through the real
``huggingface_hub`` client; ``--download_model`` reads a Hugging Face cache laid out by
the test with ``HF_HUB_OFFLINE=1``. cls.sh runs from the repository root with
``--expdir/--datadir/--dumpdir`` in a temp dir, so it writes nothing in the repo.
"""

from __future__ import annotations

import subprocess
import zipfile

import numpy as np
import pytest
from test_hub import _lay_out_hf_cache
from test_hub_standin import SECRET, HubStandin
from test_pack_support import TOKENS, make_exp, pack_exp, reference_probs

from espnet_cls.hub import stage_upload_folder

pytestmark = pytest.mark.slow


def _cls_sh(repo_root, root, args, env):
    cmd = ["./cls.sh", "--train_set", "train", "--valid_set", "test", "--test_sets", "test", "--expdir", str(root / "exp"),
           "--datadir", str(root / "data"), "--dumpdir", str(root / "dump"), "--ngpu", "0", *args]
    return subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)


def test_stage9_and_10_through_cls_sh(repo_root, shell_env, tmp_path):
    e = make_exp(tmp_path, tag="cls_tiny")
    with HubStandin(tmp_path / "hub", SECRET) as hub:
        env = {**shell_env, **hub.env()}
        r = _cls_sh(repo_root, tmp_path, ["--stage", "9", "--stop_stage", "10", "--cls_tag", "tiny", "--skip_upload", "false",
                                          "--hf_repo", "alice/tiny-cls"], env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    z = e["exp"] / "cls_tiny_valid.acc.best.zip"
    names = set(zipfile.ZipFile(z).namelist())
    assert {"feats_stats.npz", "RESULTS.md", "images/loss.png", "token_list", "model.safetensors"} <= names
    repo = tmp_path / "hub" / "alice" / "tiny-cls"
    assert {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()} == names | {"README.md"}
    assert SECRET not in r.stdout + r.stderr


def test_download_model_then_stages_7_8(repo_root, shell_env, tmp_path):
    e = make_exp(tmp_path / "src")
    folder = stage_upload_folder(pack_exp(e), tmp_path / "uploaded", "alice/tiny-cls")
    _lay_out_hf_cache(tmp_path / "hf_home", "alice/tiny-cls", folder)
    work = tmp_path / "recipe"
    clips = [c for c in e["clips"] if c.name in ("a.wav", "b.flac")]  # already mono 16 kHz, as stage 2 leaves them
    dump = work / "dump" / "test"
    dump.mkdir(parents=True)
    (dump / "wav.scp").write_text("".join(f"utt{i} {c}\n" for i, c in enumerate(clips)))
    (dump / "text").write_text("utt0 violin\nutt1 flute\n")
    (work / "data").mkdir()
    (work / "data" / "token_list").write_text("".join(t + "\n" for t in TOKENS))
    env = {**shell_env, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    r = _cls_sh(repo_root, work, ["--stage", "7", "--stop_stage", "8", "--download_model", "alice/tiny-cls",
                                  "--inference_nj", "1"], env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp = work / "exp" / "tiny-cls"
    assert (exp / "config.yaml").is_file() and (exp / "model.safetensors").is_file()
    rows = [line.split() for line in (exp / "cls_test" / "score").read_text().splitlines()]
    got = np.array([[float(v) for v in row[1:]] for row in rows])
    np.testing.assert_allclose(got, reference_probs(e["model"], clips), rtol=0, atol=1e-5)
    assert (exp / "cls_test" / "scoring" / "metrics.json").is_file() and (exp / "RESULTS.md").is_file()
