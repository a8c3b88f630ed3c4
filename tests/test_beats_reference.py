"""Independent reference for the BEATs tests: official checkpoint layout and forward maths.

Written as a plain functional reading of microsoft/unilm ``beats/BEATs.py`` + ``backbone.py``
(no code shared with :mod:`espnet_cls.models.beats`): the key names and shapes an official
checkpoint holds, and the single-clip forward of ``BEATs.extract_features`` (fbank, patch
embedding, LayerNorm, projection, weight-normed conv positional embedding, post-LN deep-norm
layers whose attention uses the max-shift/alpha=32 trick and the GRU-gated bucketed
relative position bias computed in layer 0 and reused by every layer).
"""

from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as ta_kaldi

TINY_CFG = {
    "input_patch_size": 16,
    "embed_dim": 24,
    "conv_bias": False,
    "encoder_layers": 2,
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 48,
    "encoder_attention_heads": 4,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0,
    "layer_norm_first": False,
    "deep_norm": True,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "conv_pos": 8,
    "conv_pos_groups": 4,
    "relative_position_embedding": True,
    "num_buckets": 32,
    "max_distance": 40,
    "gru_rel_pos": True,
    "finetuned_model": False,
    "predictor_dropout": 0.0,
    "predictor_class": 5,
}


def official_shapes(cfg: Dict) -> Dict[str, tuple]:
    """Names and shapes of the tensors in an official checkpoint's ``model`` (old weight-norm names)."""
    e, d, f, h, k, g = (cfg["embed_dim"], cfg["encoder_embed_dim"], cfg["encoder_ffn_embed_dim"],
                        cfg["encoder_attention_heads"], cfg["conv_pos"], cfg["conv_pos_groups"])
    p = cfg["input_patch_size"]
    s = {
        "patch_embedding.weight": (e, 1, p, p),
        "layer_norm.weight": (e,),
        "layer_norm.bias": (e,),
        "post_extract_proj.weight": (d, e),
        "post_extract_proj.bias": (d,),
        "encoder.pos_conv.0.bias": (d,),
        "encoder.pos_conv.0.weight_g": (1, 1, k),
        "encoder.pos_conv.0.weight_v": (d, d // g, k),
        "encoder.layer_norm.weight": (d,),
        "encoder.layer_norm.bias": (d,),
    }
    if cfg["conv_bias"]:
        s["patch_embedding.bias"] = (e,)
    for i in range(cfg["encoder_layers"]):
        a = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[a + f"self_attn.{proj}.weight"] = (d, d)
            s[a + f"self_attn.{proj}.bias"] = (d,)
        if cfg["relative_position_embedding"]:
            s[a + "self_attn.relative_attention_bias.weight"] = (cfg["num_buckets"], h)
        if cfg["gru_rel_pos"]:
            s[a + "self_attn.grep_linear.weight"] = (8, d // h)
            s[a + "self_attn.grep_linear.bias"] = (8,)
            s[a + "self_attn.grep_a"] = (1, h, 1, 1)
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            s[a + f"{ln}.weight"] = (d,)
            s[a + f"{ln}.bias"] = (d,)
        s[a + "fc1.weight"] = (f, d)
        s[a + "fc1.bias"] = (f,)
        s[a + "fc2.weight"] = (d, f)
        s[a + "fc2.bias"] = (d,)
    if cfg["finetuned_model"]:
        s["predictor.weight"] = (cfg["predictor_class"], d)
        s["predictor.bias"] = (cfg["predictor_class"],)
    return s


def random_official_state(cfg: Dict, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random weights in the official layout (relative bias shared: every layer's copy = layer 0's)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in official_shapes(cfg).items():
        if name.endswith(("layer_norm.weight",)) or "layer_norm.weight" in name:
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith("grep_a"):
            t = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif name.endswith("weight_g"):
            t = 0.5 + torch.rand(shape, generator=gen)
        elif name.endswith("relative_attention_bias.weight"):
            t = torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1] if len(shape) > 1 else shape[0]
            if name == "patch_embedding.weight":
                fan_in = shape[2] * shape[3]
            t = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        out[name] = t
    rel0 = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    for name in out:
        if name.endswith("relative_attention_bias.weight"):
            out[name] = out[rel0].clone()
    return out


def to_new_weight_norm_names(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename ``weight_g/weight_v`` as torch.nn.utils.parametrizations.weight_norm does."""
    out = {}
    for k, v in state.items():
        if k.endswith(".weight_g"):
            k = k[: -len("weight_g")] + "parametrizations.weight.original0"
        elif k.endswith(".weight_v"):
            k = k[: -len("weight_v")] + "parametrizations.weight.original1"
        out[k] = v
    return out


def ref_bucket(rel: int, num_buckets: int, max_distance: int) -> int:
    """T5 bidirectional bucket of one offset, from the formula (float32 log as the official code)."""
    half = num_buckets // 2
    base = half if rel > 0 else 0
    n = abs(rel)
    max_exact = half // 2
    if n < max_exact:
        return base + n
    ratio = torch.log(torch.tensor(float(n)) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + int((ratio * (half - max_exact)).item())
    return base + min(large, half - 1)


def ref_fbank(wav: torch.Tensor, mean: float = 15.41663, std: float = 6.55582) -> torch.Tensor:
    """Official ``BEATs.preprocess`` for one clip ``[T]`` -> ``[F, 128]``."""
    fb = ta_kaldi.fbank(wav.unsqueeze(0) * 2**15, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10)
    return (fb - mean) / (2 * std)


def ref_forward(state: Dict[str, torch.Tensor], cfg: Dict, wav: torch.Tensor, num_layers: int | None = None,
                mean: float = 15.41663, std: float = 6.55582) -> torch.Tensor:
    """Single-clip eval forward of the official BEATs on ``wav [T]`` -> ``[T', D]``."""
    sd = state
    fb = ref_fbank(wav, mean, std)
    p = cfg["input_patch_size"]
    x = F.conv2d(fb[None, None], sd["patch_embedding.weight"], sd.get("patch_embedding.bias"), stride=p)
    x = x.reshape(1, x.shape[1], -1).transpose(1, 2)
    x = F.layer_norm(x, (x.shape[-1],), sd["layer_norm.weight"], sd["layer_norm.bias"])
    x = F.linear(x, sd["post_extract_proj.weight"], sd["post_extract_proj.bias"])
    k = cfg["conv_pos"]
    w = torch._weight_norm(sd["encoder.pos_conv.0.weight_v"], sd["encoder.pos_conv.0.weight_g"], 2)
    xc = F.conv1d(x.transpose(1, 2), w, sd["encoder.pos_conv.0.bias"], padding=k // 2, groups=cfg["conv_pos_groups"])
    if k % 2 == 0:
        xc = xc[:, :, :-1]
    x = x + F.gelu(xc).transpose(1, 2)
    d = x.shape[-1]
    x = F.layer_norm(x, (d,), sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])
    x = x[0]  # [T, D]
    t = x.shape[0]
    h = cfg["encoder_attention_heads"]
    hd = d // h
    scaling = hd**-0.5
    alpha = 32
    nb, md = cfg["num_buckets"], cfg["max_distance"]
    table = torch.tensor([ref_bucket(r, nb, md) for r in range(-(t - 1), t)])  # offset r at index r + t - 1
    offsets = torch.arange(t)[None, :] - torch.arange(t)[:, None]  # key - query
    buckets = table[offsets + t - 1]
    pos_bias = sd["encoder.layers.0.self_attn.relative_attention_bias.weight"][buckets].permute(2, 0, 1)  # [H, T, T]
    dn_alpha = math.pow(2 * cfg["encoder_layers"], 0.25) if cfg["deep_norm"] else 1.0
    n = cfg["encoder_layers"] if num_layers is None else num_layers
    for i in range(n):
        a = f"encoder.layers.{i}."

        def lin(name, inp, a=a):
            return F.linear(inp, sd[a + name + ".weight"], sd[a + name + ".bias"])

        q = lin("self_attn.q_proj", x) * scaling / alpha
        kk = lin("self_attn.k_proj", x)
        v = lin("self_attn.v_proj", x)
        qh = q.view(t, h, hd).transpose(0, 1)  # [H, T, hd]
        kh = kk.view(t, h, hd).transpose(0, 1)
        vh = v.view(t, h, hd).transpose(0, 1)
        att = qh @ kh.transpose(1, 2)
        att = (att - att.max(dim=-1, keepdim=True)[0]) * alpha
        bias = pos_bias
        if cfg["gru_rel_pos"]:
            ql = qh * alpha / scaling
            g = torch.sigmoid(F.linear(ql, sd[a + "self_attn.grep_linear.weight"], sd[a + "self_attn.grep_linear.bias"])
                              .view(h, t, 2, 4).sum(-1))
            ga, gb = g.chunk(2, dim=-1)
            bias = (ga * (gb * sd[a + "self_attn.grep_a"][0] - 1.0) + 2.0) * pos_bias
        att = torch.softmax(att + bias, dim=-1)
        o = (att @ vh).transpose(0, 1).reshape(t, d)
        o = lin("self_attn.out_proj", o)
        x = F.layer_norm(x * dn_alpha + o, (d,), sd[a + "self_attn_layer_norm.weight"], sd[a + "self_attn_layer_norm.bias"])
        ff = lin("fc2", F.gelu(lin("fc1", x)))
        x = F.layer_norm(x * dn_alpha + ff, (d,), sd[a + "final_layer_norm.weight"], sd[a + "final_layer_norm.bias"])
    return x
