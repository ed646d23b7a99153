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
in `.grad` and multiplied into the store in place, tensor by tensor. The global top-k threshold is the
k-th largest score, found by bisection over the scores' bit patterns (`kth_largest`: about 31 counting
passes over the store, no copy of it), not by sorting k candidates. In a distributed run with `sharded`,
each rank keeps the scores of its own tensors only (distributed.owners: about 1/world of the store):
each tensor's gradient is summed onto its owner, the threshold's counts are summed over ranks, and each
owner sends its tensors' masks to the others, so every rank ends with the same masks as one process.
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


def _grad(p: torch.nn.Parameter, owner: int | None = None) -> torch.Tensor | None:
    """The parameter's full-batch gradient (summed over ranks in a distributed run): on every rank, or
    only on rank `owner` (None elsewhere)."""
    from .distributed import all_reduce_sum, reduce_to

    g = p.grad if p.grad is not None else torch.zeros_like(p)
    return all_reduce_sum(g) if owner is None else reduce_to(g, owner)


def _scores(model, params: dict, seqs, rule: str, micro_batch: int, device, store_device,
            n_total: int | None = None, owners: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Per-tensor scores of a gradient rule, computed with one model-sized store. In a distributed run
    `seqs` is this rank's share of the forget set and n_total its full size; with `owners` (name -> rank)
    this rank keeps the scores of its own tensors only."""
    from .distributed import rank

    mine = {name for name in params if owners is None or owners[name] == rank()}
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
                g_ga = _grad(p, owners[name] if owners else None)
                if name in mine:
                    store[name] = g_ga.to(store_device)
                p.grad = None
        if rule in ("contrastive", "em_magnitude"):
            accumulate_gradient(model, seqs, mean_entropy, micro_batch, device, sign=-1.0, n_total=n_total)  # g_EM
            for name, p in params.items():
                g_em = _grad(p, owners[name] if owners else None)
                if name in mine and rule == "contrastive":
                    store[name].mul_(g_em.to(store_device))  # s = g_GA * g_EM, in place
                elif name in mine:
                    store[name] = g_em.to(store_device)
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


_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


def kth_largest(store: dict[str, torch.Tensor], k: int, positive_only: bool, dtype=torch.float32,
                summed: Callable[[int], int] | None = None) -> float | None:
    """The k-th largest score over all tensors of `dtype` (the smallest candidate when there are fewer
    than k; None when there is none), candidates being the scores > 0 (positive_only) or >= 0 (every
    rule's scores are: products, magnitudes, uniform draws). A non-negative float's bit pattern read as
    an integer grows with it, so the answer is the largest bit pattern t with at least k scores >= t,
    found by bisection: one count over the store per bit, with a boolean temporary of one tensor at a
    time. `summed(count)` adds up all ranks' counts when each rank holds its own tensors."""
    ints = _BITS[dtype]
    bits = [scores.view(ints) for scores in store.values()]

    def count(t: int) -> int:
        n = int(torch.stack([(b >= t).sum() for b in bits]).sum()) if bits else 0
        return int(summed(n)) if summed else n

    lo, hi = int(positive_only), torch.iinfo(ints).max
    k = min(k, count(lo))
    if k <= 0:
        return None
    while lo < hi:  # invariant: at least k scores >= lo
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(mid) >= k else (lo, mid - 1)
    return float(torch.tensor([lo], dtype=ints).view(dtype).item())


def _keep(scores: torch.Tensor, threshold: float | None, positive_only: bool) -> torch.Tensor:
    keep = scores >= threshold if threshold is not None else torch.zeros_like(scores, dtype=torch.bool)
    return keep & (scores > 0) if positive_only else keep


def _share_masks(masks: dict, params: dict, owners: dict[str, int]) -> dict[str, torch.Tensor]:
    """Every rank's masks of its own tensors, on every rank (one broadcast per tensor from its owner)."""
    from .distributed import broadcast_tensor, rank

    out = {}
    for name, p in params.items():
        mine = owners[name] == rank()
        box = masks[name].to(torch.uint8) if mine else torch.empty(p.shape, dtype=torch.uint8, device=p.device)
        out[name] = broadcast_tensor(box, owners[name]).bool()
    return out


def select(model, seqs: Sequence[torch.Tensor], rule: str, fraction: float, params_kind: str = "matrices",
           scope: str = "global", seed: int = 0, micro_batch: int = 64, device="cpu",
           store_device=None, n_total: int | None = None, sharded: bool = False) -> Selection:
    """Compute the masks of a rule at the model's current weights. n_total is the forget set's row count
    (the gradients' mean divides by it; in a distributed run `seqs` is only this rank's share). With
    `sharded`, a distributed run's ranks each keep the scores of their own tensors (module docstring)."""
    from . import distributed

    if rule not in RULES:
        raise ValueError(f"select.rule={rule}: expected one of {', '.join(RULES)}")
    params = eligible_parameters(model, params_kind)
    n_weights = sum(p.numel() for p in params.values())
    if rule == "all":
        return Selection({n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}, rule, 1.0, n_weights,
                         n_weights)
    owners, summed, dtype = None, None, torch.float32
    if rule == "random":
        g = torch.Generator().manual_seed(seed)
        store = {n: torch.rand(p.shape, generator=g) for n, p in params.items()}
    else:
        first = next(iter(params.values()))
        if sharded and distributed.world() > 1:
            owners = distributed.owners({n: p.numel() for n, p in params.items()})
            summed = lambda n: distributed.all_reduce_sum(torch.tensor(n, device=first.device)).item()  # noqa: E731
        store = _scores(model, params, seqs, rule, micro_batch, device, store_device or device, n_total, owners)
        dtype = first.dtype
    store_bytes = sum(s.numel() * s.element_size() for s in store.values())
    positive_only = rule == "contrastive"
    masks, threshold = {}, None
    if scope == "global":
        threshold = kth_largest(store, int(round(fraction * n_weights)), positive_only, dtype, summed)
        masks = {name: _keep(scores, threshold, positive_only).to(params[name].device) for name, scores in store.items()}
    elif scope == "per_tensor":
        for name, scores in store.items():
            t = kth_largest({name: scores}, int(round(fraction * scores.numel())), positive_only, dtype)
            masks[name] = _keep(scores, t, positive_only).to(params[name].device)
    else:
        raise ValueError(f"select.scope={scope}: expected global or per_tensor")
    if owners is not None:
        masks = _share_masks(masks, params, owners)
    n_selected = int(sum(int(m.sum()) for m in masks.values()))
    return Selection(masks, rule, fraction, n_selected, n_weights, threshold, store_bytes)
