"""Checkpoints: atomic saves, safe loads, RNG state, n-best averaging, ``init_param``.

Every file is written to a temp file beside it and renamed, and read back with
``torch.load(..., weights_only=True)``: model files are plain ``state_dict``s; the resume
file ``checkpoint.pth`` holds only tensors, dicts, lists, numbers and strings (numpy and
python RNG states are converted to tensors/lists).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from espnet_cls.fileio import DataError

logger = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename onto it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # serialise in memory, then write with plain file I/O: a full disk is then an
        # OSError "No space left on device" naming the file (torch.save to a path
        # reports it as an opaque "unexpected pos" / basic_ios::clear RuntimeError)
        buf = io.BytesIO()
        torch.save(obj, buf)
        try:
            with open(tmp, "wb") as f:
                f.write(buf.getbuffer())
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def safe_load(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; see :func:`espnet_cls.weights.safe_torch_load`."""
    from espnet_cls.weights import safe_torch_load

    return safe_torch_load(path, map_location=map_location)


def load_state_dict_file(path: PathLike) -> dict[str, torch.Tensor]:
    """A model ``state_dict`` from a ``.pth`` (a plain state dict, or a ``checkpoint.pth``'s ``model``)."""
    obj = safe_load(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError("not a model state_dict (a dict of tensors)", str(path))
    return obj


def get_rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors and lists (``weights_only``-safe)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": list(py_state[1]),
                   "gauss_next": py_state[2]},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def average_state_dicts(paths: Sequence[PathLike]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the floating tensors of several state dicts.

    Integer tensors (e.g. BatchNorm's ``num_batches_tracked``) are taken from the first
    file (the best one) instead of being averaged. Mean is accumulated in float64.
    """
    if not paths:
        raise ValueError("nothing to average")
    first = load_state_dict_file(paths[0])
    acc = {k: v.double() if v.is_floating_point() else v.clone() for k, v in first.items()}
    for p in paths[1:]:
        sd = load_state_dict_file(p)
        if set(sd) != set(acc):
            raise DataError("cannot average: different parameter names", str(p))
        for k, v in sd.items():
            if v.is_floating_point():
                acc[k] += v.double()
    n = len(paths)
    return {k: (v / n).to(first[k].dtype) if first[k].is_floating_point() else v for k, v in acc.items()}


def load_init_param(model: torch.nn.Module, specs: Sequence[str], ignore_init_mismatch: bool = False) -> None:
    """ESPnet's ``--init_param path[:src_key[:dst_key[:exclude_keys]]]`` (weights_only loads).

    ``src_key``: take only parameters under this prefix (and strip it); ``dst_key``: load them
    under this prefix of the model; ``exclude_keys``: comma-separated prefixes to skip. With
    ``ignore_init_mismatch``, parameters whose shape differs (e.g. another class count) are
    skipped with a log line instead of failing.
    """
    own = model.state_dict()
    for spec in specs:
        parts = spec.split(":")
        path = parts[0]
        src = parts[1] if len(parts) > 1 and parts[1] else None
        dst = parts[2] if len(parts) > 2 and parts[2] else None
        excl = [e for e in parts[3].split(",") if e] if len(parts) > 3 else []
        sd = load_state_dict_file(path)
        from espnet_cls.espnet.state_dict import is_espnet_state_dict, to_ours_for_init

        if is_espnet_state_dict(sd):  # weights trained by real ESPnet: its names -> ours
            sd = to_ours_for_init(sd)
            logger.info("init_param: %s holds ESPnet cls weights; names mapped to espnet_cls's", path)
        if src is not None:
            sd = {k[len(src) + 1:]: v for k, v in sd.items() if k.startswith(src + ".")}
        if excl:
            sd = {k: v for k, v in sd.items() if not any(k == e or k.startswith(e + ".") for e in excl)}
        if dst is not None:
            sd = {f"{dst}.{k}": v for k, v in sd.items()}
        load: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            if k not in own:
                if not ignore_init_mismatch:
                    raise DataError(f"init_param: {k!r} is not a parameter of the model "
                                    "(use src/dst keys or --ignore_init_mismatch true)", path)
                logger.warning("init_param: skip %s (not in the model)", k)
                continue
            if own[k].shape != v.shape:
                if not ignore_init_mismatch:
                    raise DataError(f"init_param: shape mismatch for {k!r}: {tuple(v.shape)} in file vs "
                                    f"{tuple(own[k].shape)} in the model (--ignore_init_mismatch true skips it)", path)
                logger.warning("init_param: skip %s (shape %s vs %s)", k, tuple(v.shape), tuple(own[k].shape))
                continue
            load[k] = v
        model.load_state_dict(load, strict=False)
        logger.info("init_param: loaded %d tensor(s) from %s", len(load), path)


def freeze_parameters(model: torch.nn.Module, prefixes: Optional[Sequence[str]]) -> int:
    """Set ``requires_grad=False`` for parameters named ``prefix`` or ``prefix.*``; returns the count."""
    n = 0
    for name, p in model.named_parameters():
        if any(name == pre or name.startswith(pre + ".") for pre in prefixes or []):
            p.requires_grad_(False)
            n += 1
    if prefixes:
        logger.info("freeze_param: %d parameter tensor(s) frozen (%s)", n, ", ".join(prefixes))
    return n


def link_or_copy(target_name: str, link_path: PathLike) -> None:
    """Make ``link_path`` a relative symlink to ``target_name`` (a file in the same dir), atomically;
    copy if symlinks are not possible."""
    link_path = Path(link_path)
    tmp = link_path.with_name(f".{link_path.name}.lnk")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(target_name, tmp)
    except OSError:
        import shutil

        shutil.copyfile(link_path.parent / target_name, tmp)
    os.replace(tmp, link_path)
