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
download_model hf_repo train_set valid_set test_sets text_classes inference_tag""".split()

REQUIRED = ["--train_set", "train", "--valid_set", "valid", "--test_sets", "test"]


def run_cls(cwd, args, env):
    return subprocess.run(["bash", "cls.sh", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def recipe(tmp_path, repo_root):
    """A scratch recipe dir: the real cls.sh, utils/, path.sh, cmd.sh, conf/; a recording local/data.sh."""
    d = tmp_path / "recipe"
    d.mkdir()
    for f in ["cls.sh", "path.sh", "cmd.sh", "db.sh"]:
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
    # ESPnet's defaults, and our own options marked
    for name, default in [("feats_normalize", "uttmvn"), ("max_wav_duration", ""), ("inference_tag", ""),
                          ("audio_format", "flac"), ("fs", "16k"), ("nj", "32"), ("inference_nj", "4")]:
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"--{name} "))
        assert line.endswith(f'(default="{default}")'), line
    for name in ["skip_packing", "num_procs", "inference_args", "classification_type"]:
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"--{name} "))
        assert "[ours" in line, line


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
    r = run_cls(recipe, [*REQUIRED, "--stage", "3", "--stop_stage", "3", "--max_wav_duration", "20", "--python", str(fake)],
                shell_env)
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
    files = [str(repo_root / f) for f in ["cls.sh", "run.sh", "run_lid.sh", "run_multilabel.sh", "path.sh", "cmd.sh",
                                          "db.sh", "local/data.sh"]]
    r = subprocess.run([sc, "-x", "-P", "SCRIPTDIR", *files], capture_output=True, text=True, cwd=repo_root)
    assert r.returncode == 0, r.stdout
    assert Path(files[0]).exists()


# ----------------------------------------------------------------------------- the recipe glue, stage by stage
# A stand-in for --python: the real interpreter for everything except the stage workers, whose command
# lines it records (one line each) in calls.log; cls_inference writes a prediction for every key.
FAKE_PYTHON = r"""#!/usr/bin/env bash
real=@REAL@
log=@LOG@
if [ "$1" = -m ]; then
    case "$2" in
        espnet_cls.bin.config_facts) exec "${real}" "$@" ;;
        espnet_cls.bin.cls_inference)
            printf '%s\n' "$*" >> "${log}"
            case " $* " in *" --prepare_only true "*) exit 0 ;; esac
            while [ $# -gt 0 ]; do
                case "$1" in --output_dir) out=$2 ;; --key_file) keys=$2 ;; esac
                shift
            done
            mkdir -p "${out}/prediction"
            awk '{print $1, "dog"}' "${keys}" > "${out}/prediction/text"
            awk '{print $1, "0.9 0.1"}' "${keys}" > "${out}/prediction/score"
            exit 0 ;;
        espnet_cls.bin.make_results) printf '%s\n' "$*" >> "${log}"; echo "# RESULTS (fake)" > "$3/RESULTS.md"; exit 0 ;;
        *) printf '%s\n' "$*" >> "${log}"; exit 0 ;;
    esac
