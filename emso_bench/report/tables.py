"""Paper-style tables: method x forget size, mean and spread over draws, in Markdown, CSV and LaTeX.

One row per (model, method, selection, forget size, setting), the setting being the job's other
overrides (a grid's learning rate, rho): how many runs reached which status, epochs to
stop, forget EL_10/MA after, retain EL_10/MA after (and the share of its starting EL_10 it kept),
unseen EL_10/MA after, the utility average after, held-out perplexity after/before, wall time. Numbers
are `mean ± std` (sample std, n - 1) over the draws that produced a record; missing and failed jobs
are counted in the status column, never dropped; a cell built on fewer values than the row's runs (a
value not recorded, or not finite) says how many, "(2 of 3)".
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import replace

import numpy as np

from ..metrics import MetricParams, registry
from ..run_record import RunRecord

# The tables name figures by the headline parameters (EL_10, extract@50), as the paper's tables do.
REPORT_PARAMS = MetricParams()
HEADLINE = registry.name("el_{el_n}", REPORT_PARAMS)  # the stop rule's EL: retain kept, the picker, the plots


def _split_columns() -> list[tuple[str, object]]:
    """Each split's registered report columns after erasure; retain's followed by the share of its
    starting headline EL it kept."""
    out = []
    for split in ("forget", "retain", "unseen"):
        out += [(f"{split} {label}", lambda r, s=split, k=key: _get(r.after, s, k))
                for label, key in registry.columns(REPORT_PARAMS)]
        if split == "retain":
            out.append(("retain kept", lambda r: _ratio(_get(r.after, "retain", HEADLINE),
                                                        _get(r.before, "retain", HEADLINE))))
    return out


def columns() -> list[tuple[str, object]]:
    """(header, getter) of the main table, built when a report is (so a metric registered later shows)."""
    return ([("epochs", lambda r: r.epochs)] + _split_columns() +
            [("utility", lambda r: (r.utility or {}).get("average_after")),
             ("ppl x", lambda r: (r.heldout_ppl or {}).get("ratio")),
             ("wall s", lambda r: r.wall_seconds)])


def _relearned(r: RunRecord, attack: str, key: str):
    """The figure named `key` (or starting with it: `forget_el_` for EL_n) after a relearning attack's last step count."""
    curve = _get(r.durability, "relearn", "attacks", attack) or {}
    point = curve[max(curve, key=int)] if curve else {}
    return next((v for k, v in point.items() if k.startswith(key)), None)


def _quant(r: RunRecord, variant_prefix: str):
    variants = _get(r.durability, "quantize", "variants") or {}
    names = [v for v in variants if v.startswith(variant_prefix)]
    return variants[names[0]]["forget_ma"] if names else None


DURABILITY_COLUMNS = [  # eval=durable (emso_bench/durability/): what survives each probe, forget split
    ("sampled match", lambda r: _get(r.durability, "sampling", "best_match")),
    ("sampled exact", lambda r: _get(r.durability, "sampling", "exact_frac")),
    ("relearn retain rec", lambda r: _relearned(r, "retain", "recovery_ma")),
    ("relearn retain EL10", lambda r: _relearned(r, "retain", "forget_el_")),
    ("relearn half rec", lambda r: _relearned(r, "half", "recovery_ma")),
    ("relearn half EL10", lambda r: _relearned(r, "half", "forget_el_")),
    ("int8 MA", lambda r: _quant(r, "int8_channel")),
    ("int4 MA", lambda r: _quant(r, "int4_channel")),
    ("int4 group MA", lambda r: _quant(r, "int4_g")),
    ("MIA loss AUC", lambda r: _get(r.durability, "mia_after", "loss")),
    ("MIA zlib AUC", lambda r: _get(r.durability, "mia_after", "zlib")),
    ("MIA min-k AUC", lambda r: _get(r.durability, "mia_after", "min_k")),
]


def _selectivity(r: RunRecord) -> dict:
    """The record's selectivity block; for a record written before it existed, computed from its figures and
    train log the same way (emso_bench/selectivity.py)."""
    if r.selectivity is not None or r.method == "none" or not (r.before and r.after and r.thresholds):
        return r.selectivity or {}  # method=none moved nothing: no selectivity, as its own record says
    from ..record import read_train_log
    from ..selectivity import summary

    return summary(r.before, r.after, read_train_log(r.run_dir), r.thresholds["ma"], HEADLINE) or {}


def _gap(r: RunRecord, split: str, key: str):
    """This run's figure after minus the retrain oracle's on the same rows (report/collect.attach_oracles)."""
    mine, oracle = _get(r.after, split, key), _get(r.oracle.after, split, key) if r.oracle else None
    return mine - oracle if mine is not None and oracle is not None and r.method != "retrain" else None


SELECTIVITY_COLUMNS = [  # what the erasure cost the retain rows, and how far each run ends from the oracle
    ("retain MA kept ½", lambda r: _selectivity(r).get("retain_ma_kept_half")),
    ("retain MA kept", lambda r: _selectivity(r).get("retain_ma_kept_end")),
    ("r MA", lambda r: _selectivity(r).get("r_ma")),
    ("r EL10", lambda r: _selectivity(r).get(f"r_{HEADLINE}")),
    ("forget MA − oracle", lambda r: _gap(r, "forget", "ma")),
    ("forget EL10 − oracle", lambda r: _gap(r, "forget", HEADLINE)),
    ("retain MA − oracle", lambda r: _gap(r, "retain", "ma")),
]


