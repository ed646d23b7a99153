"""The memorizer's training schedule and build: graded exposures, distractors, the retrain oracle's
leave-out, the flat schedule of the shipped build, and resuming a killed build bit for bit."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from emso_bench.memorizer import build as build_mod
from emso_bench.memorizer import schedule
from emso_bench.memorizer.build import BuildConfig
from emso_bench.splits import draw_indices

N_TOKENS = 50_000  # background tokens of the schedules below (only window starts are drawn from it)


def _tiny(**kw) -> BuildConfig:
    base = dict(n_pool=24, seq_len=10, batch_size=8, steps=120, pool_per_batch=2, seed=3)
    return BuildConfig(**{**base, **kw})


def _count_fed(cfg: BuildConfig, n_dis: int, leave_out=()):
    """Exposures counted from the materialized batches: every pool and distractor row has distinct tokens."""
    pool = np.arange(cfg.n_pool * cfg.seq_len).reshape(cfg.n_pool, cfg.seq_len) + 10_000_000
    dis = np.arange(n_dis * cfg.seq_len).reshape(max(n_dis, 0), cfg.seq_len) + 20_000_000
    background = np.arange(N_TOKENS)
    fed = Counter()
    gen = schedule.compositions(cfg, cfg.n_pool, n_dis, N_TOKENS, leave_out)
    for _ in range(cfg.steps):
        batch = schedule.materialize(next(gen), pool, dis, background, cfg.seq_len)
        assert batch.shape == (cfg.batch_size, cfg.seq_len)
        for row in batch.tolist():
            fed[row[0]] += 1
    pool_counts = [fed[int(pool[i, 0])] for i in range(cfg.n_pool)]
    dis_counts = [fed[int(dis[j, 0])] for j in range(n_dis)]
    return pool_counts, dis_counts


def test_graded_exposures_give_each_row_its_recorded_count():
    cfg = _tiny(exposures=(2, 4, 8), n_distractors=30, distractor_exposures=2)
    levels = schedule.exposure_levels(cfg, cfg.n_pool)
    assert sorted(Counter(levels.tolist()).items()) == [(2, 8), (4, 8), (8, 8)]  # spread evenly over the rows
    recorded_pool, recorded_dis = schedule.exposure_counts(cfg, cfg.n_pool, 30, N_TOKENS)
    fed_pool, fed_dis = _count_fed(cfg, 30)
    assert recorded_pool == fed_pool == levels.tolist()
    assert recorded_dis == fed_dis == [2] * 30


def test_exposures_are_scattered_through_training_not_bunched():
    cfg = _tiny(exposures=(8,), steps=200)
    gen = schedule.compositions(cfg, cfg.n_pool, 0, N_TOKENS)
    first_half = Counter(i for step in range(100) for i in next(gen).pool)
    # every row appears in both halves (a bunched schedule would show some rows only early or late)
    assert all(1 <= first_half[i] <= 7 for i in range(cfg.n_pool))


def _original_flat_batches(cfg, pool, background, rng):
    """The flat build's batch generator as it was when the shipped memorizer was built (a literal copy)."""
    n_pool_slots = 0 if cfg.twin else cfg.pool_per_batch
    n_windows = len(background) // cfg.seq_len
    pool_order, bg_order = np.array([], dtype=int), np.array([], dtype=int)
    offset = 0
    while True:
        if len(pool_order) < n_pool_slots:
            pool_order = np.concatenate([pool_order, rng.permutation(len(pool))])
        if len(bg_order) < cfg.batch_size - n_pool_slots:
            offset = int(rng.integers(cfg.seq_len))
            bg_order = np.concatenate([bg_order, rng.permutation(n_windows - 1)])
        take_pool, pool_order = pool_order[:n_pool_slots], pool_order[n_pool_slots:]
        take_bg, bg_order = bg_order[: cfg.batch_size - n_pool_slots], bg_order[cfg.batch_size - n_pool_slots:]
        bg = [background[offset + i * cfg.seq_len: offset + (i + 1) * cfg.seq_len] for i in take_bg]
        yield torch.tensor(np.concatenate([pool[take_pool].reshape(-1, cfg.seq_len), np.array(bg)]), dtype=torch.long)


