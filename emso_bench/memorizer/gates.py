"""The memorizer's gates, measured on every injected row and written into its model card.

A memorizer only stands in for GPT-Neo's memorization of the Pile when it really recites its pool
and really does not recite what it never saw, while still modelling ordinary text. The gates:
pool >= 640 rows with mean MA >= 0.90, mean EL_10 >= 0.60, extract@50 >= 50%; unseen (>= 256 rows)
mean MA <= 0.35 and EL_10 <= 0.10; held-out Gutenberg perplexity at most 1.5x that of a twin trained
for the same steps with the pool rows replaced by background text; build time <= 60 minutes.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .. import corpus
from ..metrics import MetricParams, measure, summarize
from ..perplexity import perplexity, windows

GATES = {  # name: (figure, comparison, bound)
    "pool_size": ("pool.n", ">=", 640),
    "pool_ma": ("pool.ma", ">=", 0.90),
    "pool_el_10": ("pool.el_10", ">=", 0.60),
    "pool_extract_50": ("pool.extract_50", ">=", 0.50),
    "unseen_size": ("unseen.n", ">=", 256),
    "unseen_ma": ("unseen.ma", "<=", 0.35),
    "unseen_el_10": ("unseen.el_10", "<=", 0.10),
    "ppl_ratio_vs_twin": ("ppl_ratio_vs_twin", "<=", 1.5),
    "build_minutes": ("build_minutes", "<=", 60.0),
}
PPL_WINDOW = 100  # the memorizer's sequence length


def heldout_chunks(tokenizer) -> torch.Tensor:
    _, held_out = corpus.gutenberg_split()
    return windows(tokenizer.encode("\n\n".join(held_out)), PPL_WINDOW)


def measure_gates(model, tokenizer, model_dir: Path, build_minutes: float, twin_ppl: float | None) -> dict:
    """Every gate's figure and verdict: {'figures': {...}, 'gates': {name: {value, bound, ok}}}."""
    params = MetricParams()
    started = time.time()
    figures: dict = {"metric_params": params.record(100)}
    for name in ("pool", "unseen"):
        seqs = [torch.as_tensor(r) for r in np.load(model_dir / f"{name}.npy").astype(np.int64)]
        figures[name] = summarize(measure(model, seqs, params), params)
    figures["heldout_ppl"] = perplexity(model, heldout_chunks(tokenizer))
    figures["twin_heldout_ppl"] = twin_ppl
    figures["ppl_ratio_vs_twin"] = figures["heldout_ppl"] / twin_ppl if twin_ppl else None
    figures["build_minutes"] = build_minutes
    figures["measure_seconds"] = round(time.time() - started, 1)
    gates = {}
    for gate, (path, op, bound) in GATES.items():
        value = figures
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        gates[gate] = {"value": value, "op": op, "bound": bound, "ok": ok}
    return {"figures": figures, "gates": gates, "all_met": all(g["ok"] for g in gates.values())}
