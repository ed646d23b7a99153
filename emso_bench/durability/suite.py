"""eval=durable: every durability probe on the model a run ends with (edited, untouched, or the oracle).

    emso-bench eval=durable method=ga
    emso-bench eval=durable method=none        # the probes on the memorizer as it is

`before(model, ...)` runs on the model before erasure (membership inference only: the edited model is
compared with it); `after(model, ...)` runs every probe on the model the run ends with. Each probe's
settings come from `eval.durable` and are recorded beside its figures.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import torch

from ..metrics import measure, summarize
from ..perplexity import perplexity
from . import mia, quantize, relearn, sampling

log = logging.getLogger(__name__)


def before(model, tokenizer, splits) -> dict:
    """Membership-inference AUCs of the forget rows against the unseen rows, before erasure."""
    started = time.time()
    out = mia.mia_aucs(model, tokenizer, splits["forget"].seqs, splits["unseen"].seqs)
    return dict(out, seconds=round(time.time() - started, 1))


def after(model, tokenizer, splits, params, heldout, dcfg, summary_before: dict, summary_after: dict) -> tuple[dict, list]:
    """(figures, per-row sampling figures of the forget split) on the model the run ends with."""
    started, out = time.time(), {}
    forget = splits["forget"].seqs
    sp = sampling.SamplingParams(samples=dcfg.sampling.samples, top_k=dcfg.sampling.top_k,
                                 temperature=dcfg.sampling.temperature, context=params.extract_context,
                                 length=params.extract_k, n=params.el_n, seed=dcfg.seed)
    sampled = sampling.sampling_extraction(model, forget, sp)
    rows = [{f"sample_{k}": v for k, v in r.items()} for r in sampled.pop("rows")]
    out["sampling"] = sampled
    out["sampling"]["seconds"] = round(time.time() - started, 1)

    # relearning's attacks and quantization's variants, each on its own copy of the model, side by side
    rp = relearn.RelearnParams(steps=tuple(dcfg.relearn.steps), lr=dcfg.relearn.lr)
    attacks = {"retain": splits["retain"].seqs, "half": relearn.first_halves(forget)}
    variants = {(f"int{bits}" + (f"_g{group}" if group else "_channel")): (bits, group)
                for bits, group in [(b, None) for b in dcfg.quantize.bits] + [(4, dcfg.quantize.group_size)]}
    jobs = {("relearn", name): partial(relearn.relearn, model, attacks[name], forget, params, rp)
            for name in dcfg.relearn.attacks}
    jobs.update({("quantize", name): partial(_quantized, model, bits, group, forget, params, heldout)
                 for name, (bits, group) in variants.items()})
    on_cpu = next(model.parameters()).device.type == "cpu"
    workers = dcfg.workers or (min(torch.get_num_threads(), len(jobs)) if on_cpu else 1)
    done = side_by_side(jobs, workers)

    ma0, ma1 = summary_before["forget"]["ma"], summary_after["forget"]["ma"]
    out["relearn"] = {"params": rp.record(), "attacks": {}, "seconds": 0.0}
    out["quantize"] = {"group_size": dcfg.quantize.group_size, "variants": {}, "seconds": 0.0}
    for (probe, name), (figures, seconds) in done.items():
        out[probe]["seconds"] = round(out[probe]["seconds"] + seconds, 1)
        if probe == "relearn":
            for point in figures:
                point["recovery_ma"] = relearn.recovery(ma0, ma1, point["forget_ma"])
            out["relearn"]["attacks"][name] = {str(point["steps"]): point for point in figures}
        else:
            out["quantize"]["variants"][name] = figures
    out["workers"] = workers

    t = time.time()
    out["mia_after"] = mia.mia_aucs(model, tokenizer, forget, splits["unseen"].seqs)
    out["mia_seconds"] = round(time.time() - t, 1)
    out["seconds"] = round(time.time() - started, 1)  # wall time: the probes' own seconds overlap when side by side
    out["forget_sample_exact_frac"] = float(np.mean([r["sample_exact"] for r in rows])) if rows else None
    return out, rows


def _quantized(model, bits: int, group: int | None, forget, params, heldout) -> dict:
    """Forget MA and EL_n and held-out perplexity of a copy of the model with its weights rounded."""
    q = quantize.quantized_copy(model, bits, group)
    s = summarize(measure(q, forget, params), params)
    return {"forget_ma": s["ma"], f"forget_el_{params.el_n}": s[f"el_{params.el_n}"], "heldout_ppl": perplexity(q, heldout)}


def side_by_side(jobs: dict, workers: int) -> dict:
    """{name: (result, seconds)} of each job (a callable that works on its own copy of the model), in
    the order given, run `workers` at a time, each on an equal share of torch's CPU threads (one each on
    2 cores); one worker runs them one after another on all of them. Two single-threaded jobs side by
    side keep 2 cores busier than one job on two threads, whose small operations do not scale. The share
    is set inside each worker (a new thread's MKL would take every core) and the caller's count restored
    after. A job that fails cancels those not started and is raised when the running ones end."""
    threads = torch.get_num_threads()

    def timed(name):
        if workers > 1:
            torch.set_num_threads(max(1, threads // workers))
        started = time.time()
        result = jobs[name]()
        seconds = round(time.time() - started, 1)
        log.info("durability: %s %s done in %.0f s", *name, seconds)
        return result, seconds

    if workers <= 1:
        return {name: timed(name) for name in jobs}
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = {name: pool.submit(timed, name) for name in jobs}
            try:
                return {name: future.result() for name, future in futures.items()}
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise
    finally:
        torch.set_num_threads(threads)
