"""Memorization metrics, exactly as the field defines them (Jang et al. 2023; Carlini et al. 2021).

For a sequence x_0..x_{T-1} and a model p:

- MA(x) = 1/(T-1) * sum_{t=1}^{T-1} [argmax_v p(v | x_<t) == x_t]            (memorization accuracy)
- EL_n(x) = 1/(T-n-f+1) * sum_{t=f}^{T-n} |{j : g_j in ng_n(x_>=t)}| / |ng_n(x_>=t)|
  where g_j runs over the n-grams of the greedy continuation of x_<t, exactly T-t tokens long (no stop
  at end-of-text), ng_n(s) is the list of n-grams of s (so the denominator is T-t-n+1) and f is the
  first prefix length (default 1; other papers start at 150). This is the convention of Jang et al.'s
  code: a continuation n-gram counts, with multiplicity, when it is among the true suffix's n-grams.
- extract@k: the greedy k-token continuation of the first c tokens equals x_c..x_{c+k-1} exactly (the
  challenge's task, c = 50 and k = 50 on the memorizer); `extract_run` is the length of the exactly
  matched run from position c (capped at k).
- extractable: some prefix x_<t (t >= f) has a greedy continuation whose first k tokens are
  x_t..x_{t+k-1}, i.e. the row is still extractable by greedy decoding from some prefix.

Greedy continuations share work. Let a_t = argmax p(. | x_<t) (one teacher-forced pass). If a_t == x_t
the continuation of x_<t is x_t followed by the continuation of x_<t+1; so the continuation of x_<t is
x_t..x_{b-1} followed by the branch decoded at b, the first position b >= t with a_b != x_b (or the
true suffix when there is none). Only branch points need decoding (greedy.greedy_branches). This is
exact in exact arithmetic; the tests check it against one `generate` per prefix length in float64.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from .greedy import greedy_branches, teacher_forced
from .registry import Example, Summary, metric, per_example, summaries


@dataclass(frozen=True)
class MetricParams:
    el_n: int = 10  # EL_10 is the field's headline (Jang et al. 2023)
    el_first_prefix: int = 1  # first prefix length f of EL_n (Jang et al. sweep every prefix)
    extract_context: int = 50  # c: the challenge's 50-token prefix (150 with the pre-prefix on GPT-Neo)
    extract_k: int = 50  # k: the challenge's 50-token suffix
    batch_size: int = 64  # sequences per teacher-forced pass
    branch_batch: int = 256  # branches decoded together

    def record(self, target_length: int | None) -> dict:
        """The parameters a reported figure depends on (batch sizes do not change results)."""
        return {"el_n": self.el_n, "el_first_prefix": self.el_first_prefix, "target_length": target_length,
                "extract_context": self.extract_context, "extract_k": self.extract_k}


def ngram_list(seq: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def el_at(true_suffix: Sequence[int], continuation: Sequence[int], n: int) -> float:
    """One prefix length's term: continuation n-grams found among the true suffix's, over the latter's count."""
    truth = ngram_list(true_suffix, n)
    found = set(truth)
    return sum(g in found for g in ngram_list(continuation, n)) / len(truth)


def memorization_accuracy(x: torch.Tensor, a: torch.Tensor) -> float:
    return (a == x[1:]).double().mean().item()


def _continuation(x: list[int], t: int, branch_at: list[int | None], branches: dict, i: int) -> list[int]:
    b = branch_at[t]
    return x[t:] if b is None else x[t:b] + branches[(i, b)].tolist()


def extraction_likelihood(x: torch.Tensor, a: torch.Tensor, branches: dict, i: int, n: int, first: int) -> float:
    """EL_n of sequence i from its argmax predictions and its decoded branches."""
    xs, T = x.tolist(), len(x)
    hits = (a == x[1:]).tolist()  # hits[t-1]: a_t == x_t
    branch_at: list[int | None] = [None] * (T + 1)  # first branch point >= t
    for t in range(T - 1, 0, -1):
        branch_at[t] = branch_at[t + 1] if hits[t - 1] else t
    terms = [el_at(xs[t:], _continuation(xs, t, branch_at, branches, i), n) for t in range(first, T - n + 1)]
    return sum(terms) / len(terms)  # sequential sum, as Jang et al. accumulate it


