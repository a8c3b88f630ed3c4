"""Bad-input catalogue, part 1: configs, weight files, disk full -> one clear line (espnet_cls.cli).

Every case runs a real worker of espnet_cls/bin in-process through ``run_main`` (the one
place that turns exceptions into console lines) and asserts the exit status, that the
message names the file (and line or key), that no traceback is printed, and that no
partial output is left. See docs/robustness.md for the table.
"""

from __future__ import annotations

import errno
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robust_helpers import assert_one_clear_error, listing, no_temp_files, run_worker, tmpfs, write  # noqa: E402
from train_helpers import TINY_YAML, make_corpus  # noqa: E402

from espnet_cls.cli import error_line  # noqa: E402
from espnet_cls.fileio import DataError  # noqa: E402

GOOD_YAML = TINY_YAML.replace("CTYPE", "multi-class").replace("max_epoch: 3", "max_epoch: 1")


def data_args(c: dict) -> list[str]:
    return [
        "--token_list", str(c["token_list"]),
        "--train_data_path_and_name_and_type", f"{c['train']}/wav.scp,speech,sound",
        "--train_data_path_and_name_and_type", f"{c['train']}/text,label,text",
        "--valid_data_path_and_name_and_type", f"{c['valid']}/wav.scp,speech,sound",
        "--valid_data_path_and_name_and_type", f"{c['valid']}/text,label,text",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    c = make_corpus(root, n_train=6, n_valid=3)
    c["root"] = root
    return c


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A one-epoch experiment dir (config.yaml + valid.acc.best.pth)."""
    import io
    from contextlib import redirect_stderr

    from espnet_cls.bin import cls_train

    exp = tmp_path_factory.mktemp("exp") / "cls_tiny"
    cfg = write(corpus["root"] / "good.yaml", GOOD_YAML)
    with redirect_stderr(io.StringIO()):
        rc = cls_train.main(["--config", str(cfg), "--output_dir", str(exp), *data_args(corpus)])
    assert not rc and (exp / "valid.acc.best.pth").exists()
    return exp


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "name, text, needles",
    [
        ("invalid.yaml", "batch_size: [1,\n", ["invalid.yaml:", "invalid yaml"]),
        ("list.yaml", "- a\n- b\n", ["list.yaml", "mapping"]),
        ("epoch.yaml", GOOD_YAML.replace("max_epoch: 1", "max_epoch: two"), ["epoch.yaml", "max_epoch", "'two'"]),
        ("lr.yaml", GOOD_YAML.replace("lr: 0.003", "lr: fast"), ["optim_conf.lr", "'fast'"]),
        ("unknown.yaml", GOOD_YAML + "max_epochs: 3\n", ["unknown.yaml", "max_epochs"]),
        ("tab.yaml", "batch_size:\t8\n\tmax_epoch: 1\n", ["tab.yaml", "invalid yaml"]),
        ("batch.yaml", GOOD_YAML.replace("batch_size: 8", "batch_size: eight"), ["batch.yaml", "batch_size"]),
    ],
)
def test_bad_config_is_one_line_naming_file(corpus, tmp_path, capsys, name, text, needles):
    cfg = write(tmp_path / name, text)
    out = tmp_path / "exp"
    rc, console = run_worker("cls_train", ["--config", cfg, "--output_dir", out, *data_args(corpus)], capsys)
    assert rc == 1
    assert_one_clear_error(console, *needles)
    assert not (out / "checkpoint.pth").exists() and not list(out.glob("*.pth"))


def test_missing_config_file(corpus, tmp_path, capsys):
    rc, console = run_worker("cls_train", ["--config", tmp_path / "nope.yaml", "--output_dir", tmp_path / "e", *data_args(corpus)], capsys)
    assert rc == 1
    assert_one_clear_error(console, "nope.yaml", "cannot open")


def test_empty_token_list(corpus, tmp_path, capsys):
    tl = write(tmp_path / "token_list", "")
    args = data_args(corpus)
    args[1] = str(tl)
    rc, console = run_worker("cls_train", ["--config", write(tmp_path / "g.yaml", GOOD_YAML), "--output_dir", tmp_path / "e", *args], capsys)
    assert rc == 1
    assert_one_clear_error(console, "token_list")


# ----------------------------------------------------------------------------- weight files


def _pickled(path: Path) -> Path:
    torch.save({"w": np.zeros(3), "obj": {1, 2}}, path)  # numpy arrays and sets need full pickle
    return path


def _truncated(src: Path, path: Path, frac: float = 0.4) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * frac)])
    return path


def _inference(trained: Path, corpus: dict, model: Path, out: Path, capsys):
    return run_worker(
        "cls_inference",
        [
            "--data_path_and_name_and_type", f"{corpus['valid']}/wav.scp,speech,sound",
            "--classification_train_config", trained / "config.yaml",
            "--classification_model_file", model,
            "--output_dir", out,
        ],
        capsys,
    )  # fmt: skip


def test_pickled_pth_in_inference_says_pickle_never_weights_only_false(trained, corpus, tmp_path, capsys):
    rc, console = _inference(trained, corpus, _pickled(tmp_path / "m.pth"), tmp_path / "out", capsys)
    assert rc == 1
    line = assert_one_clear_error(console, "m.pth", "pickled", "weights_only=True", "safetensors")
    assert "weights_only=False" not in console and "False" not in line
    assert listing(tmp_path / "out") == []


def test_truncated_pth_in_inference(trained, corpus, tmp_path, capsys):
    m = _truncated(trained / "valid.acc.best.pth", tmp_path / "cut.pth")
    rc, console = _inference(trained, corpus, m, tmp_path / "out", capsys)
    assert rc == 1
    assert_one_clear_error(console, "cut.pth", "truncated or corrupt")
    assert "Errno 22" not in console.split("ERROR")[-1].split("(")[0]
    assert listing(tmp_path / "out") == []


def test_empty_pth_in_inference(trained, corpus, tmp_path, capsys):
    m = write(tmp_path / "empty.pth", b"")
    rc, console = _inference(trained, corpus, m, tmp_path / "out", capsys)
    assert rc == 1
    assert_one_clear_error(console, "empty.pth", "truncated or corrupt")


def test_missing_model_file_in_inference(trained, corpus, tmp_path, capsys):
    rc, console = _inference(trained, corpus, tmp_path / "absent.pth", tmp_path / "out", capsys)
    assert rc == 1
    assert_one_clear_error(console, "absent.pth", "not found")


def _model_folder(trained: Path, d: Path, weights: Path, name: str) -> Path:
    d.mkdir()
    shutil.copy(trained / "config.yaml", d / "config.yaml")
    shutil.copy(weights, d / name)
    return d


def test_pickled_pth_from_pretrained_folder(trained, tmp_path):
    from espnet_cls.classifier import Classifier

    d = _model_folder(trained, tmp_path / "m", _pickled(tmp_path / "p.pth"), "valid.acc.best.pth")
    with pytest.raises(DataError) as ei:
        Classifier.from_pretrained(d)
    msg = str(ei.value)
    assert "valid.acc.best.pth" in msg and "pickled" in msg and "weights_only=False" not in msg


def test_truncated_safetensors_from_pretrained_folder(trained, tmp_path):
    from espnet_cls.classifier import Classifier
    from espnet_cls.pack import load_state_dict, save_safetensors

    st = tmp_path / "w.safetensors"
    save_safetensors(load_state_dict(trained / "valid.acc.best.pth"), st)
    d = _model_folder(trained, tmp_path / "m", _truncated(st, tmp_path / "cut.safetensors", 0.5), "model.safetensors")
    with pytest.raises(DataError, match=r"model\.safetensors: .*truncated or corrupt"):
        Classifier.from_pretrained(d)


def test_pickled_pth_in_pack_leaves_no_zip(trained, tmp_path, capsys):
    out = tmp_path / "m.zip"
    rc, console = run_worker(
        "pack",
        ["--classification_train_config", trained / "config.yaml", "--classification_model_file", _pickled(tmp_path / "p.pth"), "--outpath", out],
        capsys,
    )
    assert rc == 1
    assert_one_clear_error(console, "p.pth", "pickled")
    assert not out.exists() and no_temp_files(tmp_path)


def test_pickled_init_param(corpus, tmp_path, capsys):
    cfg = write(tmp_path / "g.yaml", GOOD_YAML)
    p = _pickled(tmp_path / "init.pth")
    rc, console = run_worker(
        "cls_train", ["--config", cfg, "--output_dir", tmp_path / "e", "--init_param", str(p), *data_args(corpus)], capsys
    )
    assert rc == 1
    assert_one_clear_error(console, "init.pth", "pickled")
    assert not list((tmp_path / "e").glob("*.pth"))


def test_pickled_resume_checkpoint(corpus, tmp_path, capsys):
    cfg = write(tmp_path / "g.yaml", GOOD_YAML)
    exp = tmp_path / "e"
    _pickled(exp / "checkpoint.pth") if exp.mkdir() is None else None
    rc, console = run_worker("cls_train", ["--config", cfg, "--output_dir", exp, "--resume", "true", *data_args(corpus)], capsys)
    assert rc == 1
    assert_one_clear_error(console, "checkpoint.pth", "pickled")


# ----------------------------------------------------------------------------- disk full


def test_disk_full_in_training_names_the_file(corpus, tmp_path, capsys):
    full = tmp_path / "full"
    umount = tmpfs(full, "64k")
    if umount is None:
        pytest.skip("needs root to mount a 64 KiB tmpfs")
    try:
        cfg = write(tmp_path / "g.yaml", GOOD_YAML)
        rc, console = run_worker("cls_train", ["--config", cfg, "--output_dir", full / "exp", *data_args(corpus)], capsys)
        assert rc == 1
        line = assert_one_clear_error(console, "No space left on device", str(full / "exp"))
        assert "basic_ios" not in console and "unexpected pos" not in line
        assert no_temp_files(full)
    finally:
        umount()


def test_disk_full_atomic_write_names_output(tmp_path):
    from espnet_cls.fileio import write_kv

    full = tmp_path / "full"
    umount = tmpfs(full, "8k")
    if umount is None:
        pytest.skip("needs root to mount a tmpfs")
    try:
        with pytest.raises(OSError) as ei:
            write_kv(full / "wav.scp", ((f"u{i:06d}", "x" * 100) for i in range(1000)))
        assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(full / "wav.scp")
        assert error_line(ei.value)[0] == f"No space left on device: {full / 'wav.scp'}"
        assert listing(full) == []
    finally:
        umount()


# ----------------------------------------------------------------------------- error_line itself


def test_error_line_kinds():
    import yaml

    assert error_line(DataError("bad", "a/text", 3)) == ("a/text:3: bad", False)
    assert error_line(OSError(errno.ENOSPC, "No space left on device", "/x/y")) == ("No space left on device: /x/y", False)
    assert error_line(FileNotFoundError(errno.ENOENT, "No such file or directory", "f")) == ("No such file or directory: f", False)
    try:
        yaml.safe_load("a: [1,\n")
    except yaml.YAMLError as e:
        msg, bug = error_line(e)
        assert msg.startswith("line 2: invalid yaml") and not bug
    msg, bug = error_line(pickle.UnpicklingError("Weights only load failed ... weights_only=False ..."))
    assert "weights_only=False" not in msg and not bug
    msg, bug = error_line(ZeroDivisionError("division by zero"))
    assert msg == "ZeroDivisionError: division by zero" and bug


def test_unexpected_exception_logs_traceback_then_one_line(caplog):
    from espnet_cls.cli import run_main

    def main(argv):
        raise ZeroDivisionError("boom")

    with pytest.raises(SystemExit) as ei:
        run_main(main, [])
    assert ei.value.code == 1
    msgs = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "Traceback" in msgs[0] and "boom" in msgs[0]
    assert msgs[-1] == "ZeroDivisionError: boom"


# ----------------------------------------------------------------------------- Python API


def test_api_bad_audio_arrays_and_files(trained, tmp_path):
    from espnet_cls.audio import AudioError
    from espnet_cls.classifier import Classifier

    clf = Classifier.from_pretrained(trained)
    x = np.zeros(8000, dtype=np.float32)
    x[100] = np.nan
    with pytest.raises((AudioError, ValueError), match="NaN/Inf"):
        clf(x, sample_rate=16000)
    with pytest.raises((AudioError, ValueError), match="zero samples|no samples"):
        clf(np.zeros(0, dtype=np.float32), sample_rate=16000)
    bad = write(tmp_path / "junk.wav", b"RIFF not really audio" * 5)
    with pytest.raises((AudioError, DataError, ValueError), match="junk.wav"):
        clf.predict_files([bad])
