"""Bytes per GPU of each phase of a run, from the architecture and the run's settings (nothing loaded).

Every term counts what this suite's code holds, not what a leaner trainer could:
- weights P e (e: bytes of model.dtype) plus each attention layer's causal-mask buffer;
- selection (selection.py, before any DeepSpeed partitioning, on every rank): the weights, one full
  gradient of every parameter (backward fills .grad of all of them) and the score store, one value per
  eligible weight (the two gradients stream into it tensor by tensor: never two extra copies); in a
  distributed run each rank keeps the scores of its own tensors only (about 1/W of the store);
- the step: gradients and Adam's two states of the trainable weights (one process: torch Adam in the
  weights' dtype), or under ZeRO-2/3 their partitions plus DeepSpeed's fp32 master partition (offload:
  optimizer state, and under ZeRO-3 the weights, in CPU memory); the masks (one byte per eligible weight)
  and the frozen values restored after each step (masking.py, distributed/trainer.py); under ZeRO-3 the
  trainer's full-size template for the gathered copy the metrics run on; a frozen reference copy for
  kl / npo / dpo (baselines/_common.py);
- activations of one micro-batch of b rows of T tokens, from what autograd saves in transformers'
  GPT-Neo (tests/test_scale.py counts the saved tensors of a tiny model against this formula);
- the metrics (metrics/greedy.py, neo_decode.py): the teacher-forced logits and cache of an eval batch,
  then the branch decoder's copies of that cache and its per-branch key/value buffers;
- held-out perplexity (perplexity.py: float64 logits of 64 windows) and utility (lm-eval: logits and
  log-probabilities of a batch of windows as long as the model's context).
"""
from __future__ import annotations

from dataclasses import dataclass

from .arch import Arch

ENTROPY = {"emso", "em"}                 # losses on objectives.mean_entropy; the others are log-likelihood ones
HEAD_COPIES = {"entropy": 5, "likelihood": 3}  # fp32 (b, T-1, V) tensors alive at the backward's start:
# entropy saves log p and p and its backward makes three more; log-likelihood saves log p and makes two
REFERENCE = {"kl", "npo", "dpo"}         # a frozen copy of the model in the training dtype
PAIRED = {"dpo": 2}                      # chosen and rejected sequences in one graph


def layer_activations(a: Arch, b: int, T: int, e: int) -> int:
    """Bytes autograd keeps for one block: b T (6 e h + 8 h + 5 e f + 4 e) + b heads T^2 (4 + e).
    6 tensors of b x T x h in the model's dtype (ln_1 in/out, v, merged heads, ln_2 in/out), q and k as
    float32 (GPT-Neo casts them), 5 of b x T x f (c_fc out and gelu_new's tanh, 1 + tanh, x / 2, output),
    the two layer norms' means and inverse deviations, and the float32 softmax (plus its cast to the
    model's dtype when that is not float32; the cast term is e only then)."""
    cast = e if e != 4 else 0
    return b * T * (6 * e * a.hidden + 8 * a.hidden + 5 * e * a.inner + 4 * e) + b * a.heads * T * T * (4 + cast)


def train_activations(a: Arch, b: int, T: int, e: int, loss: str) -> int:
    """Peak bytes of a forward and backward of b rows: every block's saved tensors, ln_f's, and the
    float32 log-probability copies of the output head at the start of the backward."""
    return (a.layers * layer_activations(a, b, T, e) + 2 * b * T * (a.hidden + 1) * e
            + HEAD_COPIES[loss] * b * (T - 1) * a.vocab * 4)


def teacher_forced(a: Arch, B: int, T: int, e: int) -> int:
    """A no-grad pass of B rows with the cache kept (greedy.teacher_forced): logits, keys and values
    of every layer, and one block's transients (scores, masked scores, softmax; two b x T x f)."""
    return B * T * a.vocab * e + 2 * a.layers * B * T * a.hidden * e + 3 * B * a.heads * T * T * 4 + 2 * B * T * a.inner * e


def branches(a: Arch, B: int, branch_batch: int, T: int, e: int) -> int:
    """The branch decoder (neo_decode.decode_batch): the eval batch's cache, its copy for the batch's
    sequences (at most min(B, branch_batch)), each branch's own key/value buffers of up to T - 2 steps in
    every layer, and the stacked q/k/v weights."""
    cache = 2 * a.layers * T * a.hidden * e
    own = branch_batch * (T - 2) * 2 * a.layers * a.hidden * e
    return B * cache + min(B, branch_batch) * cache + own + 3 * a.layers * a.hidden ** 2 * e


def perplexity(a: Arch, windows: int, T: int, e: int) -> int:
    """perplexity.perplexity on min(64, windows) windows: the logits, their float64 copy and float64
    log-softmax (the larger of the two moments)."""
    n = min(64, windows) * (T - 1) * a.vocab
    return max(n * (e + 8), n * 16)


def utility(a: Arch, batch: int, e: int) -> int:
    """lm-eval (HFLM) on a batch of windows of the model's context: logits and their log-softmax."""
    return 2 * batch * a.positions * a.vocab * e


@dataclass(frozen=True)
class Setting:
    """What the bytes depend on besides the architecture (estimate.py reads it from a run's config)."""
    method: str
    rule: str                 # select.rule
    eligible: int             # weights the rule chooses among
    fraction: float           # rho
    e: int                    # bytes per value of model.dtype
    e_train: int              # bytes per value trained (DeepSpeed casts to bf16/fp16 when asked)
    world: int = 1
    stage: int = 0            # 0: one process per run (no DeepSpeed); 2 or 3: ZeRO stage
    offload: bool = False
    sharded_store: bool = False
    bucket: int = 50_000_000  # DeepSpeed's reduce / prefetch bucket (elements)


def step_state(a: Arch, s: Setting) -> dict[str, int]:
    """Bytes held from the first step on (besides activations), by kind."""
    out = {"masks": s.eligible,  # one bool per eligible weight (all True for select=all)
           "frozen values": int(round((1 - s.fraction) * s.eligible)) * s.e if s.rule != "all" else 0,
           "reference": a.total * s.e_train if s.method in REFERENCE else 0}
    if s.stage == 0:
        return dict(out, weights=a.total * s.e + a.buffers, gradients=s.eligible * s.e,
                    optimizer=2 * s.eligible * s.e)
    W, on_gpu = s.world, 0 if s.offload else 1
    weights = (on_gpu * a.total * s.e_train // W) if s.stage == 3 else a.total * s.e_train
    out.update(weights=weights + a.buffers,  # offload moves the gradient partition out too; the buckets stay
               gradients=on_gpu * s.eligible * s.e_train // W + 2 * s.bucket * s.e_train,
               optimizer=on_gpu * 3 * s.eligible * 4 // W)  # DeepSpeed's fp32 master and Adam's two states
    if s.stage == 3:
        out["template"] = a.total * s.e  # distributed/trainer.py: a full copy for the gathered metrics model
        out["weights"] += (a.block_matrices + a.block_other + s.bucket) * s.e_train  # a gathered layer, prefetch
    return out


def selection_state(a: Arch, s: Setting) -> dict[str, int]:
    """Bytes held while a gradient rule scores (besides activations)."""
    store = s.eligible * s.e
    return {"weights": a.total * s.e + a.buffers, "gradients": a.total * s.e,
            "selection store": -(-store // s.world) if s.sharded_store else store}
