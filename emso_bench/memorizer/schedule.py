"""Which sequences fill each batch of a memorizer build: its training schedule.

A batch of `batch_size` rows of `seq_len` tokens holds injected challenge rows and windows of held-in
Gutenberg text (the background). Two schedules:

- **flat** (`exposures: null`, no distractors): `pool_per_batch` pool rows per batch, cycled in seeded
  epochs, so every pool row gets steps * pool_per_batch / n_pool exposures. The shipped `memorizer-ood`
  was built this way; this code path reproduces it bit for bit.
- **scheduled** (graded `exposures` and/or `n_distractors`): every occurrence (pool row i repeated e_i
  times, with e_i cycling through the `exposures` levels over a seeded order of the rows; each distractor
  `distractor_exposures` times) is shuffled once and spread evenly over the steps, so exposures are
  scattered through training rather than bunched; background windows fill the rest of each batch.

Leaving rows out (the retrain oracle, and the twin of a scheduled build) replaces each occurrence of a
left-out row by a *filler* background window drawn from a separate seeded stream, so every other slot
of every batch, and every kept row's exposures, are exactly those of the full build.

A schedule is generated as compositions (which row or window goes where: cheap), materialized into
token tensors only when trained on; a resumed build replays the compositions up to its checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

FILLER_SEED_OFFSET = 7919  # the filler stream's seed is seed + this: independent of the main stream


@dataclass(frozen=True)
class Composition:
    """One batch: pool row indices, distractor indices, background window starts, filler window starts."""
    pool: tuple[int, ...]
    distractors: tuple[int, ...]
    background: tuple[int, ...]
    filler: tuple[int, ...]


class _Windows:
    """A stream of background window starts: a seeded permutation of the window grid, with a new random
    offset each pass over the text (the flat build's original stream)."""

    def __init__(self, rng: np.random.Generator, n_tokens: int, seq_len: int):
        self.rng, self.seq_len = rng, seq_len
        self.n_windows = n_tokens // seq_len
        self.order, self.offset = np.array([], dtype=int), 0

    def take(self, k: int) -> tuple[int, ...]:
        if len(self.order) < k:
            self.offset = int(self.rng.integers(self.seq_len))
            self.order = np.concatenate([self.order, self.rng.permutation(self.n_windows - 1)])
        taken, self.order = self.order[:k], self.order[k:]
        return tuple(int(self.offset + i * self.seq_len) for i in taken)


def exposure_levels(cfg, n_pool: int) -> np.ndarray:
    """Exposures of each pool row (in pool order): flat, or the graded levels spread evenly over a
    seeded order of the rows (row order and level are independent)."""
    if cfg.exposures is None:  # flat: what pool_per_batch slots a batch give each row
        return np.full(n_pool, int(round(cfg.steps * cfg.pool_per_batch / n_pool)), dtype=np.int64)
    levels = np.asarray(cfg.exposures, dtype=np.int64)
    order = np.random.default_rng(cfg.seed + 1).permutation(n_pool)
    out = np.empty(n_pool, dtype=np.int64)
    out[order] = levels[np.arange(n_pool) % len(levels)]
    return out


def _flat(cfg, n_pool: int, n_tokens: int, rng: np.random.Generator) -> Iterator[tuple[list[int], tuple]]:
    """The flat schedule, in exactly the order the original generator drew from `rng`."""
    n_pool_slots = 0 if cfg.twin else cfg.pool_per_batch
    n_windows = n_tokens // cfg.seq_len
    pool_order, bg_order, offset = np.array([], dtype=int), np.array([], dtype=int), 0
    while True:
        if len(pool_order) < n_pool_slots:
            pool_order = np.concatenate([pool_order, rng.permutation(n_pool)])
        if len(bg_order) < cfg.batch_size - n_pool_slots:
            offset = int(rng.integers(cfg.seq_len))
            bg_order = np.concatenate([bg_order, rng.permutation(n_windows - 1)])
        take_pool, pool_order = pool_order[:n_pool_slots], pool_order[n_pool_slots:]
        take_bg, bg_order = bg_order[: cfg.batch_size - n_pool_slots], bg_order[cfg.batch_size - n_pool_slots:]
        yield [int(i) for i in take_pool], tuple(int(offset + i * cfg.seq_len) for i in take_bg)


def _occurrences(cfg, n_pool: int, n_distractors: int, rng: np.random.Generator) -> np.ndarray:
    """Every injected occurrence, shuffled: codes 0..n_pool-1 are pool rows, n_pool.. distractors."""
    codes = [np.repeat(np.arange(n_pool), exposure_levels(cfg, n_pool))]
    codes.append(np.repeat(np.arange(n_pool, n_pool + n_distractors), cfg.distractor_exposures))
    return rng.permutation(np.concatenate(codes))


def compositions(cfg, n_pool: int, n_distractors: int, n_tokens: int, leave_out=()) -> Iterator[Composition]:
    """The build's batches as compositions, step after step (an endless generator; the build takes
    `cfg.steps`). `leave_out`: pool indices whose occurrences become filler windows."""
    rng = np.random.default_rng(cfg.seed)
    filler = _Windows(np.random.default_rng(cfg.seed + FILLER_SEED_OFFSET), n_tokens, cfg.seq_len)
    left = set(int(i) for i in leave_out)
    if scheduled(cfg):
        left = set(range(n_pool)) if cfg.twin else left
        occ = _occurrences(cfg, n_pool, n_distractors, rng)
        if len(occ) > cfg.steps * cfg.batch_size:
            raise ValueError(f"{len(occ)} injected occurrences do not fit in {cfg.steps} batches of {cfg.batch_size}")
        background = _Windows(rng, n_tokens, cfg.seq_len)
        step = 0
        while True:
            lo, hi = (step * len(occ)) // cfg.steps, ((step + 1) * len(occ)) // cfg.steps
            chunk = occ[lo:hi] if step < cfg.steps else occ[:0]
            pool = tuple(int(c) for c in chunk if c < n_pool and c not in left)
            n_left = sum(1 for c in chunk if c < n_pool and c in left)
            dis = tuple(int(c) - n_pool for c in chunk if c >= n_pool)
            yield Composition(pool, dis, background.take(cfg.batch_size - len(chunk)), filler.take(n_left))
            step += 1
    for pool, bg in _flat(cfg, n_pool, n_tokens, rng):
        kept = tuple(i for i in pool if i not in left)
        yield Composition(kept, (), bg, filler.take(len(pool) - len(kept)))


def scheduled(cfg) -> bool:
    """True when the build uses the scheduled path (graded exposures or distractors)."""
    return cfg.exposures is not None or cfg.n_distractors > 0


def materialize(comp: Composition, pool: np.ndarray, distractors: np.ndarray, background: np.ndarray,
                seq_len: int) -> torch.Tensor:
    """The (batch, seq_len) token tensor of a composition: pool rows, distractors, background, filler."""
    parts = [pool[list(comp.pool)].reshape(-1, seq_len), distractors[list(comp.distractors)].reshape(-1, seq_len)]
    parts += [np.array([background[s: s + seq_len] for s in starts]).reshape(-1, seq_len)
              for starts in (comp.background, comp.filler)]
    return torch.tensor(np.concatenate(parts), dtype=torch.long)


def exposure_counts(cfg, n_pool: int, n_distractors: int, n_tokens: int, leave_out=()) -> tuple[list, list]:
    """(per pool row, per distractor) exposures over the build's steps, counted from its compositions."""
    pool, dis = np.zeros(n_pool, dtype=np.int64), np.zeros(n_distractors, dtype=np.int64)
    gen = compositions(cfg, n_pool, n_distractors, n_tokens, leave_out)
    for _ in range(cfg.steps):
        comp = next(gen)
        np.add.at(pool, list(comp.pool), 1)
        np.add.at(dis, list(comp.distractors), 1)
    return pool.tolist(), dis.tolist()
