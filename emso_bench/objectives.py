"""Per-sequence objectives on a batch of token sequences, the building blocks of every erasure loss.

Each function returns one value per sequence: the mean over its predicted positions t = 1..T-1 of a
per-position quantity of p_theta(. | x_<t). Losses then average sequences (docs/design.md: L_EM =
-1/|B| sum_x 1/(T-1) sum_t H(p(. | x_<t))). Rows may have different lengths: `Batch` right-pads them
and masks the padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F


@dataclass
class Batch:
    ids: torch.Tensor        # (B, W) right-padded token ids
    mask: torch.Tensor       # (B, W) 1 on real tokens
    target_mask: torch.Tensor  # (B, W-1) 1 where position t+1 is a real token to predict

    @classmethod
    def of(cls, seqs: Sequence[torch.Tensor], device) -> "Batch":
        width = max(len(x) for x in seqs)
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for row, x in enumerate(seqs):
            ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        return cls(ids.to(device), mask.to(device), mask[:, 1:].to(device))

    def __len__(self) -> int:
        return len(self.ids)


def _logits(model, batch: Batch) -> torch.Tensor:
    """Float32 (or wider) logits of positions 0..W-2, the predictions of tokens 1..W-1."""
    logits = model(input_ids=batch.ids, attention_mask=batch.mask).logits[:, :-1]
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _per_sequence_mean(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    m = batch.target_mask.to(values.dtype)
    return (values * m).sum(-1) / m.sum(-1)


def token_log_probs(model, batch: Batch) -> torch.Tensor:
    """(B, W-1) log p(x_t | x_<t) of the true tokens (zero on padding)."""
    logp = F.log_softmax(_logits(model, batch), dim=-1)
    return logp.gather(-1, batch.ids[:, 1:, None])[..., 0] * batch.target_mask


def mean_log_likelihood(model, batch: Batch) -> torch.Tensor:
    """Per sequence: 1/(T-1) sum_t log p(x_t | x_<t). Gradient ascent minimizes its mean (L_GA)."""
    return _per_sequence_mean(token_log_probs(model, batch), batch)


def sequence_log_likelihood(model, batch: Batch, start: int = 0) -> torch.Tensor:
    """Per sequence: sum_{t > start} log p(x_t | x_<t), the log-likelihood of the suffix after `start`
    tokens (NPO, DPO and SimNPO use sequence likelihoods, not logits)."""
    logp = token_log_probs(model, batch)
    keep = torch.arange(logp.size(1), device=logp.device)[None, :] >= max(start - 1, 0)
    return (logp * keep).sum(-1)


def mean_entropy(model, batch: Batch) -> torch.Tensor:
    """Per sequence: 1/(T-1) sum_t H(p(. | x_<t)), H(p) = -sum_v p_v log p_v."""
    logp = F.log_softmax(_logits(model, batch), dim=-1)
    return _per_sequence_mean(-(logp.exp() * logp).sum(-1), batch)


def mean_uniform_cross_entropy(model, batch: Batch) -> torch.Tensor:
    """Per sequence: 1/(T-1) sum_t CE(u, p(. | x_<t)) = -1/|V| sum_v log p_v, with u uniform.
    Its gradient in the logits is p - 1/|V|: it does not vanish at a one-hot prediction."""
    logp = F.log_softmax(_logits(model, batch), dim=-1)
    return _per_sequence_mean(-logp.mean(-1), batch)
