"""Membership inference: can a loss-based attacker still tell the erased rows from rows never seen?

Per row x (T tokens), with log p_t = log p(x_t | x_<t) for t = 1..T-1:
- loss:   -1/(T-1) sum_t log p_t (lower: more likely a training member);
- zlib:   loss / len(zlib.compress(text)): the log-perplexity over the zlib entropy (compressed bytes) of
          the row's text, as Carlini et al. 2021 ("Extracting Training Data from Large Language Models")
          compute it (lower: member);
- min_k:  the mean of the k% lowest log p_t, k = 20% (Shi et al., ICLR 2024, Min-K% Prob; higher: member).
The AUC of each score separating forget rows (positives) from unseen rows (negatives), oriented so that
members score higher, is the Mann-Whitney statistic with ties counted one half: 0.5 means the attacker
cannot tell them apart, 1.0 that every forget row looks more like training data than every unseen row.
"""
from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
import torch

MIN_K = 0.2  # Shi et al.'s default fraction of lowest-probability tokens


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score of a random positive > score of a random negative) + 0.5 P(equal)."""
    pos, neg = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if not len(pos) or not len(neg):
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@torch.no_grad()
def token_log_probs(model, seqs: Sequence[torch.Tensor], batch_size: int = 64) -> list[np.ndarray]:
    """log p(x_t | x_<t) for t = 1..T-1 of each row (float64)."""
    from ..objectives import Batch, token_log_probs as tlp

    was = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    try:
        for start in range(0, len(seqs), batch_size):
            chunk = list(seqs[start:start + batch_size])
            values = tlp(model, Batch.of(chunk, device)).double().cpu()
            out += [values[i, : len(x) - 1].numpy() for i, x in enumerate(chunk)]
    finally:
        model.train(was)
    return out


def scores(logps: list[np.ndarray], texts: Sequence[str], k: float = MIN_K) -> dict[str, list[float]]:
    """Member-high scores per row: -loss, -zlib ratio, Min-K% Prob."""
    out: dict[str, list[float]] = {"loss": [], "zlib": [], "min_k": []}
    for lp, text in zip(logps, texts):
        loss = -float(lp.mean())
        out["loss"].append(-loss)
        out["zlib"].append(-loss / len(zlib.compress(text.encode("utf-8"))))
        n = max(1, int(len(lp) * k))
        out["min_k"].append(float(np.sort(lp)[:n].mean()))
    return out


def mia_aucs(model, tokenizer, forget: Sequence[torch.Tensor], unseen: Sequence[torch.Tensor]) -> dict:
    """{score: AUC} separating forget from unseen rows on this model (NaN without unseen rows)."""
    texts = lambda rows: [tokenizer.decode(x.tolist()) for x in rows]  # noqa: E731
    f = scores(token_log_probs(model, forget), texts(forget))
    u = scores(token_log_probs(model, unseen), texts(unseen)) if len(unseen) else {k: [] for k in f}
    return {name: auc(f[name], u[name]) for name in f} | {"min_k_fraction": MIN_K}
