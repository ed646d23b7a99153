"""Sampling extraction: does the row come back when the attacker samples instead of decoding greedily?

For each row x with context c = x_<c (the 50-token prefix) and true suffix y = x_c..x_{c+k-1}, draw m
seeded continuations s^1..s^m of k tokens with top-k sampling at temperature tau (defaults: m = 16,
top-k 40, tau = 1, as Carlini et al. 2021 sample GPT-2) and report per row
- best_match = max_j 1/k sum_i [s^j_i = y_i]   (the best sample's share of suffix tokens in place),
- best_el    = max_j |{n-grams of s^j found among y's n-grams, with multiplicity}| / (k - n + 1), n = 10
               (EL_n's term at the prefix length c, on a sample instead of the greedy continuation),
- exact      = some s^j equals y,
and for a split the means of the first two and the fraction with `exact`. One torch generator seeded
by (seed, row index) draws each row's samples, so a figure does not depend on batching (rows decode 32
at a time, each row's prefix once for its m samples).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from ..metrics.greedy import preallocated_cache
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
def sample_suffixes(model, rows: Sequence[torch.Tensor], sp: SamplingParams, row_seeds: Sequence[int]) -> list[torch.Tensor]:
    """(m, k) sampled continuations of each row's x[:c], top-k at temperature tau. The rows decode as one
    batch; row r's draws come from its own generator, seeded by row_seeds[r], in the same order as when it
    decodes alone, so its samples do not depend on which rows share its batch."""
    device = next(model.parameters()).device
    gens = [torch.Generator(device="cpu").manual_seed(seed) for seed in row_seeds]
    # the prefix once per row; its keys and values then serve all m samples of the row
    res = model(torch.stack([x[: sp.context] for x in rows]).to(device), use_cache=True)
    kv = [(layer.keys.repeat_interleave(sp.samples, dim=0), layer.values.repeat_interleave(sp.samples, dim=0))
          for layer in res.cache.layers]
    cache = preallocated_cache(kv, sp.context + sp.length)
    logits, out = res.logits[:, -1].repeat_interleave(sp.samples, dim=0), []
    for step in range(sp.length):
        top = torch.topk(logits.float().cpu() / sp.temperature, min(sp.top_k, logits.shape[-1]), dim=-1)
        probs = torch.softmax(top.values, dim=-1).view(len(rows), sp.samples, -1)
        draws = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, gens)])
        pick = top.indices.gather(-1, draws)
        out.append(pick)
        if step + 1 < sp.length:
            # the cache goes positionally, as metrics/greedy.py passes it (transformers 5 names it `cache`)
            logits = model(pick.to(device), cache, use_cache=True).logits[:, -1]
    return list(torch.cat(out, dim=1).view(len(rows), sp.samples, sp.length).unbind(0))


def row_figures(samples: torch.Tensor, truth: Sequence[int], n: int) -> dict:
    truth = list(truth)
    matches = [float(np.mean([int(a == b) for a, b in zip(s, truth)])) for s in samples.tolist()]
    els = [el_at(truth, s, n) for s in samples.tolist()]
    return {"best_match": max(matches), "best_el": max(els), "exact": any(s == truth for s in samples.tolist())}


def sampling_extraction(model, seqs: Sequence[torch.Tensor], sp: SamplingParams = SamplingParams(),
                        rows_per_batch: int = 32) -> dict:
    """Per-row figures and their split summary (means, the exact-match fraction) with the settings.
    `rows_per_batch` rows (times m samples) decode together; it changes the time, not the figures."""
    was = model.training
    model.eval()
    try:
        rows = []
        for start in range(0, len(seqs), rows_per_batch):
            chunk = seqs[start: start + rows_per_batch]
            seeds = [sp.seed * 1_000_003 + i for i in range(start, start + len(chunk))]
            for x, samples in zip(chunk, sample_suffixes(model, chunk, sp, seeds)):
                truth = x[sp.context: sp.context + sp.length].tolist()
                rows.append(row_figures(samples, truth, sp.n))
    finally:
        model.train(was)
    return {"rows": rows, "best_match": float(np.mean([r["best_match"] for r in rows])),
            f"best_el_{sp.n}": float(np.mean([r["best_el"] for r in rows])),
            "exact_frac": float(np.mean([r["exact"] for r in rows])), "params": sp.record()}
