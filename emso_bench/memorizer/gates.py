"""The memorizer's gates, measured on every injected row and written into its model card.

A memorizer only stands in for GPT-Neo's memorization of the Pile when it really recites its pool
and really does not recite what it never saw, while still modelling ordinary text. The gates:
pool >= 640 rows with mean MA >= 0.90, mean EL_10 >= 0.60, extract@50 >= 50%; unseen (>= 256 rows)
mean MA <= 0.35 and EL_10 <= 0.10; held-out Gutenberg perplexity at most 1.5x that of a twin trained
for the same steps with the pool rows replaced by background text; build time <= 90 minutes.
Faithfulness (GPT-Neo 125M's unseen MA is 0.30, Jang et al. 2023; it memorized about 3% of the Pile
paragraphs a localization study tested, Stoehr et al. 2024): unseen MA >= 0.15 (the model knows the
domain of what it never saw) and memorized rows at most 10% of the distinct Pile-like rows it saw. A
build with graded exposures also reports the pool per exposure level, and one with distractors the
once-seen rows (a sample of SEEN_ONCE_SAMPLE) beside the unseen ones.
"""
from __future__ import annotations

import json
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
    "unseen_ma_floor": ("unseen.ma", ">=", 0.15),
    "memorized_share": ("memorized_share", "<=", 0.10),
    "unseen_el_10": ("unseen.el_10", "<=", 0.10),
    "ppl_ratio_vs_twin": ("ppl_ratio_vs_twin", "<=", 1.5),
    "build_minutes": ("build_minutes", "<=", 90.0),
    "selectivity_r_k32": ("selectivity_r_k32", "<=", 0.35),  # the target; the lowest r of the designs ships
}
PPL_WINDOW = 100  # the memorizer's sequence length


def heldout_chunks(tokenizer) -> torch.Tensor:
    _, held_out = corpus.gutenberg_split()
    return windows(tokenizer.encode("\n\n".join(held_out)), PPL_WINDOW)


def measure_gates(model, tokenizer, model_dir: Path, build_minutes: float, twin_ppl: float | None,
                  probe: dict | None = None) -> dict:
    """Every gate's figure and verdict: {'figures': {...}, 'gates': {name: {value, bound, ok}}}."""
    params = MetricParams()
    started = time.time()
    figures: dict = {"metric_params": params.record(100)}
    splits = json.loads((model_dir / "splits.json").read_text())
    for name in ("pool", "unseen", "seen_once"):
        if not (model_dir / f"{name}.npy").exists():
            continue
        seqs = [torch.as_tensor(r) for r in np.load(model_dir / f"{name}.npy").astype(np.int64)]
        rows = measure(model, seqs, params)
        figures[name] = summarize(rows, params)
        if name == "pool" and "pool_exposures" in splits:
            exposures = np.array(splits["pool_exposures"])
            figures["pool_by_exposures"] = {str(e): summarize([r for r, x in zip(rows, exposures) if x == e], params)
                                            for e in sorted(set(exposures.tolist()))}
    n_distinct = figures["pool"]["n"] + len(set(splits.get("distractor_doc_ids", [])))
    figures["memorized_share"] = figures["pool"]["n"] / n_distinct
    figures["heldout_ppl"] = perplexity(model, heldout_chunks(tokenizer))
    figures["twin_heldout_ppl"] = twin_ppl
    figures["ppl_ratio_vs_twin"] = figures["heldout_ppl"] / twin_ppl if twin_ppl else None
    figures["build_minutes"] = build_minutes
    k32 = (probe or {}).get("k", {}).get("32", {})
    figures["selectivity_r_k32"] = k32["r_ma"]["median"] if "r_ma" in k32 else None
    figures["probe"] = {k: {m: v[m]["median"] for m in ("r_ma", "r_el") if m in v} for k, v in probe["k"].items()
                        if "r_ma" in v} if probe else None
    figures["measure_seconds"] = round(time.time() - started, 1)
    gates = {}
    for gate, (path, op, bound) in GATES.items():
        value = figures
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        gates[gate] = {"value": value, "op": op, "bound": bound, "ok": ok}
    return {"figures": figures, "gates": gates, "all_met": all(g["ok"] for g in gates.values())}
