"""The other way: one of our models written in ESPnet's cls1 exp-dir layout, for ``espnet2.bin.cls_inference``.

:func:`export_espnet` writes ``config.yaml`` (ESPnet's keys, every option explicit, ``token_list``
embedded), ``valid.acc.best.pth`` (ESPnet's state-dict names) and, for ``global_mvn``, a
``feats_stats.npz`` that reproduces the model's mean/std. Only models ESPnet can express are
exported (encoders ``transformer``, ``conformer``, ``beats``; token list ending in ``<unk>``
only; for the conformer ESPnet's block layout: ``after_norm: true`` and
``norm_final_without_cnn: false``). Options ESPnet computes differently (our zero-padded
STFT, LayerNorm eps 1e-5) are exported as the nearest ESPnet model and reported in the
returned ``notes``: its scores then differ slightly from ours.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from espnet_cls.espnet.config import ESPNET_LAYER_NORM_EPS, EspnetModelError
from espnet_cls.espnet.state_dict import MELMAT

logger = logging.getLogger(__name__)


def _inverse_encoder_key(key: str, rel_attn: bool) -> list[tuple[str, slice | None]]:
    """ESPnet name(s) of one of our transformer/conformer encoder keys (without ``encoder.``);
    ``in_proj`` splits into q/k/v (with the slice of rows each takes)."""
    import re

    m = re.match(r"^embed\.convs\.(\d+)\.(weight|bias)$", key)
    if m:
        return [(f"embed.conv.{2 * int(m.group(1))}.{m.group(2)}", None)]
    m = re.match(r"^embed\.net\.(0|1)\.(weight|bias)$", key)
    if m:
        return [(f"embed.{m.group(1)}.{m.group(2)}", None)]
    if key.startswith(("embed.out.", "after_norm.")):
        return [(key, None)]
    m = re.match(r"^layers\.(\d+)\.(.+)$", key)
    if not m:
        raise KeyError(key)
    n, rest = m.group(1), m.group(2)
    mi = re.match(r"^attn\.attn\.in_proj_(weight|bias)$", rest)
    if mi:
        return [(f"encoders.{n}.self_attn.linear_{p}.{mi.group(1)}", slice(i, i + 1)) for i, p in enumerate("qkv")]
    renames = {
        "attn.attn.out_proj.": "self_attn.linear_out.", "ff.w1.": "feed_forward.w_1.", "ff.w2.": "feed_forward.w_2.",
        "ff_macaron.w1.": "feed_forward_macaron.w_1.", "ff_macaron.w2.": "feed_forward_macaron.w_2.",
        "conv.pw1.": "conv_module.pointwise_conv1.", "conv.dw.": "conv_module.depthwise_conv.",
        "conv.norm.": "conv_module.norm.", "conv.pw2.": "conv_module.pointwise_conv2.",
    }
    if rel_attn and rest.startswith("attn."):
        return [(f"encoders.{n}.self_attn.{rest[len('attn.'):]}", None)]
    for old, new in renames.items():
        if rest.startswith(old):
            return [(f"encoders.{n}.{new}{rest[len(old):]}", None)]
    return [(f"encoders.{n}.{rest}", None)]


def espnet_state_dict(model: torch.nn.Module, encoder: str, rel_attn: bool) -> dict[str, torch.Tensor]:
    """Our model's weights under ESPnet's names (what ``ESPnetClassificationModel`` loads strictly)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().clone()
        if key.startswith("decoder.linear."):
            out["decoder.linear_out." + key[len("decoder.linear."):]] = value
        elif key.startswith("normalize."):
            out[key] = value
        elif key.startswith("encoder."):
            sub = key[len("encoder."):]
            if encoder == "beats":
                out[key] = value
                continue
            for name, part in _inverse_encoder_key(sub, rel_attn):
                if part is None:
                    out["encoder." + name] = value
                else:
                    out["encoder." + name] = value.chunk(3, dim=0)[part.start].clone()
        elif key.startswith("specaug."):
            continue
        else:
            raise EspnetModelError(f"export to ESPnet: no ESPnet name for {key}")
    fe = getattr(model, "frontend", None)
    if fe is not None:
        out[MELMAT] = fe.mel_fb.detach().cpu().clone()
    if encoder == "beats":  # ESPnet's constant mask helpers (all-ones convolutions)
        p = int(model.encoder.patch_size)
        out["encoder.patch_embedding_pad.weight"] = torch.ones(1, 1, p, p)
        out["encoder.raw2fbank_pad.weight"] = torch.ones(1, 1, 400)
    return out


