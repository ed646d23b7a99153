"""The erasure engine shared by EMSO and every baseline (Jang et al. 2023's protocol).

An epoch is one full-batch step over the forget set: the loss is averaged over the whole set
(per sequence or per token, as the method defines it) and accumulated over micro-batches, so the
step does not depend on how the set is split. Only selected weights move (masking.MaskedUpdate).
After each epoch: MA on the forget set; EL_n too once MA is below its threshold; the run stops

- `forgotten`        when both are below the thresholds, after `stop.min_epochs`;
- `budget_exhausted` when `stop.max_epochs` are spent;
- `collapsed`        on a non-finite loss, or when held-out perplexity exceeds `stop.ppl_guard` times
                     its starting value (a model that forgets by breaking is not a result).

The checks run in this order, and the first that fires ends the run: (1) a non-finite loss, right after
the step and before anything is measured; (2) the perplexity guard (NaN counts as past it); (3)
forgotten, from epoch `stop.min_epochs` on, both thresholds strict (MA < ma and EL_n < el_n); (4) the
budget, when the loop ends. So an epoch that forgets and breaks the guard together ends `collapsed`.

One line per epoch goes to train_log.jsonl; a progress bar shows the epochs. Each line also holds the
MA of the `collateral` splits (retain and unseen: one teacher-forced pass each), so every run's
trajectory shows what each level of forgetting costs the rows that should stay.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
from tqdm import tqdm

from .masking import MaskedUpdate
from .metrics import MetricParams, measure, summarize
from .objectives import Batch
from .perplexity import perplexity

log = logging.getLogger(__name__)


@dataclass
class EngineResult:
    status: str
    epochs: int
    steps: int
    seconds: float
    forget_after: list[dict] | None  # the last epoch's full check, reused as the forget split's "after"
    history: list[dict] = field(default_factory=list)


def make_optimizer(params: list, optim) -> torch.optim.Optimizer:
    name = optim.name
    if name == "adamw":
        return torch.optim.AdamW(params, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, weight_decay=optim.weight_decay)
    raise ValueError(f"optim.name={name}: expected adamw, adam or sgd")


def full_batch_step(model, seqs: Sequence[torch.Tensor], loss_fn: Callable, micro_batch: int, device,
                    extra_loss: Callable | None = None) -> float:
    """Accumulate the gradient of mean_x loss_fn(x) (+ extra_loss()) over all seqs; return the loss."""
    n, total = len(seqs), 0.0
    for start in range(0, n, micro_batch):
        batch = Batch.of(seqs[start : start + micro_batch], device)
        loss = loss_fn(model, batch).sum() / n
        loss.backward()
        total += loss.item()
    if extra_loss is not None:
        extra = extra_loss(model)
        extra.backward()
        total += extra.item()
    return total


@runtime_checkable
class Trainer(Protocol):
    """The one interface run_epochs drives and a method measures "after" through. Implementations:
    LocalTrainer (one process), distributed.trainer.DeepSpeedTrainer (ZeRO-2/3), and task_vector's
    Negation (an epoch is the next alpha); tests/test_trainer_contract.py holds them to it."""

    @property
    def lr(self) -> float:
        """The optimizer's rate, for the train log."""

    def step(self, seqs: Sequence[torch.Tensor]) -> float:
        """One epoch's update on seqs; returns its loss (non-finite: the run collapses)."""

    def set_masks(self, masks: dict) -> None:
        """Replace the selection masks (select.refresh_every)."""

    def eval_model(self) -> torch.nn.Module:
        """A plain model holding the current weights."""

    def measure(self, seqs: Sequence[torch.Tensor], params: MetricParams, with_el: bool) -> list[dict]:
        """Per-example metrics of seqs at the current weights, in order."""

    def perplexity(self, heldout: torch.Tensor) -> float:
        """Held-out perplexity at the current weights (the collapse guard)."""


