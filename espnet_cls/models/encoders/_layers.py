"""Building blocks shared by the transformer and conformer encoders."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from espnet_cls.models.utils import make_pad_mask


class PositionalEncoding(nn.Module):
    """Absolute sinusoidal positional encoding: ``dropout(x * sqrt(d) + pe)`` (ESPnet's)."""

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)
        self.register_buffer("pe", self._make(max_len), persistent=False)

    def _make(self, n: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / self.d_model))
        pe = torch.zeros(n, self.d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: self.d_model // 2])
        return pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, d] -> [B, T, d]."""
        if x.size(1) > self.pe.size(0):
            self.pe = self._make(x.size(1)).to(self.pe.device)
        return self.dropout(x * self.xscale + self.pe[: x.size(1)].to(x.dtype))


#: ESPnet's conv2d input layers: (kernel, stride) of each 3x3-style convolution.
SUBSAMPLING_LAYERS = {
    "conv2d2": ((3, 2), (3, 1)),
    "conv2d": ((3, 2), (3, 2)),
    "conv2d6": ((3, 2), (5, 3)),
    "conv2d8": ((3, 2), (3, 2), (3, 2)),
}


def channels_last_weight(w: torch.Tensor) -> torch.Tensor:
    """A conv2d weight ``[O, I, kh, kw]`` with channels-last strides.

    With ``I == 1`` that is a view (``contiguous(memory_format=channels_last)`` would keep the
    ambiguous NCHW strides and oneDNN would stay in NCHW); otherwise a copy (autograd-tracked).
    """
    if w.size(1) == 1:
        return w.as_strided(w.shape, (w.size(2) * w.size(3), 1, w.size(3), 1))
    return w.contiguous(memory_format=torch.channels_last)


def conv2d_channels_last(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` with channels-last weights, so that oneDNN runs it (forward and backward) in
    channels-last memory. Measured against NCHW (docs/benchmarks.md, peer section): CPU time of one
    training step of the peer transformer 0.70-0.80x, of the CNN 0.9-1.0x (in-process A/B at load 3);
    on a quiet machine the peer training pass at one thread was the same (0.97-1.07x per epoch); the
    conv2d input layer in inference 1.3-2x less. The output has channels-last strides; its values
    equal NCHW's to float rounding. In an ONNX export (no memory formats) it is plain ``conv(x)``.
    """
    if torch.onnx.is_in_onnx_export():
        return conv(x)
    return F.conv2d(x, channels_last_weight(conv.weight), conv.bias, conv.stride, conv.padding, conv.dilation,
                    conv.groups)


