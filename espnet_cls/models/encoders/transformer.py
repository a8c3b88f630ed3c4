"""Transformer encoder (``encoder: transformer``), ESPnet's option names.

Input layer (``conv2d``: 4× subsampling, or ``linear``), absolute sinusoidal positional
encoding, ``num_blocks`` pre-LayerNorm layers (self-attention with a key padding mask, then a
feed-forward net), final LayerNorm. Padded frames are excluded from attention, so a clip's
outputs do not depend on its batch's padding.
"""

from __future__ import annotations

import torch
from torch import nn

from espnet_cls.models.encoders import AbsEncoder, register_encoder
from espnet_cls.models.encoders._layers import (
    FeedForward,
    PositionalEncoding,
    SelfAttention,
    check_fixed_options,
    make_input_layer,
    pad_mask_for,
)


class TransformerLayer(nn.Module):
    """Pre-LN: x + drop(MHA(LN(x))); x + drop(FFN(LN(x)))."""

    def __init__(self, d: int, heads: int, units: int, dropout_rate: float, attention_dropout_rate: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = SelfAttention(d, heads, attention_dropout_rate)
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.ff = FeedForward(d, units, dropout_rate)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), pad_mask))
        return x + self.dropout(self.ff(self.norm2(x)))


@register_encoder("transformer")
class TransformerEncoder(AbsEncoder):
    """Args: output_size (d_model), attention_heads, linear_units, num_blocks, dropout_rate,
    positional_dropout_rate, attention_dropout_rate, input_layer (``conv2d`` (4×) | ``conv2d2`` |
    ``conv2d6`` | ``conv2d8`` | ``linear``), layer_norm_eps (of the block and final LayerNorms;
    ESPnet's are 1e-12). ESPnet's normalize_before / concat_after /
    positionwise_layer_type are accepted at the values implemented (true / false / linear)."""

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 1024,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: str = "conv2d",
        normalize_before: bool = True,
        concat_after: bool = False,
        positionwise_layer_type: str = "linear",
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_fixed_options(
            "encoder_conf (transformer)",
            {"normalize_before": normalize_before, "concat_after": concat_after, "positionwise_layer_type": positionwise_layer_type},
            {"normalize_before": True, "concat_after": False, "positionwise_layer_type": "linear"},
        )
        self._output_size = int(output_size)
        self.embed = make_input_layer(input_layer, int(input_size), self._output_size, dropout_rate)
        self.pos = PositionalEncoding(self._output_size, positional_dropout_rate)
        self.layers = nn.ModuleList(
            TransformerLayer(self._output_size, int(attention_heads), int(linear_units), dropout_rate, attention_dropout_rate, float(layer_norm_eps))
            for _ in range(int(num_blocks))
        )
        self.after_norm = nn.LayerNorm(self._output_size, eps=float(layer_norm_eps))

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs [B, T, D], lengths [B] -> hs [B, T', output_size], lengths' (T' ≈ T/4 with conv2d)."""
        x, lens = self.embed(xs, lengths)
        x = self.pos(x)
        pad = pad_mask_for(x, lens)
        for layer in self.layers:
            x = layer(x, pad)
        x = self.after_norm(x)
        return x.masked_fill(pad.unsqueeze(-1), 0.0), lens
