"""Task-vector negation (Ilharco et al. 2023): fine-tune on the forget set, then subtract the change.

    emso-bench method=task_vector method.finetune_epochs=5

theta_ft = k full-batch descent steps on the forget set's NLL from theta_0 (selected weights only, the
engine's LocalTrainer); tau = theta_ft - theta_0; theta = theta_0 - alpha * tau, with alpha the first value
of `method.alphas` (ascending) at which the forget set's MA and EL_n are below the thresholds. The search is
the engine's run_epochs with one alpha per epoch (`Negation`), so it stops, guards against collapse
(held-out perplexity against theta_0's) and measures "after" as every method does; the grid is its budget,
and `stop.min_epochs` does not apply (an alpha is a point, not a step). The record says which alpha was
taken and why the search stopped; train_log.jsonl has one line per fine-tune step and per alpha.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from emso_bench.engine import LocalTrainer, run_epochs
from emso_bench.methods import Outcome, register
from emso_bench.methods.gradient import GradientMethod, collateral, measure_after
from emso_bench.objectives import Batch, mean_log_likelihood

REASONS = {"forgotten": "alpha={alpha} is the first grid value below both thresholds",
           "collapsed": "held-out perplexity above {guard}x at alpha={alpha}",
           "budget_exhausted": "no alpha in the grid met the thresholds"}


class Negation(LocalTrainer):
    """The alpha search as engine epochs (an engine.Trainer): it starts at theta_0, the collapse guard's
    reference; epoch i sets theta_0 - alphas[i-1] * tau and returns the forget set's mean NLL there."""

    def __init__(self, finetuned: LocalTrainer, theta0: dict, alphas):
        super().__init__(finetuned.model, finetuned.loss_fn, finetuned.masked, finetuned.optimizer,
                         finetuned.micro_batch, finetuned.device)
        self.params = dict(self.model.named_parameters())
        self.tau = {n: self.params[n].detach() - theta0[n] for n in theta0}
        self.theta0, self.alphas, self.alpha = theta0, sorted(alphas), None
        self._grid = iter(self.alphas)
        with torch.no_grad():
            for n in theta0:
                self.params[n].copy_(theta0[n])

    @torch.no_grad()
    def step(self, seqs) -> float:
        self.alpha = next(self._grid)
        for n in self.tau:
            self.params[n].copy_(self.theta0[n] - self.alpha * self.tau[n])
        return sum(self.loss_fn(self.model, Batch.of(seqs[i : i + self.micro_batch], self.device)).sum().item()
                   for i in range(0, len(seqs), self.micro_batch)) / len(seqs)


class _Tagged:
    """The search's train log: each engine line marked with its phase and alpha."""

    def __init__(self, log, negation: Negation):
        self.log, self.negation = log, negation

    def write(self, line: dict) -> None:
        self.log.write({"phase": "negate", "alpha": self.negation.alpha, **line})


@register("task_vector")
class TaskVector(GradientMethod):
    shardable = False  # its fine-tune and alpha search run in one process; every rank would repeat them

    def loss(self, model, batch):
        """The fine-tune's descent loss: each forget row's mean NLL."""
        return -mean_log_likelihood(model, batch)

    def erase(self, ctx) -> Outcome:
        cfg, forget = ctx.cfg, ctx.splits["forget"].seqs
        started = time.time()
        with ctx.timed("select"):
            selection = self._select(ctx)
        finetune = self.trainer(ctx, selection)
        theta0 = {n: p.detach().clone() for n, p in ctx.model.named_parameters() if p.requires_grad}
        log = ctx.train_log()
        try:
            for epoch in range(1, cfg.method.finetune_epochs + 1):  # descent: memorize the forget set harder
                log.write({"phase": "finetune", "epoch": epoch, "nll": finetune.step(forget)})
            negation = Negation(finetune, theta0, cfg.method.alphas)
            grid = SimpleNamespace(min_epochs=1, max_epochs=len(negation.alphas), ppl_guard=cfg.stop.ppl_guard)
            result = run_epochs(negation, forget, grid, ctx.thresholds, ctx.params, _Tagged(log, negation),
                                heldout=ctx.heldout, collateral=collateral(ctx))
        finally:
            log.close()
        after = measure_after(negation, ctx, result)
        reason = REASONS[result.status].format(alpha=negation.alpha, guard=cfg.stop.ppl_guard)
        if result.history[-1].get("reason") == "non-finite loss":
            reason = f"the forget loss is not finite at alpha={negation.alpha}"
        return Outcome(status=result.status, after=after, epochs=cfg.method.finetune_epochs,
                       steps=cfg.method.finetune_epochs, seconds=round(time.time() - started, 2),
                       selection=selection.record(),
                       extra={"alpha": negation.alpha, "alphas": list(cfg.method.alphas), "stop_reason": reason})
