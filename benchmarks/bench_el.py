"""Fast vs literal EL_10 on the default memorizer: time, speedup, and float32 near-ties.

    python benchmarks/bench_el.py                 # 128 pool rows and 128 unseen rows
    python benchmarks/bench_el.py --rows 32 --threads 2
    python benchmarks/bench_el.py --fast-only --threads 2   # the fast path alone (one EL pass of a run)

The literal path is Jang et al.'s: one `generate` per prefix length, batched over the rows
(emso_bench/metrics/literal.py). The fast path shares greedy continuations (emso_bench/metrics) and decodes the
branches with GPT-Neo's shared-prefix decoder (metrics/neo_decode.py); the generic cached decoder,
which any causal LM gets, is timed beside it. All run in
float32 here; rows where they differ are float32 near-ties (a teacher-forced pass and cached decoding
round differently), reported with the largest difference. The tests check exact equality in float64.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from emso_bench.metrics import measure, neo_decode
from emso_bench.run import metric_params
from emso_bench.config import compose
from emso_bench.metrics.literal import literal_el, literal_greedy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="memorizer")
    parser.add_argument("--fast-only", action="store_true", help="time the fast path alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPTNeoForCausalLM

    from emso_bench.memorizer.prepare import memorizer_dir

    cfg = compose([f"model={args.model}"])
    path = memorizer_dir(cfg.model)
    model = GPTNeoForCausalLM.from_pretrained(path).eval()
    params = metric_params(cfg)  # what a run uses, decode batch included
    print(f"model {path.name}, {args.rows} rows per split, T=100, EL_{params.el_n} from prefix "
          f"{params.el_first_prefix}, float32, {args.threads} threads, {params.branch_batch} branches a batch")
    gpt_neo = neo_decode.supports
    for split in ("pool", "unseen"):
        seqs = [torch.as_tensor(r) for r in np.load(path / f"{split}.npy")[: args.rows].astype(np.int64)]
        t0 = time.perf_counter()
        fast = measure(model, seqs, params)
        t_fast = time.perf_counter() - t0
        if args.fast_only:
            print(f"{split:7s} MA {np.mean([r['ma'] for r in fast]):.3f}  EL_10 {np.mean([r['el_10'] for r in fast]):.4f} "
                  f"| fast {t_fast:5.1f}s")
            continue
        neo_decode.supports = lambda model: False
        t0 = time.perf_counter()
        generic = measure(model, seqs, params)
        t_generic = time.perf_counter() - t0
        neo_decode.supports = gpt_neo
        decoders_differ = sum(a["el_10"] != b["el_10"] for a, b in zip(fast, generic))  # float32 near-ties too
        t0 = time.perf_counter()
        with torch.no_grad():
            lit = literal_el(seqs, literal_greedy(model, seqs, params.el_first_prefix, params.el_n),
                             params.el_first_prefix, params.el_n)
        t_lit = time.perf_counter() - t0
        diff = np.abs(np.array([r["el_10"] for r in fast]) - np.array(lit))
        print(f"{split:7s} MA {np.mean([r['ma'] for r in fast]):.3f}  EL_10 fast {np.mean([r['el_10'] for r in fast]):.4f} "
              f"literal {np.mean(lit):.4f} | literal {t_lit:6.1f}s  fast {t_fast:5.1f}s  speedup {t_lit / t_fast:4.1f}x "
              f"(generic decoder {t_generic:5.1f}s, {t_lit / t_generic:4.1f}x, "
              f"{decoders_differ} rows differ) | "
              f"float32 near-ties: {int((diff > 0).sum())} rows differ, max |diff| {diff.max():.2e}")


if __name__ == "__main__":
    main()
