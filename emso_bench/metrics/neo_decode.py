"""Decoding the greedy branches of a GPT-Neo with shared-prefix attention (EL_n's fast path).

Same contract as greedy._decode_batch (which works for any causal LM): continue each branch x_<b ++ [a_b]
for k more tokens. The generic path copies x_<b's cached keys and values into every branch; a row of
unseen text branches at most of its ~100 positions, so that copy and the attention over it dominated
decoding. Here the branches of one sequence share its teacher-forced cache instead:

- prefix attention: the queries of one sequence's live branches are laid out in a grid (sequence x
  branch), and each sequence's prefix keys are read once per step with one matmul per sequence and head;
  branch j only sees prefix positions t < b_j (and, in a local layer, t > p - window at position p);
- own attention: each branch's keys and values since b_j sit in its own buffer, which the matmuls read
  whole (`_Own`: a ring of `window` slots in a local layer, grown 32 slots at a time in a global one,
  unwritten slots masked), because torch's batched matmul reads a strided slice of a larger buffer 2-4x
  slower on a CPU;
- both score sets go through one softmax, as GPTNeoSelfAttention's single softmax does: scores are not
  scaled by 1/sqrt(d) (GPT-Neo never scales) and are computed in float32 (float64 for a float64 model;
  upstream casts even those to float32, and the tests patch that out so that both paths agree exactly).

Everything else is the model's own modules and weights (embeddings, layer norms, out_proj, the MLP's
linears, lm_head), with three rearrangements of the same arithmetic: q, k and v as one matmul of their
stacked weights, gelu_new as torch's tanh GELU kernel, and the argmax over the vocabulary a block of 512
ids at a time (ties to the lowest id, as torch.argmax). Decoding is token by token like the generic path;
the differences in rounding (the order of sums) are of the size by which a teacher-forced pass and cached
decoding differ anyway, and the benchmark reports float32 near-ties. On unseen rows of the memorizer this
decodes 1.8x faster than the generic path (benchmarks/bench_el.py; the README has the figures).
"""
from __future__ import annotations

from functools import partial
from itertools import accumulate

import torch


def supports(model) -> bool:
    """A GPTNeoForCausalLM whose attention is upstream's eager one (not flash attention)."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) == "gpt_neo" and hasattr(model, "transformer")
            and getattr(config, "_attn_implementation", "eager") == "eager")


def _grid(sources: list[int]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(distinct sequences, grid row, grid column) of each branch; a sequence's branches take columns
    0, 1, ... in batch order, so the live branches of a sequence are always its first columns."""
    rows = sorted(set(sources))
    slot = {i: r for r, i in enumerate(rows)}
    seen = dict.fromkeys(rows, 0)
    cols = []
    for i in sources:
        cols.append(seen[i])
        seen[i] += 1
    return rows, torch.tensor([slot[i] for i in sources]), torch.tensor(cols)


