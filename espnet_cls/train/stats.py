"""Stage 5: shapes and feature statistics (ESPnet's ``--collect_stats true``), and their aggregation.

:func:`collect_stats` (one job) writes, for ``train`` and ``valid``, in ``output_dir/<mode>/``:

* ``speech_shape`` — ``utt num_samples``;
* ``label_shape`` — ``utt num_labels`` (words of the ``text`` line, ``<blank>`` included);
* ``feats_stats.npz`` — ``count`` (frames), ``sum`` [D], ``sum_square`` [D] of the frontend's
  features (``model.extract_feats``: before specaug and normalization), accumulated in
  float64 over the valid frames only. Skipped with ``frontend: none``.

The keys of the job's part come from the first ``--<mode>_shape_file`` (cls.sh passes the
split ``wav.scp``). :func:`aggregate_stats_dirs` merges the jobs' dirs: shapes concatenated
(sorted by key), statistics summed — the result does not depend on the number of jobs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from espnet_cls.fileio import DataError, atomic_write, read_kv, write_kv
from espnet_cls.train.dataset import ClsDataset, collate, parse_triple
from espnet_cls.train.sampler import read_shape_file

logger = logging.getLogger(__name__)
STATS_KEYS = ("count", "sum", "sum_square")


def _uses_frontend(config: dict) -> bool:
    fe = config.get("frontend")
    return config.get("input_size") is None and fe is not None and str(fe).lower() not in ("none", "null", "")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` atomically."""
    with atomic_write(path, mode="wb") as f:
        np.savez(f, **arrays)


def collect_one(model: Optional[torch.nn.Module], dataset: ClsDataset, text_path: Optional[str], out_dir: Path,
                batch_size: int, device: torch.device) -> None:
    """Shapes (and feature sums if ``model`` is given) of ``dataset`` → files in ``out_dir``."""
    keys = dataset.keys
    texts = read_kv(text_path, allow_empty_value=True) if text_path else {}
    speech_shape, label_shape = [], []
    total = 0
    s = ss = None
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        items = [dataset[k] for k in chunk]
        _ks, batch = collate(items)
        for k, n in zip(chunk, batch["speech_lengths"].tolist()):
            speech_shape.append((k, str(n)))
            label_shape.append((k, str(len(texts.get(k, "").split()))))
        if model is None:
            continue
        with torch.no_grad():
            feats, lens = model.extract_feats(batch["speech"].to(device), batch["speech_lengths"].to(device))
        feats = feats.double().cpu()
        lens = lens.cpu()
        mask = (torch.arange(feats.size(1))[None, :] < lens[:, None]).unsqueeze(-1).double()
        fs = (feats * mask).sum(dim=(0, 1)).numpy()
        fss = (feats * feats * mask).sum(dim=(0, 1)).numpy()
        s = fs if s is None else s + fs
        ss = fss if ss is None else ss + fss
        total += int(lens.sum())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_kv(out_dir / "speech_shape", speech_shape)
    if texts:
        write_kv(out_dir / "label_shape", label_shape)
    with atomic_write(out_dir / "stats_keys") as f:
        f.write("".join(f"{k}\n" for k in sorted(keys)))
    if model is not None and s is not None:
        write_npz(out_dir / "feats_stats.npz", {"count": np.asarray(total, dtype=np.int64), "sum": s, "sum_square": ss})


@torch.no_grad()
def collect_stats(config: dict) -> None:
    """One stage-5 job: see the module doc. Needs ``output_dir``, the data triples, shape files
    (key lists) and the token list."""
    from espnet_cls.train.trainer import build_model_from_config

    if config.get("output_dir") is None:
        raise DataError("--output_dir is required")
    out = Path(config["output_dir"])
    model = None
    device = torch.device("cuda" if int(config.get("ngpu") or 0) > 0 and torch.cuda.is_available() else "cpu")
    if _uses_frontend(config):
        model = build_model_from_config(_stats_model_config(config)).to(device).eval()
    else:
        logger.info("frontend: none: no feature statistics (shapes only)")
    bs = int(config.get("valid_batch_size") or config.get("batch_size") or 20)
    for mode in ("train", "valid"):
        specs = list(config.get(f"{mode}_data_path_and_name_and_type") or [])
        if not specs:
            raise DataError(f"--{mode}_data_path_and_name_and_type is required")
        shape_files = list(config.get(f"{mode}_shape_file") or [])
        keys = list(read_shape_file(shape_files[0])) if shape_files else None
        ds = ClsDataset(specs, config.get("token_list"), keys)
        text = next((parse_triple(s)[0] for s in specs if parse_triple(s)[2] == "text"), None)
        collect_one(model, ds, text, out / mode, bs, device)
        logger.info("%s: %d utterances -> %s", mode, len(ds), out / mode)


def _stats_model_config(config: dict) -> dict:
    """The config used to build the model for statistics: normalization off (its stats file
    is what we are computing)."""
    c = dict(config)
    c["normalize"] = None
    c["normalize_conf"] = {}
    c["init_param"] = []
    return c


def aggregate_stats_dirs(input_dirs: Sequence[str], output_dir: str) -> None:
    """Merge ``stats.N/{train,valid}`` dirs into ``output_dir/{train,valid}`` (shapes concatenated
    and sorted, ``feats_stats.npz`` summed)."""
    if not input_dirs:
        raise DataError("no --input_dir given")
    out = Path(output_dir)
    for mode in ("train", "valid"):
        dirs = [Path(d) / mode for d in input_dirs]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if missing:
            raise DataError("missing stats dir (did the stats job fail? see its log)", missing[0])
        for name in ("speech_shape", "label_shape", "stats_keys"):
            files = [d / name for d in dirs if (d / name).exists()]
            if not files:
                continue
            if len(files) != len(dirs):
                raise DataError(f"{name} exists in only {len(files)} of {len(dirs)} stats dirs", str(dirs[0]))
            rows: dict[str, str] = {}
            for f in files:
                table = read_kv(f, allow_empty_value=True)
                dup = next((k for k in table if k in rows), None)
                if dup is not None:
                    raise DataError(f"key {dup!r} appears in more than one stats dir", str(f))
                rows.update(table)
            write_kv(out / mode / name, rows.items())
        npzs = [d / "feats_stats.npz" for d in dirs if (d / "feats_stats.npz").exists()]
        if not npzs:
            continue
        if len(npzs) != len(dirs):
            raise DataError(f"feats_stats.npz exists in only {len(npzs)} of {len(dirs)} stats dirs", str(dirs[0]))
        acc: dict[str, np.ndarray] = {}
        for p in npzs:
            with np.load(p) as st:
                for k in STATS_KEYS:
                    if k not in st.files:
                        raise DataError(f"missing {k!r}", str(p))
                    v = np.asarray(st[k])
                    acc[k] = v.copy() if k not in acc else acc[k] + v
        write_npz(out / mode / "feats_stats.npz", acc)
        logger.info("%s: aggregated %d stats dirs -> %s", mode, len(npzs), out / mode)
