"""Cost of EMSO against gradient ascent on the same model and batch, and the selection's memory.

    python benchmarks/bench_emso_step.py                       # the default memorizer, 128 forget rows
    python benchmarks/bench_emso_step.py --rows 256 --repeats 5

Prints: the mean time of one EMSO step (entropy loss, masked Adam step, frozen weights restored) and
of one gradient-ascent step (Jang et al.: every weight, Adam), their ratio; the one-off contrastive
selection's time; and the selection's peak extra resident memory (sampled every 2 ms) against the
size of one full gradient of the model. Timings are measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import psutil
import torch

from emso_bench.engine import full_batch_step
from emso_bench.masking import MaskedUpdate
from emso_bench.objectives import mean_entropy, mean_log_likelihood
from emso_bench.selection import select
from emso_bench.config import compose


class PeakRSS:
    """Peak resident set size above the starting one, sampled in a thread."""

    def __enter__(self):
        self.proc, self.start, self.peak, self.running = psutil.Process(), 0, 0, True
        self.start = self.peak = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.extra = self.peak - self.start


def timed_steps(model, forget, loss_fn, masks, repeats, micro_batch) -> float:
    masked = MaskedUpdate(model, masks)
    opt = torch.optim.Adam(masked.trainable(), lr=1e-4, betas=(0.9, 0.98))
    times = []
    for _ in range(repeats + 1):  # the first step warms up (allocations, optimizer state)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        full_batch_step(model, forget, loss_fn, micro_batch, "cpu")
        masked.mask_gradients()
        opt.step()
        masked.restore(opt)
        times.append(time.perf_counter() - t0)
    for p in model.parameters():
        p.requires_grad_(True)
    return float(np.mean(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=None, help="rho (default: select.fraction of conf)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPTNeoForCausalLM

    from emso_bench.memorizer.prepare import memorizer_dir

    cfg = compose([])
    path = memorizer_dir(cfg.model)
    model = GPTNeoForCausalLM.from_pretrained(path)
    forget = [torch.as_tensor(r) for r in np.load(path / "pool.npy")[: args.rows].astype(np.int64)]
    rho = args.fraction if args.fraction is not None else cfg.select.fraction
    micro = cfg.method.micro_batch
    gradient_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    with PeakRSS() as mem:
        t0 = time.perf_counter()
        chosen = select(model, forget, "contrastive", rho, cfg.select.params, micro_batch=micro)
        t_select = time.perf_counter() - t0
    everything = select(model, forget, "all", 1.0, "all")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    t_emso = timed_steps(model, forget, lambda m, b: -mean_entropy(m, b), chosen.masks, args.repeats, micro)
    model.load_state_dict(state)
    t_ga = timed_steps(model, forget, mean_log_likelihood, everything.masks, args.repeats, micro)

    print(f"model {path.name} ({gradient_bytes / 2**20:.1f} MiB of weights), {args.rows} forget rows, "
          f"micro-batch {micro}, {args.threads} threads")
    print(f"EMSO step  {t_emso:.3f}s   (rho={rho}, {chosen.n_selected:,} of {chosen.n_total:,} weights)")
    print(f"GA step    {t_ga:.3f}s   (every weight)")
    print(f"ratio EMSO/GA {t_emso / t_ga:.2f}x (goal <= 1.5x)")
    print(f"selection (one-off) {t_select:.2f}s; peak extra RSS {mem.extra / 2**20:.1f} MiB, score store "
          f"{chosen.store_bytes / 2**20:.1f} MiB, one full gradient {gradient_bytes / 2**20:.1f} MiB "
          f"(peak = {mem.extra / gradient_bytes:.2f} gradients)")


if __name__ == "__main__":
    main()
