"""The shared recipe of every loss-based method: select weights, erase with the engine, measure after.

A subclass defines `loss(model, batch) -> one value per sequence` (minimized, averaged over the forget
set) and, when it needs one, `setup(ctx)` (a frozen reference model, retain text) and
`extra_loss(model)` (a term added once per step, e.g. descent on retain text). Everything else —
selection (`select=`), optimizer, the stop rule, the hard masks, logging — is the same for all.
"""
from __future__ import annotations

import logging

from ..engine import EngineResult, LocalTrainer, Trainer, make_optimizer, run_epochs
from ..masking import MaskedUpdate
from ..selection import select
from . import Outcome, RunContext

log = logging.getLogger(__name__)


def after_plan(cfg) -> dict[str, bool]:
    """{split: measure EL too?} for the splits besides forget measured after erasure. The unseen split
    is the most expensive (the model decodes a branch at nearly every prefix): `eval.unseen_after`
    is full (MA and EL), ma (MA and extraction only: one forward pass) or none."""
    mode = cfg.eval.unseen_after  # full, ma or none (validate.py)
    plan = {"retain": True}
    if mode != "none":
        plan["unseen"] = mode == "full"
    return plan


def collateral(ctx: RunContext) -> dict:
    """{split: rows} whose MA the engine logs each epoch beside the forget set's (`eval.per_epoch`): the
    retain split draws the selectivity curve (forget MA against retain MA); unseen, the model's drift."""
    return {name: ctx.splits[name].seqs for name in ctx.cfg.eval.get("per_epoch") or []}  # names: validate.py


def measure_after(trainer: Trainer, ctx: RunContext, result: EngineResult) -> dict:
    """The figures after erasure, through the trainer: the forget split's last full check of
    run_epochs (`result.forget_after`) or a fresh one, then the splits of after_plan; leaves in
    ctx.model a plain model with the edited weights, every weight trainable again, for the rest of the run."""
    with ctx.timed("measure_after"):
        return _measure_after(trainer, ctx, result)


def _measure_after(trainer: Trainer, ctx: RunContext, result: EngineResult) -> dict:
    after = {"forget": result.forget_after}
    if result.forget_after is None:
        log.info("after: measuring forget (%d rows, MA and EL)", len(ctx.splits["forget"].seqs))
        after["forget"] = trainer.measure(ctx.splits["forget"].seqs, ctx.params, with_el=True)
    for name, with_el in after_plan(ctx.cfg).items():
        seqs = ctx.splits[name].seqs
        if seqs:
            log.info("after: measuring %s (%d rows, %s)", name, len(seqs), "MA and EL" if with_el else "MA")
        after[name] = trainer.measure(seqs, ctx.params, with_el=with_el) if seqs else []
    ctx.model = trainer.eval_model()
    for p in ctx.model.parameters():
        p.requires_grad_(True)
    return after


class GradientMethod:
    def setup(self, ctx: RunContext) -> None:
        """Prepare what the loss needs (override when needed)."""

    def loss(self, model, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    extra_loss = None  # optional: model -> scalar tensor, added once per step
    shardable = True   # runs under distributed=zero2|zero3 (through the sharded trainer)

    def _select(self, ctx: RunContext):
        """The masks at the current weights; in a distributed run each rank scores its share of the
        forget set, each tensor's gradients are summed onto the rank that keeps its scores (about 1/world
        of the store each), and every rank gets the same masks."""
        from ..distributed import shard

        s, forget = ctx.cfg.select, ctx.splits["forget"].seqs
        return select(ctx.model, shard(list(forget)), s.rule, s.fraction, s.params, s.scope, seed=ctx.cfg.seed,
                      micro_batch=ctx.cfg.method.micro_batch, device=ctx.device, n_total=len(forget), sharded=True)

    def trainer(self, ctx: RunContext, selection):
        """What performs an epoch's update: one process, or DeepSpeed when `distributed` asks for it."""
        cfg = ctx.cfg
        if cfg.distributed.name != "none":
            from ..distributed.trainer import DeepSpeedTrainer

            return DeepSpeedTrainer(ctx.model, self.loss, selection.masks, cfg.method.optim, cfg.distributed,
                                    len(ctx.splits["forget"].seqs), cfg.method.micro_batch, ctx.device, self.extra_loss)
        masked = MaskedUpdate(ctx.model, selection.masks, refreshable=bool(cfg.select.get("refresh_every", 0)))
        optimizer = make_optimizer(masked.trainable(), cfg.method.optim)
        return LocalTrainer(ctx.model, self.loss, masked, optimizer, cfg.method.micro_batch, ctx.device,
                            self.extra_loss)

    def refresh(self, ctx: RunContext):
        """A callable epoch -> new masks or None (re-selection every `select.refresh_every` epochs)."""
        every = ctx.cfg.select.get("refresh_every", 0)
        if not every:
            return None
        def reselect(epoch: int):
            if (epoch - 1) % every == 0:
                with ctx.timed("select"):
                    return self._select(ctx).masks
            return None
        return reselect

    def erase(self, ctx: RunContext) -> Outcome:
        cfg = ctx.cfg
        self.setup(ctx)
        with ctx.timed("select"):
            selection = self._select(ctx)
        log.info("selection: %s of %d weights (%s)", f"{selection.n_selected:,}", selection.n_total, selection.rule)
        trainer = self.trainer(ctx, selection)
        train_log = ctx.train_log()
        try:
            result = run_epochs(trainer, ctx.splits["forget"].seqs, cfg.stop, ctx.thresholds, ctx.params, train_log,
                                heldout=ctx.heldout, refresh=self.refresh(ctx),
                                collateral=collateral(ctx))
        finally:
            train_log.close()
        after = measure_after(trainer, ctx, result)
        n = len(ctx.splits["forget"].seqs)
        return Outcome(status=result.status, after=after, epochs=result.epochs, steps=result.steps,
                       seconds=result.seconds, grad_accum=getattr(trainer, "config", {}).get("gradient_accumulation_steps",
                                                                         -(-n // cfg.method.micro_batch)),
                       selection=selection.record(), masks=selection.masks)
