"""Sharded selection on 2 CPU processes (gloo): each rank keeps the contrastive scores of its own
tensors, and those scores, the threshold and the masks equal what unsharded selection gives (bit for
bit across the two processes, and to 1e-10 against one process holding every row)."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from emso_bench import distributed
from emso_bench.selection import _scores, eligible_parameters, select
from tests.helpers import tiny_gpt_neo

ROWS, T, MICRO = 10, 24, 3


def _setup():
    model = tiny_gpt_neo(layers=4, seed=1).double()
    g = torch.Generator().manual_seed(0)
    return model, [torch.randint(0, 97, (T,), generator=g) for _ in range(ROWS)]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model, seqs = _setup()
        mine = distributed.shard(seqs)  # this rank's rows, as GradientMethod._select gives them
        params = eligible_parameters(model, "matrices")
        owners = distributed.owners({n: p.numel() for n, p in params.items()})
        result = {"owners": owners}
        for rule in ("contrastive", "ga_magnitude"):
            result[rule] = {
                "full": _scores(model, params, mine, rule, MICRO, "cpu", "cpu", ROWS),
                "sharded": _scores(model, params, mine, rule, MICRO, "cpu", "cpu", ROWS, owners)}
            for scope in ("global", "per_tensor"):
                for sharded in (False, True):
                    chosen = select(model, mine, rule, 0.1, "matrices", scope, micro_batch=MICRO, n_total=ROWS,
                                    sharded=sharded)
                    result[rule][scope, sharded] = (chosen.masks, chosen.threshold, chosen.n_selected,
                                                    chosen.store_bytes)
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    # fork: the children start with the parent's imports (a spawned one re-imports torch and transformers)
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_each_rank_keeps_the_scores_of_its_own_tensors_and_they_equal_the_unsharded_ones(ranks):
    owners = ranks[0]["owners"]
    assert owners == ranks[1]["owners"] and set(owners.values()) == {0, 1}
    for rule in ("contrastive", "ga_magnitude"):
        full = ranks[0][rule]["full"]
        assert all(torch.equal(full[n], ranks[1][rule]["full"][n]) for n in full)  # all-reduced: the same
        for r in (0, 1):
            sharded = ranks[r][rule]["sharded"]
            assert set(sharded) == {n for n, o in owners.items() if o == r}
            assert all(torch.equal(sharded[n], full[n]) for n in sharded), rule
        sizes = [sum(s.numel() for s in ranks[r][rule]["sharded"].values()) for r in (0, 1)]
        assert sum(sizes) == sum(s.numel() for s in full.values()) and max(sizes) < 0.6 * sum(sizes)


def test_sharded_selection_gives_every_rank_the_masks_of_unsharded_and_one_process_selection(ranks):
    model, seqs = _setup()
    for rule in ("contrastive", "ga_magnitude"):
        for scope in ("global", "per_tensor"):
            one = select(model, seqs, rule, 0.1, "matrices", scope, micro_batch=MICRO)
            for r in (0, 1):
                plain, sharded = ranks[r][rule][scope, False], ranks[r][rule][scope, True]
                for masks in (plain[0], sharded[0]):
                    assert set(masks) == set(one.masks)
                    assert all(torch.equal(masks[n], one.masks[n]) for n in masks), (rule, scope, r)
                assert sharded[1:3] == plain[1:3] and sharded[2] == one.n_selected > 0
                if scope == "global":
                    assert sharded[1] == pytest.approx(one.threshold, rel=1e-10)
                assert sharded[3] < 0.6 * plain[3]  # the store each rank holds
