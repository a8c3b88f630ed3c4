"""Reading official BEATs checkpoints (``{"cfg": dict, "model": state_dict[, "label_dict"]}``).

Key accounting is strict: every checkpoint tensor must land in the model and every model
tensor must come from the checkpoint, except for the documented cases (the fine-tuned
``predictor.*`` head, which the encoder does not use, and the aliases of the shared relative
position embedding). Anything else is logged and, unless allowed, an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

import torch
from torch import Tensor, nn

from espnet_cls.fileio import DataError

logger = logging.getLogger(__name__)

_NEW_WN = re.compile(r"^(.*)\.parametrizations\.weight\.original([01])$")
_REL_ALIAS = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$")
_REL_OWNER = "encoder.layers.0.self_attn.relative_attention_bias.weight"


class BeatsCheckpointError(DataError):
    """A BEATs checkpoint is absent, unreadable or does not match the model (``str()``: ``path: msg``)."""


def read_beats_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Load a BEATs checkpoint with ``torch.load(weights_only=True)`` and check its layout.

    Returns a dict with ``cfg`` (dict, possibly empty) and ``model`` (state dict of tensors),
    plus ``label_dict`` when the checkpoint has one.
    """
    path = Path(path)
    if not path.is_file():
        raise BeatsCheckpointError(
            "BEATs checkpoint not found (encoder_conf.beats_ckpt_path): download it as docs/beats.md explains, "
            "or set beats_ckpt_path: null and give the architecture in beats_config",
            path,
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure with the path
        raise BeatsCheckpointError(f"cannot read as a weights-only torch checkpoint: {exc}", path) from exc
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        raise BeatsCheckpointError("not a BEATs checkpoint (expected a dict with 'cfg' and 'model')", path)
    state = ckpt["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise BeatsCheckpointError("'model' must be a state dict of tensors", path)
    cfg = ckpt.get("cfg") or {}
    if not isinstance(cfg, Mapping):
        raise BeatsCheckpointError(f"'cfg' must be a dict, got {type(cfg).__name__}", path)
    out: Dict[str, Any] = {"cfg": dict(cfg), "model": dict(state)}
    if "label_dict" in ckpt:
        out["label_dict"] = ckpt["label_dict"]
    return out


def normalize_state_dict(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Map the new weight-norm names (``<m>.parametrizations.weight.original0/1``) to ``<m>.weight_g/_v``.

    Also strips a leading ``module.`` (DataParallel/DDP wrappers). Other keys are unchanged.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        m = _NEW_WN.match(key)
        if m:
            key = f"{m.group(1)}.weight_{'g' if m.group(2) == '0' else 'v'}"
        if key in out:
            raise BeatsCheckpointError(f"checkpoint holds {key} under two names")
        out[key] = value
    return out


@dataclass
class LoadReport:
    """What loading a checkpoint did: names of tensors that were loaded, missing, unused."""

    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    unused_predictor: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or of the wrong shape."""
        return not (self.missing or self.unexpected or self.shape_mismatch)


def load_beats_state_dict(
    module: nn.Module,
    state: Mapping[str, Tensor],
    *,
    strict: bool = True,
    source: str = "checkpoint",
    skip_prefixes: tuple = (),
) -> LoadReport:
    """Copy a BEATs state dict into ``module`` (whose parameter names follow the official model).

    Args:
        module: the module holding ``patch_embedding``, ``layer_norm``, ``post_extract_proj``,
            ``encoder`` as the official ``BEATs`` class.
        state: official state dict (either weight-norm naming).
        strict: raise :class:`BeatsCheckpointError` on missing, unexpected or mis-shaped
            tensors (after logging them); otherwise only log a warning.
        source: name used in messages (the checkpoint path).
        skip_prefixes: module keys that the checkpoint is not expected to provide
            (e.g. the encoder's own ``layer_weights``).

    Returns:
        a :class:`LoadReport`. ``predictor.*`` tensors (the fine-tuned AudioSet head) are
        reported as unused, never loaded.
    """
    state = normalize_state_dict(state)
    report = LoadReport()
    own = module.state_dict()
    to_load: Dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("predictor."):
            report.unused_predictor.append(key)
        elif key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            report.shape_mismatch.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            to_load[key] = value
    rel_owner = state.get(_REL_OWNER)
    for key in own:
        if key in to_load or any(key.startswith(p) for p in skip_prefixes):
            continue
        if any(m.startswith(key + ":") for m in report.shape_mismatch):
            continue
        if _REL_ALIAS.match(key) and rel_owner is not None:
            continue  # the shared embedding: loaded through layer 0
        report.missing.append(key)
    # aliases of the shared relative position embedding must agree with layer 0
    if rel_owner is not None:
        for key, value in to_load.items():
            if _REL_ALIAS.match(key) and key != _REL_OWNER and not torch.equal(value, rel_owner):
                report.unexpected.append(f"{key} (differs from {_REL_OWNER}; it is shared)")
        to_load = {k: v for k, v in to_load.items() if not (_REL_ALIAS.match(k) and k != _REL_OWNER)}
    report.loaded = sorted(to_load)

    if report.unused_predictor:
        logger.info("%s: fine-tuned predictor head not used by the encoder: %s", source, report.unused_predictor)
    problems = []
    if report.missing:
        problems.append(f"missing in checkpoint: {report.missing}")
    if report.unexpected:
        problems.append(f"unexpected in checkpoint: {report.unexpected}")
    if report.shape_mismatch:
        problems.append(f"shape mismatch: {report.shape_mismatch}")
    if problems:
        msg = f"BEATs weights do not match the model ({'; '.join(problems)})"
        if strict:
            logger.error("%s: %s", source, msg)
            raise BeatsCheckpointError(msg + " — set encoder_conf.strict_ckpt_loading: false to load anyway", source)
        logger.warning("%s: %s", source, msg)
    with torch.no_grad():
        for key, value in to_load.items():
            _assign(module, key, value)
    logger.info("%s: loaded %d BEATs tensors", source, len(report.loaded))
    return report


def _assign(module: nn.Module, key: str, value: Tensor) -> None:
    """Copy ``value`` into the parameter or buffer named ``key`` (in place, keeping dtype/device)."""
    *path, name = key.split(".")
    target = module
    for p in path:
        target = getattr(target, p)
    getattr(target, name).copy_(value)
