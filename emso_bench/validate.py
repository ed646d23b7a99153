"""What a run's config can get wrong, checked before any weights load and before anything is written.

`check_config` raises a one-line UserError naming the key, its value and what was expected. It needs
no weights and reads at most the forget file, so it runs wherever a config is about to be used: in the
app's Hydra callback (app.RefuseBadInput), before Hydra writes `.hydra/` and its log into the run
directory; in the dry run (run.plan); and as run.execute starts (each job of a multirun, and runs
composed in-process, which no callback sees). A bad value that got through used to surface deep in a
run: `forget.size=-5` drew 635 forget rows, `forget.size=abc` ended in a traceback and a `failed` record.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

from omegaconf import DictConfig, OmegaConf

from .errors import UserError

_ABSENT = object()

# Whole-number options: key -> (smallest allowed, what the key is); a key a method lacks is skipped.
INTEGERS = {
    "forget.draw": (0, "the seed of the forget draw"),
    "seed": (0, "the run's seed"),
    "stop.max_epochs": (1, "the erasure budget in epochs"),
    "eval.el_n": (1, "n of EL_n"),
    "eval.el_first_prefix": (1, "the first prefix length of EL_n"),
    "eval.extract_k": (1, "k of extract@k"),
    "eval.batch_size": (1, "sequences per teacher-forced pass"),
    "eval.branch_batch": (1, "greedy branches decoded together"),
    "eval.ppl_windows": (1, "held-out perplexity windows"),
    "model.target_length": (2, "T, the tokens kept per row"),
    "model.extract_context": (1, "c, the extraction prefix"),
    "select.refresh_every": (0, "epochs between mask refreshes (0: never)"),
    "method.micro_batch": (1, "rows per forward/backward"),
    "method.retain_batch": (1, "retain windows per step"),
    "method.finetune_epochs": (1, "fine-tuning steps of the task vector"),
    "method.prefix_length": (0, "tokens kept as the prefix"),
    "eval.durable.sampling.samples": (1, "samples of each forget suffix"),
    "eval.durable.sampling.top_k": (1, "the tokens top-k sampling draws from"),
    "eval.durable.quantize.group_size": (1, "input weights per 4-bit group"),
}
# Real options: key -> (low, high, low included, what); None: unbounded on that side.
REALS = {
    "method.optim.lr": (0.0, None, False, "a learning rate"),
    "method.optim.weight_decay": (0.0, None, True, "a weight decay"),
    "method.beta": (0.0, None, False, "an inverse temperature"),
    "method.retain_weight": (0.0, None, True, "the retain term's weight"),
    "method.gamma": (None, None, True, "a margin"),
    "select.fraction": (0.0, 1.0, False, "rho, the fraction of eligible weights that may move"),
    "eval.durable.sampling.temperature": (0.0, None, False, "a sampling temperature"),
    "eval.durable.relearn.lr": (0.0, None, False, "the relearning rate"),
}


def _value(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=_ABSENT)


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and not math.isnan(value)


def _integer(cfg: DictConfig, key: str, low: int, what: str, high: int | None = None, why: str = "") -> None:
    value = _value(cfg, key)
    if value is _ABSENT:
        return
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise UserError(f"{key}={value}: expected a whole number {bound} ({what}{why})")


def _real(cfg: DictConfig, key: str, low, high, low_included: bool, what: str) -> None:
    value = _value(cfg, key)
    if value is _ABSENT:
        return
    ok = _is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_included else value > low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        if high is not None:
            span = f" in {'[' if low_included else '('}{low:g}, {high:g}]"
        else:
            span = "" if low is None else f" {'>=' if low_included else '>'} {low:g}"
        raise UserError(f"{key}={value}: expected a finite number{span} ({what})")


def forget_size_limit(cfg: DictConfig) -> tuple[int, str]:
    """The largest forget.size the model's rows allow beside the retain split, and why. The retain split
    keeps forget.retain_size rows; when the rows cannot hold that many beside one forget row (the micro
    memorizer: 48 pool rows, retain_size 128) it takes the rest, and keeps at least one."""
    if cfg.model.splits == "pool":
        total, what = cfg.model.build.n_pool, "the memorizer's pool"
    elif cfg.model.splits == "tdec":
        from .tdec import N_ROWS

        total, what = N_ROWS, "the challenge's train split"
    else:
        raise UserError(f"model.splits={cfg.model.splits}: expected 'pool' (memorizer) or 'tdec' (challenge rows)")
    retain = cfg.forget.retain_size
    if _is_int(retain) and 0 <= retain < total:
        return total - retain, f"{what} holds {total} rows; forget.retain_size keeps {retain}"
    return total - 1, f"{what} holds {total} rows and the retain split needs one"


def _check_forget(cfg: DictConfig) -> None:
    retain = cfg.forget.retain_size
    if retain is not None and (not _is_int(retain) or retain < 0):
        raise UserError(f"forget.retain_size={retain}: expected a whole number >= 0 or null (all the other rows)")
    limit, why = forget_size_limit(cfg)
    _integer(cfg, "forget.size", 1, "forget rows", high=limit, why=f": {why}")
    if cfg.forget.path:
        from .splits import parse_forget_file

        parse_forget_file(str(cfg.forget.path))


def _check_numbers(cfg: DictConfig) -> None:
    for key, (low, what) in INTEGERS.items():
        _integer(cfg, key, low, what)
    _integer(cfg, "stop.min_epochs", 1, "epochs before a run may stop as forgotten", high=cfg.stop.max_epochs,
             why=", at most stop.max_epochs")
    if cfg.threads is not None:
        _integer(cfg, "threads", 1, "torch CPU threads, or null")
    for key, (low, high, low_included, what) in REALS.items():
        _real(cfg, key, low, high, low_included, what)
    guard = cfg.stop.ppl_guard
    if not _is_real(guard) or guard < 1:
        raise UserError(f"stop.ppl_guard={guard}: expected a number >= 1 (the held-out perplexity ratio that "
                        "counts as collapse; inf switches the guard off)")
    betas = _value(cfg, "method.optim.betas")
    if betas is not _ABSENT and (len(betas) != 2 or not all(_is_real(b) and 0 <= b < 1 for b in betas)):
        raise UserError(f"method.optim.betas={list(betas)}: expected two numbers in [0, 1)")
    alphas = _value(cfg, "method.alphas")
    if alphas is not _ABSENT and (not len(alphas) or not all(_is_real(a) and 0 < a < math.inf for a in alphas)):
        raise UserError(f"method.alphas={list(alphas)}: expected a non-empty list of finite numbers > 0")


def _check_lengths(cfg: DictConfig) -> None:
    """Rows are cut to T tokens: EL_n needs el_first_prefix + el_n of them, extract@k c + k."""
    need = max(cfg.eval.el_first_prefix + cfg.eval.el_n, cfg.model.extract_context + cfg.eval.extract_k)
    if need > cfg.model.target_length:
        raise UserError(f"model.target_length={cfg.model.target_length}: shorter than the {need} tokens the metrics "
                        f"need (model.extract_context + eval.extract_k = {cfg.model.extract_context + cfg.eval.extract_k},"
                        f" eval.el_first_prefix + eval.el_n = {cfg.eval.el_first_prefix + cfg.eval.el_n})")


def _check_eval(cfg: DictConfig) -> None:
    """The splits measured each epoch and after erasure: names the engine knows."""
    per_epoch = cfg.eval.get("per_epoch") or []
    if isinstance(per_epoch, str) or not all(name in ("retain", "unseen") for name in per_epoch):
        raise UserError(f"eval.per_epoch={per_epoch}: expected a list of split names from retain, unseen (or [])")
    if cfg.eval.unseen_after not in ("full", "ma", "none"):
        raise UserError(f"eval.unseen_after={cfg.eval.unseen_after}: expected full, ma or none")
    durable = cfg.eval.get("durable")
    if durable is None:
        return
    if durable.workers is not None:
        _integer(cfg, "eval.durable.workers", 1, "probe jobs side by side, or null")
    steps, attacks, bits = durable.relearn.steps, durable.relearn.attacks, durable.quantize.bits
    if not OmegaConf.is_list(steps) or not len(steps) or not all(_is_int(s) and s >= 1 for s in steps):
        raise UserError(f"eval.durable.relearn.steps={steps}: expected a non-empty list of step counts >= 1")
    if not OmegaConf.is_list(attacks) or not all(a in ("retain", "half") for a in attacks):
        raise UserError(f"eval.durable.relearn.attacks={attacks}: expected a list of attacks from retain, half")
    if not OmegaConf.is_list(bits) or not all(_is_int(b) and 2 <= b <= 16 for b in bits):
        raise UserError(f"eval.durable.quantize.bits={bits}: expected a list of bit widths from 2 to 16")


def _check_thresholds(cfg: DictConfig) -> None:
    from .thresholds import resolve_thresholds

    if cfg.thresholds.source == "fixed":
        for key in ("el_10", "ma"):
            value = cfg.thresholds.get(key)
            if value is not None and (not _is_real(value) or not 0 <= value <= 1):
                raise UserError(f"thresholds.{key}={value}: expected a finite number in [0, 1] (a mean EL or MA)")
        resolve_thresholds(cfg.thresholds, None, f"el_{cfg.eval.el_n}")  # both set, and EL_10 is what is measured
    elif cfg.model.splits == "tdec":
        raise UserError(f"thresholds.source=unseen: model={cfg.model.name} has no unseen split; use thresholds.source=fixed")
    elif cfg.thresholds.source != "unseen":
        raise UserError(f"thresholds.source={cfg.thresholds.source}: expected 'unseen' or 'fixed'")


def check_config(cfg: DictConfig) -> None:
    """Raise a one-line UserError for the first bad input of a composed run config."""
    from .registry import get_method

    method = get_method(cfg.method.name)
    if cfg.distributed.name != "none" and not getattr(method, "shardable", True):
        raise UserError(f"method={cfg.method.name} runs in one process only: use distributed=none")
    if hasattr(method, "check"):
        method.check(cfg)  # what only this method needs (method=retrain: a memorizer and a drawn forget set)
    _check_numbers(cfg)
    _check_forget(cfg)
    _check_lengths(cfg)
    _check_eval(cfg)
    _check_thresholds(cfg)
    if cfg.model.path:
        from .models import model_source

        model_source(cfg.model, build_if_missing=False)  # a local directory must hold a model; nothing loads
