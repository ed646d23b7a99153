"""Scale readiness: what a run costs before it starts (memory per GPU, FLOPs, GPU-hours) and how to
measure it (per-component time and peak memory).

- arch.py: GPT-Neo's published hyperparameters and closed-form parameter counts;
- memory.py: bytes per GPU of each phase of a run (load, metrics, selection, step, perplexity, utility);
- compute.py: FLOPs per token, EL_n decoding, the steps a run takes, GPU-hours;
- estimate.py: one run's (or a sweep's) estimate from its composed config, as the dry run prints it;
- profile.py: per-component time and peak memory of a real run (benchmarks/bench_scale.py, gpu_check.py).
"""
