"""The literal EL_n, as Jang et al.'s code computes it: the reference the fast path is checked against.

One `generate` call per prefix length (batched over rows of equal length), no shared work with
metrics/greedy.py. Far too slow for runs (tests and benchmarks/bench_el.py use it on a few rows).
"""
from __future__ import annotations

import torch


@torch.no_grad()
def literal_greedy(model, seqs: list[torch.Tensor], first: int, n: int) -> dict:
    """Literal greedy continuations as Jang et al. compute them: for every prefix length t, one
    `generate` call batched over the examples of equal length, T - t new tokens, no early stop.
    Returns {(i, t): continuation}. Shares nothing with the library's fast path."""
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, eos_token_id=None, pad_token_id=0, bos_token_id=None)
    out = {}
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(seqs):
        by_length.setdefault(len(x), []).append(i)
    for T, idx in by_length.items():
        batch = torch.stack([seqs[i] for i in idx])
        for t in range(first, T - n + 1):
            config.max_new_tokens = T - t
            gen = model.generate(batch[:, :t], attention_mask=torch.ones_like(batch[:, :t]), generation_config=config)
            assert gen.shape[1] == T
            for row, i in enumerate(idx):
                out[(i, t)] = gen[row, t:].tolist()
    return out


def literal_el(seqs: list[torch.Tensor], conts: dict, first: int, n: int) -> list[float]:
    """EL_n from literal continuations, as written in Jang et al.'s code."""
    values = []
    for i, x in enumerate(seqs):
        x = x.tolist()
        T, total = len(x), 0.0
        for t in range(first, T - n + 1):
            label = [tuple(x[t + j : t + j + n]) for j in range(T - t - n + 1)]
            pred = conts[(i, t)]
            pred_grams = [tuple(pred[j : j + n]) for j in range(len(pred) - n + 1)]
            unique = set(label)
            total += len([g for g in pred_grams if g in unique]) / len(label)
        values.append(total / (T - n - first + 1))
    return values
