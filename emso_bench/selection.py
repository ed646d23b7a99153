"""Which weights an erasure may move: EMSO's contrastive gradient metric and its ablations.

Rules (`select.rule`), all keeping the same fraction rho (`select.fraction`) of the eligible weights:
- contrastive: s_i = g_EM,i * g_GA,i at the current weights, top rho among s_i > 0 (EMSO). A plain
  step -eta * g_EM on weight i changes L_GA by -eta * s_i to first order: s_i > 0 says the entropy update
  of that weight also pushes the memorized tokens down, and |s_i| grows with both gradients.
- ga_magnitude: |g_GA| (SalUn-like saliency); em_magnitude: |g_EM|; random: a seeded uniform draw;
  all: every eligible weight (rho ignored).
g_EM = grad L_EM, L_EM = -mean entropy; g_GA = grad L_GA, L_GA = mean log p(x_t | x_<t) (the
gradient-ascent objective, not the NLL), both full-batch over the forget set. (This is our
reconstruction of the paper's metric from its abstract; see README.)

Eligible weights (`select.params`): `matrices` (the 2-D weights of the transformer blocks: embeddings
are excluded, and GPT-Neo ties its output layer to them, so it stays frozen too), `blocks` (every
parameter of the blocks), `all` (everything, as plain fine-tuning).

Memory: the two gradients are never held as two extra model-sized copies. g_GA is accumulated in
`.grad` and moved tensor by tensor into a score store (optionally on the CPU); g_EM is then accumulated
in `.grad` and multiplied into the store in place, tensor by tensor. The global top-k threshold is
found by merging per-tensor top-k candidates (k values at most), not by concatenating all scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import re

import torch

from .objectives import Batch, mean_entropy, mean_log_likelihood

_BLOCK = re.compile(r"\.\d+\.")  # parameters inside a numbered transformer block
RULES = ("contrastive", "ga_magnitude", "em_magnitude", "random", "all")


def eligible_parameters(model, which: str) -> dict[str, torch.nn.Parameter]:
    """name -> parameter of the weights a rule may select from."""
    named = dict(model.named_parameters())
    if which == "all":
        return named
    in_blocks = {n: p for n, p in named.items() if _BLOCK.search(f".{n}")}  # h.3. (GPT-Neo), layers.3. (Llama)
    if which == "blocks":
        return in_blocks
    if which == "matrices":
        return {n: p for n, p in in_blocks.items() if p.dim() == 2}
    raise ValueError(f"select.params={which}: expected matrices, blocks or all")


def accumulate_gradient(model, seqs: Sequence[torch.Tensor], per_sequence: Callable, micro_batch: int,
                        device, sign: float = 1.0, n_total: int | None = None) -> None:
    """.grad += sign * grad of sum_x per_sequence(x) / n_total over seqs (n_total: len(seqs), or the
    whole forget set's size when seqs is one rank's share)."""
    n = n_total or len(seqs)
    for start in range(0, len(seqs), micro_batch):
        batch = Batch.of(seqs[start : start + micro_batch], device)
        (sign * per_sequence(model, batch).sum() / n).backward()


@dataclass
class Selection:
    masks: dict[str, torch.Tensor]  # name -> bool mask (True: may move) for every eligible parameter
    rule: str
    fraction: float
    n_selected: int
    n_total: int
    threshold: float | None = None
    store_bytes: int = 0  # bytes of the score store (one gradient's size for gradient rules)

    def record(self) -> dict:
        return {"rule": self.rule, "fraction": self.fraction, "n_selected": self.n_selected, "n_total": self.n_total,
                "threshold": self.threshold}


def _grad(p: torch.nn.Parameter) -> torch.Tensor:
    """The parameter's full-batch gradient (summed over ranks in a distributed run)."""
    from .distributed import all_reduce_sum

    return all_reduce_sum(p.grad if p.grad is not None else torch.zeros_like(p))


