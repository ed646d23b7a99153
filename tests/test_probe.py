"""The selectivity probe (emso_bench/probe.py) on the micro memorizer, against a literal recomputation."""
from __future__ import annotations

import copy

import numpy as np
import torch

from emso_bench.probe import ProbeParams, ascend_until_halfway, gradient_cosines, probe, probe_once


def _rows(path, name):
    return [torch.as_tensor(r) for r in np.load(path / f"{name}.npy").astype(np.int64)]


@torch.no_grad()
def _literal_ma(model, seqs) -> np.ndarray:
    """MA row by row: the share of positions t = 1..T-1 whose argmax prediction is x_t."""
    model.eval()
    out = []
    for x in seqs:
        logits = model(input_ids=x[None]).logits[0, :-1]
        out.append(sum(int(logits[t].argmax() == x[t + 1]) for t in range(len(x) - 1)) / (len(x) - 1))
    return np.array(out)


def test_r_is_the_other_rows_drop_over_the_targets_drop(micro_memorizer):
    path, model, _ = micro_memorizer
    pool, unseen = _rows(path, "pool"), _rows(path, "unseen")
    pp = ProbeParams(lr=3e-4, max_steps=60)
    base = _literal_ma(model, pool)
    unseen_ma = float(_literal_ma(model, unseen).mean())
    targets = np.array([3, 17, 30])

    got = probe_once(model, pool, targets, unseen_ma, base, {}, None, pp)

    edited = copy.deepcopy(model)
    edited.train()
    goal = base[targets].mean() - (base[targets].mean() - unseen_ma) / 2
    steps, reached = ascend_until_halfway(edited, [pool[i] for i in targets], goal, pp.lr, pp.max_steps)
    drop = base - _literal_ma(edited, pool)
    others = np.setdiff1d(np.arange(len(pool)), targets)
    assert reached and got["steps"] == steps
    assert drop[targets].mean() >= (base[targets].mean() - unseen_ma) / 2 - 1e-9  # halfway to the unseen level
    assert np.isclose(got["target_ma_drop"], drop[targets].mean())
    assert np.isclose(got["other_ma_drop"], drop[others].mean())
    assert np.isclose(got["r_ma"], drop[others].mean() / drop[targets].mean())
    assert 0 < got["r_ma"] < 0.9  # computed on the targets themselves it would be 1


def test_probe_reports_each_k_with_its_spread_and_the_el_terms(micro_memorizer):
    path, model, _ = micro_memorizer
    pool, unseen = _rows(path, "pool"), _rows(path, "unseen")
    out = probe(model, pool, unseen, ProbeParams(lr=3e-4, ks=(1, 8, 48), singles=3, draws=2, el_others=6,
                                                 el_singles=1, cosine_rows=4))
    assert out["k"]["48"]["skipped"]  # k = the whole pool leaves no other row
    singles, eights = out["k"]["1"], out["k"]["8"]
    assert singles["r_ma"]["n"] == 3 and eights["r_ma"]["n"] == 2
    assert singles["r_el"]["n"] == 1 and eights["r_el"]["n"] == 2  # EL terms for the first single only
    r = [run["r_ma"] for run in singles["runs"]]
    assert np.isclose(singles["r_ma"]["median"], np.median(r))
    assert all(run["el_others_n"] <= 6 for run in eights["runs"])


def test_gradient_cosines_match_a_literal_computation(micro_memorizer):
    path, model, _ = micro_memorizer
    pool, unseen = _rows(path, "pool"), _rows(path, "unseen")
    got = gradient_cosines(model, pool, unseen, n=3, seed=5)
    rng = np.random.default_rng(5)
    pi, ui = rng.permutation(len(pool))[:3], rng.permutation(len(unseen))[:3]

    def grad(x):
        model.zero_grad()
        logp = torch.log_softmax(model(input_ids=x[None]).logits[0, :-1].double(), -1)
        logp.gather(-1, x[1:, None]).mean().backward()
        return torch.cat([p.grad.flatten().double() for p in model.parameters()])

    gp, gu = [grad(pool[i]) for i in pi], [grad(unseen[i]) for i in ui]
    cos = torch.nn.functional.cosine_similarity
    pp = np.mean([cos(gp[i], gp[j], dim=0).item() for i in range(3) for j in range(3) if i != j])
    pu = np.mean([cos(a, b, dim=0).item() for a in gp for b in gu])
    assert np.isclose(got["pool_pool"], pp, atol=1e-4) and np.isclose(got["pool_unseen"], pu, atol=1e-4)
    assert got["pool_pool"] != 0
