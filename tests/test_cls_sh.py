"""cls.sh: options, --help, errors and stage gating (runs the real script)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SPEC_OPTIONS = """stage stop_stage skip_data_prep skip_train skip_eval skip_upload skip_packing ngpu num_nodes nj
inference_nj gpu_inference datadir dumpdir expdir python local_data_opts audio_format fs min_wav_duration
max_wav_duration speech_fold_length label_fold_length cls_config cls_args cls_tag cls_stats_dir feats_normalize
pretrained_model ignore_init_mismatch classification_type use_lightning inference_model output_all_probabilities
download_model hf_repo train_set valid_set test_sets text_classes""".split()

REQUIRED = ["--train_set", "train", "--valid_set", "valid", "--test_sets", "test"]


def run_cls(cwd, args, env):
    return subprocess.run(["bash", "cls.sh", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def recipe(tmp_path, repo_root):
    """A scratch recipe dir: the real cls.sh, utils/, path.sh, cmd.sh, conf/; a recording local/data.sh."""
    d = tmp_path / "recipe"
    d.mkdir()
    for f in ["cls.sh", "path.sh", "cmd.sh"]:
        shutil.copy(repo_root / f, d / f)
    for sub in ["utils", "conf"]:
        shutil.copytree(repo_root / sub, d / sub, symlinks=True)
    (d / "local").mkdir()
    (d / "local" / "data.sh").write_text('#!/usr/bin/env bash\necho "$@" > called_data_sh\n')
    os.chmod(d / "local" / "data.sh", 0o755)
    return d


def test_help_lists_every_spec_option(repo_root, shell_env):
    r = run_cls(repo_root, ["--help"], shell_env)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for name in SPEC_OPTIONS:
        assert f"--{name} " in out, f"--help does not list --{name}"
    # grouped, with defaults
    assert "General options:" in out and "Model options:" in out
    assert 'default="valid.acc.best.pth"' in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--bogus", "1"], "bogus"),
        (["--skip_train", "maybe"], "skip_train"),
        (["--skip-train", "maybe"], "skip"),
        ([*REQUIRED, "extra_positional"], "extra_positional"),
        (["--valid_set", "v", "--test_sets", "t"], "--train_set"),
        ([*REQUIRED, "--feats_normalize", "foo"], "feats_normalize"),
    ],
)
def test_bad_options_exit_2_naming_them(repo_root, shell_env, args, needle):
    r = run_cls(repo_root, args, shell_env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert needle in r.stdout + r.stderr


def test_stage_gating_runs_only_selected_stage(recipe, shell_env):
    r = run_cls(recipe, [*REQUIRED, "--stop-stage", "1", "--local_data_opts", "--corpus x --seed 3"], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (recipe / "called_data_sh").read_text().split() == ["data", "--corpus", "x", "--seed", "3"]
    assert "Stage 1" in r.stdout and "Stage 2" not in r.stdout
    assert "Stage 1 done in" in r.stdout


def test_skip_flags(recipe, shell_env):
    r = run_cls(recipe, [*REQUIRED, "--skip_data_prep", "true", "--skip_train", "true", "--skip_eval", "true"], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (recipe / "called_data_sh").exists()
    for msg in ["Skip the stages for data preparation", "Skip the training stages", "Skip the evaluation stages",
                "Skip the packing stage", "Skip the uploading stage"]:
        assert msg in r.stdout


def test_missing_worker_fails_clearly(recipe, shell_env, tmp_path):
    # a "python" that finds no module: the stage must name the missing worker
    fake = tmp_path / "nopython"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    r = run_cls(recipe, [*REQUIRED, "--stage", "3", "--stop_stage", "3", "--python", str(fake)], shell_env)
    assert r.returncode == 1
    assert "stage 3 needs the worker espnet_cls.bin.filter_data" in r.stdout + r.stderr


def test_classification_type_must_agree(recipe, shell_env, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_conf:\n  classification_type: multi-class\n")
    r = run_cls(recipe, [*REQUIRED, "--cls_config", str(cfg), "--classification_type", "multi-label"], shell_env)
    assert r.returncode == 2
    assert "disagrees" in r.stdout + r.stderr


def test_use_lightning_is_accepted_and_ignored(recipe, shell_env):
    r = run_cls(recipe, [*REQUIRED, "--use_lightning", "true", "--stop_stage", "1"], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "use_lightning true is accepted and ignored" in r.stdout


def test_shellcheck_clean(repo_root):
    sc = shutil.which("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed")
    files = [str(p) for p in [repo_root / "cls.sh", repo_root / "run.sh", repo_root / "path.sh", repo_root / "cmd.sh"]]
    r = subprocess.run([sc, "-x", "-P", "SCRIPTDIR", *files], capture_output=True, text=True, cwd=repo_root)
    assert r.returncode == 0, r.stdout
    assert Path(files[0]).exists()