class _Own:
    """One layer's keys and values of the live branches' own tokens (those from the branch point on), kept
    so that attention reads a whole buffer: a strided slice of a larger one sends torch's batched matmul
    down a path 2-4x slower on a CPU. A local layer keeps a ring of `window` slots (step s in slot
    s % window: exactly the window once full); a global layer's buffer grows GROW slots at a time. Slots
    not written yet hold zeros (a finite value for the zero weight they get) and are masked in _attend."""

    GROW = 32  # slots added at a time: a copy every 32 steps, at most 31 masked slots read per step

    def __init__(self, like: torch.Tensor, n: int, heads: int, dim: int, steps: int, ring: int | None):
        self.ring = ring
        self.steps = steps
        self.k = like.new_zeros(n, heads, min(ring or self.GROW, steps), dim)
        self.v = torch.zeros_like(self.k)

    def write(self, m: int, s: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Store step s's key and value of the m live branches; returns (keys, values, filled slots)."""
        self.k, self.v = self.k[:m], self.v[:m]  # finished branches leave (a prefix slice stays contiguous)
        cap = self.k.shape[2]
        if self.ring is None and s == cap:
            old_k, old_v = self.k, self.v
            self.k = old_k.new_zeros(m, old_k.shape[1], min(cap + self.GROW, self.steps), old_k.shape[3])
            self.v = torch.zeros_like(self.k)
            self.k[:, :, :cap], self.v[:, :, :cap] = old_k, old_v
        slot = s % cap if self.ring else s
        self.k[:, :, slot], self.v[:, :, slot] = k, v
        return self.k, self.v, min(s + 1, self.k.shape[2])


def _attend(q, pre_k, pre_v, own_k, own_v, filled, grid_r, grid_c, pre_mask, dtype):
    """Attention of m live branches (q: m x heads x dim) over their sequence's prefix (pre_k/pre_v:
    sequences x heads x positions x dim, masked by pre_mask: m x positions; may hold no positions) and
    their own slots (own_k/own_v: m x heads x slots x dim, the first `filled` written). Returns m x heads x dim."""
    m, heads, dim = q.shape
    q = q.to(dtype)
    own = torch.matmul(q[:, :, None, :], own_k.to(dtype).transpose(-1, -2))[:, :, 0]  # m x heads x slots
    slots = own.shape[-1]
    if filled < slots:
        own[..., filled:] = float("-inf")
    width = pre_k.shape[2]
    if not width:
        weights = torch.softmax(own, dim=-1).to(own_v.dtype)
        return torch.matmul(weights[:, :, None, :], own_v)[:, :, 0]
    cols = int(grid_c[:m].max()) + 1
    grid_q = q.new_zeros(pre_k.shape[0], heads, cols, dim)
    grid_q[grid_r[:m], :, grid_c[:m]] = q
    pre = torch.matmul(grid_q, pre_k.to(dtype).transpose(-1, -2))[grid_r[:m], :, grid_c[:m]]  # m x heads x width
    pre.masked_fill_(~pre_mask[:, None, :], float("-inf"))
    # own slots first: their weights are then a leading slice, which the matmul below reads fast
    weights = torch.softmax(torch.cat([own, pre], dim=-1), dim=-1).to(own_v.dtype)
    grid_w = weights.new_zeros(pre_k.shape[0], heads, cols, width)
    grid_w[grid_r[:m], :, grid_c[:m]] = weights[..., slots:]
    out = torch.matmul(grid_w, pre_v)[grid_r[:m], :, grid_c[:m]]  # m x heads x dim
    return out + torch.matmul(weights[:, :, None, :slots], own_v)[:, :, 0]


def _argmax_logits(weight: torch.Tensor, h: torch.Tensor, block: int = 512) -> torch.Tensor:
    """argmax_v h . weight_v (GPT-Neo's lm_head has no bias), a block of the vocabulary at a time: each block's
    logits stay in the CPU cache for its max, where the whole rows x vocab matrix went out to memory and
    back (EL on 64 unseen rows of the memorizer: 11.0 s -> 9.8 s, medians of 4, 2 threads). Ties go to the
    lowest id, as torch.argmax: each block's max gives its first maximal id, and the blocks' maxima their
    first maximal block."""
    best = [torch.max(torch.nn.functional.linear(h, part), dim=-1) for part in weight.split(block)]
    values = torch.stack([b.values for b in best], dim=1)
    ids = torch.stack([b.indices for b in best], dim=1)
    top = values.argmax(dim=1, keepdim=True)
    return ids.gather(1, top)[:, 0] + top[:, 0] * block


@torch.no_grad()
def decode_batch(model, kv, batch: list[tuple[int, int, int]], first_tokens: torch.Tensor) -> torch.Tensor:
    """Decode the batch's branches (k, i, b), sorted by k descending: row r continues sequence i's
    prefix x_<b (kv: its teacher-forced keys/values per layer, sequences x heads x width x dim) from
    first_tokens[r] for k more tokens. Returns (rows, max k) token ids; row r's tokens after its k are
    not decoded. Live branches are always a prefix of the batch (finished ones leave it)."""
    net, config = model.transformer, model.config
    device = next(model.parameters()).device
    n, steps = len(batch), batch[0][0]
    heads, width = config.num_heads, kv[0][0].shape[2]
    dim = config.hidden_size // heads
    rows, grid_r, grid_c = _grid([i for _, i, _ in batch])
    grid_r, grid_c = grid_r.to(device), grid_c.to(device)
    starts = torch.tensor([b for _, _, b in batch], device=device)
    live = [sum(k > s for k, _, _ in batch) for s in range(steps)]  # non-increasing
    index = torch.tensor(rows, device=device)
    pre = [(keys[index], values[index]) for keys, values in kv]
    dtype = torch.promote_types(pre[0][0].dtype, torch.float32)
    # q, k and v projections as one matmul (GPT-Neo's have no bias)
    qkv = [torch.cat([b.attn.attention.q_proj.weight, b.attn.attention.k_proj.weight,
                      b.attn.attention.v_proj.weight]).T for b in net.h]
    act = [_activation(block.mlp, config.activation_function) for block in net.h]
    local = [block.attn.attention_type == "local" for block in net.h]
    window = config.window_size
    own = [_Own(pre[0][0], n, heads, dim, steps, window if is_local else None) for is_local in local]
    first_b = list(accumulate((b for _, _, b in batch), min))  # first_b[m - 1]: smallest b of the live rows
    last_b = list(accumulate((b for _, _, b in batch), max))
    slots = torch.arange(width, device=device)
    token, generated = first_tokens.to(device), torch.zeros(n, steps, dtype=torch.long, device=device)
    for s, m in enumerate(live):
        b = starts[:m]
        spans, masks = _prefix_masks(b, s, window, first_b[m - 1], last_b[m - 1], slots)
        h = net.drop(net.wte(token[:m]) + net.wpe(b + s))
        for layer, block in enumerate(net.h):
            attn, is_local = block.attn.attention, local[layer]
            lo, hi = spans[is_local]
            x = block.ln_1(h)
            q, k, v = torch.matmul(x, qkv[layer]).view(m, 3, heads, dim).unbind(1)
            own_k, own_v, filled = own[layer].write(m, s, k, v)
            out = _attend(q, pre[layer][0][:, :, lo:hi], pre[layer][1][:, :, lo:hi], own_k, own_v, filled,
                          grid_r, grid_c, masks[is_local], dtype)
            h = attn.resid_dropout(attn.out_proj(out.reshape(m, heads * dim))) + h
            mlp = block.mlp
            h = h + mlp.dropout(mlp.c_proj(act[layer](mlp.c_fc(block.ln_2(h)))))
        token = _argmax_logits(model.lm_head.weight, net.ln_f(h))
        generated[:m, s] = token
    return generated.cpu()


def _prefix_masks(b, s, window, smallest_b, largest_b, slots):
    """For global (False) and local (True) layers at step s: the span [lo, hi) of prefix positions
    some live branch may see, and which of them each branch sees (m x (hi - lo)). A branch started at
    b sees positions t < b; in a local layer also t > p - window, where p = b + s is its position."""
    hi = largest_b
    lo = min(hi, max(0, smallest_b + s - window + 1))
    before = slots[None, :hi] < b[:, None]
    in_window = before[:, lo:] & (slots[None, lo:hi] > (b + s - window)[:, None])
    return {False: (0, hi), True: (lo, hi)}, {False: before, True: in_window}


def _activation(mlp, name: str):
    """The MLP's activation; gelu_new (GPT-Neo's) as torch's fused kernel of the same formula,
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), instead of five elementwise passes."""
    return partial(torch.nn.functional.gelu, approximate="tanh") if name == "gelu_new" else mlp.act
