"""Config schema and resolution of cls_train (yaml + --key value overrides)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from espnet_cls.config import all_defaults, parse_conf_value, resolve_config
from espnet_cls.fileio import DataError


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("max_epoch: 3\nbatch_sise: 4\n")
    with pytest.raises(DataError) as e:
        resolve_config(["--config", str(y)])
    msg = str(e.value)
    assert "batch_sise" in msg and str(y) in msg
    assert "batch_size" in msg and "encoder_conf" in msg and "max_epoch" in msg  # valid keys listed


def test_cli_overrides_yaml_and_nested_conf_merges(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("max_epoch: 3\nfrontend_conf: {n_mels: 32, hop_length: 160}\n"
                 "encoder_conf: {channels: [8, 16], dropout: 0.1}\nbest_model_criterion: [[valid, mAP, max]]\n")
    tl = tmp_path / "tokens"
    tl.write_text("a\nb\n<blank>\n<unk>\n")
    c = resolve_config(["--config", str(y), "--max_epoch", "7", "--frontend_conf", "fs=16k",
                        "--encoder_conf", "dropout=0.3,extra.depth=2", "--token_list", str(tl),
                        "--fold_length", "160000", "--fold_length", "1", "--patience", "none",
                        "--init_param", "a.pth:encoder", "b.pth", "--use_amp", "true"])
    assert c["max_epoch"] == 7
    assert c["frontend_conf"] == {"n_mels": 32, "hop_length": 160, "fs": "16k"}
    assert c["encoder_conf"] == {"channels": [8, 16], "dropout": 0.3, "extra": {"depth": 2}}
    assert c["token_list"] == ["a", "b", "<blank>", "<unk>"]
    assert c["fold_length"] == [160000, 1]
    assert c["patience"] is None and c["use_amp"] is True
    assert c["init_param"] == ["a.pth:encoder", "b.pth"]
    assert c["best_model_criterion"] == [["valid", "mAP", "max"]]
    # a yaml mapping replaces the conf
    c2 = resolve_config(["--config", str(y), "--frontend_conf", "{n_mels: 64}"])
    assert c2["frontend_conf"] == {"n_mels": 64}


def test_defaults_cover_trainer_and_model_keys():
    d = all_defaults()
    for k in ("batch_type", "batch_bins", "valid_batch_size", "optim", "scheduler", "accum_grad", "use_amp",
              "keep_nbest_models", "best_model_criterion", "freeze_param", "init_param", "frontend", "encoder",
              "encoder_conf", "normalize", "model_conf", "token_list", "output_dir"):
        assert k in d


def test_unknown_cli_option_exits_2():
    with pytest.raises(SystemExit) as e:
        resolve_config(["--no_such_option", "1"])
    assert e.value.code == 2


def test_print_config(tmp_path, capsys):
    from espnet_cls.bin.cls_train import main

    y = tmp_path / "c.yaml"
    y.write_text("max_epoch: 2\n")
    assert main(["--config", str(y), "--print_config", "--batch_size", "5"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["max_epoch"] == 2 and out["batch_size"] == 5


def test_parse_conf_value_errors():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_conf_value("[1, 2]", {})
    assert parse_conf_value("a=1,b=x", {"c": 1}) == {"c": 1, "a": 1, "b": "x"}


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf").glob("train_*.yaml")))
def test_shipped_configs_resolve_and_build(name, repo_root, tmp_path):
    import torch

    from espnet_cls.tasks.cls import build_model

    tl = tmp_path / "tokens"
    tl.write_text("a\nb\nc\n<blank>\n<unk>\n")
    c = resolve_config(["--config", str(repo_root / "conf" / f"{name}.yaml"), "--token_list", str(tl),
                        "--frontend_conf", "fs=16k", "--normalize", "utterance_mvn"])
    model = build_model(c)
    assert model.classification_type == ("multi-label" if "multilabel" in name else "multi-class")
    model.eval()
    with torch.no_grad():
        p = model.predict_proba(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    assert p.shape == (2, 3)
