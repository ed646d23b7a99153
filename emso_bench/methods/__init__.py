"""The method contract: what a method gets (RunContext), what it returns (Outcome), how it is named.

A method is a class with `erase(ctx: RunContext) -> Outcome`; `@register("name")` names it, and its
module is listed in `emso_bench/registry.py`, which `method=name` looks up (with a did-you-mean).
EMSO and its ablations live here, the baselines in baselines/ (installed as emso_bench.baselines).
Loss-based methods subclass `methods.gradient.GradientMethod` and only define their per-sequence loss.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig


REGISTRY: dict[str, Callable] = {}


@dataclass
class RunContext:
    """Everything a method may use: the composed config, the model being edited and its data."""
    cfg: DictConfig
    model: torch.nn.Module
    tokenizer: object
    splits: dict                 # name -> splits.Split
    params: object               # metrics.MetricParams
    thresholds: dict
    run_dir: Path
    device: str
    before: dict                 # name -> per-example metrics before erasure
    heldout: torch.Tensor | None = None  # held-out text windows for the perplexity guard
    logger: object | None = None  # the W&B logger (log_epoch) when logger=wandb
    phases: dict = field(default_factory=dict)  # seconds of the method's timed parts (select, measure_after)

    @contextmanager
    def timed(self, phase: str):
        """Add the block's wall seconds to phases[phase]: the run record's phase_seconds split the method's
        time into these and the rest (the erasure itself)."""
        started = time.time()
        try:
            yield
        finally:
            self.phases[phase] = round(self.phases.get(phase, 0.0) + time.time() - started, 2)

    def train_log(self):
        """train_log.jsonl in the run directory, mirrored to the dashboard when there is one."""
        from ..distributed import is_main
        from ..record import NullLog, TrainLog

        if not is_main():
            return NullLog()
        return TrainLog(self.run_dir, sink=self.logger.log_epoch if self.logger is not None else None)


@dataclass
class Outcome:
    status: str                      # measured | forgotten | budget_exhausted | collapsed
    after: dict | None = None        # per-split per-example metrics after erasure; None: weights unchanged
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    grad_accum: int = 1
    selection: dict | None = None
    masks: dict | None = None       # the selection masks, saved beside the model when save_model=true
    extra: dict = field(default_factory=dict)  # method-specific facts for the record
    notes: list = field(default_factory=list)


def register(name: str):
    """Class decorator: make a method available as `method=<name>`."""
    def wrap(cls):
        REGISTRY[name] = cls
        return cls
    return wrap
