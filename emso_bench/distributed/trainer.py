"""The erasure step under DeepSpeed ZeRO-2/3, with EMSO's hard masks kept bit for bit.

Implements engine.Trainer, the interface run_epochs drives (lr, step, set_masks, eval_model, measure,
perplexity), as engine.LocalTrainer does in one process. Frozen weights:
- their gradients are zeroed by a hook on each parameter before DeepSpeed reduces or partitions them;
- after every step their fp32 master values (DeepSpeed's partitions), their optimizer state and the
  model's own copy are written back (deepspeed.utils.safe_set_full_* APIs), which also undoes
  weight decay; so they stay bit-identical under ZeRO-2 and ZeRO-3, whatever the optimizer.
Metrics run on a plain full copy of the weights (ZeRO-2 holds them already; ZeRO-3 gathers them
tensor by tensor), each rank on its own rows: no collective runs inside a forward pass, so ranks with
unequal decoding work cannot deadlock.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from ..engine import make_optimizer
from ..metrics import MetricParams, measure
from ..objectives import Batch
from ..perplexity import perplexity
from . import all_reduce_sum, gather, rank, shard, unshard, world
from .config import accumulation, ds_config


class DeepSpeedTrainer:
    def __init__(self, model, loss_fn: Callable, masks: dict, optim_cfg, dcfg, n_rows: int, micro_batch: int,
                 device, extra_loss: Callable | None = None):
        import deepspeed

        self.loss_fn, self.extra_loss, self.device = loss_fn, extra_loss, device
        self.n_rows, self.micro_batch = n_rows, micro_batch
        self.stage = int(dcfg.stage)
        self.template = copy.deepcopy(model) if self.stage == 3 else None  # shell for the gathered copy
        self._hooks = []
        self._set_masks_before_init(model, masks)
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], optim_cfg)
        self.config = ds_config(dcfg, n_rows, world(), micro_batch)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=self.config)

    # masks -------------------------------------------------------------------------------------------------
    def _set_masks_before_init(self, model, masks: dict) -> None:
        self.masks = masks
        self.params = dict(model.named_parameters())
        for name, p in self.params.items():
            p.requires_grad_(name in masks and bool(masks[name].any()))
        self.frozen = {n: p.detach()[~m].clone() for n, p in self.params.items()
                       if (m := masks.get(n)) is not None and not bool(m.all())}
        for name in self.frozen:
            mask = masks[name].to(self.params[name].device)
            self._hooks.append(self.params[name].register_hook(lambda g, m=mask: g * m.to(g.dtype)))

    def set_masks(self, masks: dict) -> None:
        from ..errors import UserError

        raise UserError("select.refresh_every: not supported with distributed runs (expected 0): recompute masks in "
                        "one process")

    @torch.no_grad()
    def _restore(self) -> None:
        from deepspeed.utils import (safe_get_full_fp32_param, safe_get_full_optimizer_state,
                                     safe_set_full_fp32_param, safe_set_full_optimizer_state)

        for name, values in self.frozen.items():
            p, frozen = self.params[name], ~self.masks[name]
            full = safe_get_full_fp32_param(p)
            if full is not None:
                full[frozen.to(full.device)] = values.to(full.device, full.dtype)
                safe_set_full_fp32_param(p, full)
            for key in ("exp_avg", "exp_avg_sq"):
                state = safe_get_full_optimizer_state(p, key)
                if state is not None:
                    state[frozen.to(state.device)] = 0
                    safe_set_full_optimizer_state(p, state, key)
            if self.stage == 3:
                import deepspeed

                with deepspeed.zero.GatheredParameters([p], modifier_rank=0):
                    if rank() == 0:
                        p.data[frozen.to(p.device)] = values.to(p.device, p.dtype)
            else:
                p.data[frozen.to(p.device)] = values.to(p.device, p.dtype)

    # the step ---------------------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, seqs) -> float:
        """One epoch: this rank's rows in g micro-batches, one DeepSpeed step; returns the global loss."""
        mine = shard(list(seqs))
        _, gas = accumulation(self.n_rows, world(), self.micro_batch)
        chunks = [mine[i::gas] for i in range(gas)]
        self.engine.train()
        total = torch.zeros((), dtype=torch.float64)
        for i, chunk in enumerate(chunks):
            # a rank with fewer rows than micro-batches still runs g passes (ZeRO-3 gathers weights in
            # each): its spare passes see one of its rows with weight 0
            weight = 1.0 if chunk else 0.0
            loss = self.loss_fn(self.engine, Batch.of(chunk or mine[:1], self.device)).sum() * weight / self.n_rows
            if i == 0 and self.extra_loss is not None:
                loss = loss + self.extra_loss(self.engine) / world()
            total += loss.detach().double().cpu()
            self.engine.backward(loss * world(), scale_wrt_gas=False)
            self.engine.step()
        value = float(all_reduce_sum(total.to(self.device)).item())
        if math.isfinite(value):
            self._restore()
        return value

    # evaluation -------------------------------------------------------------------------------------------
    def eval_model(self):
        """A plain model holding the full current weights (no DeepSpeed hooks)."""
        if self.stage != 3:
            return self.engine.module
        import deepspeed

        model = self.template
        target = dict(model.named_parameters())
        for name, p in self.engine.module.named_parameters():
            with deepspeed.zero.GatheredParameters([p]):
                target[name].data.copy_(p.data)
        return model

    def measure(self, seqs, params: MetricParams, with_el: bool) -> list[dict]:
        """Each rank measures its rows; every rank gets all rows back in order."""
        model = self.eval_model()
        return unshard(gather(measure(model, shard(list(seqs)), params, with_el=with_el)))

    def perplexity(self, heldout: torch.Tensor) -> float:
        return perplexity(self.eval_model(), heldout)
