"""emso-bench-report: tables and plots for every run under a directory (usually a sweep).

    emso-bench-report multirun/memorizer_tradeoff            # writes report.md, report.csv, report.tex, *.png there
    emso-bench-report multirun/memorizer_tradeoff --out DIR

Missing jobs (expected by the sweep, no record) and failed runs are shown in the status column.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError, exit_on_user_error


def write_report(root: Path, out: Path, pick_defaults: bool = False) -> dict:
    from .collect import collect
    from .plots import curves, selectivity, tradeoff
    from .tables import aggregate, durability_markdown, latex, markdown, phases_markdown, selectivity_markdown, to_csv

    records = collect(root)
    if not records:
        raise UserError(f"{root}: no runs found (expected results.json files under it)")
    rows = aggregate(records)
    out.mkdir(parents=True, exist_ok=True)
    plots = [p for p in (tradeoff(records, out), curves(records, out), selectivity(records, out)) if p is not None]
    counts = {s: sum(r.status == s for r in records) for s in sorted({r.status for r in records})}
    md = [f"# Report: {root}", "", f"{len(records)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()), "",
          "Mean ± sample std (n - 1) over the draws with a record (a cell with fewer values than the row's runs "
          "says how many); `retain kept` is retain EL_10 after / before; `ppl x` is "
          "held-out perplexity after / before; `utility` is the mean accuracy of the reasoning tasks after.", "",
          markdown(rows)]
    selective = selectivity_markdown(rows)
    if selective:
        md += ["", "## Selectivity (forget against retain)", "",
               "What erasing the forget rows cost the retain rows (emso_bench/selectivity.py): retain MA / its start "
               "when forget MA has fallen halfway to the MA threshold (`½`) and at the stop; r, the retain split's "
               "drop over the forget split's by MA and EL_10 (0: only the forget rows moved, 1: both fell alike); "
               "and each run's forget and retain figures after minus those of the retrain oracle on the same rows "
               "(when the report holds it).", "", selective]
    durable = durability_markdown(rows)
    if durable:
        md += ["", "## Durability (eval=durable, forget split)", "",
               "What survives each probe after erasure: the best of 16 top-40 samples' share of suffix tokens in place "
               "and the share of rows sampled exactly; the share of the erased MA that relearning brings back after "
               "its last step count, and forget EL_10 then (on retain rows; on the first half of each forget row); "
               "forget MA with the "
               "weights rounded to 8 and 4 bits (per channel, and 4-bit groups); membership-inference AUCs of "
               "forget against unseen rows (0.5: indistinguishable).", "", durable]
    phases = phases_markdown(rows)
    if phases:
        md += ["", "## Where the time went (seconds per run)", "",
               "Each run's wall time by phase (the record's phase_seconds): loading, the figures before, weight "
               "selection, the erasure epochs (with their per-epoch checks), the figures after, held-out perplexity "
               "and utility after, and the durability probes.", "", phases]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    if pick_defaults:
        from . import pick

        md += ["", "## Tuning choice per method", "", pick.__doc__.strip(), "", pick.markdown(pick.pick(records))]
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "report.csv").write_text(to_csv(rows))
    (out / "report.tex").write_text(latex(rows))
    return {"rows": rows, "records": records, "plots": plots}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="emso-bench-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a run or sweep directory")
    parser.add_argument("--out", type=Path, help="where to write (default: the directory itself)")
    parser.add_argument("--pick", action="store_true", help="add the tuning choice per method (grid sweeps)")
    args = parser.parse_args(argv)
    with exit_on_user_error("emso-bench-report"):
        if not args.dir.is_dir():
            raise UserError(f"{args.dir}: no such directory")
        report = write_report(args.dir, args.out or args.dir, pick_defaults=args.pick)
        out = args.out or args.dir
        print(f"{len(report['records'])} runs -> {out / 'report.md'}, report.csv, report.tex, "
              + ", ".join(p.name for p in report["plots"]))
