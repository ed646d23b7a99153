"""Measure memorization on the run's splits, caching what depends only on the model.

The unseen split's "before" figures depend only on the weights, the split, the metric
parameters and the metric code, so they are cached (keyed by all four) and shared by every run on
that model: a sweep measures them once.
"""
from __future__ import annotations

import json
import logging

from .distributed import broadcast, gather, is_main, shard, unshard
from .hashing import config_hash, source_hash
from .metrics import MetricParams, measure, registry
from .paths import PACKAGE_DIR, cache_dir
from .perplexity import perplexity
from .record import write_atomic
from .splits import Split

log = logging.getLogger(__name__)
METRICS_CODE = source_hash(PACKAGE_DIR / "metrics")  # a fix to the metric code invalidates the cache
# ... and a fix to a local task (its YAML or its Python) or to the harness glue invalidates utility's cache
UTILITY_CODE = source_hash(PACKAGE_DIR / "tasks", PACKAGE_DIR / "utility", patterns=("*.py", "*.yaml"))


def measure_split(model, split: Split, params: MetricParams, with_el: bool = True,
                  cache_on: dict | None = None) -> list[dict]:
    """Per-example metrics of a split; read from / written to the cache when `cache_on` is given
    (a dict of everything besides the split and params that the result depends on)."""
    if not split.seqs:
        return []
    path = None
    if cache_on is not None:
        metrics = [m.key for m in registry.METRICS]  # a metric registered outside metrics/ changes no METRICS_CODE
        key = config_hash({"on": cache_on, "split": split.record(), "params": params.record(None), "el": with_el,
                           "code": METRICS_CODE, "metrics": metrics})
        path = cache_dir() / "measurements" / f"{key}.json"
        if path.exists():
            log.info("%s: cached measurement %s", split.name, path.name)
            return json.loads(path.read_text())
    log.info("%s: measuring %d rows%s", split.name, len(split.seqs), " (MA, EL, extraction)" if with_el else " (MA)")
    rows = unshard(gather(measure(model, shard(list(split.seqs)), params, with_el=with_el)))  # each rank its share
    if path is not None and is_main():
        write_atomic(path, json.dumps(rows))
    return rows


def measure_utility(model, tokenizer, ucfg, device: str, cache_on: dict | None = None) -> dict:
    """lm-eval utility figures ({"<task>/<metric>": value}) with the time they took; read from / written
    to the cache when `cache_on` is given (utility before erasure depends only on the model, the eval
    config, lm-eval's version and the task code, so a sweep computes it once per model)."""
    import time

    from omegaconf import OmegaConf

    from .record import versions
    from .utility import average_accuracy, evaluate_utility

    spec = OmegaConf.to_container(ucfg, resolve=True)
    key = config_hash({"on": cache_on, "utility": spec, "lm_eval": versions()["lm_eval"], "code": UTILITY_CODE}) \
        if cache_on else None
    path = cache_dir() / "utility" / f"{key}.json" if key else None
    if path is not None and path.exists():
        log.info("utility: cached %s (not recomputed)", path.name)
        return dict(json.loads(path.read_text()), cached=True, cache_key=key)
    log.info("utility: lm-eval %s, limit %s", ", ".join(spec["tasks"]), spec["limit"])
    started = time.time()
    figures = None
    if is_main():  # rank 0 evaluates on the full weights; the others wait for its figures
        figures = evaluate_utility(model, tokenizer, spec["tasks"], limit=spec["limit"], batch_size=spec["batch_size"],
                                   device=device, max_gen_toks=spec.get("max_gen_toks"))
    figures = broadcast(figures)
    try:
        average = average_accuracy(figures, spec["tasks"])
    except KeyError:
        average = None  # no reasoning task asked for
    out = {"figures": figures, "average_accuracy": average, "seconds": round(time.time() - started, 1)}
    if path is not None and is_main():
        write_atomic(path, json.dumps(out))
    return dict(out, cached=False, cache_key=key)


def measure_general(model, tokenizer, ucfg, heldout, device: str, cache_on: dict | None = None) -> dict:
    """What the model keeps in general, before or after erasure: held-out perplexity and, when the run asks
    for it (`eval.utility`), lm-eval utility (cached by `cache_on`, as measure_utility says)."""
    utility = measure_utility(model, tokenizer, ucfg, device, cache_on=cache_on) if ucfg else None
    return {"ppl": perplexity(model, heldout), "utility": utility}


def general_record(before: dict, after: dict, heldout, ucfg) -> tuple[dict, dict | None]:
    """The record's `heldout_ppl` and `utility` blocks from the two measure_general results."""
    ppl = {"before": before["ppl"], "windows": len(heldout), "window": heldout.shape[1],
           "text": "Gutenberg held-out paragraphs (corpus.py)", "after": after["ppl"],
           "ratio": after["ppl"] / before["ppl"]}
    if before["utility"] is None:
        return ppl, None
    ub, ua = before["utility"], after["utility"]
    utility = {"before": ub["figures"], "after": ua["figures"],
               "average_before": ub["average_accuracy"], "average_after": ua["average_accuracy"],
               "cache_key": ub["cache_key"], "before_cached": ub["cached"],
               "seconds_before": ub["seconds"], "seconds_after": ua["seconds"],
               "tasks": list(ucfg.tasks), "limit": ucfg.limit}
    return ppl, utility
