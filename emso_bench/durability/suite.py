"""eval=durable: every durability probe on the model a run ends with (edited, untouched, or the oracle).

    emso-bench eval=durable method=ga
    emso-bench eval=durable method=none        # the probes on the memorizer as it is

`before(model, ...)` runs on the model before erasure (membership inference only: the edited model is
compared with it); `after(model, ...)` runs every probe on the model the run ends with. Each probe's
settings come from `eval.durable` and are recorded beside its figures.
"""
from __future__ import annotations

import time

import numpy as np

from ..metrics import measure, summarize
from ..perplexity import perplexity
from . import mia, quantize, relearn, sampling


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

    t = time.time()
    rp = relearn.RelearnParams(steps=tuple(dcfg.relearn.steps), lr=dcfg.relearn.lr)
    ma0, ma1 = summary_before["forget"]["ma"], summary_after["forget"]["ma"]
    attacks = {"retain": splits["retain"].seqs, "half": relearn.first_halves(forget)}
    out["relearn"] = {"params": rp.record(), "attacks": {}}
    for name in dcfg.relearn.attacks:
        curve = relearn.relearn(model, attacks[name], forget, params, rp)
        for point in curve:
            point["recovery_ma"] = relearn.recovery(ma0, ma1, point["forget_ma"])
        out["relearn"]["attacks"][name] = {str(point["steps"]): point for point in curve}
    out["relearn"]["seconds"] = round(time.time() - t, 1)

    t = time.time()
    out["quantize"] = {"group_size": dcfg.quantize.group_size, "variants": {}}
    for bits, group in [(b, None) for b in dcfg.quantize.bits] + [(4, dcfg.quantize.group_size)]:
        q = quantize.quantized_copy(model, bits, group)
        s = summarize(measure(q, forget, params), params)
        name = f"int{bits}" + (f"_g{group}" if group else "_channel")
        out["quantize"]["variants"][name] = {"forget_ma": s["ma"], f"forget_el_{params.el_n}": s[f"el_{params.el_n}"],
                                             "heldout_ppl": perplexity(q, heldout)}
        del q
    out["quantize"]["seconds"] = round(time.time() - t, 1)

    t = time.time()
    out["mia_after"] = mia.mia_aucs(model, tokenizer, forget, splits["unseen"].seqs)
    out["mia_seconds"] = round(time.time() - t, 1)
    out["seconds"] = round(time.time() - started, 1)
    out["forget_sample_exact_frac"] = float(np.mean([r["sample_exact"] for r in rows])) if rows else None
    return out, rows
