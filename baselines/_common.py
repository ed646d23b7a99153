"""Pieces several baselines share: a frozen reference model, retain-text batches, prefix/suffix splits."""
from __future__ import annotations

import copy

import torch

from emso_bench.corpus import gutenberg_split
from emso_bench.objectives import Batch
from emso_bench.perplexity import windows


HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}  # distributed.precision -> the dtype DeepSpeed trains in


def frozen_copy(model, precision: str = "fp32") -> torch.nn.Module:
    """The starting model, frozen, in eval mode (one copy per run), in the dtype the run trains in:
    DeepSpeed casts the trained module to bf16/fp16, and a reference left in fp32 would make
    log p_theta - log p_ref non-zero before the first step."""
    ref = copy.deepcopy(model)
    if precision in HALF:
        ref.to(HALF[precision])
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


class RetainText:
    """Held-in Gutenberg windows (text the model was trained on, never an evaluation split), drawn in a
    seeded order, `batch` windows per step."""

    def __init__(self, tokenizer, length: int, batch: int, seed: int, device):
        held_in, _ = gutenberg_split()
        text = "\n\n".join(held_in[:: max(1, len(held_in) // 4000)])  # ~4k paragraphs spread over all novels
        self.chunks = windows(tokenizer.encode(text, verbose=False), length)  # windowed here: no length notice
        self.batch, self.device = batch, device
        self.order = torch.randperm(len(self.chunks), generator=torch.Generator().manual_seed(seed))
        self.cursor = 0

    def next(self) -> Batch:
        if self.cursor + self.batch > len(self.order):
            self.cursor = 0
        idx = self.order[self.cursor : self.cursor + self.batch]
        self.cursor += self.batch
        return Batch.of(list(self.chunks[idx]), self.device)


def split_prefix(batch: Batch, prefix: int) -> torch.Tensor:
    """(B, W-1) mask of the target positions after the first `prefix` tokens (the suffix y of x = prefix)."""
    positions = torch.arange(batch.target_mask.size(1), device=batch.ids.device)[None, :]
    return batch.target_mask * (positions >= max(prefix - 1, 0))