fi
case "$1" in
    pyscripts/*) printf '%s\n' "$*" >> "${log}"; exit 0 ;;
esac
exec "${real}" "$@"
"""


@pytest.fixture()
def fake_python(recipe):
    """(path of the stand-in python, function returning the recorded worker calls as lists of words)."""
    import sys

    log = recipe / "calls.log"
    p = recipe / "fake_python"
    p.write_text(FAKE_PYTHON.replace("@REAL@", sys.executable).replace("@LOG@", str(log)))
    p.chmod(0o755)

    def calls(module: str) -> list[list[str]]:
        if not log.exists():
            return []
        return [ln.split() for ln in log.read_text().splitlines() if module in ln.split()[:2]]

    return p, calls


def make_dump(recipe: Path, sets=("train", "valid", "test"), n: int = 3) -> None:
    for s in sets:
        d = recipe / "dump" / s
        d.mkdir(parents=True, exist_ok=True)
        (d / "wav.scp").write_text("".join(f"{s}{i} /x/{s}{i}.flac\n" for i in range(n)))
        (d / "text").write_text("".join(f"{s}{i} dog\n" for i in range(n)))
        (d / "utt2num_samples").write_text("".join(f"{s}{i} 16000\n" for i in range(n)))
        (d / "feats_type").write_text("raw\n")


def opt_after(words: list[str], name: str) -> list[str]:
    """Every value given to option ``name`` in a recorded command line."""
    return [b for a, b in zip(words, words[1:]) if a == name]


def test_inference_tag_names_the_inference_dirs(recipe, shell_env, fake_python):
    """--inference_tag T: stage 7 writes exp/cls_X/cls_<set>_T and stage 8 scores there (no tag: cls_<set>, in test_e2e)."""
    py, calls = fake_python
    make_dump(recipe)
    exp = recipe / "exp" / "cls_train"
    exp.mkdir(parents=True)
    r = run_cls(recipe, [*REQUIRED, "--stage", "7", "--stop_stage", "8", "--python", str(py), "--inference_nj", "2",
                         "--inference_tag", "ave3"], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    for s in ["valid", "test"]:
        d = exp / f"cls_{s}_ave3"
        assert (d / "text").read_text().split("\n")[:-1] == [f"{s}{i} dog" for i in range(3)]
        assert len((d / "score").read_text().splitlines()) == 3
    assert sorted(p.name for p in exp.iterdir() if p.is_dir()) == ["cls_test_ave3", "cls_valid_ave3"]
    # the contract's layout names the same dirs
    from espnet_cls.contract import ExpLayout

    assert ExpLayout(exp).decode_dir("test", "ave3") == exp / "cls_test_ave3"
    assert ExpLayout(exp).decode_dir("test") == exp / "cls_test"
    outs = sorted(opt_after(c, "-o")[0] for c in calls("pyscripts/utils/score_cls.py"))
    assert outs == ["exp/cls_train/cls_test_ave3/scoring", "exp/cls_train/cls_valid_ave3/scoring"]
    (inf,) = [c for c in calls("espnet_cls.bin.cls_inference") if "keys.1.scp" in " ".join(c) and "cls_test" in " ".join(c)]
    assert opt_after(inf, "--data_path_and_name_and_type") == ["dump/test/wav.scp,speech,sound"]


@pytest.mark.parametrize("extra, backend", [([], "onnx"), (["--inference_args", "--backend jit --batch_size 8"], "jit"),
                                            (["--gpu_inference", "true"], None)])
def test_stage7_exports_once_then_runs_onnx_jobs(recipe, shell_env, fake_python, extra, backend):
    """CPU stage 7: one --prepare_only call (the cached ONNX export) before every job, jobs with --backend onnx;
    --inference_args "--backend jit" wins (argparse: the last one); GPU inference passes no backend."""
    py, calls = fake_python
    make_dump(recipe)
    (recipe / "exp" / "cls_train").mkdir(parents=True)
    r = run_cls(recipe, [*REQUIRED, "--stage", "7", "--stop_stage", "7", "--python", str(py), "--inference_nj", "2",
                         "--gpu_inference", "false", *extra], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    inf = calls("espnet_cls.bin.cls_inference")
    assert len(inf) == 1 + 2 * 2  # prepare, then 2 jobs x (valid, test)
    prep, jobs = inf[0], inf[1:]
    assert opt_after(prep, "--prepare_only") == ["true"] and not opt_after(prep, "--output_dir")
    assert opt_after(prep, "--classification_model_file") == ["exp/cls_train/valid.acc.best.pth"]
    for c in [prep, *jobs]:
        assert (opt_after(c, "--backend") or [None])[-1] == backend
        assert opt_after(c, "--ngpu") == ["1" if backend is None else "0"]
    assert all(not opt_after(c, "--prepare_only") for c in jobs)


def _stage6_args(recipe, shell_env, fake_python, cfg_text: str, extra: list[str]) -> list[str]:
    py, calls = fake_python
    make_dump(recipe)
    cfg = recipe / "conf" / "c.yaml"
    cfg.write_text(cfg_text)
    r = run_cls(recipe, [*REQUIRED, "--stage", "6", "--stop_stage", "6", "--python", str(py), "--ngpu", "0",
                         "--cls_config", "conf/c.yaml", *extra], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    (launch,) = calls("espnet_cls.bin.launch")
    return launch


STATS = "exp/cls_stats_16k/train/feats_stats.npz"


@pytest.mark.parametrize(
    "cfg_text, feats_normalize, cls_args, normalize, opts",
    [
        # ESPnet's default (uttmvn) and every value but global_mvn leave the config's normalize alone
        ("normalize: utterance_mvn\n", "uttmvn", "", "utterance_mvn", ""),
        ("normalize: utterance_mvn\n", "utterance_mvn", "", "utterance_mvn", ""),
        ("normalize: utterance_mvn\n", "none", "", "utterance_mvn", ""),
        ("normalize: none\n", "uttmvn", "", "none", ""),
        ("", "uttmvn", "", "utterance_mvn", ""),  # the task default
        # only global_mvn overrides the config, with stage 5's statistics
        ("normalize: utterance_mvn\n", "global_mvn", "", "global_mvn", f"--normalize global_mvn --normalize_conf stats_file={STATS}"),
        ("normalize: none\n", "global_mvn", "", "global_mvn", f"--normalize global_mvn --normalize_conf stats_file={STATS}"),
        # a config asking for global_mvn without a stats file gets stage 5's; one with its own keeps it
        ("normalize: global_mvn\n", "uttmvn", "", "global_mvn", f"--normalize_conf stats_file={STATS}"),
        ("normalize: global_mvn\nnormalize_conf:\n  stats_file: my.npz\n", "uttmvn", "", "global_mvn", ""),
        # frontend none: the encoder owns its features, global_mvn is not applied
        ("frontend: none\nnormalize: none\n", "global_mvn", "", "none", ""),
        # --cls_args count as part of the config
        ("normalize: utterance_mvn\n", "uttmvn", "--normalize global_mvn", "global_mvn", f"--normalize_conf stats_file={STATS}"),
        ("normalize: global_mvn\n", "uttmvn", "--normalize_conf stats_file=x.npz", "global_mvn", ""),
        ("normalize: utterance_mvn\n", "global_mvn", "--frontend=none", "utterance_mvn", ""),
    ],
)
def test_feats_normalize_precedence_as_espnet(tmp_path, cfg_text, feats_normalize, cls_args, normalize, opts):
    from espnet_cls.bin.config_facts import config_facts as recipe_facts

    cfg = tmp_path / "c.yaml"
    cfg.write_text(cfg_text)
    facts = recipe_facts(str(cfg), cls_args, feats_normalize, STATS)
    assert (facts["normalize"], facts["normalize_opts"]) == (normalize, opts)
    no_frontend = "frontend: none" in cfg_text or "frontend=none" in cls_args
    assert facts["frontend_opts"] == ("" if no_frontend else "--frontend_conf fs=16k")


def test_bad_feats_normalize_is_refused():
    from espnet_cls.bin.config_facts import config_facts as recipe_facts
    from espnet_cls.fileio import DataError

    with pytest.raises(DataError, match="feats_normalize"):
        recipe_facts(None, feats_normalize="globalmvn")
    with pytest.raises(DataError, match="audio_format"):
        recipe_facts(None, audio_format="mp3")


def test_stage6_passes_the_facts(recipe, shell_env, fake_python):
    # ESPnet's default feats_normalize with a config asking for global_mvn: stage 5's stats, the type, kaldi_ark
    args = _stage6_args(recipe, shell_env, fake_python, "normalize: global_mvn\n",
                        ["--classification_type", "multi-label", "--audio_format", "flac.ark"])
    assert opt_after(args, "--normalize") == []
    assert opt_after(args, "--normalize_conf") == [f"stats_file={STATS}"]
    assert opt_after(args, "--frontend_conf") == ["fs=16k"]
    assert opt_after(args, "--model_conf") == ["classification_type=multi-label"]
    assert opt_after(args, "--train_data_path_and_name_and_type")[0] == "dump/train/wav.scp,speech,kaldi_ark"
    assert opt_after(args, "--config") == ["conf/c.yaml"]


@pytest.mark.parametrize("extra, n_prepare", [([], 1), (["--skip_eval", "true"], 0), (["--inference_model", "absent.pth"], 0)])
def test_stage6_ends_with_the_onnx_export(recipe, shell_env, fake_python, extra, n_prepare):
    """The export stage 7's CPU jobs need is made at the end of stage 6 (its cost is training's), once;
    not when there is no stage 7 or no such checkpoint (stage 7 reports that)."""
    exp = recipe / "exp" / "cls_c"
    exp.mkdir(parents=True)
    (exp / "valid.acc.ave.pth").write_bytes(b"")  # as the (fake) trainer left it
    _stage6_args(recipe, shell_env, fake_python, "normalize: utterance_mvn\n", ["--inference_model", "valid.acc.ave.pth", *extra])
    prep = fake_python[1]("espnet_cls.bin.cls_inference")
    assert len(prep) == n_prepare
    for c in prep:
        assert opt_after(c, "--prepare_only") == ["true"] and opt_after(c, "--backend") == ["onnx"]
        assert opt_after(c, "--classification_model_file") == ["exp/cls_c/valid.acc.ave.pth"]


def test_stage6_global_mvn_overrides_the_config(recipe, shell_env, fake_python):
    args = _stage6_args(recipe, shell_env, fake_python, "normalize: utterance_mvn\n", ["--feats_normalize", "global_mvn"])
    assert opt_after(args, "--normalize") == ["global_mvn"]
    assert opt_after(args, "--normalize_conf") == [f"stats_file={STATS}"]
    assert opt_after(args, "--model_conf") == []
    assert opt_after(args, "--train_data_path_and_name_and_type")[0] == "dump/train/wav.scp,speech,sound"


def test_stage3_is_skipped_without_max_wav_duration(recipe, shell_env, fake_python):
    py, calls = fake_python
    make_dump(recipe)
    r = run_cls(recipe, [*REQUIRED, "--stage", "3", "--stop_stage", "3", "--python", str(py)], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max_wav_duration is not set, skipping stage 3" in r.stdout
    assert calls("espnet_cls.bin.filter_data") == []
    r = run_cls(recipe, [*REQUIRED, "--stage", "3", "--stop_stage", "3", "--python", str(py), "--max_wav_duration", "12",
                         "--min_wav_duration", "0.5"], shell_env)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = calls("espnet_cls.bin.filter_data")
    assert [run[-1] for run in runs] == ["dump/train", "dump/valid"]  # never the test sets
    assert all(opt_after(c, "--max_wav_duration") == ["12"] and opt_after(c, "--min_wav_duration") == ["0.5"] for c in runs)


ESPNET_STYLE_DATA_SH = """#!/usr/bin/env bash
# written here in the manner of ESPnet's egs2/*/cls1/local/data.sh: options, then db.sh under set -u
set -e
set -u
set -o pipefail
. utils/parse_options.sh
. ./db.sh
. ./path.sh
. ./cmd.sh
root=${1:-.}
if [ -z "${ESC50}" ]; then
    echo "Fill the value of 'ESC50' of db.sh"
    exit 1
