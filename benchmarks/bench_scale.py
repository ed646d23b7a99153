"""A GPT-Neo of 125M's exact configuration, end to end on the CPU: EMSO and GA through the CLI, with
each component's time and peak memory beside the cost model's figure.

    python benchmarks/bench_scale.py                              # 125M, random init, EMSO and GA, 1 epoch
    python benchmarks/bench_scale.py --layers 2 --width 64        # a reduced model (the test's)
    python benchmarks/bench_scale.py --model gpt-neo-1.3b --device cuda --dtype bfloat16   # gpu_check.py's runs

The model is GPT-Neo's published config (emso_bench/scale/arch.py) with random weights, saved with
save_pretrained beside the vendored GPT-2 tokenizer: nothing is downloaded. Each method runs in a
process of its own (a clean resident-set baseline, a private EMSO_BENCH_CACHE) as
`emso-bench model=gpt-neo-125m model.path=DIR method=M forget.subset=lm_extraction_4_0 ... eval=default`,
the CLI called in-process under emso_bench/scale/profile.py. A random model memorizes nothing, so every
EL_10 row is an unmemorized one: each of its 199 prefixes branches (the dearest case). Prints, per
method, whether the run record is complete and a table of components (calls, seconds, peak memory
above the process's start) with the cost model's bytes for the same run and their ratio.
Timings are measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FINISHED = ("forgotten", "budget_exhausted", "collapsed")
RECORD_KEYS = ("before", "after", "heldout_ppl", "utility", "selection", "thresholds", "metric_params", "splits",
               "epochs", "steps", "wall_seconds", "config_hash", "versions")


def overrides(args, method: str, model_dir: Path, run_dir: Path) -> list[str]:
    """The run, as CLI overrides: Jang et al.'s rows, T = 200, fixed thresholds, `epochs` epochs, utility."""
    return [f"model={args.model}", f"model.path={model_dir}", f"model.dtype={args.dtype}", f"method={method}",
            f"forget.subset={args.subset}", f"forget.retain_size={args.retain}", "thresholds.source=fixed",
            f"stop.max_epochs={args.epochs}", "eval=default", f"eval.utility.limit={args.utility_limit}",
            f"eval.utility.tasks=[{args.tasks}]", f"eval.utility.batch_size={args.utility_batch}",
            f"eval.ppl_windows={args.ppl_windows}", f"device={args.device}",
            f"threads={args.threads}", f"hydra.run.dir={run_dir}", *args.extra]


def missing(results: dict) -> list[str]:
    """What a complete run record lacks (empty when complete)."""
    out = [k for k in RECORD_KEYS if results.get(k) in (None, {}, [])]
    if results.get("status") not in FINISHED:
        out.append(f"status={results.get('status')}")
    for when in ("before", "after"):
        for split in ("forget", "retain"):
            if "el_10" not in results.get(when, {}).get(split, {}):
                out.append(f"{when}.{split}.el_10")
    if results.get("utility") and not (results["utility"].get("before") and results["utility"].get("after")):
        out.append("utility before/after")
    return out


def run_method(args, method: str, model_dir: Path, out_dir: Path) -> dict:
    """One run through the CLI, in this process, profiled; returns its measurements and record check."""
    import torch

    from emso_bench.app import cli
    from emso_bench.scale.estimate import component_bytes
    from emso_bench.scale.profile import Profile
    from tests.helpers import compose

    run_dir = out_dir / method
    os.environ["EMSO_BENCH_CACHE"] = str(out_dir / f"cache-{method}")  # nothing cached from another run
    argv = overrides(args, method, model_dir, run_dir)
    saved = sys.argv
    sys.argv = ["emso-bench", *argv]
    started = time.time()
    try:
        with Profile(args.device) as prof:
            cli()
    finally:
        from hydra.core.global_hydra import GlobalHydra

        sys.argv = saved
        GlobalHydra.instance().clear()  # the next run (--in-process) composes afresh
    results = json.loads((run_dir / "results.json").read_text())
    model = component_bytes(compose([o for o in argv if not o.startswith("hydra.")]))
    return {"method": method, "command": "emso-bench " + " ".join(argv), "wall_seconds": round(time.time() - started, 1),
            "status": results.get("status"), "missing": missing(results), "profile": prof.record(), "model": model,
            "torch_threads": torch.get_num_threads(), "run_dir": str(run_dir)}


def build(args, out_dir: Path) -> Path:
    from emso_bench.scale.arch import build_random

    shrink = {k: v for k, v in (("num_layers", args.layers), ("hidden_size", args.width),
                                ("num_heads", args.heads)) if v}
    return build_random(args.model, out_dir / "model", dtype=args.dtype, device=args.device, **shrink)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gpt-neo-125m", help="conf/model name whose published config is built")
    p.add_argument("--methods", default="emso,ga")
    p.add_argument("--layers", type=int, default=None, help="fewer blocks than published (the test's reduced model)")
    p.add_argument("--width", type=int, default=None, help="another hidden size")
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--subset", default="lm_extraction_4_0", help="a Jang et al. forget set (4 rows)")
    p.add_argument("--retain", type=int, default=1, help="retain rows measured before and after")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--utility-limit", type=int, default=2, help="items per utility task")
    p.add_argument("--tasks", default="emso_reasoning,emso_dialogue,emso_perplexity", help="eval.utility.tasks")
    p.add_argument("--utility-batch", type=int, default=2, help="lm-eval batch: the cost model counts full batches "
                   "of full-context windows, which a few items fill only when the batch is small")
    p.add_argument("--ppl-windows", type=int, default=8, help="held-out perplexity windows (eval.ppl_windows)")
    p.add_argument("--in-process", action="store_true", help="every method in this process (the test: faster, "
                   "but each run's memory baseline holds what the runs before it left)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="directory for the model, the runs and bench_scale.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one method here
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("extra", nargs="*", help="more CLI overrides for every run")
    return p.parse_args(argv)


def report(measured: list[dict]) -> str:
    from emso_bench.scale.profile import table

    lines = []
    for m in measured:
        state = "complete" if not m["missing"] else "INCOMPLETE: " + ", ".join(m["missing"])
        lines += [f"## {m['method']}: {m['status']}, record {state}, {m['wall_seconds']} s, {m['torch_threads']} threads",
                  f"`{m['command']}`", "", table(m["profile"], m["model"]), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse(argv)
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="bench-scale-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.worker:  # one method in this process: a clean baseline
        result = run_method(args, args.worker, Path(args.model_dir), out_dir)
        (out_dir / f"{args.worker}.json").write_text(json.dumps(result, indent=1))
        return
    import torch

    torch.manual_seed(0)
    t0 = time.time()
    model_dir = build(args, out_dir)
    print(f"built {args.model} ({args.layers or 'all'} layers, width {args.width or 'published'}) in "
          f"{time.time() - t0:.0f} s: {model_dir}", flush=True)
    measured = []
    for method in args.methods.split(","):
        if args.in_process:
            measured.append(run_method(args, method, model_dir, out_dir))
            continue
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--worker", method,
               "--model-dir", str(model_dir), "--out", str(out_dir)]
        subprocess.run(cmd, check=True)
        measured.append(json.loads((out_dir / f"{method}.json").read_text()))
    (out_dir / "bench_scale.json").write_text(json.dumps(measured, indent=1))
    print(report(measured))
    print(f"record: {out_dir / 'bench_scale.json'}")


if __name__ == "__main__":
    main()
