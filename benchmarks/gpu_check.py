"""The GPU check: EMSO and GA for one epoch at GPT-Neo 125M, 1.3B and 2.7B in bfloat16 on one GPU, time and
peak memory of each component against the cost model, in one table (README: its run on an H200).

    python benchmarks/gpu_check.py                     # 125M, 1.3B and 2.7B: 69 + 96 + 136 s on one H200
    python benchmarks/gpu_check.py --models gpt-neo-125m --out /tmp/gpu-check

No download: the models are GPT-Neo's published configs with random weights (emso_bench/scale/arch.py),
run by benchmarks/bench_scale.py (one process per run, the CLI in-process under scale/profile.py, which
reads torch.cuda.max_memory_allocated per component). A random model memorizes nothing: every EL_10 row
branches at each of its 199 prefixes, the dearest case the cost model charges. The table also gives the
TFLOP/s the GPU achieved in the step and in EL decoding (the FLOPs of scale/compute.py over the measured
seconds): what `cost.tflops.bfloat16` should be set to for the dry run's GPU-hours.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(key, "1")  # nothing may be fetched
os.environ.setdefault("WANDB_MODE", "offline")

import bench_scale  # noqa: E402

RUN = ["--device", "cuda", "--dtype", "bfloat16", "--methods", "emso,ga", "--subset", "lm_extraction_4_0",
       "--retain", "1", "--epochs", "1", "--utility-limit", "1", "--tasks", "emso_copa,emso_wikitext2",
       "--ppl-windows", "8", "--threads", "4"]
ROWS = {"forget": 4, "retain": 1}  # lm_extraction_4_0 and --retain 1


def achieved(run: dict, model: str) -> tuple[float | None, float | None]:
    """TFLOP/s in the step and in EL decoding: each EL row is unmemorized (a random model); rows decoded
    before (forget and retain), after the epoch (forget) and after erasure (retain)."""
    from emso_bench.scale import compute
    from emso_bench.scale.arch import GPT_NEO, Arch

    a, T = Arch.from_config(GPT_NEO[model]), 200
    parts = run["profile"]["components"]
    step = parts.get("step")
    el = parts.get("EL branches")
    n, r = ROWS["forget"], ROWS["retain"]
    step_rate = n * 3 * compute.pass_flops(a, T) / step["mean_seconds"] / 1e12 if step else None
    el_rate = (2 * n + 2 * r) * compute.decode_flops(a, T, 1) / el["seconds"] / 1e12 if el else None
    return step_rate, el_rate


def table(runs: list[tuple[str, dict]]) -> str:
    rows = ["| model | method | record | component | calls | total s | peak GiB | model GiB | model / measured |",
            "|---|---|---|---|---|---|---|---|---|"]
    for model, run in runs:
        state = "complete" if not run["missing"] else "missing " + ", ".join(run["missing"])
        for name, c in run["profile"]["components"].items():
            m, peak = run["model"].get(name), c["peak_bytes"]
            ratio = f"{m / peak:.2f}" if m and peak else "–"
            rows.append(f"| {model} | {run['method']} | {run['status']}, {state} | {name} | {c['calls']} | "
                        f"{c['seconds']:.1f} | {peak / 2**30:.2f} | {(m or 0) / 2**30:.2f} | {ratio} |")
    rows += ["", "| model | method | step TFLOP/s | EL decoding TFLOP/s |", "|---|---|---|---|"]
    for model, run in runs:
        step, el = achieved(run, model)
        rows.append(f"| {model} | {run['method']} | {step or 0:.1f} | {el or 0:.1f} |")
    return "\n".join(rows)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="gpt-neo-125m,gpt-neo-1.3b,gpt-neo-2.7b")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device (benchmarks/bench_scale.py is the CPU measurement)")
    out = Path(args.out or f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}")
    started, runs = time.time(), []
    print(f"gpu_check: {torch.cuda.get_device_name()}, torch {torch.__version__}, into {out}", flush=True)
    for model in args.models.split(","):
        bench_scale.main([*RUN, "--model", model, "--out", str(out / model)])
        runs += [(model, run) for run in json.loads((out / model / "bench_scale.json").read_text())]
        print(f"gpu_check: {model} done at {time.time() - started:.0f} s", flush=True)
    text = table(runs)
    (out / "gpu_check.md").write_text(text + "\n")
    print(text)
    print(f"gpu_check: {time.time() - started:.0f} s in all; table in {out / 'gpu_check.md'}")


if __name__ == "__main__":
    main()
