"""Each baseline loss against a closed form computed independently (signs and beta scaling included),
and two steps of each method lower its own objective (and, for ascent-type methods, the forget
tokens' log-likelihood)."""
from __future__ import annotations

import math

import pytest
import torch

from emso_bench.baselines.dpo import dpo_loss
from emso_bench.baselines.kl import kl_ref_theta
from emso_bench.baselines.npo import npo_loss
from emso_bench.baselines.simnpo import simnpo_loss
from emso_bench.objectives import Batch, mean_log_likelihood, sequence_log_likelihood
from tests.test_emso import FixedLogits

P = [[0.5, 0.25, 0.25], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]  # p(. | x_<t) for t = 1, 2, 3
X = [0, 1, 2, 0]  # the row: predicted tokens 1, 2, 0


def _model(p):
    return FixedLogits(torch.log(torch.tensor(p + [[1 / 3] * 3], dtype=torch.float64))[None])


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_sequence_log_likelihoods_match_the_hand_computed_sums():
    batch = Batch.of([torch.tensor(X)], "cpu")
    model = _model(P)
    full = math.log(0.25) + math.log(0.5) + math.log(0.6)
    assert sequence_log_likelihood(model, batch).item() == pytest.approx(full, rel=1e-12)
    assert sequence_log_likelihood(model, batch, start=2).item() == pytest.approx(math.log(0.5) + math.log(0.6), rel=1e-12)
    assert mean_log_likelihood(model, batch).item() == pytest.approx(full / 3, rel=1e-12)  # GA's loss


@pytest.mark.parametrize("beta", [0.1, 1.0, 5.0])
def test_npo_matches_its_closed_form_and_tends_to_gradient_ascent_as_beta_vanishes(beta):
    pi, pi_ref = 0.25 * 0.5, 0.3 * 0.4  # sequence probabilities under the model and the reference
    lp, lp_ref = math.log(pi), math.log(pi_ref)
    expected = (2 / beta) * math.log(1 + (pi / pi_ref) ** beta)  # Zhang et al. 2024, eq. (3)
    assert npo_loss(torch.tensor(lp), torch.tensor(lp_ref), beta).item() == pytest.approx(expected, rel=1e-6)
    logp = torch.tensor(lp, dtype=torch.float64, requires_grad=True)
    npo_loss(logp, torch.tensor(lp_ref, dtype=torch.float64), beta).backward()
    # d/dlp = 2 * sigmoid(beta * (lp - lp_ref)): positive (minimizing lowers lp), -> 1 as beta -> 0
    assert logp.grad.item() == pytest.approx(2 * _sigmoid(beta * (lp - lp_ref)), rel=1e-9)
    small = torch.tensor(lp, dtype=torch.float64, requires_grad=True)
    npo_loss(small, torch.tensor(lp_ref, dtype=torch.float64), 1e-6).backward()
    assert small.grad.item() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("beta,gamma", [(2.5, 0.0), (1.0, 0.5)])
def test_simnpo_matches_its_closed_form(beta, gamma):
    pi, n = 0.25 * 0.5 * 0.6, 3
    lp = math.log(pi)
    # Fan et al. 2024: -(2/beta) log sigmoid(-(beta/|y|) log pi - gamma) = (2/beta) log(1 + pi^(beta/|y|) e^gamma)
    expected = (2 / beta) * math.log(1 + pi ** (beta / n) * math.exp(gamma))
    got = simnpo_loss(torch.tensor(lp, dtype=torch.float64), torch.tensor(float(n), dtype=torch.float64), beta, gamma)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_simnpo_on_a_padded_batch_counts_only_each_rows_own_suffix():
    from emso_bench.baselines.simnpo import SimNPO

    pa = P + [[1 / 3] * 3]
    pb = [[0.1, 0.2, 0.7], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [1 / 3] * 3]  # the last two predict padding
    model = FixedLogits(torch.log(torch.tensor([pa, pb], dtype=torch.float64)))
    batch = Batch.of([torch.tensor(X), torch.tensor([0, 2, 1])], "cpu")  # lengths 4 and 3
    method = SimNPO()
    method.beta, method.gamma, method.prefix = 2.5, 0.5, 2  # y: the tokens after the first 2
    got = method.loss(model, batch)
    pi_a, pi_b = 0.5 * 0.6, 0.4  # |y| = 2 and 1
    expected = [(2 / 2.5) * math.log(1 + pi ** (2.5 / n) * math.exp(0.5)) for pi, n in ((pi_a, 2), (pi_b, 1))]
    assert got.tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_dpo_matches_its_closed_form_and_prefers_the_chosen(beta):
    lw, lw_ref, ll, ll_ref = -3.0, -4.0, -1.0, -0.5
    # Rafailov et al. 2023 in probabilities: log(1 + ((pi_l / pi_ref_l) / (pi_w / pi_ref_w))^beta)
    expected = math.log(1 + (math.exp(ll) / math.exp(ll_ref) / (math.exp(lw) / math.exp(lw_ref))) ** beta)
    args = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (lw, lw_ref, ll, ll_ref)]
    loss = dpo_loss(*args, beta)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert args[0].grad.item() < 0 < args[2].grad.item()  # descent raises the chosen, lowers the rejected


