"""Batch samplers: folded / numel / unsorted / sorted, per-epoch order and rank split."""

from __future__ import annotations

import pytest

from espnet_cls.fileio import DataError
from espnet_cls.train.sampler import EpochBatches, build_batches


def _shapes(n=20):
    speech = {f"u{i:02d}": [1000 * (i + 1)] for i in range(n)}
    label = {k: [1] for k in speech}
    return speech, label


def test_folded_halves_batch_with_label_fold_1_like_espnet():
    speech, label = _shapes()
    b = build_batches([speech, label], "folded", 8, fold_lengths=[160000, 1])
    assert all(len(x) <= 4 for x in b) and sum(len(x) for x in b) == 20
    b2 = build_batches([speech], "folded", 8, fold_lengths=[10000])
    # long clips (>= 10000 samples) get folded batches
    for batch in b2:
        longest = max(speech[k][0] for k in batch)
        assert len(batch) <= max(1, int(8 / (1 + longest // 10000)))
    assert sorted(k for x in b2 for k in x) == sorted(speech)
    # inside a batch: longest first (sort_in_batch descending)
    assert all(speech[x[0]][0] >= speech[x[-1]][0] for x in b2)


def test_numel_and_unsorted_and_sorted():
    speech, _ = _shapes()
    b = build_batches([speech], "numel", 4, batch_bins=40000)
    for batch in b[:-1]:
        assert len(batch) * max(speech[k][0] for k in batch) <= 40000 or len(batch) == 1
    assert sorted(k for x in b for k in x) == sorted(speech)
    u = build_batches([{k: None for k in speech}], "unsorted", 6)
    assert [k for x in u for k in x] == list(speech) and len(u) == 3
    s = build_batches([speech], "sorted", 6)
    assert [len(x) for x in s] == [6, 7, 7]  # ESPnet: evenly split, each >= batch_size
    with pytest.raises(DataError):
        build_batches([speech], "bogus", 4)


def test_epoch_order_deterministic_and_rank_split():
    speech, _ = _shapes()
    b = build_batches([speech], "sorted", 4)
    e1 = EpochBatches(b, shuffle=True, seed=5).epoch(1)
    assert e1 == EpochBatches(b, shuffle=True, seed=5).epoch(1)
    assert e1 != EpochBatches(b, shuffle=True, seed=5).epoch(2)
    r0 = EpochBatches(b, shuffle=True, seed=5, rank=0, world_size=2).epoch(1)
    r1 = EpochBatches(b, shuffle=True, seed=5, rank=1, world_size=2).epoch(1)
    assert len(r0) == len(r1) == len(e1)
    for full, a, c in zip(e1, r0, r1):
        assert sorted(a + c) == sorted(full) and not set(a) & set(c)


def test_balanced_sampling_follows_weights():
    speech, _ = _shapes()
    b = build_batches([speech], "sorted", 4)
    w = {k: (100.0 if k == "u00" else 1.0) for k in speech}
    eb = EpochBatches(b, shuffle=True, seed=0, weights=w, batch_size=4, lengths={k: v[0] for k, v in speech.items()})
    keys = [k for x in eb.epoch(1) + eb.epoch(2) for k in x]
    assert len(keys) == 40 and keys.count("u00") > 20  # p(u00) = 100/119


def test_equal_lengths_mix_classes_and_are_redrawn_each_epoch():
    import numpy as np

    # fixed-length clips whose keys group the classes, as in most classification corpora
    shapes = {f"c{c}-{i:03d}": [32000] for c in range(5) for i in range(40)}

    def make(rng):
        return build_batches([shapes], "folded", 20, fold_lengths=[160000], rng=rng)

    b = make(np.random.RandomState(0))
    assert all(len({k[:2] for k in x}) >= 3 for x in b)  # key order would give one class per batch
    eb = EpochBatches(b, shuffle=True, seed=1, rebuild=make)
    e1, e2 = eb.epoch(1), eb.epoch(2)
    assert e1 == EpochBatches(b, shuffle=True, seed=1, rebuild=make).epoch(1)
    assert {frozenset(x) for x in e1} != {frozenset(x) for x in e2}
    assert sorted(k for x in e1 for k in x) == sorted(shapes)
