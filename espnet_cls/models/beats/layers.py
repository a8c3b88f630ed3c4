"""Transformer of BEATs (Chen et al., 2022, arXiv:2212.09058), written from the official maths.

Parameter names follow the official ``backbone.py`` so that ``cfg``/``model`` checkpoints of
microsoft/unilm load without renaming (the positional conv keeps the ``weight_g``/``weight_v``
names of ``torch.nn.utils.weight_norm``).

Shapes: ``B`` batch, ``T`` tokens, ``C`` model dim, ``H`` heads. Padding masks are bool
``[B, T]`` with ``True`` at padded tokens.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from espnet_cls.models.beats.config import BEATsConfig

#: Temperature trick of the official attention: q is divided by ALPHA and the
#: max-shifted logits are multiplied back (numerically safer in fp16; same function).
ATTN_ALPHA = 32.0


class GradMultiply(torch.autograd.Function):
    """Identity in the forward pass; scales the gradient by ``scale`` in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # noqa: D102
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        return grad * ctx.scale, None


def _gelu_fp32(x: Tensor) -> Tensor:
    """Exact GELU computed in float32 (as the official ``gelu``), cast back to x's dtype."""
    return F.gelu(x.float()).type_as(x)


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def get_activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """Activation by its fairseq name (relu, gelu, gelu_accurate/gelu_fast, tanh, linear)."""
    table = {
        "relu": F.relu,
        "gelu": _gelu_fp32,
        "gelu_accurate": _gelu_tanh,
        "gelu_fast": _gelu_tanh,
        "tanh": torch.tanh,
        "linear": lambda x: x,
    }
    if name not in table:
        raise ValueError(f"BEATs activation_fn {name!r} is not supported (choose from {sorted(table)})")
    return table[name]


