"""PNG plots of a sweep: forgetting against utility per forget size, and EL_10/MA over epochs.

Matplotlib's Agg backend: no display needed. Failed and missing runs have no point; the table says so.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .tables import _get, group_key  # noqa: E402


def _done(records):
    return [r for r in records if r.get("status") not in ("failed", "missing")]


def _label(r: dict, with_model: bool) -> str:
    """One marker per table row: method[/rule] [grid setting, last key parts] [@model]."""
    model, method, rule, _, setting = group_key(r)
    label = method + ("" if rule in ("all", "contrastive") else f"/{rule}")
    if setting:
        label += " " + ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, _, v in
                                 (part.partition("=") for part in setting.split(", ")))
    return label + (f" @{model}" if with_model else "")


def tradeoff(records: list[dict], out: Path) -> Path | None:
    """Forget EL_10 after (x) against utility after (y; held-out perplexity ratio when no utility was
    measured), one panel per forget size, one marker per row of the table (method, rule, grid setting, model: mean
    and std over draws)."""
    runs = _done(records)
    if not runs:
        return None
    use_utility = any((r.get("utility") or {}).get("average_after") is not None for r in runs)
    ylabel = "utility: mean accuracy after" if use_utility else "held-out perplexity after / before"
    sizes = sorted({group_key(r)[3] for r in runs}, key=str)
    several_models = len({r.get("model") for r in runs}) > 1
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        points = defaultdict(list)
        for r in runs:
            if group_key(r)[3] != size:
                continue
            y = (r.get("utility") or {}).get("average_after") if use_utility else (r.get("heldout_ppl") or {}).get("ratio")
            x = _get(r, "after", "forget", "el_10")
            if x is not None and y is not None:
                points[_label(r, several_models)].append((x, y))
        for i, (label, xy) in enumerate(sorted(points.items())):
            xy = np.array(xy)
            ax.errorbar(xy[:, 0].mean(), xy[:, 1].mean(), xerr=xy[:, 0].std(), yerr=xy[:, 1].std(), fmt="osD^v<>"[i // 10 % 7],
                        capsize=3, label=label)
        thresholds = [_get(r, "thresholds", "el_10") for r in runs if group_key(r)[3] == size]
        if thresholds and thresholds[0] is not None:
            ax.axvline(float(np.mean(thresholds)), color="grey", ls="--", lw=1, label="EL$_{10}$ threshold")
        ax.set(title=f"forget set: {size}", xlabel="forget EL$_{10}$ after (lower: more forgotten)", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = out / "tradeoff.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _history(r: dict) -> list[dict]:
    path = Path(r["_dir"]) / "train_log.jsonl" if r.get("_dir") else None
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curves(records: list[dict], out: Path) -> Path | None:
    """Forget MA and EL_10 per epoch, one line per method (the runs of the most common forget size)."""
    runs = [r for r in _done(records) if r.get("method") not in ("none", "task_vector")]
    if not runs:
        return None
    sizes = [group_key(r)[3] for r in runs]
    size = max(set(sizes), key=sizes.count)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for method in sorted({r["method"] for r in runs}):
        color = None
        for i, r in enumerate(x for x in runs if x["method"] == method and group_key(x)[3] == size):
            lines = [h for h in _history(r) if "forget_ma" in h]
            if not lines:
                continue
            label = method if i == 0 else None
            (line,) = axes[0].plot([h["epoch"] for h in lines], [h["forget_ma"] for h in lines], color=color,
                                   alpha=0.8, label=label)
            color = line.get_color()
            el = [(h["epoch"], h["forget_el_10"]) for h in lines if "forget_el_10" in h]
            if el:
                axes[1].plot(*zip(*el), "o-", color=color, alpha=0.8, label=label)
    for ax, name in zip(axes, ("forget MA", "forget EL$_{10}$ (measured once MA is under its threshold)")):
        ax.set(xlabel="epoch", ylabel=name, title=f"{name.split(' (')[0]} over epochs, forget set {size}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