PHASES = ("load", "measure_before", "select", "erase", "measure_after", "general_after", "durability")
PHASE_COLUMNS = [(f"{phase} s", lambda r, p=phase: (r.phase_seconds or {}).get(p)) for phase in PHASES]  # run.Phases


def _get(figures: dict | None, *keys):
    """figures[k1][k2]..., None where a level is missing."""
    for key in keys:
        figures = figures.get(key) if isinstance(figures, dict) else None
    return figures


def _ratio(a, b):
    return a / b if a is not None and b else None


_NOT_SETTINGS = ("model", "method", "select", "forget.", "sweeps", "+sweeps", "threads")


def setting(r: RunRecord) -> str:
    """The job's overrides besides the table's own columns and the draw: what a grid varies."""
    items = sorted((k, v) for k, v in r.overrides.items()
                   if not (k in _NOT_SETTINGS or k.startswith(_NOT_SETTINGS[3])))
    return ", ".join(f"{k}={v}" for k, v in items)


def group_key(r: RunRecord) -> tuple:
    forget = r.forget or {}
    size = forget.get("size") if not forget.get("subset") and not forget.get("path") else forget.get("subset") or "file"
    rule = r.select
    return (r.model or "?", r.method or "?", rule or "?", size if size is not None else "?", setting(r))


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (n - 1) over the draws; one draw has no spread (0.0)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def aggregate(records: list[RunRecord]) -> list[dict]:
    """One row per group; failed and missing runs are counted in `status` and left out of the numbers."""
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in records:
        groups[group_key(r)].append(r)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        runs = [r for r in groups[key] if r.status not in ("failed", "missing")]
        runs = [r if r.selectivity is not None else replace(r, selectivity=_selectivity(r)) for r in runs]  # once each
        statuses: dict[str, int] = defaultdict(int)
        for r in groups[key]:
            statuses[r.status] += 1
        row = {"model": key[0], "method": key[1], "select": key[2], "forget": key[3], "setting": key[4], "runs": len(runs),
               "status": ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))}
        for header, get in columns() + DURABILITY_COLUMNS + SELECTIVITY_COLUMNS + PHASE_COLUMNS:
            values = [float(v) for v in (get(r) for r in runs) if v is not None and math.isfinite(float(v))]
            row[header] = (*mean_std(values), len(values)) if values else None
        rows.append(row)
    return rows


def _fmt(cell, digits: int = 3, runs: int = 0) -> str:
    if cell is None:
        return "–"
    mean, std, n = cell
    text = f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"
    return text + (f" ({n} of {runs})" if n < runs else "")


def _digits(header: str) -> int:
    return 0 if header in ("wall s",) else 1 if header == "epochs" else 2 if header in ("ppl x", "retain kept") else 3


HEAD = ["model", "method", "select", "forget", "setting", "status"]


def markdown(rows: list[dict]) -> str:
    main = [h for h, _ in columns()]
    headers = HEAD + main
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [str(row[h]) for h in HEAD] + [_fmt(row[h], _digits(h), row["runs"]) for h in main]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _side_table(rows: list[dict], cols: list, digits: int = 3) -> str | None:
    """A table of `cols` for the rows that have any of them, or None when none has."""
    rows = [row for row in rows if any(row[h] is not None for h, _ in cols)]
    if not rows:
        return None
    headers = HEAD + [h for h, _ in cols]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [str(row[h]) for h in HEAD] + [_fmt(row[h], digits, row["runs"]) for h, _ in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def phases_markdown(rows: list[dict]) -> str | None:
    """Where the wall time went (the records' phase_seconds), or None when no record has them."""
    return _side_table(rows, PHASE_COLUMNS, digits=0)


def durability_markdown(rows: list[dict]) -> str | None:
    """The durability table (rows with eval=durable figures only), or None when no run has them."""
    return _side_table(rows, DURABILITY_COLUMNS)


def selectivity_markdown(rows: list[dict]) -> str | None:
    """The selectivity table (rows whose runs have a forget and a retain split), or None when none has."""
    return _side_table(rows, SELECTIVITY_COLUMNS)


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    main = [h for h, _ in columns() + SELECTIVITY_COLUMNS]
    writer.writerow(HEAD + ["runs"] + [f"{h} {s}" for h in main for s in ("mean", "std")])
    for row in rows:
        values = [row[h] for h in HEAD] + [row["runs"]]
        for h in main:
            values += [row[h][0], row[h][1]] if row[h] else ["", ""]
        writer.writerow(values)
    return out.getvalue()


def latex(rows: list[dict]) -> str:
    headers = ["Method", "$|D_f|$", "Status", "Epochs", "Forget EL$_{10}$", "Forget MA", "Retain EL$_{10}$",
               "Utility", "PPL$\\times$"]
    keys = ["epochs", "forget EL10", "forget MA", "retain EL10", "utility", "ppl x"]
    lines = ["\\begin{tabular}{ll l" + "r" * len(keys) + "}", "\\toprule", " & ".join(headers) + " \\\\", "\\midrule"]
    for row in rows:
        method = row["method"] + (f" ({row['setting']})" if row["setting"] else "")
        cells = [method.replace("_", "\\_"), str(row["forget"]).replace("_", "\\_"), row["status"]]
        cells += [_fmt(row[k], _digits(k), row["runs"]).replace("±", "$\\pm$").replace("–", "--") for k in keys]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