def _scores(model, params: dict, seqs, rule: str, micro_batch: int, device, store_device,
            n_total: int | None = None) -> dict[str, torch.Tensor]:
    """Per-tensor scores of a gradient rule, computed with one model-sized store. In a distributed run
    `seqs` is this rank's share of the forget set and n_total its full size."""
    was_training = model.training
    model.eval()  # dropout off: the scores are a property of the weights
    model.zero_grad(set_to_none=True)
    flags = {name: p.requires_grad for name, p in params.items()}
    for p in params.values():  # a refresh scores tensors frozen by the previous mask, too
        p.requires_grad_(True)
    try:
        store: dict[str, torch.Tensor] = {}
        if rule in ("contrastive", "ga_magnitude"):
            accumulate_gradient(model, seqs, mean_log_likelihood, micro_batch, device, n_total=n_total)  # g_GA
            for name, p in params.items():
                store[name] = _grad(p).to(store_device)
                p.grad = None
        if rule in ("contrastive", "em_magnitude"):
            accumulate_gradient(model, seqs, mean_entropy, micro_batch, device, sign=-1.0, n_total=n_total)  # g_EM
            for name, p in params.items():
                g_em = _grad(p).to(store_device)
                if rule == "contrastive":
                    store[name].mul_(g_em)  # s = g_GA * g_EM, in place
                else:
                    store[name] = g_em
                p.grad = None
        for name in store:
            if rule != "contrastive":
                store[name].abs_()
        return store
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        for name, p in params.items():
            p.requires_grad_(flags[name])


def _global_top_k(store: dict[str, torch.Tensor], k: int, positive_only: bool) -> float | None:
    """The k-th largest score over all tensors, merging per-tensor top-k candidates."""
    if k <= 0:
        return None
    best = torch.empty(0, dtype=torch.float64)
    for scores in store.values():
        flat = scores.flatten()
        if positive_only:
            flat = flat[flat > 0]
        take = min(k, flat.numel())
        if take:
            best = torch.topk(torch.cat([best, torch.topk(flat, take).values.double().cpu()]), min(k, best.numel() + take)).values
    return float(best[-1]) if best.numel() else None


def select(model, seqs: Sequence[torch.Tensor], rule: str, fraction: float, params_kind: str = "matrices",
           scope: str = "global", seed: int = 0, micro_batch: int = 64, device="cpu",
           store_device=None, n_total: int | None = None) -> Selection:
    """Compute the masks of a rule at the model's current weights. n_total is the forget set's row count
    (the gradients' mean divides by it; in a distributed run `seqs` is only this rank's share)."""
    if rule not in RULES:
        raise ValueError(f"select.rule={rule}: expected one of {', '.join(RULES)}")
    params = eligible_parameters(model, params_kind)
    n_weights = sum(p.numel() for p in params.values())
    if rule == "all":
        return Selection({n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}, rule, 1.0, n_weights,
                         n_weights)
    if rule == "random":
        g = torch.Generator().manual_seed(seed)
        store = {n: torch.rand(p.shape, generator=g) for n, p in params.items()}
    else:
        store = _scores(model, params, seqs, rule, micro_batch, device, store_device or device, n_total)
    store_bytes = sum(s.numel() * s.element_size() for s in store.values())
    positive_only = rule == "contrastive"
    masks, threshold = {}, None
    if scope == "global":
        threshold = _global_top_k(store, int(round(fraction * n_weights)), positive_only)
        for name, scores in store.items():
            keep = scores >= threshold if threshold is not None else torch.zeros_like(scores, dtype=torch.bool)
            masks[name] = (keep & (scores > 0) if positive_only else keep).to(params[name].device)
    elif scope == "per_tensor":
        for name, scores in store.items():
            t = _global_top_k({name: scores}, int(round(fraction * scores.numel())), positive_only)
            keep = scores >= t if t is not None else torch.zeros_like(scores, dtype=torch.bool)
            masks[name] = (keep & (scores > 0) if positive_only else keep).to(params[name].device)
    else:
        raise ValueError(f"select.scope={scope}: expected global or per_tensor")
    n_selected = int(sum(int(m.sum()) for m in masks.values()))
    return Selection(masks, rule, fraction, n_selected, n_weights, threshold, store_bytes)
