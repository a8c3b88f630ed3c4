"""Performance options of the trainer: num_threads sets torch's intra-op threads for CPU training (0: the
cores the process may use); convolutions run in channels-last memory with NCHW's values."""

from __future__ import annotations

import os

import pytest
import torch
from train_helpers import make_corpus, train_args, write_yaml

from espnet_cls.config import build_parser, resolve_config
from espnet_cls.models.encoders._layers import conv2d_channels_last
from espnet_cls.train.trainer import Trainer, cpu_training_threads


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


def test_num_threads_0_uses_the_cores_of_the_affinity_mask(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert cpu_training_threads(0) == 4  # e.g. a Slurm allocation of 4 CPUs
    assert cpu_training_threads(3) == 3  # an explicit num_threads wins
    assert cpu_training_threads(0, world_size=2) == 2  # two CPU ranks share the node's cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cpu_training_threads(0, world_size=8) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert cpu_training_threads(0) == 8  # capped


def test_training_threads_come_back_after_train(tmp_path, caplog):
    from espnet_cls.train.trainer import train

    c = make_corpus(tmp_path, n_train=6, n_valid=3)
    y = write_yaml(tmp_path)
    config = resolve_config(train_args(c, y, tmp_path / "exp", "--num_threads", "3", "--max_epoch", "1"), build_parser())
    before = torch.get_num_threads()
    with caplog.at_level("INFO", logger="espnet_cls.train.trainer"):
        train(config)
    assert torch.get_num_threads() == before
    assert "CPU training with 3 intra-op thread(s)" in caplog.text


@pytest.mark.parametrize("cin,stride,padding", [(1, 2, 0), (8, 2, 0), (8, 1, 1)])
def test_channels_last_conv_equals_nchw_forward_and_backward(cin, stride, padding):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, 16, 3, stride, padding)
    x = torch.randn(3, cin, 21, 17, requires_grad=True)
    y_ref = conv(x)
    g = torch.randn_like(y_ref)
    ref = torch.autograd.grad(y_ref, [x, conv.weight, conv.bias], g)
    y = conv2d_channels_last(x, conv)
    assert y.is_contiguous(memory_format=torch.channels_last) or cin == 1
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(y, [x, conv.weight, conv.bias], g), ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


_FAULTS = """
import resource, sys
from espnet_cls.cli import tune_malloc
applied = tune_malloc()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = bytearray(48 << 20); del a  # first 48 MiB block: faulted in once either way
f0 = faults()
for _ in range(10):
    a = bytearray(48 << 20)  # a block above glibc's 32 MiB mmap limit, allocated, touched and freed again
    del a
print(applied, faults() - f0)
"""


def _minor_faults(env_value):
    import os
    import subprocess
    import sys

    env = dict(os.environ, ESPNET_CLS_MALLOC_TUNING=env_value)
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied == "True", int(faults)


def test_tune_malloc_reuses_large_blocks_instead_of_faulting_them_in_again():
    import sys

    if not sys.platform.startswith("linux"):
        return
    applied, tuned = _minor_faults("1")
    skipped, default = _minor_faults("0")
    assert applied and not skipped
    # 10 x 48 MiB = 122880 pages of 4 KiB (bytearray: plain malloc + memset): glibc's
    # default mmaps each block anew (every page faults in again); tuned, the freed block is reused
    assert default > 60000, default
    assert tuned < 25000, tuned  # at most two of the ten blocks