fi
mkdir -p "${root}"
echo "${ESC50} ${AUDIOSET} ${FSD50K} ${VGGSOUND} ${BEANS} ${MELD} fold=${2:-1}" > "${root}/seen_db"
"""


def test_db_sh_is_sourced_by_an_espnet_style_data_sh(recipe, shell_env):
    (recipe / "local" / "data.sh").write_text(ESPNET_STYLE_DATA_SH)
    env = {k: v for k, v in shell_env.items() if k not in ("ESC50", "AUDIOSET")}
    r = run_cls(recipe, [*REQUIRED, "--stop_stage", "1", "--local_data_opts", "3"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = (recipe / "data" / "seen_db").read_text().split()
    assert seen == ["downloads/ESC-50-master", "downloads/audioset", "downloads/fsd50k", "downloads/vggsound",
                    "downloads", "downloads", "fold=3"]
    # an edited (or exported) location wins
    r = run_cls(recipe, [*REQUIRED, "--stop_stage", "1"], {**env, "ESC50": "/db/ESC-50"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (recipe / "data" / "seen_db").read_text().split()[0] == "/db/ESC-50"


def test_config_facts_cli(repo_root, shell_env, tmp_path):
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("frontend: default\nnormalize: global_mvn\nmodel_conf:\n  classification_type: multi-label\n")
    r = subprocess.run([sys.executable, "-m", "espnet_cls.bin.config_facts", "--config", str(cfg), "--fs", "8k",
                        "--stats_file", "s/feats_stats.npz"], cwd=repo_root, env=shell_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    facts = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert facts["frontend"] == "default" and facts["frontend_opts"] == "--frontend_conf fs=8k"
    assert facts["normalize"] == "global_mvn" and facts["normalize_opts"] == "--normalize_conf stats_file=s/feats_stats.npz"
    assert facts["classification_type"] == "multi-label" and facts["speech_type"] == "sound"
    assert "stats_file" in facts["info"]
    # a bad value: one line naming it, exit 1, no traceback
    r = subprocess.run([sys.executable, "-m", "espnet_cls.bin.config_facts", "--config", str(cfg), "--cls_args",
                        "--model_conf classification_type=multi-lable"], cwd=repo_root, env=shell_env,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and r.stdout == ""
    assert "multi-lable" in r.stderr and "Traceback" not in r.stderr
    # no model code is imported: the facts cost a yaml read, not a torch start
    r = subprocess.run([sys.executable, "-c", "import sys; from espnet_cls.bin import config_facts; "
                        "print('torch' in sys.modules)"], cwd=repo_root, env=shell_env, capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_run_sh_refuses_an_unknown_corpus(repo_root, shell_env):
    """run.sh's own --corpus is checked before anything runs; the two demo scripts are wrappers of run.sh."""
    for script, args in [("run.sh", ["--corpus", "nope"]), ("run.sh", ["--stage", "6", "--corpus=nope"]),
                         ("run_lid.sh", ["--corpus", "nope"]), ("run_multilabel.sh", ["--corpus", "nope"])]:
        r = subprocess.run(["bash", script, *args], cwd=repo_root, env=shell_env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 2, (script, r.stdout, r.stderr)
        assert "unknown --corpus nope (instruments, instruments_mix or lid)" in r.stderr
    r = subprocess.run(["bash", "run.sh", "--corpus"], cwd=repo_root, env=shell_env, capture_output=True, text=True)
    assert r.returncode == 2 and "--corpus needs a value" in r.stderr