class LocalTrainer:
    """One process: the full-batch step accumulated over micro-batches, then a masked optimizer step.
    (distributed.DeepSpeedTrainer does the same under ZeRO.) Implements Trainer."""

    def __init__(self, model, loss_fn: Callable, masked: MaskedUpdate, optimizer, micro_batch: int, device,
                 extra_loss: Callable | None = None):
        self.model, self.loss_fn, self.masked, self.optimizer = model, loss_fn, masked, optimizer
        self.micro_batch, self.device, self.extra_loss = micro_batch, device, extra_loss

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, seqs: Sequence[torch.Tensor]) -> float:
        """One epoch: the loss before the update; a non-finite loss leaves the weights untouched."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = full_batch_step(self.model, seqs, self.loss_fn, self.micro_batch, self.device, self.extra_loss)
        if math.isfinite(loss):
            self.masked.mask_gradients()
            self.optimizer.step()
            self.masked.restore(self.optimizer)
        return loss

    def set_masks(self, masks: dict) -> None:
        self.masked.set_masks(masks)

    def eval_model(self):
        return self.model

    def measure(self, seqs, params: MetricParams, with_el: bool) -> list[dict]:
        return measure(self.model, seqs, params, with_el=with_el)

    def perplexity(self, heldout: torch.Tensor) -> float:
        return perplexity(self.model, heldout)


def run_epochs(trainer: Trainer, forget: Sequence[torch.Tensor], cfg_stop, thresholds: dict, params: MetricParams,
               train_log, heldout: torch.Tensor | None = None,
               refresh: Callable[[int], dict | None] | None = None,
               collateral: dict[str, Sequence[torch.Tensor]] | None = None) -> EngineResult:
    """Erase until forgotten, out of budget or collapsed. `trainer.step(forget)` does one epoch's update;
    `refresh(epoch)` may return new masks (EMSO's periodic re-selection); `collateral` names the
    splits whose MA is logged each epoch as `<name>_ma`."""
    el_key = f"el_{params.el_n}"
    started = time.time()
    ppl0 = trainer.perplexity(heldout) if heldout is not None else None
    status, epoch, last_full, history = "budget_exhausted", 0, None, []
    bar = tqdm(range(1, cfg_stop.max_epochs + 1), desc="erase", unit="epoch", leave=False)
    for epoch in bar:
        if refresh is not None and epoch > 1:
            masks = refresh(epoch)
            if masks is not None:
                trainer.set_masks(masks)
        loss = trainer.step(forget)
        line = {"epoch": epoch, "loss": loss, "lr": trainer.lr}
        if not math.isfinite(loss):
            status = "collapsed"
            line["reason"] = "non-finite loss"
            history.append(line)
            train_log.write(line)
            break
        rows = trainer.measure(forget, params, with_el=False)
        line["forget_ma"] = summarize(rows, params)["ma"]
        if line["forget_ma"] < thresholds["ma"]:
            rows = trainer.measure(forget, params, with_el=True)
            last_full = (epoch, rows)
            line[f"forget_{el_key}"] = summarize(rows, params)[el_key]
        for name, seqs in (collateral or {}).items():
            if seqs:
                line[f"{name}_ma"] = summarize(trainer.measure(seqs, params, with_el=False), params)["ma"]
        if heldout is not None:
            line["heldout_ppl"] = trainer.perplexity(heldout)
        line["seconds"] = round(time.time() - started, 2)
        broke_guard = ppl0 is not None and not line["heldout_ppl"] <= cfg_stop.ppl_guard * ppl0
        if broke_guard:  # the reason goes into the line before it is written (train log and W&B)
            line["reason"] = f"held-out perplexity {line['heldout_ppl']:.1f} > {cfg_stop.ppl_guard} x {ppl0:.1f}"
        history.append(line)
        train_log.write(line)
        bar.set_postfix(loss=f"{loss:.3f}", ma=f"{line['forget_ma']:.3f}")
        if broke_guard:
            status = "collapsed"
            break
        forgotten = line.get(f"forget_{el_key}", math.inf) < thresholds[el_key] and line["forget_ma"] < thresholds["ma"]
        if forgotten and epoch >= cfg_stop.min_epochs:
            status = "forgotten"
            break
    bar.close()
    forget_after = last_full[1] if last_full is not None and last_full[0] == epoch else None
    return EngineResult(status, epoch, epoch, round(time.time() - started, 2), forget_after, history)