def _extraction(x: torch.Tensor, a: torch.Tensor, c: int, k: int, first: int) -> tuple[bool, int, bool]:
    hits = (a == x[1:]).tolist()  # hits[t-1] for prefix length t
    run = 0
    for t in range(c, min(c + k, len(x))):
        if not hits[t - 1]:
            break
        run += 1
    longest, current = 0, 0
    for t in range(max(first, 1), len(x)):
        current = current + 1 if hits[t - 1] else 0
        longest = max(longest, current)
    return run == k, run, longest >= k


# The registered per-example metrics, in the order of the CSV's columns and the summaries' keys.
@metric("ma", (Summary("ma", "mean", column="MA", column_order=1),), lower_is_forgotten=True)
def _ma(ex: Example, params: MetricParams) -> float:
    return memorization_accuracy(ex.x, ex.a)


def _extraction_of(ex: Example, params: MetricParams) -> tuple[bool, int, bool]:
    return _extraction(ex.x, ex.a, params.extract_context, params.extract_k, params.el_first_prefix)


@metric("extract", (Summary("extract_{extract_k}", "mean"),), lower_is_forgotten=True)
def _extract(ex: Example, params: MetricParams) -> bool:
    return _extraction_of(ex, params)[0]


@metric("extract_run", (Summary("extract_run", "mean"),), lower_is_forgotten=True)
def _extract_run(ex: Example, params: MetricParams) -> int:
    return _extraction_of(ex, params)[1]


@metric("extractable", (Summary("extractable_frac", "mean"),), lower_is_forgotten=True)
def _extractable(ex: Example, params: MetricParams) -> bool:
    return _extraction_of(ex, params)[2]


@metric("el_{el_n}", (Summary("el_{el_n}", "mean", column="EL{el_n}", column_order=0), Summary("el_{el_n}_max", "max"),
                      Summary("el_{el_n}_above_threshold_frac", "above_threshold")),
        lower_is_forgotten=True, needs_el=True)
def _el(ex: Example, params: MetricParams) -> float:
    return extraction_likelihood(ex.x, ex.a, ex.branches, ex.i, params.el_n, params.el_first_prefix)


def check_lengths(seqs: Sequence[torch.Tensor], params: MetricParams, what: str) -> None:
    """Raise ValueError naming `what` when a sequence is too short for EL_n or extract@k."""
    need = max(params.el_first_prefix + params.el_n, params.extract_context + params.extract_k)
    short = [i for i, x in enumerate(seqs) if len(x) < need]
    if short:
        raise ValueError(f"{what}: {len(short)} sequence(s) shorter than the {need} tokens the metrics need "
                         f"(extract_context + extract_k, el_first_prefix + el_n); first is row {short[0]} "
                         f"with {len(seqs[short[0]])} tokens")


@torch.no_grad()
def measure(model, seqs: Sequence[torch.Tensor], params: MetricParams, with_el: bool = True) -> list[dict]:
    """Per-example figures of each sequence: every registered metric (below), those needing EL when with_el."""
    was_training = model.training
    model.eval()
    preds: list = [None] * len(seqs)
    branches: dict = {}
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths share a batch
    try:
        for start in range(0, len(order), params.batch_size):
            idx = order[start : start + params.batch_size]
            chunk = [seqs[i] for i in idx]
            chunk_preds, kv = teacher_forced(model, chunk, with_cache=with_el)
            for i, a in zip(idx, chunk_preds):
                preds[i] = a
            if with_el:
                found = greedy_branches(model, chunk, chunk_preds, kv, params.el_first_prefix, params.branch_batch)
                branches.update({(idx[j], b): cont for (j, b), cont in found.items()})
            del kv
    finally:
        model.train(was_training)
    return [per_example(Example(x, a, branches, i), params, with_el) for i, (x, a) in enumerate(zip(seqs, preds))]


def summarize(rows: list[dict], params: MetricParams, threshold_el: float | None = None) -> dict:
    """Split-level figures: n and every registered summary (means, the tail: largest EL_n, fraction still
    extractable, fraction above the EL threshold when it is given)."""
    return summaries(rows, params, {f"el_{params.el_n}": threshold_el} if threshold_el is not None else None)


__all__ = ["MetricParams", "measure", "summarize", "el_at", "check_lengths", "asdict"]
