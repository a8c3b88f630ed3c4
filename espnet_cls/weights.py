"""The one safe reader of weight files: ``.safetensors`` or ``torch.load(weights_only=True)``.

Every path that reads model weights or a training checkpoint (inference, packing,
``Classifier``, ``--init_param``, resume) goes through :func:`safe_torch_load` /
:func:`read_state_dict`, so a bad file always gets the same one-line
:class:`~espnet_cls.fileio.DataError`:

- a file that needs arbitrary pickled objects (a whole pickled model, numpy
  arrays, custom classes): "holds pickled Python objects ... we only load
  weights_only / safetensors". We never suggest loading it with
  ``weights_only=False``: that would run code from the file.
- a truncated or corrupt file (torch's ``PytorchStreamReader failed ...`` or
  ``OSError: [Errno 22]``): "truncated or corrupt", with its size.
- a missing file: "not found".
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any, Union

from espnet_cls.fileio import DataError, PathLike

PICKLE_HINT = (
    "holds pickled Python objects, not only tensors; espnet_cls loads weights only "
    "(torch.load with weights_only=True) or .safetensors files. Save the model's "
    "state_dict() (a dict of tensors) with torch.save, or convert it to safetensors"
)


def _size(path: str) -> str:
    try:
        return f"{os.path.getsize(path)} bytes"
    except OSError:
        return "size unknown"


def safe_torch_load(path: PathLike, map_location: Union[str, Any] = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with bad files as one-line :class:`DataError`."""
    import torch

    path = str(path)
    if not os.path.isfile(path):
        raise DataError("weights file not found", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's message advises weights_only=False: never repeat it
        raise DataError(PICKLE_HINT, path) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in first:
            raise DataError(PICKLE_HINT, path) from None
        raise DataError(f"not a readable PyTorch file: truncated or corrupt? ({_size(path)}; {first})", path) from None


def read_safetensors(path: PathLike, device: str = "cpu") -> dict:
    """A ``.safetensors`` file's tensors; a bad file is a one-line :class:`DataError`."""
    from safetensors.torch import load_file

    path = str(path)
    if not os.path.isfile(path):
        raise DataError("weights file not found", path)
    try:
        return dict(load_file(path, device=str(device)))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"not a readable safetensors file: truncated or corrupt? ({_size(path)}; {first})", path) from None


def read_state_dict(path: PathLike, device: Union[str, Any] = "cpu") -> dict:
    """A model state_dict from ``.safetensors`` or ``.pth`` (a state_dict or a checkpoint's ``model``).

    ``module.`` prefixes (DistributedDataParallel) are removed. Anything that is not a
    non-empty mapping of names to tensors is a :class:`DataError`.
    """
    import torch

    path = str(path)
    if path.endswith(".safetensors"):
        state: Any = read_safetensors(path, device=str(device))
    else:
        state = safe_torch_load(path, map_location=device)
        if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
            state = state["model"]  # a trainer checkpoint {"model": ..., "optimizer": ...}
    if not isinstance(state, Mapping) or not state:
        raise DataError("expected a state_dict (a non-empty mapping of parameter names to tensors)", path)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"state_dict entry {bad[0]!r} is not a tensor", path)
    if all(str(k).startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)
