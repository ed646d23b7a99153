"""The selection rules beyond EMSO's own score (test_emso.py): which weights are eligible, the magnitude
ablations, contrastive's positive-only rule when rho asks for more than there are, how rho becomes a
count (globally and per tensor), the random rule's seed, and scores that do not depend on dropout."""
from __future__ import annotations

import pytest
import torch

from emso_bench.objectives import mean_entropy, mean_log_likelihood
from emso_bench.selection import _scores, eligible_parameters, select
from tests.helpers import tiny_gpt_neo
from tests.test_emso import _seqs, independent_grads

N_MATRICES = 2 * (4 * 32 * 32 + 2 * 64 * 32)  # tiny_gpt_neo: per block q, k, v, out (32x32), c_fc, c_proj (64x32)


def test_eligible_parameters_of_each_kind():
    model = tiny_gpt_neo()
    every = dict(model.named_parameters())
    blocks = {n for n in every if n.startswith("transformer.h.")}
    assert set(eligible_parameters(model, "all")) == set(every)
    assert set(eligible_parameters(model, "blocks")) == blocks
    matrices = eligible_parameters(model, "matrices")
    assert set(matrices) == {n for n in blocks if n.endswith(("_proj.weight", "c_fc.weight"))}
    assert sum(p.numel() for p in matrices.values()) == N_MATRICES
    assert "transformer.wte.weight" not in matrices and "transformer.h.0.ln_1.weight" not in matrices


@pytest.mark.parametrize("rule,objective", [("ga_magnitude", mean_log_likelihood),
                                            ("em_magnitude", lambda m, b: -mean_entropy(m, b))])
def test_magnitude_rules_keep_the_largest_absolute_gradients(rule, objective):
    model = tiny_gpt_neo().double()
    seqs = _seqs()
    params = eligible_parameters(model, "matrices")
    flat = torch.cat([g.flatten() for g in independent_grads(model, seqs, params, objective)]).abs()
    k = round(0.05 * N_MATRICES)
    chosen = select(model, seqs, rule, 0.05, "matrices", micro_batch=4)
    picked = torch.cat([chosen.masks[n].flatten() for n in params]).nonzero().flatten()
    assert set(picked.tolist()) == set(torch.topk(flat, k).indices.tolist())


def test_contrastive_selects_only_positive_scores_when_rho_asks_for_more():
    model = tiny_gpt_neo().double()
    seqs = _seqs()
    params = eligible_parameters(model, "matrices")
    store = _scores(model, params, seqs, "contrastive", micro_batch=4, device="cpu", store_device="cpu")
    scores = torch.cat([store[n].flatten() for n in params])
    positive = scores[scores > 0]
    assert len(positive) < 0.9 * N_MATRICES  # rho = 0.9 asks for more weights than have s > 0
    chosen = select(model, seqs, "contrastive", 0.9, "matrices", micro_batch=4)
    assert chosen.n_selected == len(positive)
    assert chosen.threshold == pytest.approx(positive.min().item(), rel=1e-12)  # the smallest positive score


def test_rho_becomes_the_nearest_count_globally_and_per_tensor():
    model = tiny_gpt_neo()
    rho = 1000.7 / N_MATRICES  # 1000.7 weights: round to 1001 (not floor to 1000)
    assert select(model, [], "random", rho, "matrices", seed=3).n_selected == 1001
    per_tensor = select(model, [], "random", 0.2, "matrices", scope="per_tensor", seed=3)
    for name, mask in per_tensor.masks.items():
        assert int(mask.sum()) == {1024: 205, 2048: 410}[mask.numel()], name  # 204.8 and 409.6 weights, rounded


def test_the_random_rule_is_seeded():
    model = tiny_gpt_neo()
    masks = [select(model, [], "random", 0.2, "matrices", seed=s).masks for s in (1, 1, 2)]
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
    assert not all(torch.equal(masks[0][n], masks[2][n]) for n in masks[0])


def test_scores_are_a_property_of_the_weights_not_of_dropout():
    model = tiny_gpt_neo().double()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    model.train()
    params = eligible_parameters(model, "matrices")
    first, second = (_scores(model, params, _seqs(), "contrastive", micro_batch=6, device="cpu", store_device="cpu")
                     for _ in range(2))
    assert all(torch.equal(first[n], second[n]) for n in params)
    assert model.training  # the caller's mode is restored


def test_zero_scores_are_never_contrastive_candidates(monkeypatch):
    """Exact zeros (a weight whose gradient vanishes) are not 'positive': with rho asking for more weights
    than have s > 0, contrastive keeps the positive ones only and records the smallest positive score."""
    import emso_bench.selection as selection

    model = tiny_gpt_neo()
    params = eligible_parameters(model, "matrices")
    values = {n: torch.zeros_like(p) for n, p in params.items()}  # every score 0 but three
    first = next(iter(values))
    values[first].view(-1)[:4] = torch.tensor([2.0, 1.0, -1.0, 0.5])
    monkeypatch.setattr(selection, "_scores", lambda *args, **kwargs: {n: v.clone() for n, v in values.items()})
    chosen = select(model, [], "contrastive", 0.5, "matrices")
    assert chosen.n_selected == 3 and chosen.threshold == 0.5
    assert selection.kth_largest({"a": torch.tensor([0.0, -1.0, 2.0, 1.0, 0.0])}, 4, positive_only=True) == 1.0
