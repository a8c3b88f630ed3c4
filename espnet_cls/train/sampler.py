"""Batch samplers (ESPnet's ``batch_type``) and the per-epoch batch order.

Batches are lists of utterance keys, built once from the shape files
(``utt N[,D…]`` lines: ``speech_shape``, ``label_shape``):

* ``folded`` — keys sorted by the first shape file's length; each batch has
  ``max(1, batch_size // (1 + factor))`` keys, with ``factor = max_i(L_i(k) // fold_length_i)``
  over the shape files for the batch's first (longest) key — ESPnet's FoldedBatchSampler.
  (Note: as in ESPnet, ``label_fold_length=1`` with one label per clip gives ``factor >= 1``,
  i.e. batches of ``batch_size // 2``.)
* ``sorted`` — sorted by length, ``len // batch_size`` batches of (nearly) equal size.
* ``numel`` — sorted by length; a batch grows while ``n_keys × (numel of its longest
  item, summed over the shape files) <= batch_bins``.
* ``length`` — sorted by length; keys join a batch until ``n_keys × (length of the newest,
  longest key, summed over the shape files) > batch_bins``; the key that crosses the limit is
  still in the batch (ESPnet's LengthBatchSampler with padding).
* ``unsorted`` — file order, split like ``sorted`` (no shape numbers needed).
* ``weighted`` / ``length_weighted`` (ESPnet's dev-branch WeightedBatchSampler and
  WeightedLengthBatchSampler, with ``utt2weight_file``): every epoch ``len(keys)`` keys are
  drawn with replacement, with probability proportional to the weight, then cut into batches
  of ``batch_size`` in draw order (``weighted``) or sorted by length and cut like ``length``
  (``length_weighted``); see :func:`weighted_batches`.

A too-small last batch is merged into the previous one.

Unlike ESPnet, clips of *equal* length are not ordered by key: classification corpora often
have fixed-length clips (2 s, 5 s, 10 s) and keys that group a class together
(``<corpus>-<class>-<n>``), so key order would fill each batch with one class (ruinous with
BatchNorm and SGD). Ties are broken at random, and the training batches are redrawn every
epoch with ``RandomState(seed + epoch)`` (the batch *sizes* still follow the lengths). Every epoch the training batch
order is shuffled with ``RandomState(seed + epoch)`` (same order on every rank); with
``world_size > 1`` each batch is split as ``batch[rank::world_size]`` (ESPnet's rule), so
the global batch is the same as with one process.

Balanced sampling (``balanced_sampling: true``) draws, each epoch, ``len(keys)`` keys with
replacement with probability proportional to ``utt2weight`` (a file beside the training
``wav.scp``), grouped into batches of ``batch_size`` sorted by length.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from espnet_cls.fileio import DataError, iter_kv

BATCH_TYPES = ("folded", "sorted", "numel", "length", "unsorted")
#: Batch types that draw the training keys by ``utt2weight_file`` every epoch.
WEIGHTED_BATCH_TYPES = ("weighted", "length_weighted")


def read_shape_file(path: str) -> dict[str, Optional[list[int]]]:
    """``utt N[,D…]`` lines → ``{utt: [N, D…]}``; a value that is not numbers (e.g. a
    ``wav.scp`` line used as a key list) gives ``None``."""
    out: dict[str, Optional[list[int]]] = {}
    for key, value, lineno in iter_kv(path, allow_empty_value=True):
        if key in out:
            raise DataError(f"duplicate key {key!r}", path, lineno)
        try:
            out[key] = [int(x) for x in value.split(",")] if value else None
        except ValueError:
            out[key] = None
    return out


def _merge_small_last(batches: list[list[str]], min_size: int) -> list[list[str]]:
    """Merge the last batch into the previous one when it has fewer than ``min_size`` keys."""
    if len(batches) > 1 and len(batches[-1]) < min_size:
        last = batches.pop()
        batches[-1].extend(last)
    return batches


def build_batches(
    shapes: Sequence[dict[str, Optional[list[int]]]],
    batch_type: str,
    batch_size: int,
    batch_bins: int = 1000000,
    fold_lengths: Sequence[int] = (),
    min_batch_size: int = 1,
    sort_in_batch: str = "descending",
    sort_batch: str = "ascending",
    drop_last: bool = False,
    rng: Optional[np.random.RandomState] = None,
) -> list[list[str]]:
    """Make the list of batches (lists of keys) from shape dicts.

    ``shapes[0]`` gives the keys and the sort length; every other shape dict must hold the same
    keys. ``fold_lengths`` pairs with ``shapes`` (folded only). Returns batches in
    ``sort_batch`` order, keys inside a batch in ``sort_in_batch`` order of length.
    ``rng``: break ties between equal lengths at random instead of by key (see module doc).
    """
    if batch_type not in BATCH_TYPES:
        raise DataError(f"batch_type must be one of {', '.join(BATCH_TYPES)}, got {batch_type!r}")
    if not shapes or not shapes[0]:
        raise DataError("no utterances to batch (empty shape/key file)")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    keys = list(shapes[0])
    if batch_type == "unsorted":
        n = max(len(keys) // batch_size, 1)
        if drop_last:
            batches = [keys[i * batch_size:(i + 1) * batch_size] for i in range(n)]
            return [b for b in batches if b]
        sizes = [len(keys) // n] * n
        for i in range(len(keys) % n):
            sizes[i] += 1
        batches, start = [], 0
        for s in sizes:
            batches.append(keys[start:start + s])
            start += s
        return batches

    for d in shapes:
        if set(d) != set(keys):
            raise DataError("shape files do not hold the same keys")
    for d in shapes:
        bad = [k for k, v in d.items() if v is None]
        if bad:
            raise DataError(f"shape file has no length for {bad[0]!r} (batch_type {batch_type} needs 'utt N' lines)")

    def numel(d: dict, k: str) -> int:
        return int(np.prod(d[k]))

    if rng is not None:
        tie = dict(zip(keys, rng.permutation(len(keys)).tolist()))
        keys.sort(key=lambda k: (shapes[0][k][0], tie[k]))
    else:
        keys.sort(key=lambda k: (shapes[0][k][0], k))
    batches: list[list[str]] = []
    if batch_type == "folded":
        if len(fold_lengths) != len(shapes):
            raise DataError(f"folded batching needs one --fold_length per shape file: {len(fold_lengths)} for {len(shapes)}")
        start = 0
        while start < len(keys):
            # ESPnet scans in ascending order but folds on the batch's first key; we fold on the
            # longest key the batch would get, so no batch exceeds the folded size.
            bs = batch_size
            while True:
                end = min(start + bs, len(keys))
                k = keys[end - 1]
                factor = max(int(d[k][0] / m) for d, m in zip(shapes, fold_lengths))
                new_bs = max(min_batch_size, int(batch_size / (1 + factor)))
                if new_bs >= bs:
                    break
                bs = new_bs
            batches.append(keys[start:start + bs])
            start += bs
    elif batch_type == "sorted":
        n = max(len(keys) // batch_size, 1)
        if drop_last:
            batches = [keys[i * batch_size:(i + 1) * batch_size] for i in range(n)]
        else:  # ESPnet: split as evenly as possible, every batch >= batch_size
            batches = [keys[i * len(keys) // n:(i + 1) * len(keys) // n] for i in range(n)]
    elif batch_type == "length":
        cur = []
        for k in keys:
            cur.append(k)
            if len(cur) * sum(d[k][0] for d in shapes) > batch_bins and len(cur) >= min_batch_size:
                batches.append(cur)
                cur = []
        if cur and (not drop_last or not batches):
            batches.append(cur)
    else:  # numel
        cur: list[str] = []
        for k in keys:
            cand = cur + [k]
            bins = len(cand) * sum(max(numel(d, x) for x in cand) for d in shapes)
            if cur and bins > batch_bins and len(cur) >= min_batch_size:
                batches.append(cur)
                cand = [k]
            cur = cand
        if cur:
            batches.append(cur)
    if drop_last and len(batches) > 1 and len(batches[-1]) < len(batches[-2]):
        batches.pop()
    batches = _merge_small_last(batches, min_batch_size)
    if sort_in_batch == "descending":
        batches = [list(reversed(b)) for b in batches]
    elif sort_in_batch != "ascending":
        raise DataError(f"sort_in_batch must be ascending or descending, got {sort_in_batch!r}")
    if sort_batch == "descending":
        batches.reverse()
    elif sort_batch != "ascending":
        raise DataError(f"sort_batch must be ascending or descending, got {sort_batch!r}")
    return batches


def length_batches(sorted_keys: Sequence[str], lengths: Sequence[dict], batch_bins: int,
                   min_batch_size: int = 1) -> list[list[str]]:
    """Cut keys (already sorted by ascending length, duplicates allowed) as ``length`` does."""
    batches: list[list[str]] = []
    cur: list[str] = []
    for k in sorted_keys:
        cur.append(k)
        if len(cur) * sum(d[k] for d in lengths) > batch_bins and len(cur) >= min_batch_size:
            batches.append(cur)
            cur = []
    if cur:
        batches.append(cur)
    return _merge_small_last(batches, min_batch_size)


def weighted_batches(batch_type: str, weights: dict[str, float], rng: np.random.RandomState, batch_size: int,
                     batch_bins: int = 1000000, lengths: Sequence[dict] = (), min_batch_size: int = 1,
                     sort_in_batch: str = "descending", sort_batch: str = "ascending") -> list[list[str]]:
    """One epoch of ``weighted`` / ``length_weighted`` batches (see module doc).

    ``lengths``: one ``{key: length}`` per shape file (``length_weighted``). Keys are drawn in
    key order with ``rng.choice(..., p=weight / sum)``, like ESPnet's samplers.
    """
    keys = sorted(weights)
    if not keys:
        raise DataError("utt2weight_file: no utterance to draw")
    p = np.asarray([weights[k] for k in keys], dtype=np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise DataError("utt2weight_file: weights must be finite, >= 0, with a positive sum")
    picked = [keys[i] for i in rng.choice(len(keys), size=len(keys), replace=True, p=p / p.sum())]
    if batch_type == "weighted":
        batches = [picked[i:i + batch_size] for i in range(0, len(picked), batch_size)]
        return _merge_small_last(batches, min_batch_size)
    if batch_type != "length_weighted":
        raise DataError(f"not a weighted batch type: {batch_type!r}")
    if not lengths:
        raise DataError("batch_type length_weighted needs shape files (lengths)")
    picked.sort(key=lambda k: lengths[0][k])
    batches = length_batches(picked, lengths, batch_bins, min_batch_size)
    if sort_in_batch == "descending":
        batches = [list(reversed(b)) for b in batches]
    if sort_batch == "descending":
        batches.reverse()
    return batches


class EpochBatches:
    """Per-epoch batch lists for one rank: shuffle (train), balanced draws, rank split.

    Args:
        batches: the fixed batches (from :func:`build_batches`).
        shuffle: shuffle the batch order each epoch (training).
        seed: base seed; epoch ``e`` uses ``RandomState(seed + e)``.
        rank, world_size: this process's part of every batch is ``batch[rank::world_size]``.
        weights: ``{key: weight}`` for balanced sampling (then ``batches`` gives only the batch size).
        lengths: ``{key: length}`` used to sort balanced batches.
        shuffle_within_batch: shuffle keys inside each batch.
        num_iters_per_epoch: if set, exactly this many batches per epoch (cycling the list).
        rebuild: ``rng -> batches``; if given, the batches are rebuilt every epoch (random ties).
    """

    def __init__(self, batches: list[list[str]], shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 weights: Optional[dict[str, float]] = None, batch_size: Optional[int] = None,
                 lengths: Optional[dict[str, int]] = None, shuffle_within_batch: bool = False,
                 num_iters_per_epoch: Optional[int] = None,
                 rebuild: Optional[Callable[[np.random.RandomState], list[list[str]]]] = None) -> None:
        self.batches = [list(b) for b in batches]
        self.rebuild = rebuild
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.weights = weights
        self.batch_size = batch_size or max(len(b) for b in batches)
        self.lengths = lengths or {}
        self.shuffle_within_batch = shuffle_within_batch
        self.num_iters_per_epoch = num_iters_per_epoch
        if world_size > 1:
            self.batches = _merge_small_last(self.batches, world_size)
            small = [b for b in self.batches if len(b) < world_size]
            if small:
                raise DataError(f"a batch has {len(small[0])} utterance(s) but there are {world_size} processes; "
                                "increase batch_size or the data")

    def epoch(self, epoch: int) -> list[list[str]]:
        """This rank's batches for ``epoch`` (1-based), deterministic given the seed."""
        rng = np.random.RandomState((self.seed + epoch) % (2**32))
        if self.weights is not None:
            keys = list(self.weights)
            p = np.asarray([self.weights[k] for k in keys], dtype=np.float64)
            if (p < 0).any() or p.sum() <= 0:
                raise DataError("utt2weight: weights must be >= 0 with a positive sum")
            draw = rng.choice(len(keys), size=len(keys), replace=True, p=p / p.sum())
            picked = [keys[i] for i in draw]
            batches = [picked[i:i + self.batch_size] for i in range(0, len(picked), self.batch_size)]
            batches = _merge_small_last(batches, max(self.world_size, 1))
            batches = [sorted(b, key=lambda k: -self.lengths.get(k, 0)) for b in batches]
        else:
            if self.rebuild is not None:
                batches = self.rebuild(np.random.RandomState((self.seed + 7919 * epoch) % (2**32)))
                if self.world_size > 1:
                    batches = _merge_small_last(batches, self.world_size)
            else:
                batches = [list(b) for b in self.batches]
            if self.shuffle:
                order = rng.permutation(len(batches))
                batches = [batches[i] for i in order]
        if self.shuffle_within_batch:
            batches = [[b[i] for i in rng.permutation(len(b))] for b in batches]
        if self.num_iters_per_epoch:
            n = self.num_iters_per_epoch
            batches = [batches[i % len(batches)] for i in range(n)]
        if self.world_size > 1:
            batches = [b[self.rank::self.world_size] for b in batches]
        return batches
