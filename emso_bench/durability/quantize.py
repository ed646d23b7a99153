"""Round-to-nearest (RTN) weight quantization, as a durability probe (Zhang et al., ICLR 2025:
gradient-ascent-style unlearning largely comes back at 4 bits).

Asymmetric min-max RTN over a group of weights w (a whole output channel, i.e. a row of a Linear
weight, or `group_size` consecutive input weights of that row):

    scale = (max w - min w) / (2^b - 1),  zero = round(-min w / scale),
    q = clamp(round(w / scale) + zero, 0, 2^b - 1),  w' = (q - zero) * scale

A constant group (scale 0) is kept as is. Only the 2-D weights inside transformer blocks are
quantized (the Linear layers of attention and MLP); embeddings, the tied output layer, biases and
layer norms stay in full precision, as in weight-only quantization of GPT-style models.
"""
from __future__ import annotations

import copy
import re

import torch

_BLOCK = re.compile(r"\.\d+\.")  # parameters inside a numbered transformer block


def rtn(w: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """w (out, in) round-tripped through `bits`-bit RTN per output channel, or per group of
    `group_size` input weights of each channel (the last group may be shorter)."""
    if w.dim() != 2:
        raise ValueError(f"rtn: expected a 2-D weight, got {tuple(w.shape)}")
    if group_size is None or group_size >= w.shape[1]:
        return _rtn_rows(w, bits)
    parts = [_rtn_rows(w[:, start:start + group_size], bits) for start in range(0, w.shape[1], group_size)]
    return torch.cat(parts, dim=1)


def _rtn_rows(w: torch.Tensor, bits: int) -> torch.Tensor:
    levels = 2 ** bits - 1
    x = w.double()
    lo, hi = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
    scale = (hi - lo) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-lo / safe)
    q = torch.clamp(torch.round(x / safe) + zero, 0, levels)
    out = torch.where(scale > 0, (q - zero) * safe, x)
    return out.to(w.dtype)


def quantized_copy(model, bits: int, group_size: int | None = None):
    """A copy of the model whose block matrices are RTN round-tripped; the original is untouched."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            if p.dim() == 2 and _BLOCK.search(name):
                p.copy_(rtn(p, bits, group_size))
    return twin
