"""What `eval=durable` adds to a run on the default memorizer, against the 3-minute goal.

    python benchmarks/bench_durable.py                        # EMSO at its defaults, 2 threads, a fresh run
    python benchmarks/bench_durable.py method=ga threads=1    # any other run overrides
    python benchmarks/bench_durable.py --record docs/results/runs/durable_cost/emso-d0   # a finished run

Runs `emso-bench eval=durable` (into a temporary directory unless --out names one) and prints, from its
results.json, what the probes cost: membership inference before the erasure plus every probe after it
(sampling, relearning's attacks and the quantized copies, side by side when `workers` > 1, membership
inference again), by probe, against 180 s. Each probe's own seconds overlap when they ran side by side; the
goal is on the wall time. Measured here, never asserted in tests; run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GOAL_S = 180.0  # the budget: at most 3 minutes added to a run on 2 cores


def added_seconds(record: dict) -> dict:
    """The durability cost of one run record, by part (seconds)."""
    d = record["durability"]
    return {"mia_before": d["mia_before"]["seconds"], "sampling": d["sampling"]["seconds"],
            "relearn (job time)": d["relearn"]["seconds"], "quantize (job time)": d["quantize"]["seconds"],
            "mia_after": d["mia_seconds"], "probes after (wall)": d["seconds"],
            "added (wall)": round(d["seconds"] + d["mia_before"]["seconds"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", type=Path, help="read this finished run directory instead of running one")
    parser.add_argument("--out", type=Path, help="run directory (default: a temporary one)")
    args, overrides = parser.parse_known_args()
    if args.record is None:
        out = args.out or Path(tempfile.mkdtemp(prefix="bench_durable_"))
        given = {o.split("=", 1)[0] for o in overrides}
        defaults = [o for o in ("eval=durable", "threads=2") if o.split("=", 1)[0] not in given]
        overrides = [*defaults, *overrides, f"hydra.run.dir={out}"]
        print("emso-bench " + " ".join(overrides), flush=True)
        subprocess.run([sys.executable, "-m", "emso_bench.app", *overrides], check=True)
        args.record = out
    record = json.loads((args.record / "results.json").read_text())
    parts = added_seconds(record)
    print(f"{record['model']} / {record['method']}, {record['n_forget']} forget rows, {record['torch_threads']} threads, "
          f"{record['durability'].get('workers', 1)} side by side, commit {(record.get('git_commit') or 'unknown')[:7]}")
    for name, seconds in parts.items():
        print(f"  {name:22s} {seconds:7.1f} s")
    verdict = "within" if parts["added (wall)"] <= GOAL_S else "OVER"
    print(f"added {parts['added (wall)']:.1f} s: {verdict} the {GOAL_S:.0f} s goal")


if __name__ == "__main__":
    main()