class Conv2dSubsampling(nn.Module):
    """Strided 2-D convolutions + ReLU, then Linear to ``odim`` (ESPnet's ``conv2d`` (4×),
    ``conv2d2`` (2×), ``conv2d6`` (6×), ``conv2d8`` (8×) input layers).

    No padding: an output frame only reads the input frames under its kernels, so the valid
    output frames (``lengths'`` = the same arithmetic on the lengths) never read padding.
    Inputs shorter than one output frame are zero-padded and their lengths clamped to 1.
    """

    def __init__(self, idim: int, odim: int, kind: str = "conv2d") -> None:
        super().__init__()
        self.layers = SUBSAMPLING_LAYERS[kind]
        self.convs = nn.ModuleList()
        freq = idim
        for i, (k, st) in enumerate(self.layers):
            self.convs.append(nn.Conv2d(1 if i == 0 else odim, odim, k, st))
            freq = (freq - k) // st + 1
        if freq < 1:
            raise ValueError(f"{kind} subsampling needs a larger input_size (got {idim}); use input_layer: linear")
        self.out = nn.Linear(odim * freq, odim)
        self.min_len = 1
        while int(self.out_lengths(torch.tensor([self.min_len]))[0]) < 1:
            self.min_len += 1

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for ``lengths`` input frames (before clamping)."""
        for k, st in self.layers:
            lengths = torch.div(lengths - k, st, rounding_mode="floor") + 1
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.size(1) < self.min_len:
            x = F.pad(x, (0, 0, 0, self.min_len - x.size(1)))
        h = x.unsqueeze(1)
        # the ReLU may overwrite the conv output unless autograd needs it (or an ONNX export traces it)
        inplace = not torch.is_grad_enabled() and not torch.onnx.is_in_onnx_export()
        for conv in self.convs:
            h = F.relu(conv2d_channels_last(h, conv), inplace=inplace)  # [B, C, T', D']
        b, c, t, d = h.shape
        h = self.out(h.transpose(1, 2).reshape(b, t, c * d))
        return h, self.out_lengths(lengths).clamp(min=1)


class LinearInput(nn.Module):
    """Linear + LayerNorm + ReLU input layer without subsampling (``input_layer: linear``)."""

    def __init__(self, idim: int, odim: int, dropout_rate: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(idim, odim), nn.LayerNorm(odim), nn.Dropout(dropout_rate), nn.ReLU())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), lengths.clamp(min=1)


def make_input_layer(kind: str, idim: int, odim: int, dropout_rate: float) -> nn.Module:
    """``conv2d`` (4× subsampling), ``conv2d2`` (2×), ``conv2d6`` (6×), ``conv2d8`` (8×) or ``linear``."""
    if kind in SUBSAMPLING_LAYERS:
        return Conv2dSubsampling(idim, odim, kind)
    if kind == "linear":
        return LinearInput(idim, odim, dropout_rate)
    raise ValueError(f"encoder_conf.input_layer must be one of {', '.join([*SUBSAMPLING_LAYERS, 'linear'])}, got {kind!r}")


def check_fixed_options(component: str, given: dict, supported: dict) -> None:
    """ESPnet options accepted only at the one value implemented here; ValueError otherwise."""
    for key, value in given.items():
        if value != supported[key]:
            raise ValueError(f"{component}: {key}={value!r} is not supported (only {supported[key]!r})")


class FeedForward(nn.Module):
    """Linear -> activation -> dropout -> Linear."""

    def __init__(self, d: int, units: int, dropout_rate: float, activation: str = "relu") -> None:
        super().__init__()
        self.w1 = nn.Linear(d, units)
        self.w2 = nn.Linear(units, d)
        self.dropout = nn.Dropout(dropout_rate)
        self.act = nn.SiLU() if activation == "swish" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.dropout(self.act(self.w1(x))))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key padding mask."""

    def __init__(self, d: int, heads: int, dropout_rate: float) -> None:
        super().__init__()
        if d % heads != 0:
            raise ValueError(f"encoder_conf: output_size {d} is not divisible by attention_heads {heads}")
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout_rate, batch_first=True)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """x [B, T, d]; pad_mask [B, T] True at padding.

        ``nn.MultiheadAttention``'s function (its parameters) through
        ``F.scaled_dot_product_attention`` (the fused kernel, with the key padding mask) in
        training and inference alike; the module's own inference fast path used an unfused
        masked softmax on the CPU. The ONNX export runs :meth:`_explicit`.
        """
        if torch.onnx.is_in_onnx_export():
            return self._explicit(x, pad_mask)
        a = self.attn
        b, t, d = x.shape
        h = a.num_heads
        q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        keep = ~pad_mask[:, None, None, :]  # [B, 1, 1, T] True where a key may be attended
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=a.dropout if self.training else 0.0)
        return a.out_proj(out.transpose(1, 2).reshape(b, t, d))

    def _explicit(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """The same attention (eval mode) in plain ops whose shapes the TorchScript-based ONNX
        exporter keeps dynamic (``nn.MultiheadAttention``'s own code bakes the example's length)."""
        a = self.attn
        b, t, d = x.shape
        h = a.num_heads
        q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (y.reshape(b, t, h, d // h).transpose(1, 2) for y in (q, k, v))  # [B, H, T, dk]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d // h)
        scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, t, d)
        return a.out_proj(out)


def pad_mask_for(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T] bool, True at padded frames of x [B, T, ...]."""
    return make_pad_mask(lengths, x.size(1))


def masked_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BatchNorm whose training statistics use only the valid positions.

    ``x`` is [B, C, ...]; ``mask`` (float, 1 = valid) broadcasts to ``x`` with size 1 on the
    channel axis. In eval mode, or when nothing is padded, this is ``bn(x)`` (the running
    statistics). Otherwise the batch mean/variance are taken over the valid positions and
    the running statistics are updated with them, so padding neither shifts the statistics
    nor the normalization of the valid frames. Uses ``bn``'s parameters and buffers.
    """
    if not bn.training or not bn.track_running_stats or bool(mask.min() >= 1):
        return bn(x)
    dims = [d for d in range(x.dim()) if d != 1]
    m = mask.expand_as(x[:, :1]).to(x.dtype)
    count = float(m.sum().clamp(min=1.0))  # valid positions per channel
    mean = (x * m).sum(dim=dims) / count
    shape = [1, -1] + [1] * (x.dim() - 2)
    var = (((x - mean.view(shape)) * m) ** 2).sum(dim=dims) / count
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        unbiased = var * count / max(count - 1.0, 1.0)
        bn.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
        bn.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    return y


class RelPositionalEncoding(nn.Module):
    """Scales x by sqrt(d) and returns sinusoidal embeddings of the relative positions
    ``-(T-1) .. T-1`` (Transformer-XL / ESPnet ``rel_pos``): ``(dropout(x * sqrt(d)), dropout(pe))``.

    ``legacy=True``: ESPnet's ``legacy_rel_pos`` (its conformer's default ``rel_pos_type: legacy``):
    sinusoidal embeddings of the positions ``M-1, M-2, .., M-T`` instead (``pe [T, d]``, ESPnet's
    ``reverse=True`` table with ``M = max(max_len, T)``, ``max_len`` = its ``max_pos_emb_len``).
    """

    def __init__(self, d_model: int, dropout_rate: float, legacy: bool = False, max_len: int = 5000) -> None:
        super().__init__()
        self.legacy = bool(legacy)
        self.max_len = int(max_len)
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, d] -> (x [B, T, d], pos_emb [2T-1, d] for relative positions -(T-1)..T-1)."""
        t = x.size(1)
        if self.legacy:
            top = max(self.max_len, t) - 1
            pos = torch.arange(top, top - t, -1.0, device=x.device, dtype=torch.float32).unsqueeze(1)
        else:
            pos = torch.arange(-(t - 1), t, device=x.device, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d_model, 2, device=x.device, dtype=torch.float32) * -(math.log(10000.0) / self.d_model))
        pe = torch.zeros(pos.size(0), self.d_model, device=x.device)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: self.d_model // 2])
        return self.dropout(x * self.xscale), self.dropout(pe.to(x.dtype))


class RelPositionSelfAttention(nn.Module):
    """Multi-head self-attention with relative positions (Transformer-XL, ESPnet ``rel_selfattn``):

    ``score(i, j) = ((q_i + u) · k_j + (q_i + v) · W_pos p_{i-j}) / sqrt(d_k)``, keys at padded
    frames masked. The relative term only depends on ``i - j``, so padding cannot change it.

    ``legacy=True``: ESPnet's ``legacy_rel_selfattn`` (with ``zero_triu: false``): the second term
    is ``(q_i + v) · W_pos p_j`` with ``pos_emb [T, d]`` (:class:`RelPositionalEncoding` with
    ``legacy=True``), then ESPnet's legacy ``rel_shift`` of that square matrix. (That shift mixes
    rows, so unlike the latest form it is not a function of ``i - j`` alone; with padding in a
    batch, ``T`` is the padded length, as in ESPnet.)
    """

    def __init__(self, d: int, heads: int, dropout_rate: float, legacy: bool = False) -> None:
        super().__init__()
        self.legacy = bool(legacy)
        if d % heads != 0:
            raise ValueError(f"encoder_conf: output_size {d} is not divisible by attention_heads {heads}")
        self.h = heads
        self.d_k = d // heads
        self.linear_q = nn.Linear(d, d)
        self.linear_k = nn.Linear(d, d)
        self.linear_v = nn.Linear(d, d)
        self.linear_out = nn.Linear(d, d)
        self.linear_pos = nn.Linear(d, d, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """x [B, T, d]; pad_mask [B, T] True at padding; pos_emb [2T-1, d] -> [B, T, d]."""
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)  # [B, T, H, dk]
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)  # [B, H, T, dk]
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), self.h, self.d_k).permute(1, 2, 0)  # [H, dk, 2T-1 or T]
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))  # [B, H, T, T]
        bd_all = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p)  # [B, H, T, 2T-1] (legacy: [B, H, T, T])
        if self.legacy:
            # ESPnet's legacy rel_shift on the square [T, T] matrix: prepend a zero column, read the
            # [T, T+1] buffer as [T+1, T] and drop its first row
            padded = torch.cat([bd_all.new_zeros(b, self.h, t, 1), bd_all], dim=-1)
            bd = padded.view(b, self.h, t + 1, t)[:, :, 1:].reshape(b, self.h, t, t)
        else:
            ar = torch.arange(t, device=x.device)
            rel_index = (ar.unsqueeze(1) - ar.unsqueeze(0) + t - 1).expand(b, self.h, t, t)  # i - j + T - 1
            bd = torch.gather(bd_all, 3, rel_index)
        scores = (ac + bd) / math.sqrt(self.d_k)
        scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        attn = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(out)
