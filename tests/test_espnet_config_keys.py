"""ESPnet cls1 training-config keys with ESPnet's meaning (issue 14, items 1 and 4).

The configs here are written for these tests; they use every key and value pattern of the
yamls under ESPnet's ``egs2/*/cls1/conf/`` (none/null strings, both mixup names,
``utt2weight_file`` + ``length_weighted``, ``valid_batch_type``, ``epoch_mAP`` criteria,
``keep_nbest_models`` above the number of epochs, ``--dry_run``) on a tiny CNN or a tiny BEATs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from espnet_cls.bin.cls_train import main as cls_train
from espnet_cls.config import build_parser, resolve_config
from espnet_cls.fileio import DataError
from espnet_cls.tasks.cls import build_model, espnet_model_conf
from espnet_cls.train.reporter import average_nbest, epoch_results_line, format_timespan
from espnet_cls.train.sampler import build_batches, weighted_batches

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_helpers import make_corpus, train_args, write_yaml  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _resolve(tmp_path: Path, text: str, *extra: str) -> dict:
    y = tmp_path / "conf.yaml"
    y.write_text(text)
    tok = tmp_path / "tokens"
    tok.write_text("a\nb\n<unk>\n")
    return resolve_config(["--config", str(y), "--token_list", str(tok), *extra], build_parser())


# ---------------------------------------------------------------- yaml values as ESPnet reads them
@pytest.mark.parametrize("word", ["none", "None", "null", "nil", "NULL"])
def test_none_strings_in_yaml_are_none(tmp_path, word):
    c = _resolve(tmp_path, f"patience: {word}\nvalid_batch_size: {word}\nscheduler: {word}\nfrontend: {word}\n"
                           f"normalize: {word}\ninit: {word}\nvalid_batch_type: {word}\n")
    for k in ("patience", "valid_batch_size", "scheduler", "frontend", "normalize", "init", "valid_batch_type"):
        assert c[k] is None, k


def test_yaml_strings_go_through_the_option_type(tmp_path):
    c = _resolve(tmp_path, "patience: '5'\nmax_epoch: '7'\nuse_amp: 'false'\ngrad_clip: '1'\nkeep_nbest_models: '5'\n")
    assert (c["patience"], c["max_epoch"], c["use_amp"], c["grad_clip"], c["keep_nbest_models"]) == (5, 7, False, 1.0, 5)
    # yaml numbers stay as they are (ESPnet keeps non-string defaults)
    c = _resolve(tmp_path, "patience: 5\ngrad_clip: 1\n")
    assert c["patience"] == 5 and c["grad_clip"] == 1


def test_bad_yaml_value_names_key_and_file(tmp_path):
    with pytest.raises(DataError) as e:
        _resolve(tmp_path, "patience: soon\n")
    msg = str(e.value)
    assert "patience" in msg and "soon" in msg and "conf.yaml" in msg


def test_unknown_key_is_still_an_error(tmp_path):
    with pytest.raises(DataError, match="unknown config key.*'mixup'"):
        _resolve(tmp_path, "mixup: true\n")


# ---------------------------------------------------------------- mixup under both names
def test_mixup_names():
    assert espnet_model_conf({"mixup_augmentation": True}) == {"mixup_probability": 1.0}
    assert espnet_model_conf({"mixup_augmentation": False})["mixup_probability"] == 0.0
    assert espnet_model_conf({"mixup_probability": 0.2}) == {"mixup_probability": 0.2}
    assert espnet_model_conf({"mixup_probability": 0.2, "mixup_alpha": 0.3})["mixup_alpha"] == 0.3
    assert espnet_model_conf({"lsm_weight": 0.1}) == {"lsm_weight": 0.1}
    with pytest.raises(ValueError, match="not both"):
        espnet_model_conf({"mixup_augmentation": True, "mixup_probability": 0.5})
    with pytest.raises(ValueError, match="mixup_augmentation must be true or false"):
        espnet_model_conf({"mixup_augmentation": 0.5})


def test_mixup_augmentation_builds_a_mixing_model():
    cfg = {"token_list": ["a", "b", "<unk>"], "frontend": "default", "frontend_conf": {"n_fft": 128, "n_mels": 8},
           "encoder": "cnn", "encoder_conf": {"channels": [4]},
           "model_conf": {"classification_type": "multi-label", "mixup_augmentation": True, "lsm_weight": 0.0,
                          "log_epoch_metrics": True}}
    model = build_model(cfg)
    assert model.mixup_probability == 1.0 and model.mixup_alpha == 0.8


# ---------------------------------------------------------------- samplers
def test_length_batch_type_is_espnets_length_sampler():
    shapes = [{f"u{i}": [n] for i, n in enumerate([10, 20, 30, 40, 50, 60])}]
    b = build_batches(shapes, "length", batch_size=1, batch_bins=70, sort_in_batch="ascending")
    # a batch closes once n x (newest length) > 70, the crossing key included:
    # u0,u1 (2x20=40), +u2 (3x30=90>70) -> [u0,u1,u2]; u3,u4 (2x50=100>70) -> [u3,u4]; [u5]
    assert b == [["u0", "u1", "u2"], ["u3", "u4"], ["u5"]]


def test_weighted_batches_follow_weights_and_lengths():
    weights = {"a": 8.0, "b": 1.0, "c": 1.0, "d": 0.0}
    lengths = [{"a": 100, "b": 300, "c": 200, "d": 50}]
    counts = {k: 0 for k in weights}
    for seed in range(200):
        batches = weighted_batches("length_weighted", weights, np.random.RandomState(seed), batch_size=1,
                                   batch_bins=450, lengths=lengths)
        flat = [k for bt in batches for k in bt]
        assert len(flat) == 4  # len(keys) draws per epoch
        for bt in batches:  # sort_in_batch descending
            assert [lengths[0][k] for k in bt] == sorted((lengths[0][k] for k in bt), reverse=True)
        for k in flat:
            counts[k] += 1
    assert counts["d"] == 0
    assert 0.7 < counts["a"] / 800 < 0.9
    plain = weighted_batches("weighted", weights, np.random.RandomState(0), batch_size=3)
    assert [len(x) for x in plain] == [3, 1] or [len(x) for x in plain] == [4]


# ---------------------------------------------------------------- reporter formats
@pytest.mark.parametrize("sec,text", [(0.5, "0.5 seconds"), (1, "1 second"), (3.14159, "3.14 seconds"),
                                      (59.999, "60 seconds"), (62.53, "1 minute and 2.53 seconds"),
                                      (120, "2 minutes"), (3723.2, "1 hour, 2 minutes and 3.2 seconds"),
                                      (90061, "1 day, 1 hour and 1 minute")])
def test_format_timespan_as_humanfriendly(sec, text):
    # expected strings are humanfriendly.format_timespan's output (ESPnet's time= field)
    assert format_timespan(sec) == text


def test_epoch_results_line_format():
    entry = {"epoch": 3, "train": {"loss": 0.51234, "acc": 0.8125}, "valid": {"loss": 2345.6, "acc": 0.0001},
             "lr": 0.001, "phase_time": {"train": 2.5, "valid": 0.4}, "counts": {"train": 36, "valid": 9}}
    assert epoch_results_line(entry) == (
        "3epoch results: [train] loss=0.512, acc=0.812, optim0_lr0=1.000e-03, time=2.5 seconds, total_count=36, "
        "[valid] loss=2.346e+03, acc=1.000e-04, time=0.4 seconds, total_count=9")


def test_average_nbest_follows_espnet_rule(tmp_path):
    # keep_nbest_models: 5 after 2 epochs: ESPnet writes ave_1best only (and ave -> it)
    for e in (1, 2):
        torch.save({"w": torch.full((2,), float(e))}, tmp_path / f"{e}epoch.pth")
    hist = [{"epoch": 1, "valid": {"epoch_mAP": 0.2}}, {"epoch": 2, "valid": {"epoch_mAP": 0.4}}]
    average_nbest(tmp_path, hist, [["valid", "epoch_mAP", "max"]], 5)
    assert not (tmp_path / "valid.epoch_mAP.ave_2best.pth").exists()
    w = torch.load(tmp_path / "valid.epoch_mAP.ave_1best.pth", weights_only=True)["w"]
    assert torch.equal(w, torch.full((2,), 2.0))
    assert torch.equal(torch.load(tmp_path / "valid.epoch_mAP.ave.pth", weights_only=True)["w"], w)
    average_nbest(tmp_path, hist, [["valid", "epoch_mAP", "max"]], [1, 2])
    w2 = torch.load(tmp_path / "valid.epoch_mAP.ave_2best.pth", weights_only=True)["w"]
    assert torch.equal(w2, torch.full((2,), 1.5))


# ---------------------------------------------------------------- end to end on a tiny corpus
ESPNET_STYLE = """\
unused_parameters: true
init: xavier_normal
batch_type: length_weighted
utt2weight_file: WEIGHTS
valid_batch_type: length
batch_bins: 60000
accum_grad: 2
grad_clip: 1
optim: adamw
optim_conf: {lr: 3.0e-3, weight_decay: 1.0e-2, betas: [0.9, 0.98]}
scheduler: CosineAnnealingWarmupRestarts
scheduler_conf: {first_cycle_steps: 20, warmup_steps: 2, max_lr: 3.0e-3, min_lr: 5.0e-6}
patience: none
best_model_criterion:
-   - valid
    - epoch_mAP
    - max
