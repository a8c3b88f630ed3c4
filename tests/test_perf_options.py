"""Performance options of the trainer: num_threads sets torch's intra-op threads for CPU training."""

from __future__ import annotations

import torch
from train_helpers import make_corpus, train_args, write_yaml

from espnet_cls.config import build_parser, resolve_config
from espnet_cls.train.trainer import Trainer


def test_num_threads_is_read_and_applied(tmp_path):
    c = make_corpus(tmp_path, n_train=6, n_valid=3)
    y = write_yaml(tmp_path)
    config = resolve_config(train_args(c, y, tmp_path / "exp", "--num_threads", "2"), build_parser())
    assert config["num_threads"] == 2
    before = torch.get_num_threads()
    try:
        Trainer(config).setup()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert resolve_config(train_args(c, y, tmp_path / "exp2"), build_parser())["num_threads"] == 0
