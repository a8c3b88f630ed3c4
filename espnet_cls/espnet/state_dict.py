"""ESPnet cls1 state-dict names -> espnet_cls's, for the transformer / conformer / BEATs encoders
and the linear decoder (:func:`map_state_dict`), and loading them into a built model
(:func:`load_into`).

Every ESPnet tensor is either mapped or named in an error: nothing is dropped silently except
the constant helpers ESPnet keeps as weights (BEATs' ``patch_embedding_pad`` and
``raw2fbank_pad``, the frozen all-ones convolutions it uses to downsample padding masks).
"""

from __future__ import annotations

import logging
import re
from typing import Mapping

import torch
from torch import Tensor, nn

from espnet_cls.espnet.config import EspnetModelError

logger = logging.getLogger(__name__)

#: ESPnet keys with no counterpart on purpose (constant mask helpers of ESPnet's BEATs).
DROPPED = re.compile(r"^encoder\.(patch_embedding_pad|raw2fbank_pad)\.")

#: ESPnet's DefaultFrontend keeps its (librosa) mel matrix [n_freqs, n_mels] in the state dict.
MELMAT = "frontend.logmel.melmat"

_EMBED_CONV = re.compile(r"^embed\.conv\.(\d+)\.(weight|bias)$")
_EMBED_LINEAR = re.compile(r"^embed\.(0|1)\.(weight|bias)$")
_BLOCK = re.compile(r"^encoders\.(\d+)\.(.+)$")
_QKV = re.compile(r"^self_attn\.linear_(q|k|v)\.(weight|bias)$")

_BLOCK_RENAMES = {
    "self_attn.linear_out.": "attn.attn.out_proj.",
    "feed_forward.w_1.": "ff.w1.",
    "feed_forward.w_2.": "ff.w2.",
    "feed_forward_macaron.w_1.": "ff_macaron.w1.",
    "feed_forward_macaron.w_2.": "ff_macaron.w2.",
    "conv_module.pointwise_conv1.": "conv.pw1.",
    "conv_module.depthwise_conv.": "conv.dw.",
    "conv_module.norm.": "conv.norm.",
    "conv_module.pointwise_conv2.": "conv.pw2.",
}
_REL_ATTN = ("linear_q.", "linear_k.", "linear_v.", "linear_out.", "linear_pos.", "pos_bias_u", "pos_bias_v")
_SAME = ("norm1.", "norm2.", "norm_ff.", "norm_mha.", "norm_ff_macaron.", "norm_conv.", "norm_final.")


def is_espnet_state_dict(state: Mapping[str, Tensor]) -> bool:
    """True for the weights of ESPnet's cls model (its linear decoder is ``decoder.linear_out``)."""
    return "decoder.linear_out.weight" in state


def _map_encoder(key: str, rel_attn: bool, qkv: dict) -> str | None:
    """Our name for an ESPnet transformer/conformer encoder key (without ``encoder.``); None when
    the key is one of q/k/v collected into ``qkv`` (concatenated later)."""
    m = _EMBED_CONV.match(key)
    if m:
        return f"embed.convs.{int(m.group(1)) // 2}.{m.group(2)}"
    if key.startswith("embed.out.0."):  # older ESPnet: out = Sequential(Linear, pos_enc)
        return "embed.out." + key[len("embed.out.0."):]
    if key.startswith("embed.out."):
        return key
    m = _EMBED_LINEAR.match(key)
    if m:
        return f"embed.net.{m.group(1)}.{m.group(2)}"
    if key.startswith("after_norm."):
        return key
    m = _BLOCK.match(key)
    if not m:
        raise KeyError(key)
    n, rest = m.group(1), m.group(2)
    if rest.startswith("self_attn."):
        sub = rest[len("self_attn."):]
        if rel_attn and sub.startswith(_REL_ATTN):
            return f"layers.{n}.attn.{sub}"
        mq = _QKV.match(rest)
        if mq and not rel_attn:
            qkv.setdefault((n, mq.group(2)), {})[mq.group(1)] = None
            return None
    for old, new in _BLOCK_RENAMES.items():
        if rest.startswith(old) and not (rel_attn and old == "self_attn.linear_out."):
            return f"layers.{n}.{new}{rest[len(old):]}"
    if rest.startswith(_SAME):
        return f"layers.{n}.{rest}"
    raise KeyError(key)


