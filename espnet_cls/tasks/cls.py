"""The classification task: model config keys and defaults, ``build_model``, ``load_model``.

A model config is the dict of ``exp/cls_<tag>/config.yaml`` (ESPnet's ``cls_train`` names);
only the keys of :data:`MODEL_DEFAULTS` (plus ``token_list``) are read here, the trainer's
keys are ignored. Example::

    frontend: default
    frontend_conf: {fs: 16k, n_mels: 64}
    normalize: global_mvn
    normalize_conf: {stats_file: exp/cls_stats_16k/train/feats_stats.npz}
    specaug: specaug
    specaug_conf: {apply_time_warp: false, freq_mask_width_range: [0, 8], time_mask_width_ratio_range: [0, 0.05]}
    encoder: cnn
    encoder_conf: {channels: [16, 32, 64, 128]}
    decoder: linear
    decoder_conf: {pooling: mean, dropout: 0.1}
    model_conf: {classification_type: multi-class, lsm_weight: 0.1}
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from torch import nn

from espnet_cls.contract import DEFAULT_FRONTEND, DEFAULT_NORMALIZE, TokenList
from espnet_cls.models.augment import Augment
from espnet_cls.models.cls_model import CLSModel
from espnet_cls.models.decoder import LinearDecoder
from espnet_cls.models.encoders import encoder_choices, get_encoder_class
from espnet_cls.models.frontend import DefaultFrontend
from espnet_cls.models.normalize import PCEN, GlobalMVN, UtteranceMVN
from espnet_cls.models.specaug import SpecAug

logger = logging.getLogger(__name__)

#: Model keys of the config and their defaults (ESPnet's CLSTask defaults: default frontend,
#: utterance_mvn, transformer encoder, linear decoder, multi-class).
MODEL_DEFAULTS: dict[str, Any] = {
    "input_size": None,
    "frontend": DEFAULT_FRONTEND,
    "frontend_conf": {},
    "specaug": None,
    "specaug_conf": {},
    "normalize": DEFAULT_NORMALIZE,
    "normalize_conf": {},
    "preencoder": None,  # ESPnet's sinc/linear pre-encoders are not implemented; none only
    "preencoder_conf": {},
    "encoder": "transformer",
    "encoder_conf": {},
    "decoder": "linear",
    "decoder_conf": {},
    "model": "espnet",
    "model_conf": {},
    "init": None,
}

FRONTEND_CHOICES = {"default": DefaultFrontend}
SPECAUG_CHOICES = {"specaug": SpecAug, "augment": Augment}
NORMALIZE_CHOICES = {"global_mvn": GlobalMVN, "utterance_mvn": UtteranceMVN, "pcen": PCEN}
DECODER_CHOICES = {"linear": LinearDecoder}
MODEL_CONF_KEYS = ("classification_type", "lsm_weight", "mixup_probability", "mixup_alpha", "mixup_type", "pcm16_input")
#: ESPnet CLSTask choices we do not implement, and why (a config naming one fails with this reason).
ESPNET_UNSUPPORTED_CHOICES: dict[str, dict[str, str]] = {
    "frontend": {
        "s3prl": "needs the s3prl package and its upstream model's weights downloaded from the network "
                 "(e.g. egs2/meld's wavlm_base_plus)",
        "sliding_window": "not implemented here",
        "fused": "not implemented here (several s3prl/default frontends fused)",
    },
}
#: model_conf keys of ESPnet that are accepted and ignored (logged).
MODEL_CONF_IGNORED = ("log_epoch_metrics", "extract_feats_in_collect_stats")
INIT_CHOICES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "normal")


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", ""))


def _conf(config: Mapping[str, Any], key: str) -> dict:
    conf = config.get(key)
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise ValueError(f"{key} must be a mapping, got {type(conf).__name__}: {conf!r}")
    return dict(conf)


def _check_keys(cls: type, conf: Mapping[str, Any], component: str, skip: tuple[str, ...] = ()) -> None:
    """ValueError naming the unknown keys of ``conf`` and the valid ones of ``cls.__init__``."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n in params if n not in ("self",) + skip]
    unknown = sorted(set(conf) - set(valid))
    if unknown:
        raise ValueError(f"{component}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")


