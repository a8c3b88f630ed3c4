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