def test_kl_term_is_kl_of_the_reference_from_the_model():
    p_ref, p = P[0], P[1]
    expected = sum(a * math.log(a / b) for a, b in zip(p_ref, p))
    got = kl_ref_theta(torch.log(torch.tensor([[p_ref]])), torch.log(torch.tensor([[p]])), torch.ones(1, 1))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    same = kl_ref_theta(torch.log(torch.tensor([[p]])), torch.log(torch.tensor([[p]])), torch.ones(1, 1))
    assert abs(same.item()) < 1e-7


ASCENT = {"ga", "gd", "kl", "npo", "simnpo", "dpo", "emso", "em"}


@pytest.mark.parametrize("name", ["ga", "gd", "kl", "npo", "simnpo", "dpo", "random_label", "emso", "em"])
def test_two_steps_lower_the_methods_own_objective(name, micro_memorizer, micro_cfg, tmp_path):
    import numpy as np
    from omegaconf import OmegaConf

    from emso_bench.engine import full_batch_step, make_optimizer
    from emso_bench.methods import RunContext
    from emso_bench.registry import get_method
    from tests.helpers import compose

    path, model, tok = micro_memorizer
    model = type(model).from_pretrained(path)  # a fresh copy: the fixture's model is shared
    cfg = compose(["model=memorizer-micro", "debug=default", f"method={name}", "select=all"])
    forget = [torch.as_tensor(r) for r in np.load(path / "pool.npy")[:12].astype(np.int64)]
    method = get_method(name)
    ctx = RunContext(cfg=cfg, model=model, tokenizer=tok, splits={}, params=None, thresholds={}, run_dir=tmp_path,
                     device="cpu", before={})
    method.setup(ctx)
    batch = Batch.of(forget, "cpu")

    def objective():
        with torch.no_grad():
            torch.manual_seed(0)
            return method.loss(model, batch).mean().item()

    def log_lik():
        with torch.no_grad():
            return mean_log_likelihood(model, batch).mean().item()

    start, start_ll = objective(), log_lik()
    lr = OmegaConf.create({"name": "adam", "lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.0})
    opt = make_optimizer(list(model.parameters()), lr)
    for _ in range(2):
        opt.zero_grad()
        full_batch_step(model, forget, method.loss, 6, "cpu")
        opt.step()
    assert objective() < start
    if name in ASCENT:
        assert log_lik() < start_ll


def test_task_vector_guards_perplexity_against_the_starting_model(micro_memorizer, tmp_path, monkeypatch):
    """The collapse guard compares each alpha's held-out perplexity with theta_0's, as the engine's guard
    does (it once compared with the fine-tuned model's, a looser bar). A stand-in perplexity, 1 + the
    distance of the weights from theta_0, and ppl_guard=1: any alpha > 0 must count as collapse. The
    search runs through engine.run_epochs, whose trainers measure perplexity with engine.perplexity."""
    import emso_bench.engine
    from emso_bench.run import execute
    from tests.helpers import compose

    path, model, _ = micro_memorizer
    theta0 = torch.cat([p.detach().flatten() for p in type(model).from_pretrained(path).parameters()])

    def distance_ppl(m, heldout):
        return 1.0 + (torch.cat([p.detach().flatten() for p in m.parameters()]) - theta0).norm().item()

    monkeypatch.setattr(emso_bench.engine, "perplexity", distance_ppl)
    cfg = compose(["model=memorizer-micro", "debug=default", "method=task_vector", "method.finetune_epochs=1",
                   "stop.ppl_guard=1.0", "eval.unseen_after=none"])
    results = execute(cfg, tmp_path)
    assert results["status"] == "collapsed"
    assert results["method_facts"]["alpha"] == min(cfg.method.alphas)  # the first alpha already failed


def test_the_reference_is_a_frozen_copy_in_the_runs_training_dtype():
    from emso_bench.baselines._common import frozen_copy
    from tests.helpers import tiny_gpt_neo

    model = tiny_gpt_neo()
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ref = frozen_copy(model, precision)
        assert not ref.training and not any(p.requires_grad for p in ref.parameters())
        assert all(p.dtype == dtype for p in ref.parameters())
    # what DeepSpeed trains in bf16 is model.to(bf16): the reference starts bit-identical to it
    trained = tiny_gpt_neo().to(torch.bfloat16)
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), trained.parameters()))
    assert next(model.parameters()).dtype == torch.float32  # the model itself is left as it was


def test_random_labels_depend_on_the_seed_and_the_row_not_on_the_order_rows_are_seen():
    """Every rank and micro-batch size must train a row toward the same random continuation."""
    from types import SimpleNamespace

    from emso_bench.baselines.random_label import RandomLabel

    def method(seed):
        head = torch.nn.Linear(4, 50, bias=False)  # vocabulary of 50
        cfg = SimpleNamespace(seed=seed, method=SimpleNamespace(prefix_length=3))
        m = RandomLabel()
        m.setup(SimpleNamespace(cfg=cfg, device="cpu", model=SimpleNamespace(get_output_embeddings=lambda: head)))
        return m

    a, b = torch.arange(10), torch.arange(10, 20)
    first, second = method(0), method(0)
    a1, b1 = first._relabel(a), first._relabel(b)
    b2, a2 = second._relabel(b), second._relabel(a)  # the other order
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert torch.equal(a1[:3], a[:3]) and len(a1) == 10 and int(a1.max()) < 50  # prefix kept, suffix from the vocab
    assert not torch.equal(a1[3:], b1[3:])  # rows get their own continuation ...
    assert not torch.equal(method(1)._relabel(a), a1)  # ... and the seed changes them