def _choice(config: Mapping[str, Any], key: str, choices: Mapping[str, type]) -> type | None:
    name = config.get(key, MODEL_DEFAULTS[key])
    if _is_none(name):
        return None
    if name not in choices and name in ESPNET_UNSUPPORTED_CHOICES.get(key, {}):
        raise ValueError(f"{key}: {name!r} is an ESPnet choice this recipe does not support: "
                         f"{ESPNET_UNSUPPORTED_CHOICES[key][name]}; valid: {', '.join(sorted(choices))} or none")
    if name not in choices:
        raise ValueError(f"{key}: unknown choice {name!r}; valid: {', '.join(sorted(choices))} or none")
    return choices[name]


def initialize(model: nn.Module, init: str) -> None:
    """ESPnet-style ``--init``: re-initialise the weights of Linear/Conv layers (biases to 0)."""
    if init not in INIT_CHOICES:
        raise ValueError(f"init: unknown {init!r}; valid: {', '.join(INIT_CHOICES)} or none")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if init == "xavier_uniform":
                nn.init.xavier_uniform_(m.weight)
            elif init == "xavier_normal":
                nn.init.xavier_normal_(m.weight)
            elif init == "kaiming_uniform":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            elif init == "kaiming_normal":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    hook = getattr(getattr(model, "encoder", None), "reload_pretrained_parameters", None)
    if callable(hook):  # pretrained encoders (e.g. BEATs) restore their weights after init
        hook()


def espnet_model_conf(mconf: dict) -> dict:
    """``model_conf`` with ESPnet's older mixup key read as the newer one.

    ESPnet's first cls model took ``mixup_augmentation: bool`` (true: mix every clip, i.e.
    probability 1.0); the current one takes ``mixup_probability: float``. Both may not be
    given together. (Mixup's lambda defaults to ESPnet's Beta(0.8, 0.8), :data:`espnet_cls.models.cls_model.ESPNET_MIXUP_ALPHA`.)
    """
    out = dict(mconf)
    if "mixup_augmentation" in out:
        old = out.pop("mixup_augmentation")
        if isinstance(old, str) and old.strip().lower() in ("true", "false"):
            old = old.strip().lower() == "true"
        if not isinstance(old, bool):
            raise ValueError(f"model_conf.mixup_augmentation must be true or false, got {old!r}")
        if "mixup_probability" in out:
            raise ValueError("model_conf: give mixup_probability or the older mixup_augmentation, not both")
        out["mixup_probability"] = 1.0 if old else 0.0
    return out


