"""Greedy predictions of a causal LM over whole sequences, shared by every memorization metric.

- `teacher_forced`: one forward pass per batch gives, for every prefix length t of x,
  a_t = argmax_v p(v | x_<t) (all MA and extract@k need), and optionally the keys and values of
  every position (the KV cache), which the branches below reuse instead of re-reading their prefix.
- `greedy_branches`: the greedy continuations of the contexts x_<b ++ [a_b] for the branch points b
  (a_b != x_b). Each branch starts from the teacher-forced cache of x_<b, fed a_b, and is decoded
  token by token with the other branches of its batch (left-padded, explicit position ids, so that
  padding never moves a real token). EL_n needs exactly these branches (see memorization.py).

The cache layout is transformers 5's (`cache.layers[i].keys`, shape batch x heads x positions x dim).
Decoding appends into buffers allocated once (`_Preallocated`): a growing cache re-copies itself at
every token, which took half the time on a CPU.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _max_positions(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


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


def _batches(jobs: list[tuple[int, int, int]], batch_size: int, limit: int | None) -> Iterator[list]:
    """Chunk (new tokens k, row i, branch point b) jobs, sorted by k descending, into batches whose
    padded cache width (max b), plus the fed token, plus k decode steps fits the model's position
    limit (GPT-Neo sizes its attention masks by it)."""
    batch: list = []
    width = 0
    for job in jobs:
        if batch and (len(batch) == batch_size or (limit and max(width, job[2]) + 1 + batch[0][0] > limit)):
            yield batch
            batch, width = [], 0
        batch.append(job)
        width = max(width, job[2])
    if batch:
        yield batch


@torch.no_grad()
def _decode_batch(model, kv, batch: list[tuple[int, int, int]], first_tokens: torch.Tensor) -> torch.Tensor:
    """Decode the batch's branches: row r continues x_<b (its cached keys/values, left-padded to the
    batch's width) from first_tokens[r] for k_r more tokens. Returns (rows, max k) token ids."""
    device = _device(model)
    n, steps = len(batch), batch[0][0]
    rows = torch.tensor([i for _, i, _ in batch], device=device)
    starts = torch.tensor([b for _, _, b in batch], device=device)  # prefix lengths = positions of the fed token
    width = int(starts.max())
    pos = torch.arange(width, device=device)[None, :] - (width - starts[:, None])  # source position per slot
    valid = pos >= 0
    gather = pos.clamp(min=0)
    layers = []
    for keys, values in kv:  # (rows, width, heads, dim) after the gather -> (rows, heads, width, dim)
        layers.append(_Preallocated(keys[rows[:, None], :, gather].permute(0, 2, 1, 3),
                                    values[rows[:, None], :, gather].permute(0, 2, 1, 3), width + 1 + steps))
    cache = Cache(layers=layers)
    mask = torch.cat([valid.long(), torch.ones(n, 1, dtype=torch.long, device=device)], dim=1)
    token, positions = first_tokens.to(device)[:, None], starts[:, None]
    generated = torch.zeros(n, steps, dtype=torch.long, device=device)
    for step in range(steps):
        # the cache goes positionally: transformers 5 names it `cache`, earlier releases `past_key_values`
        out = model(token, cache, attention_mask=mask, position_ids=positions, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        generated[:, step] = token[:, 0]
        mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
        positions = positions + 1
    return generated.cpu()


def greedy_branches(model, seqs: Sequence[torch.Tensor], preds: Sequence[torch.Tensor], kv, first: int,
                    batch_size: int = 256) -> dict[tuple[int, int], torch.Tensor]:
    """{(i, b): the greedy continuation of seqs[i][:b], T_i - b tokens long} for every branch point
    b >= first of sequence i (a_b != x_b). `kv` is the teacher-forced cache of exactly these seqs."""
    jobs = []  # (new tokens after a_b, i, b)
    for i, (x, a) in enumerate(zip(seqs, preds)):
        for b in range(max(first, 1), len(x)):
            if a[b - 1] != x[b]:
                jobs.append((len(x) - b - 1, i, b))
    jobs.sort(reverse=True)  # longest decodes first: a batch decodes similar lengths
    branches: dict[tuple[int, int], torch.Tensor] = {}
    for batch in _batches(jobs, batch_size, _max_positions(model)):
        heads = torch.stack([preds[i][b - 1] for _, i, b in batch])
        tails = _decode_batch(model, kv, batch, heads) if batch[0][0] > 0 else None
        for r, (k, i, b) in enumerate(batch):
            branches[(i, b)] = torch.cat([heads[r : r + 1], tails[r, :k]]) if k else heads[r : r + 1].clone()
    return branches