def map_state_dict(state: Mapping[str, Tensor], encoder: str, rel_attn: bool = False) -> dict[str, Tensor]:
    """Our names for ESPnet's ``state`` (encoder ``transformer`` / ``conformer`` / ``beats``).

    ``rel_attn``: the conformer uses relative-position attention (its q/k/v stay separate
    linears); otherwise q/k/v are concatenated into ``nn.MultiheadAttention``'s ``in_proj``.
    BEATs keys keep their (official) names. Raises :class:`EspnetModelError` naming every
    key that has no counterpart.
    """
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    qkv: dict = {}
    for key, value in state.items():
        if DROPPED.match(key):
            continue
        if key.startswith("decoder.linear_out."):
            out["decoder.linear." + key[len("decoder.linear_out."):]] = value
        elif key.startswith("normalize.") and key[len("normalize."):] in ("mean", "std"):
            out[key] = value
        elif key == MELMAT:
            out[key] = value  # ESPnet's mel filterbank (librosa's), used as it is: see load_into
        elif key.startswith("frontend."):
            unknown.append(key)
        elif key.startswith("encoder."):
            sub = key[len("encoder."):]
            if encoder == "beats":
                out[key] = value
                continue
            try:
                new = _map_encoder(sub, rel_attn, qkv)
            except KeyError:
                unknown.append(key)
                continue
            if new is not None:
                out["encoder." + new] = value
        else:
            unknown.append(key)
    for n, kind in qkv:
        try:
            tensors = [state[f"encoder.encoders.{n}.self_attn.linear_{p}.{kind}"] for p in ("q", "k", "v")]
        except KeyError as e:
            raise EspnetModelError(f"ESPnet weights: attention of block {n} lacks {e.args[0]}") from None
        out[f"encoder.layers.{n}.attn.attn.in_proj_{kind}"] = torch.cat(tensors, dim=0)
    if unknown:
        raise EspnetModelError(f"ESPnet weights without a counterpart in espnet_cls's {encoder} model: {', '.join(unknown[:8])}"
                               + (f" (+{len(unknown) - 8} more)" if len(unknown) > 8 else ""))
    return out


def load_into(model: nn.Module, mapped: Mapping[str, Tensor], encoder: str, source: str = "") -> None:
    """Copy ``mapped`` (from :func:`map_state_dict`) into ``model``, strictly.

    BEATs encoder weights go through :func:`espnet_cls.models.beats.checkpoint.load_beats_state_dict`
    (official names, shared relative-position embedding), the rest through ``load_state_dict``.
    Missing, unexpected or mis-shaped tensors raise :class:`EspnetModelError` naming them.
    """
    mapped = dict(mapped)
    melmat = mapped.pop(MELMAT, None)
    if melmat is not None:
        fb = getattr(getattr(model, "frontend", None), "mel_fb", None)
        if fb is None or tuple(fb.shape) != tuple(melmat.shape):
            raise EspnetModelError(f"ESPnet {MELMAT} of shape {tuple(melmat.shape)} does not fit the frontend "
                                   f"({None if fb is None else tuple(fb.shape)})", source)
        logger.info("ESPnet mel filterbank vs ours: max |diff| %.3g (ESPnet's is used)", float((fb - melmat).abs().max()))
        with torch.no_grad():
            fb.copy_(melmat)
    if encoder == "beats":
        from espnet_cls.models.beats.checkpoint import load_beats_state_dict

        enc = {k[len("encoder."):]: v for k, v in mapped.items() if k.startswith("encoder.")}
        lw = enc.pop("layer_weights", None)
        try:
            load_beats_state_dict(model.encoder, enc, strict=True, source=source or "ESPnet weights",
                                  skip_prefixes=("layer_weights", "specaug"))
        except Exception as e:
            raise EspnetModelError(f"ESPnet BEATs weights do not fit: {e}", source) from None
        has_lw = hasattr(model.encoder, "layer_weights")
        if (lw is None) == has_lw:
            raise EspnetModelError("ESPnet BEATs weights: layer_weights " + ("missing" if has_lw else "unexpected")
                                   + " (use_weighted_representation / max_layer do not match)", source)
        if lw is not None:
            if lw.shape != model.encoder.layer_weights.shape:
                raise EspnetModelError(f"ESPnet BEATs layer_weights: shape {tuple(lw.shape)}, model "
                                       f"{tuple(model.encoder.layer_weights.shape)} (max_layer does not match)", source)
            with torch.no_grad():
                model.encoder.layer_weights.copy_(lw)
        mapped = {k: v for k, v in mapped.items() if not k.startswith("encoder.")}
    own = model.state_dict()
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in mapped.items()
           if k in own and own[k].numel() > 0 and own[k].shape != v.shape]
    if bad:
        raise EspnetModelError(f"ESPnet weights of the wrong shape for the config: {'; '.join(bad[:6])}", source)
    result = model.load_state_dict(mapped, strict=False)
    missing = [k for k in result.missing_keys if not (encoder == "beats" and k.startswith("encoder."))]
    if missing or result.unexpected_keys:
        raise EspnetModelError(
            "ESPnet weights do not match the model built from its config.yaml"
            + (f"; missing: {', '.join(missing[:8])}" if missing else "")
            + (f"; unexpected: {', '.join(result.unexpected_keys[:8])}" if result.unexpected_keys else ""), source)




def to_ours_for_init(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """ESPnet cls weights renamed to ours for ``--init_param`` (the encoder kind is read from the
    names: BEATs' ``encoder.encoder.layers``, else transformer/conformer blocks, relative attention
    when ``linear_pos`` is there). ESPnet's mel matrix is left out (ours is computed)."""
    if any(k.startswith("encoder.encoder.layers.") for k in state):
        encoder = "beats"
    else:
        encoder = "conformer" if any(".conv_module." in k or ".norm_mha." in k for k in state) else "transformer"
    rel = any(k.endswith(".self_attn.linear_pos.weight") for k in state)
    out = map_state_dict(state, encoder, rel_attn=rel)
    out.pop(MELMAT, None)
    return out


__all__ = ["is_espnet_state_dict", "map_state_dict", "load_into", "to_ours_for_init"]
