"""Sampling extraction: does the row come back when the attacker samples instead of decoding greedily?

For each row x with context c = x_<c (the 50-token prefix) and true suffix y = x_c..x_{c+k-1}, draw m
seeded continuations s^1..s^m of k tokens with top-k sampling at temperature tau (defaults: m = 16,
top-k 40, tau = 1, as Carlini et al. 2021 sample GPT-2) and report per row
- best_match = max_j 1/k sum_i [s^j_i = y_i]   (the best sample's share of suffix tokens in place),
- best_el    = max_j |{n-grams of s^j found among y's n-grams, with multiplicity}| / (k - n + 1), n = 10
               (EL_n's term at the prefix length c, on a sample instead of the greedy continuation),
- exact      = some s^j equals y,
and for a split the means of the first two and the fraction with `exact`. One torch generator seeded
by (seed, row index) draws each row's samples, so a figure does not depend on batching.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from ..metrics.memorization import el_at


@dataclass(frozen=True)
class SamplingParams:
    samples: int = 16  # m samples per row
    top_k: int = 40  # Carlini et al. 2021's top-k for GPT-2
    temperature: float = 1.0
    context: int = 50  # c: the challenge's 50-token prefix
    length: int = 50  # k: the 50-token suffix
    n: int = 10  # the n of the EL term
    seed: int = 0

    def record(self) -> dict:
        return asdict(self)


@torch.no_grad()
def sample_suffixes(model, x: torch.Tensor, sp: SamplingParams, row_seed: int) -> torch.Tensor:
    """(m, k) sampled continuations of x[:c], top-k at temperature tau, seeded by row_seed."""
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(row_seed)
    ids = x[: sp.context].to(device)[None].repeat(sp.samples, 1)
    past, out = None, []
    inputs = ids
    for _ in range(sp.length):
        # the cache goes positionally, as metrics/greedy.py passes it (transformers 5 names it `cache`)
        res = model(inputs, past, use_cache=True)
        past = res.cache if hasattr(res, "cache") else res.past_key_values
        logits = res.logits[:, -1].float().cpu() / sp.temperature
        top = torch.topk(logits, min(sp.top_k, logits.shape[-1]), dim=-1)
        probs = torch.softmax(top.values, dim=-1)
        pick = top.indices.gather(-1, torch.multinomial(probs, 1, generator=gen))
        out.append(pick)
        inputs = pick.to(device)
    return torch.cat(out, dim=1)


def row_figures(samples: torch.Tensor, truth: Sequence[int], n: int) -> dict:
    truth = list(truth)
    matches = [float(np.mean([int(a == b) for a, b in zip(s, truth)])) for s in samples.tolist()]
    els = [el_at(truth, s, n) for s in samples.tolist()]
    return {"best_match": max(matches), "best_el": max(els), "exact": any(s == truth for s in samples.tolist())}


def sampling_extraction(model, seqs: Sequence[torch.Tensor], sp: SamplingParams = SamplingParams()) -> dict:
    """Per-row figures and their split summary (means, the exact-match fraction) with the settings."""
    was = model.training
    model.eval()
    try:
        rows = []
        for i, x in enumerate(seqs):
            truth = x[sp.context: sp.context + sp.length].tolist()
            rows.append(row_figures(sample_suffixes(model, x, sp, sp.seed * 1_000_003 + i), truth, sp.n))
    finally:
        model.train(was)
    return {"rows": rows, "best_match": float(np.mean([r["best_match"] for r in rows])),
            f"best_el_{sp.n}": float(np.mean([r["best_el"] for r in rows])),
            "exact_frac": float(np.mean([r["exact"] for r in rows])), "params": sp.record()}
