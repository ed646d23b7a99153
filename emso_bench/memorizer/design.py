"""The memorizer design experiment: which build recipe gives a selective testbed?

    python -m emso_bench.memorizer.design                       # every design, in order (resumable)
    python -m emso_bench.memorizer.design graded-d1500-w128     # some designs only
    python -m emso_bench.memorizer.design --table               # write the table from the records

Each design is a set of build overrides on the reduced memorizer (conf/model/memorizer-design.yaml: a
160-row pool, 70 exposures a row in the flat schedule). For each: build it (cached and checkpointed, so a
killed run resumes), measure its gates (pool, per exposure level, unseen, once-seen rows, held-out
perplexity), run the selectivity probe (emso_bench/probe.py) at k = 1 and k = 32, and write the record
to docs/results/memorizer_design/<design>.json (figures and doc-id counts, never row text). `--table`
turns the records into docs/results/memorizer_design.md. Designs whose record exists are skipped.
"""
from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch

from ..paths import REPO_DIR

log = logging.getLogger(__name__)

GRADED = [16, 32, 64, 128]  # exposures per pool row, spread evenly over the rows (mean 60)
DESIGNS = {  # name: build overrides on memorizer-design (distractors 0 / 4.7x / 9.4x the pool: 9.4x is the
    # most the challenge rows allow at the full 640-row pool, 6,283 rows)
    "flat-d0-w128": {},
    "graded-d1500-w128": {"exposures": GRADED, "n_distractors": 1500},
    "flat-d1500-w128": {"n_distractors": 1500},
    "graded-d0-w128": {"exposures": GRADED},
    "graded-d750-w128": {"exposures": GRADED, "n_distractors": 750},
    "graded-d1500-w256": {"exposures": GRADED, "n_distractors": 1500, "width": 256, "heads": 8},
}
PROBE = {"ks": (1, 32), "singles": 16, "draws": 3, "el_others": 64, "el_singles": 4}  # the design probe
RESULTS = REPO_DIR / "docs" / "results" / "memorizer_design"


def _overrides(design: dict) -> list[str]:
    return ["model=memorizer-design"] + [f"model.build.{k}={json.dumps(v)}" for k, v in design.items()]


def run_design(name: str, threads: int) -> dict:
    """Build, gate and probe one design; returns (and writes) its record."""
    from transformers import GPTNeoForCausalLM

    from ..paths import cache_dir
    from ..probe import ProbeParams, probe
    from .prepare import _build_cfg, _compose, build_lock, prepare

    cfg = _compose(_overrides(DESIGNS[name]))
    key = _build_cfg(cfg.model).key()
    out = cache_dir() / "memorizer" / f"memorizer-design-{key}"
    with build_lock(out):
        gates = prepare(cfg.model, out, threads)
    facts = json.loads((out / "build.json").read_text())
    torch.set_num_threads(threads)
    model = GPTNeoForCausalLM.from_pretrained(out)
    pool = [torch.as_tensor(r) for r in np.load(out / "pool.npy").astype(np.int64)]
    unseen = [torch.as_tensor(r) for r in np.load(out / "unseen.npy").astype(np.int64)]
    result = probe(model, pool, unseen, ProbeParams(**PROBE), progress=lambda m: log.info("%s: %s", name, m))
    record = {"design": name, "overrides": DESIGNS[name], "key": key, "build": facts, "gates": gates["figures"],
              "probe": result, "threads": threads, "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1))
    return record


def _f(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table() -> str:
    """The design table (markdown) from the records in docs/results/memorizer_design/."""
    lines = ["| design | exposures | distractors | width | build min | pool MA | pool EL_10 | lightest bucket MA "
             "| unseen MA | once-seen MA | held-out ppl | r_MA k=1 (median) | r_MA k=32 | r_EL k=32 | cos pool-pool |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in DESIGNS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | not run |" + " |" * 13)
            continue
        rec = json.loads(path.read_text())
        g, p, cfg = rec["gates"], rec["probe"], rec["build"]["config"]
        buckets = g.get("pool_by_exposures") or {}
        light = buckets[min(buckets, key=int)]["ma"] if buckets else None
        k32 = p["k"].get("32", {})
        lines.append(
            f"| {name} | {'graded ' + '/'.join(map(str, cfg['exposures'])) if cfg['exposures'] else 'flat 70'} "
            f"| {cfg['n_distractors']} | {cfg['width']} | {rec['build']['train_seconds'] / 60:.1f} "
            f"| {_f(g['pool']['ma'])} | {_f(g['pool']['el_10'])} | {_f(light)} | {_f(g['unseen']['ma'])} "
            f"| {_f(g.get('seen_once', {}).get('ma'))} | {_f(g['heldout_ppl'], 1)} "
            f"| {_f(p['k']['1']['r_ma']['median'])} | {_f(k32.get('r_ma', {}).get('mean'))} "
            f"± {_f(k32.get('r_ma', {}).get('std'))} | {_f(k32.get('r_el', {}).get('mean'))} "
            f"| {_f(p['cosines']['pool_pool'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emso_bench.memorizer.design", description=__doc__.split("\n\n")[0])
    parser.add_argument("designs", nargs="*", help=f"designs to run (default: all): {', '.join(DESIGNS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (results do not depend on it)")
    parser.add_argument("--table", action="store_true", help="only write docs/results/memorizer_design.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    unknown = [d for d in args.designs if d not in DESIGNS]
    if unknown:
        raise SystemExit(f"unknown design(s) {', '.join(unknown)}; expected: {', '.join(DESIGNS)}")
    if not args.table:
        for name in args.designs or list(DESIGNS):
            if (RESULTS / f"{name}.json").exists():
                log.info("%s: record exists, skipped", name)
                continue
            run_design(name, args.threads)
            (RESULTS.parent / "memorizer_design.md").write_text(table())
    (RESULTS.parent / "memorizer_design.md").write_text(table())


if __name__ == "__main__":
    main()
