"""Greedy predictions of a causal LM over whole sequences, shared by every memorization metric.

- `teacher_forced`: one forward pass per batch gives, for every prefix length t of x,
  a_t = argmax_v p(v | x_<t) (all MA and extract@k need), and optionally the keys and values of
  every position (the KV cache), which the branches below reuse instead of re-reading their prefix.
- `greedy_branches`: the greedy continuations of the contexts x_<b ++ [a_b] for the branch points b
  (a_b != x_b). Each branch starts from the teacher-forced cache of x_<b, fed a_b, and is decoded
  token by token with the other branches of its batch (left-padded, explicit position ids, so that
  padding never moves a real token; finished branches leave the batch). EL_n needs exactly these
  branches (see memorization.py). A GPT-Neo decodes them with neo_decode instead, which shares each
  sequence's cache among its branches rather than copying it into each (1.8x faster on unseen rows:
  benchmarks/bench_el.py).

The cache layout is transformers 5's (`cache.layers[i].keys`, shape batch x heads x positions x dim).
Decoding appends into buffers allocated once (`_Preallocated`): a growing cache re-copies itself at
every token, which took half the time on a CPU.
"""
from __future__ import annotations

from itertools import accumulate
from typing import Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from . import neo_decode


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def teacher_forced(model, seqs: Sequence[torch.Tensor], with_cache: bool = False):
    """(preds, kv) for one batch: preds[i][t-1] = argmax p(. | x_<t) for t = 1..T_i-1; kv is a list of
    (keys, values) per layer for the right-padded batch (None unless with_cache)."""
    device = _device(model)
    width = max(len(x) for x in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, x in enumerate(seqs):
        ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=with_cache)
    preds = out.logits.argmax(-1).cpu()
    kv = [(layer.keys, layer.values) for layer in out.cache.layers] if with_cache else None
    return [preds[row, : len(x) - 1].clone() for row, x in enumerate(seqs)], kv


class _Preallocated(DynamicLayer):
    """A cache layer holding `keys`/`values` views into buffers of a fixed capacity, appended in place."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int):
        super().__init__()
        n, heads, width, dim = keys.shape
        self._k = keys.new_empty(n, heads, capacity, dim)
        self._v = values.new_empty(n, heads, capacity, dim)
        self._k[:, :, :width], self._v[:, :, :width] = keys, values
        self._len = width
        self.keys, self.values = self._k[:, :, :width], self._v[:, :, :width]
        self.device, self.is_initialized = keys.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self._len + key_states.shape[-2]
        self._k[:, :, self._len : end], self._v[:, :, self._len : end] = key_states, value_states
        self._len = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def trim(self, rows: int, lead: int) -> None:
        """Keep the first `rows` rows and drop the first `lead` slots (views: nothing is copied)."""
        self._k, self._v = self._k[:rows, :, lead:], self._v[:rows, :, lead:]
        self._len -= lead
        self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]


def preallocated_cache(kv, capacity: int) -> Cache:
    """A transformers Cache holding `kv` ((keys, values) per layer, batch x heads x positions x dim) with
    room for `capacity` positions, appended in place (the generic branch decoder's and the sampling probe's)."""
    return Cache(layers=[_Preallocated(keys, values, capacity) for keys, values in kv])


@torch.no_grad()
def _decode_batch(model, kv, batch: list[tuple[int, int, int]], first_tokens: torch.Tensor) -> torch.Tensor:
    """Decode the batch's branches: row r continues x_<b (its cached keys/values, left-padded to the
    batch's width) from first_tokens[r] for k_r more tokens. Returns (rows, max k) token ids (row r's
    tokens after k_r are not decoded).

    The batch is sorted by k descending, so the rows still decoding at any step are a prefix of it:
    finished rows leave the batch, and the leading slots that are padding in every row left are
    dropped. One batch can then hold branches of every length, and the cache never holds more slots
    than the longest sequence (GPT-Neo's attention masks are sized by max_position_embeddings)."""
    device = _device(model)
    n, steps = len(batch), batch[0][0]
    rows = torch.tensor([i for _, i, _ in batch], device=device)
    starts = torch.tensor([b for _, _, b in batch], device=device)  # prefix lengths = positions of the fed token
    active = [sum(k > step for k, _, _ in batch) for step in range(steps)]  # rows still decoding: non-increasing
    widest = list(accumulate((b for _, _, b in batch), max))  # widest[m - 1]: the longest prefix of rows < m
    width = widest[-1]
    pos = torch.arange(width, device=device)[None, :] - (width - starts[:, None])  # source position per slot
    gather = pos.clamp(min=0)
    # (rows, width, heads, dim) after the gather -> (rows, heads, width, dim)
    cache = preallocated_cache([(keys[rows[:, None], :, gather].permute(0, 2, 1, 3),
                                 values[rows[:, None], :, gather].permute(0, 2, 1, 3)) for keys, values in kv],
                               width + 1 + steps)
    layers = cache.layers
    mask = torch.cat([(pos >= 0).long(), torch.ones(n, 1, dtype=torch.long, device=device)], dim=1)
    token, positions = first_tokens.to(device)[:, None], starts[:, None]
    generated = torch.zeros(n, steps, dtype=torch.long, device=device)
    dropped = 0  # leading slots dropped so far
    for step, m in enumerate(active):
        lead = width - widest[m - 1] - dropped
        if m < len(token) or lead:
            for layer in layers:
                layer.trim(m, lead)
            token, positions, mask = token[:m], positions[:m], mask[:m, lead:]
            dropped += lead
        # the cache goes positionally: transformers 5 names it `cache`, earlier releases `past_key_values`
        out = model(token, cache, attention_mask=mask, position_ids=positions, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        generated[:m, step] = token[:, 0]
        mask = torch.cat([mask, mask.new_ones(m, 1)], dim=1)
        positions = positions + 1
    return generated.cpu()


def greedy_branches(model, seqs: Sequence[torch.Tensor], preds: Sequence[torch.Tensor], kv, first: int,
                    batch_size: int = 256, generic: bool = False) -> dict[tuple[int, int], torch.Tensor]:
    """{(i, b): the greedy continuation of seqs[i][:b], T_i - b tokens long} for every branch point
    b >= first of sequence i (a_b != x_b). `kv` is the teacher-forced cache of exactly these seqs.
    A GPT-Neo's branches go through neo_decode unless `generic` asks for the decoder any model gets."""
    jobs = []  # (new tokens after a_b, i, b)
    for i, (x, a) in enumerate(zip(seqs, preds)):
        for b in range(max(first, 1), len(x)):
            if a[b - 1] != x[b]:
                jobs.append((len(x) - b - 1, i, b))
    jobs.sort(reverse=True)  # longest decodes first: the rows still decoding are a prefix of a batch
    decode = neo_decode.decode_batch if neo_decode.supports(model) and not generic else _decode_batch
    branches: dict[tuple[int, int], torch.Tensor] = {}
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        heads = torch.stack([preds[i][b - 1] for _, i, b in batch])
        tails = decode(model, kv, batch, heads) if batch[0][0] > 0 else None
        for r, (k, i, b) in enumerate(batch):
            branches[(i, b)] = torch.cat([heads[r : r + 1], tails[r, :k]]) if k else heads[r : r + 1].clone()
    return branches
