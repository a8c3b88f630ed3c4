"""Conformer encoder (``encoder: conformer``), ESPnet's option names.

Same input layer as the transformer; positions are absolute sinusoidal
(``pos_enc_layer_type: abs_pos`` + ``selfattn_layer_type: selfattn``, our default) or relative,
Transformer-XL style (``rel_pos`` + ``rel_selfattn``, ESPnet's default and what its recipes
use). Each block: ½ macaron FFN, self-attention with key padding mask, convolution module
(pointwise conv + GLU, depthwise conv over time with padded frames zeroed first, BatchNorm
with training statistics over the valid frames only,
Swish, pointwise conv), ½ FFN, LayerNorm — all pre-LN.
"""

from __future__ import annotations

import torch
from torch import nn

from espnet_cls.models.encoders import AbsEncoder, register_encoder
from espnet_cls.models.encoders._layers import (
    FeedForward,
    PositionalEncoding,
    RelPositionalEncoding,
    RelPositionSelfAttention,
    SelfAttention,
    check_fixed_options,
    make_input_layer,
    masked_batch_norm,
    pad_mask_for,
)


class ConvModule(nn.Module):
    """Conformer convolution module; padding is zeroed before the depthwise conv."""

    def __init__(self, d: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"encoder_conf.cnn_module_kernel must be odd, got {kernel_size}")
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel_size, padding=kernel_size // 2, groups=d)
        self.norm = nn.BatchNorm1d(d)
        self.act = nn.SiLU()
        self.pw2 = nn.Conv1d(d, d, 1)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, d]; pad_mask [B, T] -> [B, T, d]."""
        h = nn.functional.glu(self.pw1(x.transpose(1, 2)), dim=1)
        h = h.masked_fill(pad_mask.unsqueeze(1), 0.0)
        valid = (~pad_mask).unsqueeze(1).to(h.dtype)  # [B, 1, T]
        h = self.pw2(self.act(masked_batch_norm(self.norm, self.dw(h), valid)))
        return h.transpose(1, 2)


class ConformerLayer(nn.Module):
    def __init__(
        self,
        d: int,
        heads: int,
        units: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        macaron_style: bool,
        use_cnn_module: bool,
        kernel_size: int,
        rel_pos: bool = False,
        legacy_rel_pos: bool = False,
        eps: float = 1e-5,
        norm_final: bool = True,
    ) -> None:
        super().__init__()
        self.rel_pos = rel_pos
        self.ff_macaron = FeedForward(d, units, dropout_rate, "swish") if macaron_style else None
        self.norm_ff_macaron = nn.LayerNorm(d, eps=eps) if macaron_style else None
        self.ff_scale = 0.5 if macaron_style else 1.0
        self.norm_mha = nn.LayerNorm(d, eps=eps)
        if rel_pos:
            self.attn = RelPositionSelfAttention(d, heads, attention_dropout_rate, legacy=legacy_rel_pos)
        else:
            self.attn = SelfAttention(d, heads, attention_dropout_rate)
        self.conv = ConvModule(d, kernel_size) if use_cnn_module else None
        self.norm_conv = nn.LayerNorm(d, eps=eps) if use_cnn_module else None
        self.norm_ff = nn.LayerNorm(d, eps=eps)
        self.ff = FeedForward(d, units, dropout_rate, "swish")
        self.norm_final = nn.LayerNorm(d, eps=eps) if norm_final else None
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor, pos_emb: torch.Tensor | None = None) -> torch.Tensor:
        if self.ff_macaron is not None:
            x = x + self.ff_scale * self.dropout(self.ff_macaron(self.norm_ff_macaron(x)))
        if self.rel_pos:
            x = x + self.dropout(self.attn(self.norm_mha(x), pad_mask, pos_emb))
        else:
            x = x + self.dropout(self.attn(self.norm_mha(x), pad_mask))
        if self.conv is not None:
            x = x + self.dropout(self.conv(self.norm_conv(x), pad_mask))
        x = x + self.ff_scale * self.dropout(self.ff(self.norm_ff(x)))
        return self.norm_final(x) if self.norm_final is not None else x


@register_encoder("conformer")
class ConformerEncoder(AbsEncoder):
    """Args: output_size, attention_heads, linear_units, num_blocks, dropout_rate,
    positional_dropout_rate, attention_dropout_rate, input_layer (``conv2d`` | ``conv2d2`` | ``conv2d6``
    | ``conv2d8`` | ``linear``), macaron_style, use_cnn_module, cnn_module_kernel,
    pos_enc_layer_type / selfattn_layer_type (``abs_pos``/``selfattn`` or ``rel_pos``/``rel_selfattn``; ESPnet's
    name ``selfattention_layer_type`` is accepted for it, so ESPnet's conformer configs train here). ESPnet's
    activation_type / normalize_before / concat_after / positionwise_layer_type are accepted at
    the values implemented (swish / true / false / linear); positionwise_conv_kernel_size
    is accepted and unused; the relative attention has the semantics of ESPnet's ``latest`` form
    (``rel_pos_type: latest``, the default here), or of its ``legacy`` form with ``rel_pos_type: legacy``
    or ``legacy_rel_pos``/``legacy_rel_selfattn``; ``zero_triu: true`` is not implemented).
    For ESPnet's exact function (models trained by ESPnet): ``after_norm: true`` (a final
    LayerNorm after the blocks), ``norm_final_without_cnn: false`` (the block's final LayerNorm
    only with a convolution module), ``layer_norm_eps: 1e-12``; ``max_pos_emb_len`` sizes the
    legacy position table (ESPnet's, default 5000)."""

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
        macaron_style: bool = True,
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 31,
        pos_enc_layer_type: str = "abs_pos",
        selfattn_layer_type: str = "selfattn",
        activation_type: str = "swish",
        normalize_before: bool = True,
        concat_after: bool = False,
        positionwise_layer_type: str = "linear",
        positionwise_conv_kernel_size: int = 3,
        rel_pos_type: str = "latest",
        zero_triu: bool = False,
        after_norm: bool = False,
        norm_final_without_cnn: bool = True,
        layer_norm_eps: float = 1e-5,
        max_pos_emb_len: int = 5000,
        selfattention_layer_type: str | None = None,
    ) -> None:
        super().__init__()
        if selfattention_layer_type is not None:  # ESPnet's name of selfattn_layer_type
            if selfattn_layer_type not in ("selfattn", selfattention_layer_type):
                raise ValueError("encoder_conf (conformer): give selfattention_layer_type (ESPnet's name) or "
                                 f"selfattn_layer_type, not both ({selfattention_layer_type!r} / {selfattn_layer_type!r})")
            selfattn_layer_type = selfattention_layer_type
        if rel_pos_type not in ("latest", "legacy"):
            raise ValueError(f"encoder_conf (conformer): rel_pos_type must be latest or legacy, got {rel_pos_type!r}")
        if rel_pos_type == "legacy" and (pos_enc_layer_type, selfattn_layer_type) == ("rel_pos", "rel_selfattn"):
            pos_enc_layer_type, selfattn_layer_type = "legacy_rel_pos", "legacy_rel_selfattn"  # as ESPnet
        pairs = {
            ("abs_pos", "selfattn"): False,
            ("rel_pos", "rel_selfattn"): True,
            ("latest_rel_pos", "rel_selfattn"): True,
            ("legacy_rel_pos", "legacy_rel_selfattn"): True,
        }
        self.legacy_rel_pos = pos_enc_layer_type == "legacy_rel_pos"
        if zero_triu:
            raise ValueError("encoder_conf (conformer): zero_triu: true is not supported")
        if (pos_enc_layer_type, selfattn_layer_type) not in pairs:
            raise ValueError(
                "encoder_conf (conformer): pos_enc_layer_type/selfattn_layer_type must be abs_pos/selfattn or "
                f"rel_pos/rel_selfattn, got {pos_enc_layer_type!r}/{selfattn_layer_type!r}"
            )
        self.rel_pos = pairs[(pos_enc_layer_type, selfattn_layer_type)]
        check_fixed_options(
            "encoder_conf (conformer)",
            {
                "activation_type": activation_type,
                "normalize_before": normalize_before,
                "concat_after": concat_after,
                "positionwise_layer_type": positionwise_layer_type,
            },
            {"activation_type": "swish", "normalize_before": True, "concat_after": False, "positionwise_layer_type": "linear"},
        )
        del positionwise_conv_kernel_size  # only used by positionwise_layer_type conv1d (not implemented)
        eps = float(layer_norm_eps)
        self._output_size = int(output_size)
        self.embed = make_input_layer(input_layer, int(input_size), self._output_size, dropout_rate)
        if self.rel_pos:
            self.pos = RelPositionalEncoding(
                self._output_size, positional_dropout_rate, legacy=self.legacy_rel_pos, max_len=int(max_pos_emb_len)
            )
        else:
            self.pos = PositionalEncoding(self._output_size, positional_dropout_rate)
        self.layers = nn.ModuleList(
            ConformerLayer(
                self._output_size,
                int(attention_heads),
                int(linear_units),
                dropout_rate,
                attention_dropout_rate,
                bool(macaron_style),
                bool(use_cnn_module),
                int(cnn_module_kernel),
                self.rel_pos,
                legacy_rel_pos=self.legacy_rel_pos,
                eps=eps,
                norm_final=bool(use_cnn_module) or bool(norm_final_without_cnn),
            )
            for _ in range(int(num_blocks))
        )
        self.after_norm = nn.LayerNorm(self._output_size, eps=eps) if after_norm else None

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs [B, T, D], lengths [B] -> hs [B, T', output_size], lengths'."""
        x, lens = self.embed(xs, lengths)
        if self.legacy_rel_pos and bool((lens < x.size(1)).any()):
            # ESPnet's legacy relative attention depends on the sequence length T itself (its
            # rel_shift), so padding would change a clip's result: run each clip at its own length.
            out = x.new_zeros(x.size(0), x.size(1), self._output_size)
            for i in range(x.size(0)):
                n = int(lens[i])
                out[i, :n] = self._blocks(x[i : i + 1, :n], lens[i : i + 1])[0]
            return out, lens
        return self._blocks(x, lens), lens

    def _blocks(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Positional encoding, the blocks and the final norm on embedded frames x [B, T, d]."""
        pos_emb = None
        if self.rel_pos:
            x, pos_emb = self.pos(x)
        else:
            x = self.pos(x)
        pad = pad_mask_for(x, lens)
        for layer in self.layers:
            x = layer(x, pad, pos_emb)
        if self.after_norm is not None:
            x = self.after_norm(x)
        return x.masked_fill(pad.unsqueeze(-1), 0.0)
