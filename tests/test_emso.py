"""EMSO's pieces against closed forms and independent computations: the entropy objective, the
contrastive score, its sign, the hard masks, and the engine's three ways to stop."""
from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from emso_bench.engine import LocalTrainer, run_epochs
from emso_bench.masking import MaskedUpdate
from emso_bench.metrics import MetricParams
from emso_bench.objectives import (Batch, mean_entropy, mean_log_likelihood, mean_uniform_cross_entropy)
from emso_bench.selection import _scores, eligible_parameters, select
from tests.helpers import tiny_gpt_neo


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits are a parameter: (1, T, V), whatever the input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits.clone())

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.logits})()


def test_entropy_objective_equals_the_hand_computed_value():
    p = [[0.5, 0.25, 0.25], [0.9, 0.05, 0.05]]  # predictions for tokens 1 and 2
    logits = torch.log(torch.tensor(p + [[1 / 3] * 3], dtype=torch.float64))[None]
    model = FixedLogits(logits)
    batch = Batch.of([torch.tensor([0, 1, 2])], "cpu")
    by_hand = sum(-sum(q * math.log(q) for q in row) for row in p) / 2  # (1/(T-1)) sum_t H
    assert mean_entropy(model, batch).item() == pytest.approx(by_hand, rel=1e-12)
    uniform_ce = sum(-sum(math.log(q) for q in row) / 3 for row in p) / 2
    assert mean_uniform_cross_entropy(model, batch).item() == pytest.approx(uniform_ce, rel=1e-12)
    log_lik = (math.log(0.25) + math.log(0.05)) / 2  # true tokens 1 then 2
    assert mean_log_likelihood(model, batch).item() == pytest.approx(log_lik, rel=1e-12)


def test_entropy_gradient_vanishes_at_uniform_and_uniform_ce_gradient_is_p_minus_uniform():
    batch = Batch.of([torch.tensor([0, 1, 2])], "cpu")
    uniform = FixedLogits(torch.zeros(1, 3, 5, dtype=torch.float64))
    (-mean_entropy(uniform, batch)).sum().backward()
    assert uniform.logits.grad.abs().max().item() < 1e-15
    peaked = FixedLogits(torch.tensor([[[8.0, 0, 0, 0, 0]] * 3], dtype=torch.float64))
    (-mean_entropy(peaked, batch)).sum().backward()
    assert peaked.logits.grad[0, :2].abs().max().item() < 2e-2  # near one-hot: the entropy plateau
    ce = FixedLogits(peaked.logits.detach())
    mean_uniform_cross_entropy(ce, batch).sum().backward()
    probs = torch.softmax(ce.logits.detach()[0, :2], -1)
    assert torch.allclose(ce.logits.grad[0, :2], (probs - 0.2) / 2, atol=1e-12)  # (p - 1/V) / (T-1)


def _seqs(n=6, T=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 97, (T,), generator=g) for _ in range(n)]


def independent_grads(model, seqs, params: dict, objective) -> list[torch.Tensor]:
    """The full-batch mean gradient of `objective` for each of params, one sequence at a time and summed:
    an independent route to what selection._scores accumulates."""
    names = list(params)
    total = [torch.zeros_like(params[n]) for n in names]
    for x in seqs:
        value = objective(model, Batch.of([x], "cpu")).sum() / len(seqs)
        for acc, g in zip(total, torch.autograd.grad(value, [params[n] for n in names], allow_unused=True)):
            if g is not None:
                acc += g
    return total


def test_contrastive_score_equals_the_product_of_independently_computed_gradients():
    model = tiny_gpt_neo().double()
    seqs = _seqs()
    params = eligible_parameters(model, "matrices")
    names = list(params)
    g_ga = independent_grads(model, seqs, params, mean_log_likelihood)
    g_em = independent_grads(model, seqs, params, lambda m, b: -mean_entropy(m, b))
    store = _scores(model, params, seqs, "contrastive", micro_batch=4, device="cpu", store_device="cpu")
    for name, ga, em in zip(names, g_ga, g_em):
        assert torch.allclose(store[name], ga * em, rtol=1e-9, atol=1e-18), name
    assert all(p.grad is None for p in model.parameters())  # scoring leaves no gradients behind

    selection = select(model, seqs, "contrastive", 0.1, "matrices", micro_batch=4)
    flat = torch.cat([(ga * em).flatten() for ga, em in zip(g_ga, g_em)])
    k = round(0.1 * flat.numel())
    expected = set(torch.topk(flat, k).indices.tolist())
    chosen = torch.cat([selection.masks[n].flatten() for n in names]).nonzero().flatten().tolist()
    assert set(chosen) == expected and selection.n_selected == k
    assert all((flat[chosen] > 0).tolist())
    # the threshold is the k-th score itself: the gradients are means over the rows, not over the weights
    assert selection.threshold == pytest.approx(torch.topk(flat, k).values[-1].item(), rel=1e-9)


def test_an_entropy_step_on_the_selected_weights_lowers_forget_likelihood_more_than_on_random_ones(micro_memorizer):
    import numpy as np

    path, model, _ = micro_memorizer
    model = model.double()
    forget = [torch.as_tensor(r) for r in np.load(path / "pool.npy")[:16].astype(np.int64)]
    batch = Batch.of(forget, "cpu")

    def log_lik_after_step(masks):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        model.zero_grad()
        (-mean_entropy(model, batch)).mean().backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in masks and p.grad is not None:
                    p -= 0.05 * p.grad * masks[name]
            value = mean_log_likelihood(model, batch).mean().item()
        model.load_state_dict(state)
        model.zero_grad()
        return value

    with torch.no_grad():
        start = mean_log_likelihood(model, batch).mean().item()
    chosen = select(model, forget, "contrastive", 0.01, "matrices", micro_batch=16)
    random = select(model, forget, "random", chosen.n_selected / chosen.n_total, "matrices", seed=3)
    assert abs(random.n_selected - chosen.n_selected) <= 1
    drop_selected = start - log_lik_after_step(chosen.masks)
    drop_random = start - log_lik_after_step(random.masks)
    assert drop_selected > 0
    assert drop_selected > 10 * drop_random