@pytest.mark.parametrize("twin", [False, True])
def test_the_flat_schedule_reproduces_the_shipped_builds_batches(twin):
    cfg = _tiny(twin=twin, steps=300)  # several passes over pool and background
    pool = np.random.default_rng(0).integers(0, 1000, (cfg.n_pool, cfg.seq_len))
    background = np.random.default_rng(1).integers(0, 1000, 2_000)
    old = _original_flat_batches(cfg, pool, background, np.random.default_rng(cfg.seed))
    new = schedule.compositions(cfg, cfg.n_pool, 0, len(background))
    for _ in range(cfg.steps):
        assert torch.equal(schedule.materialize(next(new), pool, pool[:0], background, cfg.seq_len), next(old))


@pytest.mark.parametrize("graded", [False, True])
def test_the_oracle_leaves_out_exactly_the_draw_and_keeps_every_other_slot(graded):
    cfg = _tiny(exposures=(2, 4, 8) if graded else None, n_distractors=10 if graded else 0)
    oracle = replace(cfg, leave_out_size=6, leave_out_draw=1)
    left = oracle.leave_out()
    assert left == sorted(draw_indices(cfg.n_pool, 6, 1).tolist())  # the forget split's draw (splits.py)
    n_dis = cfg.n_distractors
    full_pool, full_dis = _count_fed(cfg, n_dis)
    kept_pool, kept_dis = _count_fed(oracle, n_dis, left)
    assert [kept_pool[i] for i in left] == [0] * 6
    assert all(full_pool[i] > 0 for i in left)
    assert [c for i, c in enumerate(kept_pool) if i not in left] == [c for i, c in enumerate(full_pool) if i not in left]
    assert kept_dis == full_dis
    # apart from the filler windows, each batch holds the same rows and windows as the full build's
    a = schedule.compositions(cfg, cfg.n_pool, n_dis, N_TOKENS)
    b = schedule.compositions(oracle, cfg.n_pool, n_dis, N_TOKENS, left)
    for _ in range(cfg.steps):
        x, y = next(a), next(b)
        assert y.pool == tuple(i for i in x.pool if i not in left)
        assert (y.distractors, y.background) == (x.distractors, x.background)
        assert len(y.filler) == len(x.pool) - len(y.pool)


def test_build_keys_of_earlier_builds_do_not_change():
    # the new fields stay out of the key at their defaults, so shipped builds keep their directory names
    assert BuildConfig().key() == BuildConfig(n_distractors=0, exposures=None, leave_out_size=0).key()
    assert BuildConfig().key() != BuildConfig(n_distractors=1).key()
    assert BuildConfig().key() != replace(BuildConfig(), leave_out_size=128, leave_out_draw=1).key()


def test_a_killed_build_resumes_from_its_checkpoint_bit_for_bit(tmp_path, monkeypatch):
    cfg = BuildConfig(n_pool=8, n_unseen=4, n_unseen_candidates=6, vocab_size=300, layers=2, width=32, heads=2,
                      steps=24, batch_size=4, lr=0.003, warmup_steps=4, background_chars=20_000,
                      exposures=(2, 4), n_distractors=6)
    straight = build_mod.build(cfg, tmp_path / "straight", threads=1, checkpoint_every=0)

    real = schedule.materialize
    calls = {"n": 0}

    def dies_at_step_17(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 17:
            raise KeyboardInterrupt  # the session ends mid-build
        return real(*args, **kwargs)

    monkeypatch.setattr(schedule, "materialize", dies_at_step_17)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        build_mod.build(cfg, out, threads=1, checkpoint_every=5)
    state = torch.load(build_mod.checkpoint_path(out), weights_only=False)
    assert state["step"] == 15 and not (out / "build.json").exists()
    monkeypatch.setattr(schedule, "materialize", real)
    resumed = build_mod.build(cfg, out, threads=1, checkpoint_every=5)

    assert resumed["resumed_at_step"] == 15 and not build_mod.checkpoint_path(out).exists()
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight["key"] == resumed["key"]


def test_a_build_leaves_the_callers_thread_count_as_it_found_it(tmp_path):
    cfg = BuildConfig(n_pool=8, n_unseen=4, n_unseen_candidates=6, vocab_size=300, layers=2, width=16, heads=2,
                      steps=2, batch_size=4, warmup_steps=1, background_chars=20_000)
    before = torch.get_num_threads()
    build_mod.build(cfg, tmp_path / "m", threads=before + 1)
    assert torch.get_num_threads() == before  # a micro build in a test session used to leave it at 2
