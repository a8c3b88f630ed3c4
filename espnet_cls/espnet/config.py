"""ESPnet's cls1 ``config.yaml`` -> an espnet_cls model config that computes the same function.

ESPnet's ``config.yaml`` holds each ``*_conf`` only as the user gave it; every missing option
takes the ESPnet class's constructor default, and several of those differ from ours (the
transformer's ``linear_units`` 2048, the frontend's ``hop_length`` 128, the conformer's
``macaron_style: false`` and ``rel_pos_type: legacy``...). :func:`convert_config` therefore
fills in ESPnet's defaults first (tables below, from ESPnet 202611's constructors), then
translates to our names and adds the options that make our modules compute ESPnet's function
(reflect-padded STFT, LayerNorm eps 1e-12, the conformer's final LayerNorm...).

A part we do not implement (another frontend, a preencoder, an encoder or option value we do
not have) raises :class:`EspnetModelError` naming the part.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping

from espnet_cls.contract import CLASSIFICATION_TYPES, DEFAULT_CLASSIFICATION_TYPE, UNK
from espnet_cls.fileio import DataError

logger = logging.getLogger(__name__)


class EspnetModelError(DataError):
    """An ESPnet model that espnet_cls cannot load (names the part), or a broken one."""


#: ESPnet's DefaultFrontend defaults.
FRONTEND_DEFAULTS: dict[str, Any] = dict(
    fs=16000, n_fft=512, win_length=None, hop_length=128, window="hann", center=True, normalized=False,
    onesided=True, n_mels=80, fmin=None, fmax=None, htk=False, frontend_conf=None, apply_stft=True,
)
#: ESPnet's TransformerEncoder defaults.
TRANSFORMER_DEFAULTS: dict[str, Any] = dict(
    output_size=256, attention_heads=4, linear_units=2048, num_blocks=6, dropout_rate=0.1,
    positional_dropout_rate=0.1, attention_dropout_rate=0.0, input_layer="conv2d", pos_enc_layer_type="abs_pos",
    normalize_before=True, concat_after=False, positionwise_layer_type="linear", positionwise_conv_kernel_size=1,
    padding_idx=-1, interctc_layer_idx=[], interctc_use_conditioning=False, layer_drop_rate=0.0, qk_norm=False,
    use_flash_attn=True, use_sdpa=False,
)
#: ESPnet's ConformerEncoder defaults.
CONFORMER_DEFAULTS: dict[str, Any] = dict(
    output_size=256, attention_heads=4, linear_units=2048, num_blocks=6, dropout_rate=0.1,
    positional_dropout_rate=0.1, attention_dropout_rate=0.0, input_layer="conv2d", normalize_before=True,
    concat_after=False, positionwise_layer_type="linear", positionwise_conv_kernel_size=3, macaron_style=False,
    rel_pos_type="legacy", pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn",
    activation_type="swish", use_cnn_module=True, zero_triu=False, cnn_module_kernel=31, padding_idx=-1,
    interctc_layer_idx=[], interctc_use_conditioning=False, ctc_trim=False, stochastic_depth_rate=0.0,
    layer_drop_rate=0.0, max_pos_emb_len=5000, qk_norm=False, use_flash_attn=True, use_sdpa=False,
)
#: ESPnet's BeatsEncoder defaults (the keys our BEATs encoder has under the same names).
BEATS_DEFAULTS: dict[str, Any] = dict(
    beats_ckpt_path=None, max_layer=None, downsampling_rate=1, adapter_config="", use_weighted_representation=False,
    beats_config=None, specaug_config=None, add_positional_information=False, max_positions=None,
    roll_augment=False, roll_interval=1600, is_pretraining=False,
    fbank_mean=15.29130, fbank_std=5.90532,  # ESPnet 202611's defaults (the official BEATs code: 15.41663, 6.55582)
)
#: ESPnet's LinearDecoder defaults.
DECODER_DEFAULTS: dict[str, Any] = dict(pooling="mean", dropout=0.0)
#: ESPnet's normalize defaults.
NORMALIZE_DEFAULTS: dict[str, dict] = {
    "global_mvn": dict(stats_file=None, norm_means=True, norm_vars=True, eps=1e-20),
    "utterance_mvn": dict(norm_means=True, norm_vars=False, eps=1e-20),
}
#: ESPnet's LayerNorm (espnet.nets.pytorch_backend.transformer.layer_norm) eps.
ESPNET_LAYER_NORM_EPS = 1e-12
#: ESPnet input layers our encoders implement.
INPUT_LAYERS = ("conv2d", "conv2d2", "conv2d6", "conv2d8", "linear")
#: ESPnet encoders, frontends... that espnet_cls loads.
ENCODERS = ("transformer", "conformer", "beats")


def _none(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", ""))


def _merged(defaults: Mapping[str, Any], given: Any, part: str, source: str) -> dict:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise EspnetModelError(f"{part} must be a mapping, got {given!r}", source)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise EspnetModelError(f"{part}: option(s) {', '.join(unknown)} not supported by espnet_cls's ESPnet loader", source)
    out = copy.deepcopy(dict(defaults))
    out.update(copy.deepcopy(dict(given)))
    return out


def _require(conf: Mapping[str, Any], part: str, source: str, **allowed: Any) -> None:
    """EspnetModelError for each option of ``conf`` whose value is not the one implemented."""
    for key, want in allowed.items():
        got = conf.get(key)
        ok = got in want if isinstance(want, tuple) else got == want
        if not ok:
            raise EspnetModelError(f"{part}: {key}={got!r} is not implemented in espnet_cls (supported: {want!r})", source)


def _frontend(config: Mapping[str, Any], source: str) -> tuple[Any, dict, Any]:
    """(frontend name or None, our frontend_conf, input_size)."""
    input_size = config.get("input_size")
    name = config.get("frontend", "default")
    if input_size is not None or _none(name):
        return None, {}, input_size
    if name != "default":
        raise EspnetModelError(f"frontend: {name!r} is not implemented in espnet_cls (supported: default)", source)
    conf = _merged(FRONTEND_DEFAULTS, config.get("frontend_conf"), "frontend_conf", source)
    inner = conf.pop("frontend_conf")
    if inner and any(bool(inner.get(k)) for k in ("use_wpe", "use_beamformer")):
        raise EspnetModelError("frontend_conf.frontend_conf: WPE / beamformer front-ends are not implemented in espnet_cls", source)
    _require(conf, "frontend_conf", source, apply_stft=True, normalized=False, onesided=True, window=("hann", "hamming"))
    for k in ("apply_stft", "normalized", "onesided"):
        conf.pop(k)
    conf["pad_mode"] = "reflect"  # torch.stft(center=True)'s padding, as ESPnet's Stft
    return "default", conf, None


def _transformer(conf: dict, source: str) -> dict:
    _require(conf, "encoder_conf (transformer)", source, input_layer=INPUT_LAYERS, pos_enc_layer_type="abs_pos",
             normalize_before=True, concat_after=False, positionwise_layer_type="linear", interctc_layer_idx=[],
             qk_norm=False)
    out = {k: conf[k] for k in ("output_size", "attention_heads", "linear_units", "num_blocks", "dropout_rate",
                                "positional_dropout_rate", "attention_dropout_rate", "input_layer")}
    out["layer_norm_eps"] = ESPNET_LAYER_NORM_EPS
    return out


def _conformer(conf: dict, source: str) -> dict:
    _require(conf, "encoder_conf (conformer)", source, input_layer=INPUT_LAYERS, normalize_before=True,
             concat_after=False, positionwise_layer_type="linear", activation_type="swish", zero_triu=False,
             rel_pos_type=("legacy", "latest"), interctc_layer_idx=[], qk_norm=False)
    pos, att = conf["pos_enc_layer_type"], conf["selfattention_layer_type"]
    if conf["rel_pos_type"] == "legacy":
        pos = "legacy_rel_pos" if pos == "rel_pos" else pos
        att = "legacy_rel_selfattn" if att == "rel_selfattn" else att
    pairs = (("abs_pos", "selfattn"), ("rel_pos", "rel_selfattn"), ("legacy_rel_pos", "legacy_rel_selfattn"))
    if (pos, att) not in pairs:
        raise EspnetModelError(
            f"encoder_conf (conformer): pos_enc_layer_type={pos!r} with selfattention_layer_type={att!r} "
            f"is not implemented in espnet_cls (supported: {', '.join('/'.join(p) for p in pairs)})", source)
    out = {k: conf[k] for k in ("output_size", "attention_heads", "linear_units", "num_blocks", "dropout_rate",
                                "positional_dropout_rate", "attention_dropout_rate", "input_layer", "macaron_style",
                                "use_cnn_module", "cnn_module_kernel")}
    out.update(pos_enc_layer_type=pos, selfattn_layer_type=att, rel_pos_type="latest", after_norm=True,
               norm_final_without_cnn=False, layer_norm_eps=ESPNET_LAYER_NORM_EPS, max_pos_emb_len=int(conf["max_pos_emb_len"]))
    return out


def _beats(conf: dict, source: str) -> dict:
    _require(conf, "encoder_conf (beats)", source, downsampling_rate=1, adapter_config=("", None),
             add_positional_information=False, is_pretraining=(False, None))
    out = {k: v for k, v in conf.items() if k not in ("is_pretraining",)}
    out["adapter_config"] = ""
    return out


def convert_config(config: Mapping[str, Any], source: str = "config.yaml") -> dict:
    """Our model config (``token_list`` included) for an ESPnet cls1 ``config.yaml`` dict."""
    if not isinstance(config, Mapping):
        raise EspnetModelError("config.yaml is not a mapping", source)
    tokens = config.get("token_list")
    if tokens is None:
        raise EspnetModelError("config.yaml has no token_list", source)
    if isinstance(tokens, (list, tuple)) and (not tokens or tokens[-1] != UNK):
        raise EspnetModelError("token_list: ESPnet's cls task expects <unk> as the last token", source)
    out: dict[str, Any] = {"token_list": list(tokens) if isinstance(tokens, (list, tuple)) else tokens}

    frontend, fconf, input_size = _frontend(config, source)
    out["frontend"] = frontend
    out["frontend_conf"] = fconf
    if input_size is not None:
        out["input_size"] = int(input_size)

    if not _none(config.get("preencoder")):
        raise EspnetModelError(f"preencoder: {config.get('preencoder')!r} is not implemented in espnet_cls", source)

    specaug = config.get("specaug")
    out["specaug"] = None  # inference only: ESPnet applies it in training mode only
    if not _none(specaug) and specaug != "specaug":
        raise EspnetModelError(f"specaug: {specaug!r} is not implemented in espnet_cls", source)

    norm = config.get("normalize", "utterance_mvn")
    if _none(norm):
        out["normalize"] = None
    elif norm in NORMALIZE_DEFAULTS:
        nconf = _merged(NORMALIZE_DEFAULTS[norm], config.get("normalize_conf"), "normalize_conf", source)
        if norm == "global_mvn" and nconf.get("stats_file") is None:
            nconf.pop("stats_file")
        out["normalize"] = norm
        out["normalize_conf"] = nconf
    else:
        raise EspnetModelError(f"normalize: {norm!r} is not implemented in espnet_cls (supported: global_mvn, utterance_mvn)", source)

    enc = config.get("encoder", "transformer")
    defaults = {"transformer": TRANSFORMER_DEFAULTS, "conformer": CONFORMER_DEFAULTS, "beats": BEATS_DEFAULTS}.get(enc)
    if defaults is None:
        raise EspnetModelError(f"encoder: {enc!r} is not implemented in espnet_cls (supported: {', '.join(ENCODERS)})", source)
    econf = config.get("encoder_conf") or {}
    if enc == "beats":  # the options pass through under the same names
        out["encoder_conf"] = _beats(_merged(defaults, econf, f"encoder_conf ({enc})", source), source)
    else:
        merged = _merged(defaults, econf, f"encoder_conf ({enc})", source)
        out["encoder_conf"] = _transformer(merged, source) if enc == "transformer" else _conformer(merged, source)
    out["encoder"] = enc

    dec = config.get("decoder", "linear")
    if dec != "linear":
        raise EspnetModelError(f"decoder: {dec!r} is not implemented in espnet_cls (supported: linear)", source)
    dconf = _merged(DECODER_DEFAULTS, config.get("decoder_conf"), "decoder_conf", source)
    if dconf["pooling"] not in ("mean", "max", "CLS"):
        raise EspnetModelError(f"decoder_conf: pooling={dconf['pooling']!r} is not implemented (ESPnet: mean, max, CLS)", source)
    out["decoder"] = "linear"
    out["decoder_conf"] = {"pooling": "cls" if dconf["pooling"] == "CLS" else dconf["pooling"], "dropout": float(dconf["dropout"])}

    model = config.get("model", "espnet")
    if not _none(model) and model != "espnet":
        raise EspnetModelError(f"model: {model!r} is not implemented in espnet_cls (supported: espnet)", source)
    mconf = dict(config.get("model_conf") or {})
    ctype = mconf.get("classification_type", DEFAULT_CLASSIFICATION_TYPE)
    if ctype not in CLASSIFICATION_TYPES:
        raise EspnetModelError(f"model_conf: classification_type={ctype!r} (ESPnet: multi-class, multi-label)", source)
    # ESPnet scores the samples as read (no rounding to the 16-bit grid of our dump)
    out["model_conf"] = {"classification_type": ctype, "lsm_weight": float(mconf.get("lsm_weight", 0.0)), "pcm16_input": False}
    out["model"] = "espnet"
    return out


__all__ = ["EspnetModelError", "convert_config", "ESPNET_LAYER_NORM_EPS"]