def test_unselected_weights_stay_bit_identical_under_adamw_with_weight_decay_and_a_mask_refresh():
    model = tiny_gpt_neo()
    seqs = _seqs()
    first = select(model, seqs, "random", 0.2, "matrices", seed=1)
    masked = MaskedUpdate(model, first.masks)
    opt = torch.optim.AdamW(masked.trainable(), lr=1e-2, weight_decay=0.1)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step in range(6):
        if step == 3:  # a refresh: the weights frozen from now on are the current ones
            masked.set_masks(select(model, seqs, "random", 0.2, "matrices", seed=2).masks)
            start = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.zero_grad()
        (-mean_entropy(model, Batch.of(seqs, "cpu"))).mean().backward()
        masked.mask_gradients()
        opt.step()
        masked.restore(opt)
        for name, p in model.named_parameters():
            mask = masked.masks.get(name)
            frozen = ~mask if mask is not None else torch.ones_like(p, dtype=torch.bool)
            assert torch.equal(p.detach()[frozen], start[name][frozen]), (step, name)
            if mask is not None and step in (2, 5):
                assert not torch.equal(p.detach()[mask], start[name][mask])  # the selected ones did move


def test_a_mask_refresh_can_select_a_tensor_the_first_mask_left_out():
    model = tiny_gpt_neo()
    seqs = _seqs()
    first = select(model, seqs, "contrastive", 0.002, "matrices", micro_batch=6)
    empty = next(n for n, m in first.masks.items() if not m.any())  # a tensor with nothing selected
    masked = MaskedUpdate(model, first.masks, refreshable=True)
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(masked.trainable(), lr=1e-2, weight_decay=0.1)
    assert any(p is params[empty] for p in masked.trainable())  # held by the optimizer, frozen by its mask

    def step():
        opt.zero_grad()
        (-mean_entropy(model, Batch.of(seqs, "cpu"))).mean().backward()
        masked.mask_gradients()
        opt.step()
        masked.restore(opt)

    start = params[empty].detach().clone()
    step()
    assert torch.equal(params[empty].detach(), start)
    # the refresh scores every eligible tensor, whatever requires_grad says (scores do not depend on it)
    eligible = {n: params[n] for n in first.masks}
    store = _scores(model, eligible, seqs, "contrastive", micro_batch=6, device="cpu", store_device="cpu")
    for p in model.parameters():
        p.requires_grad_(False)
    again = _scores(model, eligible, seqs, "contrastive", micro_batch=6, device="cpu", store_device="cpu")
    assert all(torch.equal(store[n], again[n]) for n in store) and store[empty].abs().sum() > 0
    masked.set_masks(select(model, seqs, "contrastive", 0.2, "matrices", "per_tensor", micro_batch=6).masks)
    chosen = masked.masks[empty]
    assert chosen.any()
    step()
    moved = params[empty].detach() != start
    assert moved[chosen].any() and not moved[~chosen].any()


class _Log:
    def __init__(self):
        self.lines = []

    def write(self, line):
        self.lines.append(line)


def _engine(model, loss_fn, thresholds, max_epochs=4, min_epochs=1):
    seqs = _seqs(n=4, T=30)
    masked = MaskedUpdate(model, select(model, seqs, "all", 1.0, "matrices").masks)
    opt = torch.optim.SGD(masked.trainable(), lr=0.0)
    stop = OmegaConf.create({"min_epochs": min_epochs, "max_epochs": max_epochs, "ppl_guard": 3.0})
    params = MetricParams(el_n=5, el_first_prefix=1, extract_context=10, extract_k=10, batch_size=4, branch_batch=64)
    log = _Log()
    trainer = LocalTrainer(model, loss_fn, masked, opt, 4, "cpu")
    result = run_epochs(trainer, seqs, stop, thresholds, params, log)
    return result, log.lines


def test_engine_stops_on_thresholds_on_budget_and_on_a_planted_nan():
    model = tiny_gpt_neo()
    loss = lambda m, b: -mean_entropy(m, b)  # noqa: E731
    result, lines = _engine(model, loss, {"el_5": 2.0, "ma": 2.0}, min_epochs=2)  # always below: stop at min_epochs
    assert (result.status, result.epochs) == ("forgotten", 2) and result.forget_after is not None
    result, lines = _engine(model, loss, {"el_5": -1.0, "ma": -1.0}, max_epochs=3)  # never below
    assert (result.status, result.epochs, len(lines)) == ("budget_exhausted", 3, 3)
    assert "forget_el_5" not in lines[0]  # EL is only computed once MA is below its threshold
    calls = []

    def planted(m, b):
        calls.append(1)
        value = -mean_entropy(m, b)
        return value * float("nan") if len(calls) > 1 else value  # NaN from the second epoch

    result, lines = _engine(model, planted, {"el_5": -1.0, "ma": -1.0}, max_epochs=5)
    assert (result.status, result.epochs) == ("collapsed", 2) and lines[-1]["reason"] == "non-finite loss"