class WeightNormConv1d(nn.Module):
    """``Conv1d`` whose weight is ``g * v / ||v||`` with the norm taken over all axes but the kernel axis.

    This is ``torch.nn.utils.weight_norm(conv, dim=2)`` with explicit parameters
    (``weight_g [1, 1, K]``, ``weight_v [C, C/groups, K]``, ``bias [C]``), so that both the old
    (``weight_g/weight_v``) and new (``parametrizations.weight.original0/1``) checkpoint names can be
    mapped onto it.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"conv_pos_groups={groups} must divide encoder_embed_dim={channels}")
        self.kernel_size = kernel_size
        self.groups = groups
        self.padding = kernel_size // 2
        v = torch.empty(channels, channels // groups, kernel_size)
        nn.init.normal_(v, mean=0.0, std=math.sqrt(4.0 / (kernel_size * channels)))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(self._norm(v.detach()).clone())
        self.bias = nn.Parameter(torch.zeros(channels))

    @staticmethod
    def _norm(v: Tensor) -> Tensor:
        return v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()

    def weight(self) -> Tensor:
        """The effective conv weight ``[C, C/groups, K]``."""
        return self.weight_v * (self.weight_g / self._norm(self.weight_v))

    def forward(self, x: Tensor) -> Tensor:
        """x ``[B, C, T]`` -> ``[B, C, T + 2*(K//2) - K + 1]``."""
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class SamePad(nn.Module):
    """Drops the last output step when the kernel is even, so the conv keeps the length."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, : -self.remove] if self.remove else x


def relative_position_bucket(relative_position: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Bidirectional T5-style bucket of ``key_pos - query_pos`` (integer tensor, any shape).

    Half the buckets are for positive offsets. Within a half, offsets below ``n/2`` (``n`` =
    buckets per half) get their own bucket; larger ones share log-spaced buckets up to
    ``max_distance``; beyond it, the last bucket.
    """
    half = num_buckets // 2
    buckets = (relative_position > 0).long() * half
    dist = relative_position.abs()
    max_exact = half // 2
    # clamp_min(1) only avoids log(0) where the exact branch is taken anyway
    log_ratio = torch.log(dist.clamp_min(1).float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (half - max_exact)).long()
    large = large.clamp_max(half - 1)
    return buckets + torch.where(dist < max_exact, dist, large)


class MultiheadAttention(nn.Module):
    """Self-attention with an optional (GRU-gated) bucketed relative position bias."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        has_relative_attention_bias: bool = False,
        num_buckets: int = 320,
        max_distance: int = 800,
        gru_rel_pos: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"encoder_embed_dim={embed_dim} must be divisible by encoder_attention_heads={num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.dropout_module = nn.Dropout(dropout)
        self.has_relative_attention_bias = has_relative_attention_bias
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)
            nn.init.xavier_normal_(self.relative_attention_bias.weight)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        for lin in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(lin.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        self.gru_rel_pos = gru_rel_pos
        if gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def compute_bias(self, query_length: int, key_length: int) -> Tensor:
        """Relative position bias ``[H, Tq, Tk]`` from the bucket embedding."""
        device = self.relative_attention_bias.weight.device
        q_pos = torch.arange(query_length, dtype=torch.long, device=device)[:, None]
        k_pos = torch.arange(key_length, dtype=torch.long, device=device)[None, :]
        bucket = relative_position_bucket(k_pos - q_pos, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Optional[Tensor] = None,
        position_bias: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """x ``[B, T, C]``, mask ``[B, T]`` -> (``[B, T, C]``, position bias ``[H, T, T]`` or None).

        The returned (ungated) position bias is reused by the following layers.
        """
        bsz, tlen, _ = x.shape
        if self.has_relative_attention_bias and position_bias is None:
            position_bias = self.compute_bias(tlen, tlen)

        def heads(t: Tensor) -> Tensor:
            return t.view(bsz, tlen, self.num_heads, self.head_dim).transpose(1, 2)

        q_raw = heads(self.q_proj(x))  # [B, H, T, d]
        k = heads(self.k_proj(x))
        v = heads(self.v_proj(x))
        q = q_raw * (self.scaling / ATTN_ALPHA)
        logits = torch.matmul(q, k.transpose(-1, -2))  # [B, H, T, T]
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        # shift by the row max (over valid keys) then undo the 1/ALPHA temperature
        logits = (logits - logits.amax(dim=-1, keepdim=True)) * ATTN_ALPHA
        if position_bias is not None:
            bias = position_bias.unsqueeze(0)  # [1, H, T, T]
            if self.gru_rel_pos:
                gates = torch.sigmoid(self.grep_linear(q_raw).view(bsz, self.num_heads, tlen, 2, 4).sum(-1))
                gate_a, gate_b = gates[..., 0:1], gates[..., 1:2]  # [B, H, T, 1]
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            logits = logits + bias
        probs = self.dropout_module(F.softmax(logits, dim=-1))
        out = torch.matmul(probs, v).transpose(1, 2).reshape(bsz, tlen, self.embed_dim)
        return self.out_proj(out), position_bias


class TransformerSentenceEncoderLayer(nn.Module):
    """One BEATs layer: attention + FFN, post-LN (optionally DeepNet-scaled) or pre-LN."""

    def __init__(self, cfg: BEATsConfig, has_relative_attention_bias: bool) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        if cfg.activation_fn == "glu":
            raise ValueError("BEATs activation_fn 'glu' is not supported (no released checkpoint uses it)")
        self.activation_fn = get_activation_fn(cfg.activation_fn)
        self.self_attn = MultiheadAttention(
            dim,
            cfg.encoder_attention_heads,
            dropout=cfg.attention_dropout,
            has_relative_attention_bias=has_relative_attention_bias,
            num_buckets=cfg.num_buckets,
            max_distance=cfg.max_distance,
            gru_rel_pos=bool(cfg.gru_rel_pos),
        )
        self.dropout1 = nn.Dropout(cfg.dropout)
        self.dropout2 = nn.Dropout(cfg.activation_dropout)
        self.dropout3 = nn.Dropout(cfg.dropout)
        self.layer_norm_first = bool(cfg.layer_norm_first)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.deep_norm_alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def _ffn(self, x: Tensor) -> Tensor:
        return self.dropout3(self.fc2(self.dropout2(self.activation_fn(self.fc1(x)))))

    def forward(
        self, x: Tensor, padding_mask: Optional[Tensor] = None, pos_bias: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """x ``[B, T, C]`` -> (``[B, T, C]``, position bias for the next layer)."""
        if self.layer_norm_first:
            h, pos_bias = self.self_attn(self.self_attn_layer_norm(x), padding_mask, pos_bias)
            x = x + self.dropout1(h)
            return x + self._ffn(self.final_layer_norm(x)), pos_bias
        h, pos_bias = self.self_attn(x, padding_mask, pos_bias)
        x = self.self_attn_layer_norm(x * self.deep_norm_alpha + self.dropout1(h))
        x = self.final_layer_norm(x * self.deep_norm_alpha + self._ffn(x))
        return x, pos_bias


def _init_bert(module: nn.Module) -> None:
    """fairseq's BERT init: N(0, 0.02) weights and zero biases for Linear and Embedding."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


class TransformerEncoder(nn.Module):
    """Conv positional embedding + LayerNorm + ``encoder_layers`` layers.

    The relative position embedding of layer 0 is shared by every layer (the same module is
    registered under each layer, so the state dict lists it once per layer, as the official one).
    """

    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.dropout = cfg.dropout
        self.pos_conv = nn.Sequential(WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups), SamePad(cfg.conv_pos), nn.GELU())
        rel = bool(cfg.relative_position_embedding)
        self.layers = nn.ModuleList([TransformerSentenceEncoderLayer(cfg, rel) for _ in range(cfg.encoder_layers)])
        self.layer_norm_first = bool(cfg.layer_norm_first)
        self.layer_norm = nn.LayerNorm(dim)
        self.layerdrop = float(cfg.encoder_layerdrop)
        self.layer_wise_gradient_decay_ratio = float(cfg.layer_wise_gradient_decay_ratio)
        for layer in self.layers:
            layer.apply(_init_bert)
        if rel:
            for layer in self.layers[1:]:
                del layer.self_attn.relative_attention_bias
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        if cfg.deep_norm:
            beta = math.pow(8 * cfg.encoder_layers, -0.25)
            for layer in self.layers:
                att = layer.self_attn
                for w, gain in ((att.k_proj, 1.0), (att.v_proj, beta), (att.q_proj, 1.0), (att.out_proj, beta), (layer.fc1, beta), (layer.fc2, beta)):
                    nn.init.xavier_normal_(w.weight, gain=gain)

    def forward(
        self, x: Tensor, padding_mask: Optional[Tensor] = None, num_layers: Optional[int] = None
    ) -> Tuple[Tensor, List[Tensor]]:
        """x ``[B, T, C]`` -> (output ``[B, T, C]``, hidden states).

        With ``num_layers=k`` only the first k layers run; the output is the hidden state after
        them (without the final pre-LN LayerNorm) and the hidden-state list holds the k+1 states
        (index 0 = the input of the first layer). With ``num_layers=None`` every layer runs and
        the list is empty.
        """
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        hidden: List[Tensor] = []
        n = len(self.layers) if num_layers is None else num_layers
        if num_layers is not None:
            hidden.append(x)
        pos_bias = None
        for layer in self.layers[:n]:
            if self.layer_wise_gradient_decay_ratio != 1.0:
                x = GradMultiply.apply(x, self.layer_wise_gradient_decay_ratio)
            if not self.training or self.layerdrop <= 0 or float(torch.rand(())) > self.layerdrop:
                x, pos_bias = layer(x, padding_mask, pos_bias)
            if num_layers is not None:
                hidden.append(x)
        if self.layer_norm_first and num_layers is None:
            x = self.layer_norm(x)
        return x, hidden
