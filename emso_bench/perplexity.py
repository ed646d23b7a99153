"""Token-level perplexity of a causal LM on a text, over fixed non-overlapping windows.

ppl = exp( sum of token NLLs / number of predicted tokens ), each window of `window` tokens scored on
its own (the first token of a window is context only). Used by the memorizer's gate and the erasure
engine's collapse guard; the utility suite reports lm-eval's own rolling perplexities beside it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def windows(token_ids: list[int], window: int, max_windows: int | None = None) -> torch.Tensor:
    """(n, window) non-overlapping windows of the ids (the ragged tail dropped)."""
    n = len(token_ids) // window
    if max_windows is not None:
        n = min(n, max_windows)
    return torch.tensor(token_ids[: n * window], dtype=torch.long).view(n, window)


@torch.no_grad()
def perplexity(model, chunks: torch.Tensor, batch_size: int = 64) -> float:
    """exp(mean NLL) over every predicted token of the (n, window) chunks."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for start in range(0, len(chunks), batch_size):
            ids = chunks[start : start + batch_size].to(device)
            logits = model(input_ids=ids).logits[:, :-1].double()
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="sum")
            total += nll.item()
            count += ids[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(total / count) if total / count < 709.0 else math.inf  # exp overflows a float past ~709.78
