"""FLOPs of a run's passes, the steps it takes, and GPU-hours at a stated throughput.

A forward pass costs 2 FLOPs per weight per token in the blocks' matrices and the output layer,
2 (L (4h^2 + 2hf) + hV), plus GPT-Neo's eager attention, 4 h c a layer for a token attending to c
positions (QK^T and the weighted sum of V; a teacher-forced pass scores all T positions and masks).
A backward costs twice a forward. Biases, layer norms, softmax and GELU are left out (under 1% here).

EL_n (metrics/memorization.py): a teacher-forced pass over the row, then one greedy branch for every
branch point b >= f (a_b != x_b), decoded for T - b - 1 tokens, the j-th at position b + j attending to
b + j + 1 positions (neo_decode.py: the branch's prefix and its own tokens). A memorized row (MA 1) has
no branch point and costs one pass; an unmemorized row (MA 0) branches everywhere: (T-f-1)(T-f)/2 decoded
tokens for f >= 1, 19,701 at T = 200. A row of MA m is charged (1 - m) of that decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

from .arch import Arch

TRAIN_PASSES = {"npo": 4, "kl": 4, "dpo": 8}  # forward-pass equivalents per forget row and step: 3 (forward,
# backward) plus a reference forward (npo, kl), and twice both for dpo's chosen and rejected sequences
RETAIN_PASSES = {"gd": 3, "kl": 4}  # per retain-text row (method.retain_batch of them a step)
GRADIENT_RULES = {"contrastive", "ga_magnitude", "em_magnitude"}  # two full-batch gradients to select


def forward_flops(a: Arch, tokens: int, context: int) -> int:
    """FLOPs of `tokens` token positions each attending to `context` positions."""
    return tokens * (2 * (a.layers * a.block_matrices + a.hidden * a.vocab) + 4 * a.layers * a.hidden * context)


def pass_flops(a: Arch, T: int) -> int:
    """One row through a teacher-forced forward pass."""
    return forward_flops(a, T, T)


def branch_points(T: int, first: int) -> range:
    return range(max(first, 1), T)


def decode_tokens(T: int, first: int) -> int:
    """Tokens the branch decoder runs for an unmemorized row: sum over b of T - b - 1."""
    return sum(T - b - 1 for b in branch_points(T, first))


def decode_flops(a: Arch, T: int, first: int) -> int:
    """FLOPs of decoding every branch of an unmemorized row: branch b's j-th token attends to b + j + 1."""
    total = 0
    for b in branch_points(T, first):
        k = T - b - 1
        total += forward_flops(a, k, 0) + 4 * a.layers * a.hidden * (k * (b + 1) + k * (k - 1) // 2)
    return total


def el_row_flops(a: Arch, T: int, first: int, ma: float) -> float:
    """EL_n of one row of memorization accuracy `ma`: the teacher-forced pass and (1 - ma) of the branches."""
    return pass_flops(a, T) + (1.0 - ma) * decode_flops(a, T, first)


@dataclass(frozen=True)
class RunShape:
    """What a run's FLOPs depend on (estimate.py fills it from the config)."""
    method: str
    rule: str
    forget: int
    retain: int
    unseen: int
    T: int
    first: int              # eval.el_first_prefix
    epochs: int
    ppl_windows: int
    unseen_after: str       # full | ma | none (eval.unseen_after)
    per_epoch: int = 0      # rows of the eval.per_epoch splits, one forward pass each every epoch
    retain_batch: int = 0   # method.retain_batch for gd / kl


def run_flops(a: Arch, r: RunShape, el_ma: float) -> dict[str, float]:
    """FLOPs by part for one run that spends its whole epoch budget and, every epoch, measures EL_n on the
    forget set (the engine does so once forget MA is below its threshold); every EL row at MA `el_ma`."""
    row, el = pass_flops(a, r.T), el_row_flops(a, r.T, r.first, el_ma)
    unseen_after = {"full": el, "ma": row, "none": 0}[r.unseen_after]
    per_epoch = (r.forget * TRAIN_PASSES.get(r.method, 3) * row + r.retain_batch * RETAIN_PASSES.get(r.method, 0) * row
                 + r.forget * (row + el) + r.per_epoch * row + r.ppl_windows * row)
    return {"metrics before": (r.forget + r.retain + r.unseen) * el + r.ppl_windows * row,
            "selection": 2 * 3 * r.forget * row if r.rule in GRADIENT_RULES else 0,
            "erasure": r.epochs * per_epoch,
            "metrics after": r.retain * el + r.unseen * unseen_after + r.ppl_windows * row}


def gpu_hours(flops: float, tflops: float) -> float:
    """GPU-hours at `tflops` TFLOP/s achieved per GPU (work spread evenly over the GPUs of a launch)."""
    return flops / (tflops * 1e12) / 3600.0
