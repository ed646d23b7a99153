"""One run, as data flows through it (docs/design.md): validate, load, measure before, erase, measure after,
write the record. `plan` is the dry run: the same validation without loading weights."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import distributed, record, selectivity
from .errors import UserError
from .hashing import config_hash
from .run_record import RunRecord
from .measure import general_record, measure_general, measure_split
from .metrics import MetricParams, registry, summarize
from .metrics.memorization import check_lengths
from .perplexity import windows
from .corpus import gutenberg_split
from .durability import suite as durability
from .models import load_model, model_ref, model_source, weights_fingerprint
from .splits import load_splits
from .thresholds import resolve_thresholds
from .validate import check_config

log = logging.getLogger("emso_bench")
SPLITS = ("forget", "retain", "unseen")


def metric_params(cfg: DictConfig) -> MetricParams:
    return MetricParams(el_n=cfg.eval.el_n, el_first_prefix=cfg.eval.el_first_prefix,
                        extract_context=cfg.model.extract_context, extract_k=cfg.eval.extract_k,
                        batch_size=cfg.eval.batch_size, branch_batch=cfg.eval.branch_batch)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def plan(cfg: DictConfig) -> str:
    """The dry run: the composed config and what the run would do, without loading weights."""
    check_config(cfg)
    source = model_source(cfg.model, build_if_missing=False) if cfg.model.kind != "memorizer" or cfg.model.path else \
        f"memorizer {cfg.model.name} (built or shipped on first use)"
    lines = ["# emso-bench dry run: nothing loaded", f"model: {source}", f"method: {cfg.method.name}",
             f"forget: " + (f"file {cfg.forget.path}" if cfg.forget.path else
                            f"subset {cfg.forget.subset}" if cfg.forget.subset else
                            f"draw {cfg.forget.draw} of {cfg.forget.size} rows"),
             f"thresholds: {cfg.thresholds.source}"]
    if cfg.distributed.name != "none":
        import json

        from hydra.core.hydra_config import HydraConfig

        from .distributed.config import ds_config, launch_command, shell

        n_rows = cfg.forget.size if not cfg.forget.subset else "the subset's rows"
        n = cfg.forget.size if isinstance(n_rows, int) else 128
        lines += [f"distributed: {cfg.distributed.nproc} processes, DeepSpeed config for {n_rows} forget rows:",
                  json.dumps(ds_config(cfg.distributed, n, cfg.distributed.nproc, cfg.method.get("micro_batch", 64)),
                             indent=2)]
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        run_dir = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else "<run dir>"
        lines.append("launch: " + shell(launch_command(cfg.distributed, [o for o in overrides if o != "dry_run=true"],
                                                       run_dir)))
    from .scale.estimate import dry_run_lines

    lines += dry_run_lines(cfg) + ["", OmegaConf.to_yaml(cfg, resolve=True)]
    return "\n".join(lines)


def heldout_windows(tokenizer, cfg: DictConfig) -> torch.Tensor:
    """`eval.ppl_windows` windows of T tokens spread evenly over all held-out Gutenberg text (all 19
    novels), fixed per tokenizer."""
    _, held_out = gutenberg_split()
    # the text is windowed here: the tokenizer's notice that it is longer than the model's maximum says nothing
    chunks = windows(tokenizer.encode("\n\n".join(held_out), verbose=False), cfg.model.target_length)
    pick = torch.linspace(0, len(chunks) - 1, min(cfg.eval.ppl_windows, len(chunks))).round().long()
    return chunks[pick]


def _setup(cfg: DictConfig) -> str:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return resolve_device(cfg.device)


def _per_example_rows(splits, before, after, params: MetricParams) -> list[dict]:
    """One row per doc id and split: the registered metrics before and after, in registration order, then
    any other per-example figure the rows carry (eval=durable's sample_* columns)."""
    registered = [registry.name(m.key, params) for m in registry.METRICS]
    rows = []
    for name in SPLITS:
        for i, doc in enumerate(splits[name].doc_ids):
            row = {"doc_id": doc, "split": name}
            for tag, values in (("before", before[name]), ("after", after.get(name))):
                if values:
                    figures = values[i]
                    for key in [k for k in registered if k in figures] + [k for k in figures if k not in registered]:
                        row[f"{key}_{tag}"] = figures[key]
            rows.append(row)
    return rows


def _texts(tokenizer, splits) -> dict:
    """doc_id -> decoded text, only for logger.log_text=true (the rows hold names and e-mail addresses)."""
    return {str(doc): tokenizer.decode(seq.tolist()) for split in splits.values()
            for doc, seq in zip(split.doc_ids, split.seqs)}


def save_model(model, tokenizer, outcome, path: Path) -> None:
    """The edited model (save_pretrained) and, for sparse methods, the masks of the weights it could move."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if outcome.masks:
        torch.save({name: mask.cpu() for name, mask in outcome.masks.items()}, path / "selection_masks.pt")


def make_logger(cfg: DictConfig, run_dir: Path, group: str | None):
    """The dashboard logger asked for, or None (wandb is imported only when asked)."""
    if cfg.logger.name == "none":
        return None
    if cfg.logger.name == "wandb":
        from .wandb_logger import WandbLogger

        return WandbLogger(cfg, run_dir, group)
    raise UserError(f"logger={cfg.logger.name}: expected none or wandb")


class Phases(dict):
    """Wall seconds per phase of a run, as laps of one clock: the record's phase_seconds."""

    def __init__(self):
        super().__init__()
        self._last = time.time()

    def lap(self, name: str) -> None:
        now = time.time()
        self[name] = round(self.get(name, 0.0) + now - self._last, 2)
        self._last = now

    def split_method(self, method_phases: dict) -> None:
        """The method's lap becomes its timed parts (select, measure_after) and `erase`, the rest of it."""
        rest = round(self.pop("erase") - sum(method_phases.values()), 2)
        if "select" in method_phases:
            self["select"] = method_phases["select"]  # in the order they happen
        self["erase"] = rest
        self.update({name: seconds for name, seconds in method_phases.items() if name != "select"})


def execute(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    """Run one erasure (or measurement) end to end; returns the results written to results.json."""
    started = time.time()
    phases = Phases()
    record.git_commit()  # the code this run starts with (cached for the record)
    check_config(cfg)
    if cfg.distributed.name != "none":
        if not distributed.launched():
            raise UserError(f"distributed={cfg.distributed.name}: run it through `emso-bench` (which launches "
                            "torchrun itself) or under torchrun / deepspeed")
        distributed.init(cfg.distributed.backend, cfg.distributed.cpu_shm)
    device = _setup(cfg)
    params = metric_params(cfg)
    el_key = f"el_{params.el_n}"
    model, tokenizer, source = load_model(cfg.model, device)
    splits = load_splits(cfg.model, cfg.forget, source, tokenizer)
    for name in SPLITS:
        try:
            check_lengths(splits[name].seqs, params, name if name != "forget" or not cfg.forget.path else
                          f"forget.path={cfg.forget.path}")
        except ValueError as err:
            raise UserError(str(err)) from None
    fingerprint = weights_fingerprint(source, model)
    phases.lap("load")
    # Every input is valid from here on: only now may the run directory's record files change.
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = make_logger(cfg, run_dir, group) if distributed.is_main() else None
    cache_on = {"weights": fingerprint, "dtype": cfg.model.dtype, "device": device}
    before = {name: measure_split(model, splits[name], params, cache_on=cache_on if name == "unseen" else None)
              for name in SPLITS}
    summary_before = {name: summarize(before[name], params) for name in SPLITS if before[name]}
    thresholds = resolve_thresholds(cfg.thresholds, summary_before.get("unseen"), el_key)
    for name, rows in before.items():
        if rows:
            summary_before[name] = summarize(rows, params, thresholds[el_key])

    from .methods import RunContext
    from .registry import get_method

    heldout = heldout_windows(tokenizer, cfg)
    general_before = measure_general(model, tokenizer, cfg.eval.utility, heldout, device, cache_on=cache_on)
    mia_before = durability.before(model, tokenizer, splits) if cfg.eval.get("durable") else None
    phases.lap("measure_before")
    ctx = RunContext(cfg=cfg, model=model, tokenizer=tokenizer, splits=splits, params=params, thresholds=thresholds,
                     run_dir=run_dir, device=device, before=before, heldout=heldout, logger=logger)
    outcome = get_method(cfg.method.name).erase(ctx)
    phases.lap("erase")
    phases.split_method(ctx.phases)
    after = outcome.after if outcome.after is not None else before
    model = ctx.model  # the edited model (a plain full copy after a sharded run)
    general_after = measure_general(model, tokenizer, cfg.eval.utility, heldout, device) \
        if outcome.after is not None else dict(general_before, utility=general_before["utility"] and
                                                 dict(general_before["utility"], cached=False))
    ppl, utility = general_record(general_before, general_after, heldout, cfg.eval.utility)
    summary_after = {name: summarize(after[name], params, thresholds[el_key]) for name in SPLITS if after.get(name)}
    phases.lap("general_after")
    durable = None
    if cfg.eval.get("durable"):
        log.info("durability probes: sampling, relearning, quantization, membership inference")
        durable, sampled = durability.after(model, tokenizer, splits, params, heldout, cfg.eval.durable,
                                            summary_before, summary_after)
        durable["mia_before"] = mia_before
        after = dict(after, forget=[dict(row, **extra) for row, extra in zip(after["forget"], sampled)])
        phases.lap("durability")

    results = RunRecord(
        status=outcome.status, model=cfg.model.name, method=cfg.method.name, select=cfg.select.rule,
        forget=OmegaConf.to_container(cfg.forget, resolve=True), n_forget=len(splits["forget"].doc_ids),
        seed=cfg.seed, epochs=outcome.epochs, steps=outcome.steps,
        wall_seconds=round(time.time() - started, 1), erase_seconds=outcome.seconds, phase_seconds=dict(phases),
        thresholds=thresholds,
        metric_params=params.record(cfg.model.target_length),
        model_ref=model_ref(cfg.model, source, fingerprint), weights_sha256=fingerprint,
        splits={name: splits[name].record() for name in SPLITS},
        before=summary_before, after=summary_after,
        heldout_ppl=ppl, utility=utility, durability=durable,
        selectivity=selectivity.summary(summary_before, summary_after, record.read_train_log(run_dir), thresholds["ma"],
                                        el_key) if outcome.after is not None else None,
        selection=outcome.selection, method_facts=outcome.extra,
        distributed={"world_size": distributed.world(), "zero_stage": cfg.distributed.get("stage"),
                     "offload": cfg.distributed.get("offload"), "precision": cfg.distributed.get("precision"),
                     "model_dtype": cfg.model.dtype, "grad_accum": outcome.grad_accum},
        device=device, torch_threads=torch.get_num_threads(),
        versions=record.versions(), git_commit=record.git_commit(),
        config_hash=config_hash(OmegaConf.to_container(cfg, resolve=True)),
        config=OmegaConf.to_container(cfg, resolve=True),
        notes=outcome.notes,
    )
    if not distributed.is_main():
        return results.to_json()  # rank 0 writes the record
    if cfg.save_model:
        save_model(ctx.model, tokenizer, outcome, run_dir / "model")
        results.saved_model = "model"  # relative to the run directory: no machine path in the record
    per_example = _per_example_rows(splits, before, after, params)
    record.write_per_example(run_dir, per_example)
    record.write_results(run_dir, results)
    if logger is not None:
        logger.finish(results, per_example, texts=_texts(tokenizer, splits) if cfg.logger.log_text else None,
                      run_dir=run_dir)
    log.info("%s: %s in %.0fs -> %s", cfg.method.name, outcome.status, results.wall_seconds, run_dir / record.RESULTS)
    return results.to_json()
