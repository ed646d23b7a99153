"""The one trainer interface (engine.Trainer): every trainer declares each member run_epochs and the
"after" measurement use, with the same parameters; and task_vector's alpha search runs through
run_epochs (its stop rule, collapse guard and "after" measurement), on a tiny random GPT-Neo."""
from __future__ import annotations

import inspect
import json
import re
from types import SimpleNamespace

import pytest
import torch

from emso_bench.baselines.task_vector import Negation
from emso_bench.distributed.trainer import DeepSpeedTrainer
from emso_bench.engine import LocalTrainer, Trainer, run_epochs
from emso_bench.methods import RunContext
from emso_bench.methods.gradient import measure_after
from emso_bench.metrics import measure
from tests.helpers import compose, tiny_gpt_neo

MEMBERS = sorted(name for name in vars(Trainer) if not name.startswith("_"))


def test_the_interface_holds_what_run_epochs_and_the_after_measurement_use():
    assert MEMBERS == ["eval_model", "lr", "measure", "perplexity", "set_masks", "step"]
    used = set(re.findall(r"trainer\.(\w+)", inspect.getsource(run_epochs) + inspect.getsource(measure_after)))
    assert used <= set(MEMBERS), f"run_epochs or measure_after uses undeclared trainer members: {used - set(MEMBERS)}"


@pytest.mark.parametrize("cls", [LocalTrainer, DeepSpeedTrainer, Negation])
def test_every_trainer_implements_the_interface(cls):
    for name in MEMBERS:
        declared, implemented = getattr(Trainer, name), getattr(cls, name, None)
        assert implemented is not None, f"{cls.__name__}.{name} is missing"
        if isinstance(declared, property):
            assert isinstance(implemented, property), f"{cls.__name__}.{name} should be a property"
        else:
            assert list(inspect.signature(implemented).parameters) == list(inspect.signature(declared).parameters), \
                f"{cls.__name__}.{name}{inspect.signature(implemented)} != Trainer.{name}{inspect.signature(declared)}"


def _context(tmp_path, thresholds: dict, *overrides):
    cfg = compose(["model=memorizer-micro", "debug=default", "method=task_vector", "method.finetune_epochs=1",
                   "method.optim.lr=0.03", "eval.unseen_after=none", *overrides])
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(1, 97, (100,), generator=g) for _ in range(4)]
    splits = {"forget": SimpleNamespace(seqs=rows[:3]), "retain": SimpleNamespace(seqs=rows[3:]),
              "unseen": SimpleNamespace(seqs=[])}
    from emso_bench.run import metric_params

    return RunContext(cfg=cfg, model=tiny_gpt_neo().train(), tokenizer=None, splits=splits, params=metric_params(cfg),
                      thresholds=thresholds, run_dir=tmp_path, device="cpu", before={},
                      heldout=torch.randint(1, 97, (2, 32), generator=g))


def _erase(ctx):
    from emso_bench.registry import get_method

    outcome = get_method("task_vector").erase(ctx)
    lines = [json.loads(line) for line in (ctx.run_dir / "train_log.jsonl").read_text().splitlines()]
    return outcome, [line for line in lines if line["phase"] == "negate"]


def test_task_vector_stops_at_the_first_alpha_below_both_thresholds(tmp_path):
    ctx = _context(tmp_path, {"ma": 1.0, "el_10": 1.0})
    outcome, search = _erase(ctx)
    alphas = sorted(ctx.cfg.method.alphas)
    assert (outcome.status, outcome.extra["alpha"], outcome.epochs) == ("forgotten", alphas[0], 1)
    assert [(line["epoch"], line["alpha"]) for line in search] == [(1, alphas[0])]  # an engine line per alpha
    assert {"loss", "lr", "forget_ma", "forget_el_10", "retain_ma", "heldout_ppl"} <= set(search[0])


def test_task_vector_spends_the_grid_and_measures_after_at_the_last_alpha(tmp_path):
    ctx = _context(tmp_path, {"ma": 0.0, "el_10": 0.0}, "stop.ppl_guard=inf")  # never forgotten, never collapsed
    outcome, search = _erase(ctx)
    alphas = sorted(ctx.cfg.method.alphas)
    assert (outcome.status, outcome.extra["alpha"]) == ("budget_exhausted", alphas[-1])
    assert [line["alpha"] for line in search] == alphas and [line["epoch"] for line in search] == list(
        range(1, len(alphas) + 1))
    assert outcome.after["forget"] == measure(ctx.model, ctx.splits["forget"].seqs, ctx.params, with_el=True)
    assert set(outcome.after) == {"forget", "retain"}  # eval.unseen_after=none


def test_task_vector_guards_collapse_against_theta_0(tmp_path, monkeypatch):
    """A stand-in perplexity, 1 + the distance from theta_0, and ppl_guard=1: the engine's guard must
    see theta_0 first (1.0), so the first alpha already collapses."""
    import emso_bench.engine

    ctx = _context(tmp_path, {"ma": 1.0, "el_10": 1.0}, "stop.ppl_guard=1.0")
    theta0 = torch.cat([p.detach().flatten().clone() for p in ctx.model.parameters()])
    monkeypatch.setattr(emso_bench.engine, "perplexity", lambda m, heldout: 1.0 + (
        torch.cat([p.detach().flatten() for p in m.parameters()]) - theta0).norm().item())
    outcome, search = _erase(ctx)
    assert (outcome.status, outcome.extra["alpha"]) == ("collapsed", min(ctx.cfg.method.alphas))
    assert outcome.extra["stop_reason"].startswith("held-out perplexity above 1.0x")
    assert search[-1]["reason"].startswith("held-out perplexity") and search[-1]["reason"].endswith("x 1.0")


def test_task_vector_collapses_when_the_forget_loss_is_not_finite(tmp_path):
    """The engine's first check: an alpha so large that the forward pass overflows ends the search
    `collapsed` before anything is measured, and the record says why."""
    ctx = _context(tmp_path, {"ma": 1.0, "el_10": 1.0}, "method.alphas=[1.0e38]")
    outcome, search = _erase(ctx)
    assert (outcome.status, outcome.extra["stop_reason"]) == ("collapsed", "the forget loss is not finite at alpha=1e+38")
    assert search[-1]["reason"] == "non-finite loss" and "forget_ma" not in search[-1]
