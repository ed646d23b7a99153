"""The shared recipe of every loss-based method: select weights, erase with the engine, measure after.

A subclass defines `loss(model, batch) -> one value per sequence` (minimized, averaged over the forget
set) and, when it needs one, `setup(ctx)` (a frozen reference model, retain text) and
`extra_loss(model)` (a term added once per step, e.g. descent on retain text). Everything else —
selection (`select=`), optimizer, the stop rule, the hard masks, logging — is the same for all.
"""
from __future__ import annotations

import logging

from ..engine import make_optimizer, run_epochs
from ..masking import MaskedUpdate
from ..measure import measure_split
from ..selection import select
from . import Outcome, RunContext

log = logging.getLogger(__name__)


def after_splits(cfg) -> tuple[str, ...]:
    """The splits besides forget measured after erasure (`eval.unseen_after=false` skips the unseen one,
    the most expensive: a model that forgot decodes a branch at nearly every prefix)."""
    return ("retain", "unseen") if cfg.eval.unseen_after else ("retain",)


class GradientMethod:
    def setup(self, ctx: RunContext) -> None:
        """Prepare what the loss needs (override when needed)."""

    def loss(self, model, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    extra_loss = None  # optional: model -> scalar tensor, added once per step

    def _select(self, ctx: RunContext):
        s = ctx.cfg.select
        return select(ctx.model, ctx.splits["forget"].seqs, s.rule, s.fraction, s.params, s.scope, seed=ctx.cfg.seed,
                      micro_batch=ctx.cfg.method.micro_batch, device=ctx.device)

    def refresh(self, ctx: RunContext):
        """A callable epoch -> new masks or None (re-selection every `select.refresh_every` epochs)."""
        every = ctx.cfg.select.get("refresh_every", 0)
        if not every:
            return None
        return lambda epoch: self._select(ctx).masks if (epoch - 1) % every == 0 else None

    def erase(self, ctx: RunContext) -> Outcome:
        cfg = ctx.cfg
        self.setup(ctx)
        selection = self._select(ctx)
        log.info("selection: %s of %d weights (%s)", f"{selection.n_selected:,}", selection.n_total, selection.rule)
        masked = MaskedUpdate(ctx.model, selection.masks)
        optimizer = make_optimizer(masked.trainable(), cfg.method.optim)
        train_log = ctx.train_log()
        try:
            result = run_epochs(ctx.model, ctx.splits["forget"].seqs, self.loss, masked, optimizer, cfg.stop,
                                ctx.thresholds, ctx.params, cfg.method.micro_batch, ctx.device, train_log,
                                heldout=ctx.heldout, extra_loss=self.extra_loss, refresh=self.refresh(ctx))
        finally:
            train_log.close()
        for p in ctx.model.parameters():
            p.requires_grad_(True)
        after = {"forget": result.forget_after if result.forget_after is not None
                 else measure_split(ctx.model, ctx.splits["forget"], ctx.params)}
        for name in after_splits(ctx.cfg):
            after[name] = measure_split(ctx.model, ctx.splits[name], ctx.params)
        n = len(ctx.splits["forget"].seqs)
        return Outcome(status=result.status, after=after, epochs=result.epochs, steps=result.steps,
                       seconds=result.seconds, grad_accum=-(-n // cfg.method.micro_batch),
                       selection=selection.record())