def _int_or_none(v: Any) -> Any:
    """ESPnet's frontend declares fmin/fmax ``Optional[int]`` (typeguard-checked)."""
    if v is None:
        return None
    if float(v).is_integer():
        return int(v)
    raise EspnetModelError(f"export to ESPnet: fmin/fmax must be whole Hz for ESPnet's frontend, got {v}")


def export_espnet(model: torch.nn.Module, config: dict, output_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``model`` (built from our ``config``) as an ESPnet cls1 exp dir; returns
    ``{"config", "model_file", "notes"}`` (``notes``: where ESPnet's function differs from ours)."""
    out = Path(output_dir)
    notes: list[str] = []
    tokens = list(model.token_list)
    if "<blank>" in tokens or tokens[-1] != "<unk>":
        raise EspnetModelError("export to ESPnet: the token list must end with <unk> and have no <blank> (ESPnet's cls task)")
    enc_name = config.get("encoder", "transformer")
    if enc_name not in ("transformer", "conformer", "beats"):
        raise EspnetModelError(f"export to ESPnet: encoder {enc_name!r} has no ESPnet counterpart (transformer, conformer, beats)")
    econf = dict(config.get("encoder_conf") or {})
    esp: dict[str, Any] = {"token_list": tokens, "init": None, "input_size": None, "use_preprocessor": True, "token_type": "word"}

    fe = getattr(model, "frontend", None)
    if fe is None:
        esp.update(frontend=None, frontend_conf={}, input_size=1)
    else:
        if fe.pad_mode != "reflect":
            notes.append("frontend pad_mode is zero (ESPnet pads the STFT by reflection): the edge frames differ")
        esp["frontend"] = "default"
        esp["frontend_conf"] = dict(fs=int(fe.fs), n_fft=fe.n_fft, win_length=fe.win_length, hop_length=fe.hop_length,
                                    window=(config.get("frontend_conf") or {}).get("window", "hann"), center=fe.center,
                                    n_mels=fe.n_mels, fmin=_int_or_none((config.get("frontend_conf") or {}).get("fmin")),
                                    fmax=_int_or_none((config.get("frontend_conf") or {}).get("fmax")),
                                    htk=bool((config.get("frontend_conf") or {}).get("htk", False)))
    esp["specaug"] = None
    esp["specaug_conf"] = {}
    norm = None if fe is None and int(config.get("input_size") or 1) == 1 and enc_name == "beats" else config.get("normalize")
    nconf = dict(config.get("normalize_conf") or {})
    out.mkdir(parents=True, exist_ok=True)
    if norm == "global_mvn":
        mean = model.normalize.mean.detach().double().cpu().numpy()
        std = model.normalize.std.detach().double().cpu().numpy()
        stats = out / "feats_stats.npz"  # count 1: ESPnet's mean = sum, var = sum_square - mean^2 = std^2
        np.savez(stats, count=np.array(1), sum=mean, sum_square=std * std + mean * mean)
        esp.update(normalize="global_mvn", normalize_conf={"stats_file": str(stats), "norm_means": model.normalize.norm_means,
                                                            "norm_vars": model.normalize.norm_vars})
    elif norm == "utterance_mvn":
        esp.update(normalize="utterance_mvn", normalize_conf={k: nconf[k] for k in ("norm_means", "norm_vars", "eps") if k in nconf})
    elif norm is None or str(norm).strip().lower() in ("none", "null", ""):
        esp.update(normalize=None, normalize_conf={})
    else:
        raise EspnetModelError(f"export to ESPnet: normalize {norm!r} has no ESPnet counterpart (global_mvn, utterance_mvn, none)")
    esp.update(preencoder=None, preencoder_conf={})

    rel = False
    if enc_name in ("transformer", "conformer"):
        e = model.encoder
        eps = float(e.layers[0].norm_ff.eps if enc_name == "conformer" else e.layers[0].norm1.eps)
        if abs(eps - ESPNET_LAYER_NORM_EPS) > 1e-15:
            notes.append(f"LayerNorm eps is {eps:g} (ESPnet's: 1e-12): tiny differences")
        keep = ("output_size", "attention_heads", "linear_units", "num_blocks", "dropout_rate", "positional_dropout_rate",
                "attention_dropout_rate", "input_layer")
        defaults = dict(output_size=256, attention_heads=4, linear_units=1024, num_blocks=6, dropout_rate=0.1,
                        positional_dropout_rate=0.1, attention_dropout_rate=0.0, input_layer="conv2d")
        ec = {k: econf.get(k, defaults[k]) for k in keep}
        if enc_name == "conformer":
            if e.after_norm is None or any(ly.conv is None and ly.norm_final is not None for ly in e.layers):
                raise EspnetModelError("export to ESPnet: ESPnet's conformer has a final after_norm and a block norm_final only "
                                       "with the conv module (encoder_conf after_norm: true, norm_final_without_cnn: false)")
            rel = e.rel_pos
            ec.update(macaron_style=bool(econf.get("macaron_style", True)), use_cnn_module=bool(econf.get("use_cnn_module", True)),
                      cnn_module_kernel=int(econf.get("cnn_module_kernel", 31)), max_pos_emb_len=int(econf.get("max_pos_emb_len", 5000)))
            if not e.rel_pos:
                ec.update(pos_enc_layer_type="abs_pos", selfattention_layer_type="selfattn", rel_pos_type="latest")
            elif e.legacy_rel_pos:
                ec.update(pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn", rel_pos_type="legacy")
            else:
                ec.update(pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn", rel_pos_type="latest")
        esp.update(encoder=enc_name, encoder_conf=ec)
    else:
        b = model.encoder
        ec = {"beats_ckpt_path": None, "beats_config": b.cfg.to_dict(), "max_layer": b.max_layer,
              "use_weighted_representation": b.use_weighted_representation, "fbank_mean": b.fbank_mean, "fbank_std": b.fbank_std}
        if b.use_weighted_representation and b.max_layer is None:
            ec["max_layer"] = len(b.encoder.layers)
        esp.update(encoder="beats", encoder_conf=ec)
    pooling = model.decoder.pooling
    if pooling not in ("mean", "max", "cls"):
        raise EspnetModelError(f"export to ESPnet: pooling {pooling!r} has no ESPnet counterpart (mean, max, CLS)")
    esp.update(decoder="linear", decoder_conf={"pooling": "CLS" if pooling == "cls" else pooling},
               model="espnet", model_conf={"classification_type": model.classification_type})
    sd = espnet_state_dict(model, enc_name, rel)
    tmp = out / ".valid.acc.best.pth.tmp"
    torch.save(sd, tmp)
    os.replace(tmp, out / "valid.acc.best.pth")
    with open(out / ".config.yaml.tmp", "w", encoding="utf-8") as f:
        yaml.safe_dump(esp, f, sort_keys=False, allow_unicode=True)
    os.replace(out / ".config.yaml.tmp", out / "config.yaml")
    for n in notes:
        logger.warning("export to ESPnet: %s", n)
    return {"config": str(out / "config.yaml"), "model_file": str(out / "valid.acc.best.pth"), "notes": notes}


__all__ = ["export_espnet", "espnet_state_dict"]