def build_model(config: Mapping[str, Any], allow_missing_stats: bool = False) -> CLSModel:
    """Build a :class:`CLSModel` from a config dict (``token_list`` required: list or file path).

    ``allow_missing_stats``: build a ``global_mvn`` model whose stats file is absent (the
    statistics then come from the weights; used by :func:`load_model`).
    Raises ValueError for unknown choices or ``*_conf`` keys (naming the valid ones), an unreadable
    token list or a missing global_mvn stats file.
    """
    if config.get("token_list") is None:
        raise ValueError("config has no token_list")
    tl = TokenList.of(config["token_list"])
    token_list, n_classes = list(tl.tokens), tl.n_classes
    model_name = config.get("model", "espnet")
    if not _is_none(model_name) and model_name != "espnet":
        raise ValueError(f"model: unknown choice {model_name!r}; valid: espnet")

    # frontend
    input_size = config.get("input_size")
    frontend_cls = _choice(config, "frontend", FRONTEND_CHOICES)
    frontend = None
    if input_size is not None and frontend_cls is not None:
        logger.info("input_size=%s given: frontend disabled (as ESPnet)", input_size)
        frontend_cls = None
    if frontend_cls is not None:
        fconf = _conf(config, "frontend_conf")
        _check_keys(frontend_cls, fconf, "frontend_conf")
        frontend = frontend_cls(**fconf)
        input_size = frontend.output_size()
    elif input_size is None:
        input_size = 1
    input_size = int(input_size)

    # specaug / normalize
    specaug = None
    specaug_cls = _choice(config, "specaug", SPECAUG_CHOICES)
    normalize_cls = _choice(config, "normalize", NORMALIZE_CHOICES)
    if frontend is None and input_size == 1:
        if specaug_cls is not None:
            logger.info("frontend: none with raw samples: specaug ignored (the encoder owns its features)")
            specaug_cls = None
        if normalize_cls is not None:
            logger.info("frontend: none with raw samples: normalize ignored (the encoder owns its features)")
            normalize_cls = None
    if specaug_cls is not None:
        sconf = _conf(config, "specaug_conf")
        _check_keys(specaug_cls, sconf, "specaug_conf")
        specaug = specaug_cls(**sconf)
    normalize = None
    if normalize_cls is not None:
        nconf = _conf(config, "normalize_conf")
        _check_keys(normalize_cls, nconf, "normalize_conf", skip=("allow_missing",))
        if normalize_cls is GlobalMVN:
            nconf["allow_missing"] = allow_missing_stats
        normalize = normalize_cls(**nconf)

    if not _is_none(config.get("preencoder")):
        raise ValueError(f"preencoder: {config.get('preencoder')!r} is an ESPnet choice (sinc, linear) this recipe "
                         "does not implement; valid: none")

    # encoder / decoder
    enc_name = config.get("encoder", MODEL_DEFAULTS["encoder"])
    try:
        enc_cls = get_encoder_class(enc_name)
    except ValueError as e:
        raise ValueError(f"encoder: {e}") from None
    econf = _conf(config, "encoder_conf")
    _check_keys(enc_cls, econf, f"encoder_conf ({enc_name})", skip=("input_size",))
    encoder = enc_cls(input_size, **econf)
    dec_cls = _choice(config, "decoder", DECODER_CHOICES)
    if dec_cls is None:
        raise ValueError("decoder: none is not allowed; valid: linear")
    dconf = _conf(config, "decoder_conf")
    _check_keys(dec_cls, dconf, "decoder_conf", skip=("n_classes", "encoder_output_size"))
    decoder = dec_cls(n_classes, encoder.output_size(), **dconf)

    mconf = espnet_model_conf(_conf(config, "model_conf"))
    for k in MODEL_CONF_IGNORED:
        if k in mconf:
            if k == "log_epoch_metrics":
                logger.info("model_conf.log_epoch_metrics: nothing to switch on here, valid epoch_mAP is always "
                            "computed over the whole validation set")
            else:
                logger.info("model_conf.%s is accepted for ESPnet compatibility and ignored", k)
            mconf.pop(k)
    unknown = sorted(set(mconf) - set(MODEL_CONF_KEYS))
    if unknown:
        raise ValueError(f"model_conf: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(MODEL_CONF_KEYS)}")
    model = CLSModel(n_classes, token_list, frontend, specaug, normalize, encoder, decoder, **mconf)
    init = config.get("init")
    if not _is_none(init):
        initialize(model, init)
    return model


def _read_state_dict(model_file: str | os.PathLike, device: str | torch.device) -> dict[str, torch.Tensor]:
    from espnet_cls.weights import read_state_dict

    return read_state_dict(model_file, device=device)


def load_config(config_path_or_dict: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A config dict from a yaml file or a mapping (deep-copied)."""
    if isinstance(config_path_or_dict, Mapping):
        return copy.deepcopy(dict(config_path_or_dict))
    with open(config_path_or_dict, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path_or_dict}: not a yaml mapping")
    return config


def load_model(
    config_path_or_dict: str | os.PathLike | Mapping[str, Any],
    model_file: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CLSModel, dict[str, Any]]:
    """Build the model of a config and load its weights (``torch.load(weights_only=True)``, or
    ``.safetensors``). Returns ``(model in eval mode on device, config)``.

    A relative ``token_list`` path is tried relative to the config's directory too. The
    ``global_mvn`` statistics come from the weights, so the stats file may be missing.
    """
    config = load_config(config_path_or_dict)
    tl = config.get("token_list")
    if isinstance(tl, str) and not Path(tl).is_file() and not isinstance(config_path_or_dict, Mapping):
        alt = Path(config_path_or_dict).parent / tl
        if alt.is_file():
            config["token_list"] = str(alt)
    model = build_model(config, allow_missing_stats=model_file is not None)
    if model_file is not None:
        state = _read_state_dict(model_file, "cpu")
        model.load_state_dict(state, strict=True)
    return model.to(device).eval(), config


__all__ = ["MODEL_DEFAULTS", "build_model", "load_model", "load_config", "encoder_choices"]
