"""Task-vector negation (Ilharco et al. 2023): fine-tune on the forget set, then subtract the change.

    emso-bench method=task_vector method.finetune_epochs=5

theta_ft = k full-batch descent steps on the forget set's NLL from theta_0 (selected weights only);
tau = theta_ft - theta_0; theta = theta_0 - alpha * tau, with alpha the first value of
`method.alphas` (ascending) at which the forget set's MA and EL_n are below the thresholds. The record
says which alpha was taken and why the search stopped; train_log.jsonl has one line per step and alpha.
"""
from __future__ import annotations

import time

import torch

from emso_bench.engine import full_batch_step, make_optimizer
from emso_bench.masking import MaskedUpdate
from emso_bench.measure import measure_split
from emso_bench.methods import Outcome, register
from emso_bench.methods.gradient import GradientMethod, after_plan
from emso_bench.metrics import measure, summarize
from emso_bench.objectives import mean_log_likelihood
from emso_bench.perplexity import perplexity


@register("task_vector")
class TaskVector(GradientMethod):
    shardable = False  # its fine-tune and alpha search run in one process; every rank would repeat them

    def erase(self, ctx) -> Outcome:
        cfg, model, forget = ctx.cfg, ctx.model, ctx.splits["forget"].seqs
        started = time.time()
        selection = self._select(ctx)
        masked = MaskedUpdate(model, selection.masks)
        theta0 = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        optimizer = make_optimizer(masked.trainable(), cfg.method.optim)
        log = ctx.train_log()
        el_key = f"el_{ctx.params.el_n}"
        ppl0 = perplexity(model, ctx.heldout) if ctx.heldout is not None else None  # at theta_0, as the engine's guard
        try:
            for epoch in range(1, cfg.method.finetune_epochs + 1):  # descent: memorize the forget set harder
                optimizer.zero_grad(set_to_none=True)
                loss = full_batch_step(model, forget, lambda m, b: -mean_log_likelihood(m, b), cfg.method.micro_batch,
                                       ctx.device)
                masked.mask_gradients()
                optimizer.step()
                masked.restore(optimizer)
                log.write({"phase": "finetune", "epoch": epoch, "nll": loss})
            params = dict(model.named_parameters())
            tau = {n: params[n].detach() - theta0[n] for n in theta0}
            status, alpha, rows, reason = "budget_exhausted", None, None, "no alpha in the grid met the thresholds"
            for alpha in sorted(cfg.method.alphas):
                with torch.no_grad():
                    for n in tau:
                        params[n].copy_(theta0[n] - alpha * tau[n])
                rows = measure(model, forget, ctx.params, with_el=True)
                s = summarize(rows, ctx.params)
                line = {"phase": "negate", "alpha": alpha, "forget_ma": s["ma"], f"forget_{el_key}": s[el_key]}
                for name in ("retain", "unseen"):  # collateral at each alpha, as the engine logs it per epoch
                    if ctx.splits[name].seqs:
                        line[f"{name}_ma"] = summarize(measure(model, ctx.splits[name].seqs, ctx.params,
                                                               with_el=False), ctx.params)["ma"]
                if ctx.heldout is not None:
                    line["heldout_ppl"] = perplexity(model, ctx.heldout)
                log.write(line)
                if ppl0 is not None and not line["heldout_ppl"] <= cfg.stop.ppl_guard * ppl0:
                    status, reason = "collapsed", f"held-out perplexity above {cfg.stop.ppl_guard}x at alpha={alpha}"
                    break
                if s["ma"] < ctx.thresholds["ma"] and s[el_key] < ctx.thresholds[el_key]:
                    status, reason = "forgotten", f"alpha={alpha} is the first grid value below both thresholds"
                    break
        finally:
            log.close()
        for p in model.parameters():
            p.requires_grad_(True)
        after = {"forget": rows}
        for name, with_el in after_plan(cfg).items():
            after[name] = measure_split(model, ctx.splits[name], ctx.params, with_el=with_el)
        return Outcome(status=status, after=after, epochs=cfg.method.finetune_epochs, steps=cfg.method.finetune_epochs,
                       seconds=round(time.time() - started, 2), selection=selection.record(),
                       extra={"alpha": alpha, "alphas": list(cfg.method.alphas), "stop_reason": reason})
