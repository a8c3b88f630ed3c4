"""Bad-input catalogue, part 5: cls.sh itself (config checks before any stage, stage 2 on a bad data dir).

Runs the real cls.sh in a scratch recipe dir; each case asserts the exit status, the one
ERROR line naming the file (and line), and that nothing was left in dump/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robust_helpers import assert_one_clear_error, listing, write  # noqa: E402

ARGS = ["--train_set", "train", "--valid_set", "valid", "--test_sets", "valid", "--nj", "1"]


@pytest.fixture()
def recipe(tmp_path, repo_root):
    d = tmp_path / "recipe"
    d.mkdir()
    for f in ["cls.sh", "path.sh", "cmd.sh"]:
        shutil.copy(repo_root / f, d / f)
    for sub in ["utils", "scripts", "pyscripts"]:
        shutil.copytree(repo_root / sub, d / sub, symlinks=True)
    for name in ("train", "valid"):
        wavs = []
        for i in range(2):
            p = d / "wav" / f"{name}{i}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, 0.3 * np.sin(np.arange(4000) / 5.0), 16000, subtype="PCM_16")
            wavs.append(f"{name}{i} {p}\n")
        write(d / "data" / name / "wav.scp", "".join(wavs))
        write(d / "data" / name / "text", f"{name}0 dog\n{name}1 cat\n")
        write(d / "data" / name / "utt2spk", f"{name}0 {name}0\n{name}1 {name}1\n")
    return d


def run_cls(d: Path, args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "cls.sh", *ARGS, *args], cwd=d, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "name, text, needles",
    [
        (None, None, ["nope.yaml", "cannot open config"]),
        ("list.yaml", "- a\n- b\n", ["list.yaml", "mapping", "not a list"]),
        ("invalid.yaml", "a: [1,\n", ["invalid.yaml:2:", "invalid yaml"]),
        ("tabs.yaml", "a:\n\t- 1\n", ["tabs.yaml:2:", "invalid yaml"]),
    ],
)
def test_bad_cls_config_before_any_stage(recipe, shell_env, name, text, needles):
    cfg = recipe / "nope.yaml" if name is None else write(recipe / name, text)
    r = run_cls(recipe, ["--stage", "2", "--stop_stage", "2", "--cls_config", str(cfg)], shell_env)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert_one_clear_error(out, *needles)
    assert "Stage 2" not in out and not (recipe / "dump").exists()


def test_stage2_bad_source_leaves_dump_empty(recipe, shell_env):
    text = recipe / "data/valid/text"
    text.write_text("valid0 dog\nvalid9 cat\n")  # an id wav.scp does not have
    r = run_cls(recipe, ["--stage", "2", "--stop_stage", "2"], shell_env)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert_one_clear_error(out, "data/valid/text:2:", "utterance 'valid9' is not in wav.scp")
    assert listing(recipe / "dump/valid") == []
    assert not (recipe / "dump/train/wav.scp").exists() or (recipe / "dump/train/fs").exists()  # train (first) is complete


def test_stage2_then_stage4_with_two_labels_on_a_multiclass_line(recipe, shell_env):
    (recipe / "data/train/text").write_text("train0 dog cat\ntrain1 cat\n")
    r = run_cls(recipe, ["--stage", "2", "--stop_stage", "4", "--min_wav_duration", "0"], shell_env)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert_one_clear_error(out, "dump/train/text:1:", "utt train0: 2 labels (dog cat)", "multi-class")
    assert not (recipe / "data/token_list").exists()
    assert (recipe / "dump/train/fs").read_text() == "16000\n"  # stage 2 recorded the dump's rate


def test_stage10_needs_hf_repo(recipe, shell_env):
    r = run_cls(recipe, ["--stage", "10", "--stop_stage", "10", "--skip_upload", "false"], shell_env)
    assert r.returncode == 1
    assert "--hf_repo is required" in r.stdout + r.stderr