keep_nbest_models: 5
use_amp: false
num_att_plot: 0
num_workers: 0
shuffle_within_batch: false
frontend: default
frontend_conf: {n_fft: 256, hop_length: 160, n_mels: 16}
normalize: utterance_mvn
encoder: cnn
encoder_conf: {channels: [8]}
decoder: linear
decoder_conf: {pooling: mean, dropout: 0.1}
model_conf:
    classification_type: multi-label
    mixup_augmentation: true
    lsm_weight: 0.0
    log_epoch_metrics: true
lightning_conf:
    log_every_n_steps: 250
    strategy: ddp
    strategy_conf: {find_unused_parameters: true}
    best_model_criterion:
    -   - valid/epoch_mAP
        - max
        - 1
use_tensorboard: false
use_matplotlib: false
"""


@pytest.fixture(scope="module")
def ml_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("espnet_keys")
    c = make_corpus(root, multilabel=True, n_train=24, n_valid=8)
    keys = [line.split()[0] for line in (c["train"] / "wav.scp").read_text().splitlines()]
    w = root / "utt2weight"
    w.write_text("".join(f"{k} {1.0 + (i % 3)}\n" for i, k in enumerate(keys)))
    return root, c, w


def test_espnet_style_config_trains_and_writes_epoch_map_models(ml_corpus, capfd):
    root, c, w = ml_corpus
    y = root / "espnet_style.yaml"
    y.write_text(ESPNET_STYLE.replace("WEIGHTS", str(w)))
    out = root / "exp"
    assert cls_train(train_args(c, y, out, "--max_epoch", "2")) == 0
    err = capfd.readouterr().err
    for name in ("1epoch.pth", "2epoch.pth", "valid.epoch_mAP.best.pth", "valid.epoch_mAP.ave_1best.pth",
                 "valid.epoch_mAP.ave.pth", "valid.acc.best.pth", "valid.mAP.best.pth"):
        assert (out / name).exists(), name
    assert not (out / "valid.epoch_mAP.ave_2best.pth").exists()  # keep_nbest_models 5 > 2 epochs
    assert (out / "latest.pth").resolve() == (out / "2epoch.pth").resolve()
    from espnet_cls.tasks.cls import load_model

    model, _ = load_model(out / "config.yaml", out / "valid.epoch_mAP.ave_1best.pth")  # stage 7's --inference_model
    assert model.classification_type == "multi-label"
    # the log line as train.log holds it, after the "(trainer:N) INFO: " prefix
    lines = [ln.split(" INFO: ", 1)[1] for ln in err.splitlines() if "epoch results:" in ln]
    assert len(lines) == 2
    assert re.search(r"\) INFO: 1epoch:train:1-1batch: loss=\d+\.\d{3}, acc=\d\.\d{3}, optim0_lr0=", err)
    pat = re.compile(r"^(\d+)epoch results: \[train\] (.*), \[valid\] (.*)$")
    for n, line in enumerate(lines, 1):
        m = pat.match(line)
        assert m and int(m.group(1)) == n, line
        valid = dict(kv.split("=", 1) for kv in m.group(3).split(", "))
        assert {"loss", "acc", "mAP", "epoch_mAP", "time", "total_count"} <= set(valid)
        assert 0.0 <= float(valid["epoch_mAP"]) <= 1.0
    # patience: none did not stop training; the config saved has it as null
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["patience"] is None and saved["valid_batch_type"] == "length"


def test_length_weighted_without_weights_file_is_a_clear_error(ml_corpus):
    root, c, _w = ml_corpus
    y = root / "noweights.yaml"
    y.write_text(ESPNET_STYLE.replace("utt2weight_file: WEIGHTS\n", ""))
    with pytest.raises(DataError, match="utt2weight_file"):
        cls_train(train_args(c, y, root / "exp_nw", "--max_epoch", "1"))
    y.write_text(ESPNET_STYLE.replace("WEIGHTS", str(root / "missing")))
    with pytest.raises(DataError, match="utt2weight_file: no such file"):
        cls_train(train_args(c, y, root / "exp_nw", "--max_epoch", "1"))


def test_dry_run_builds_and_exits(tmp_path):
    c = make_corpus(tmp_path, n_train=6, n_valid=3)
    out = tmp_path / "exp"
    assert cls_train(train_args(c, write_yaml(tmp_path), out, "--dry_run", "true")) == 0
    assert (out / "config.yaml").exists()
    assert not list(out.glob("*.pth"))
    # dry_run with a bad encoder key still fails: the model really is built
    with pytest.raises(DataError, match="encoder_conf"):
        cls_train(train_args(c, write_yaml(tmp_path), tmp_path / "exp2", "--dry_run", "true",
                             "--encoder_conf", "nonsense=1"))


# ---------------------------------------------------------------- what we cannot support: one clear line
def test_s3prl_frontend_is_refused_naming_key_and_file(tmp_path):
    c = make_corpus(tmp_path, n_train=6, n_valid=3)
    y = tmp_path / "wavlm.yaml"
    y.write_text("frontend: s3prl\nfrontend_conf:\n    frontend_conf: {upstream: wavlm_base_plus}\n"
                 "    download_dir: ./hub\n    multilayer_feature: true\nfreeze_param: [frontend.upstream]\n"
                 "encoder: transformer\nencoder_conf: {output_size: 16, attention_heads: 2, linear_units: 32,"
                 " num_blocks: 1, dropout_rate: 0.4, input_layer: linear}\npatience: 5\n")
    with pytest.raises(DataError) as e:
        cls_train(train_args(c, y, tmp_path / "exp", "--dry_run", "true"))
    msg = str(e.value)
    assert "frontend" in msg and "s3prl" in msg and "wavlm.yaml" in msg and "\n" not in msg


def test_lightning_best_model_criterion_adds_criteria():
    from espnet_cls.train.trainer import lightning_criteria

    conf = {"lightning_conf": {"best_model_criterion": [["valid/epoch_mAP", "max", 1]], "strategy": "ddp"}}
    assert lightning_criteria(conf) == [["valid", "epoch_mAP", "max"]]
    assert lightning_criteria({"lightning_conf": {}}) == []
    with pytest.raises(DataError, match="lightning_conf.best_model_criterion"):
        lightning_criteria({"lightning_conf": {"best_model_criterion": [["epoch_mAP", "max", 1]]}})


@pytest.mark.parametrize("patience,stops_after", [(0, 4), (1, 5), (2, 6), (5, None)])
def test_patience_is_espnets_rule(patience, stops_after):
    """ESPnet stops when epoch - best_epoch > patience (strictly)."""
    from types import SimpleNamespace

    from espnet_cls.train.trainer import Trainer

    losses = [0.9, 0.8, 0.7, 0.75, 0.76, 0.77, 0.78]  # best at epoch 3
    t = SimpleNamespace(config={"patience": patience, "early_stopping_criterion": ["valid", "loss", "min"]},
                        history=[])
    stopped = None
    for e, v in enumerate(losses, 1):
        t.history.append({"epoch": e, "valid": {"loss": v}})
        if Trainer._early_stop(t):
            stopped = e
            break
    assert stopped == stops_after


def test_text_encoder_keys_are_refused_with_the_reason(tmp_path):
    with pytest.raises(DataError) as e:
        _resolve(tmp_path, "text_encoder: hugging_face_transformers\ntext_encoder_conf: {model_name_or_path: bert}\n")
    assert "text_encoder" in str(e.value) and "no text input" in str(e.value) and "conf.yaml" in str(e.value)


def test_preencoder_none_is_accepted_other_choices_refused(tmp_path):
    cfg = {"token_list": ["a", "b", "<unk>"], "frontend": "default", "frontend_conf": {"n_fft": 128, "n_mels": 8},
           "encoder": "cnn", "encoder_conf": {"channels": [4]}, "preencoder": "none"}
    build_model(cfg)
    with pytest.raises(ValueError, match="preencoder: 'sinc'"):
        build_model({**cfg, "preencoder": "sinc"})
