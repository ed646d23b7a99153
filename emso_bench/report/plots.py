"""PNG plots of a sweep: forgetting against utility per forget size, and EL_10/MA over epochs.

Matplotlib's Agg backend: no display needed. Failed and missing runs have no point; the table says so.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..record import read_train_log  # noqa: E402
from ..run_record import RunRecord  # noqa: E402
from ..metrics import registry  # noqa: E402
from .tables import HEADLINE, REPORT_PARAMS, _get, group_key, mean_std  # noqa: E402


def _done(records):
    return [r for r in records if r.status not in ("failed", "missing")]


def _label(r: RunRecord, with_model: bool) -> str:
    """One marker per table row: method[/rule] [grid setting, last key parts] [@model]."""
    model, method, rule, _, setting = group_key(r)
    label = method + ("" if rule in ("all", "contrastive") else f"/{rule}")
    if setting:
        label += " " + ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, _, v in
                                 (part.partition("=") for part in setting.split(", ")))
    return label + (f" @{model}" if with_model else "")


def _size_order(size) -> tuple:
    return (0, size, "") if isinstance(size, (int, float)) else (1, 0, str(size))


def _y_metrics(runs: list[RunRecord]) -> list[tuple[str, object]]:
    """Utility after (when measured) and the held-out perplexity ratio: one row of panels each."""
    utility = ("utility: mean accuracy after", lambda r: (r.utility or {}).get("average_after"))
    ppl = ("held-out perplexity after / before", lambda r: (r.heldout_ppl or {}).get("ratio"))
    return [m for m in (utility, ppl) if any(m[1](r) is not None for r in runs)]


def tradeoff(records: list[RunRecord], out: Path) -> Path | None:
    """Forget EL_10 after (x) against utility after and the held-out perplexity ratio (y, one row each),
    one panel per forget size, one marker per row of the table (method, rule, grid setting, model: mean
    and sample std over the draws with finite values, as the table), with the same colour and shape for a
    row in every panel."""
    runs = _done(records)
    metrics = _y_metrics(runs)
    if not runs or not metrics:
        return None
    sizes = sorted({group_key(r)[3] for r in runs}, key=_size_order)
    several_models = len({r.model for r in runs}) > 1
    labels = sorted({_label(r, several_models) for r in runs})
    styles = {label: (plt.cm.tab10(i % 10), "osD^v<>"[i // 10 % 7]) for i, label in enumerate(labels)}
    fig, axes = plt.subplots(len(metrics), len(sizes), figsize=(4.2 * len(sizes) + 2, 3.6 * len(metrics)),
                             squeeze=False)
    for row, (ylabel, get_y) in zip(axes, metrics):
        for ax, size in zip(row, sizes):
            points = defaultdict(list)
            for r in runs:
                x, y = _get(r.after, "forget", HEADLINE), get_y(r)
                if group_key(r)[3] == size and x is not None and y is not None and np.isfinite([x, y]).all():
                    points[_label(r, several_models)].append((x, y))
            right = 0.0  # the x range: every point's bar and the threshold, from 0 (EL_10 >= 0)
            for label, xy in sorted(points.items()):
                (x, x_std), (y, y_std) = (mean_std(column) for column in zip(*xy))  # the table's spread
                color, marker = styles[label]
                ax.errorbar(x, y, xerr=x_std, yerr=y_std, fmt=marker, color=color, capsize=3)
                right = max(right, x + x_std)
            thresholds = [_get(r.thresholds, HEADLINE) for r in runs if group_key(r)[3] == size]
            if thresholds and thresholds[0] is not None:
                threshold = float(np.mean(thresholds))
                ax.axvline(threshold, color="grey", ls="--", lw=1)
                right = max(right, 2 * threshold)  # all points at 0 still show the threshold apart from them
            if right > 0:
                ax.set_xlim(-0.05 * right, 1.05 * right)
            # A short x label: the "1e-5" scale is drawn at the axis' right end, where a long label ran into it.
            ax.set(title=f"forget set: {size}", xlabel="forget EL$_{10}$ after", ylabel=ylabel)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))  # EL_10 spans 0..1e-4: plain decimals overlap
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker=m, ls="", label=label) for label, (c, m) in styles.items()]
    handles.append(plt.Line2D([], [], color="grey", ls="--", lw=1, label="EL$_{10}$ threshold"))
    fig.legend(handles=handles, loc="center right", fontsize=7)
    lower = registry.metric_of(HEADLINE, REPORT_PARAMS).lower_is_forgotten
    fig.suptitle(f"forgetting against utility: {'lower' if lower else 'higher'} x is more forgotten; mean and sample "
                 "std over draws", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.9 / fig.get_figwidth(), 1))
    path = out / "tradeoff.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curves(records: list[RunRecord], out: Path) -> Path | None:
    """Forget MA and EL_10 per epoch, one line per method (the runs of the most common forget size)."""
    runs = [r for r in _done(records) if r.method not in ("none", "task_vector")]
    if not runs:
        return None
    sizes = [group_key(r)[3] for r in runs]
    size = max(set(sizes), key=sizes.count)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for method in sorted({r.method for r in runs}):
        color = None
        for i, r in enumerate(x for x in runs if x.method == method and group_key(x)[3] == size):
            lines = [h for h in read_train_log(r.run_dir) if "forget_ma" in h]
            if not lines:
                continue
            label = method if i == 0 else None
            (line,) = axes[0].plot([h["epoch"] for h in lines], [h["forget_ma"] for h in lines], color=color,
                                   alpha=0.8, label=label)
            color = line.get_color()
            el = [(h["epoch"], h[f"forget_{HEADLINE}"]) for h in lines if f"forget_{HEADLINE}" in h]
            if el:
                axes[1].plot(*zip(*el), "o-", color=color, alpha=0.8, label=label)
    titles = (f"forget MA over epochs, forget set {size}", "forget EL$_{10}$, measured once MA is under its threshold")
    for ax, name, title in zip(axes, ("forget MA", "forget EL$_{10}$"), titles):
        ax.set(xlabel="epoch", ylabel=name, title=title)
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def selectivity(records: list[RunRecord], out: Path) -> Path | None:
    """Forget MA (x, falling to the right) against retain MA (y) along every run's epochs, epoch 0 being the
    figures before erasure: one panel per forget size, one colour per method, one line per draw; the retrain
    oracle a star at its forget and retain MA after. A selective eraser runs flat at the top; a blunt one
    falls along the diagonal. The MA threshold is the dashed line."""
    from ..selectivity import curve

    runs = [r for r in _done(records) if r.before and r.before.get("retain") and r.before.get("forget")]
    lines = {id(r): curve(r.before, read_train_log(r.run_dir)) for r in runs}
    runs = [r for r in runs if len(lines[id(r)]) > 1 or r.method == "retrain"]
    if not any(len(points) > 1 for points in lines.values()):
        return None
    sizes = sorted({group_key(r)[3] for r in runs}, key=_size_order)
    several_models = len({r.model for r in runs}) > 1
    labels = sorted({_label(r, several_models) for r in runs})
    palette = plt.cm.tab10 if len(labels) <= 10 else plt.cm.tab20  # a grid of 12 settings: no colour twice
    colors = {label: palette(i % palette.N) for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.6 * len(sizes) + 2, 4.0), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for r in (r for r in runs if group_key(r)[3] == size):
            label, points = _label(r, several_models), lines[id(r)]
            if r.method == "retrain":
                ax.plot(_get(r.after, "forget", "ma"), _get(r.after, "retain", "ma"), "*", ms=14,
                        color=colors[label], markeredgecolor="black", zorder=5)
            else:
                ax.plot([p[1] for p in points], [p[2] for p in points], "-", color=colors[label], alpha=0.75, lw=1.2)
        thresholds = [_get(r.thresholds, "ma") for r in runs if group_key(r)[3] == size]
        if thresholds and thresholds[0] is not None:
            ax.axvline(float(np.mean(thresholds)), color="grey", ls="--", lw=1)
        ax.invert_xaxis()
        ax.set(title=f"forget set: {size}", xlabel="forget MA (erasure proceeds to the right)", ylabel="retain MA")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="*" if label.startswith("retrain") else None,
                          ls="" if label.startswith("retrain") else "-", ms=10, label=label)
               for label, c in colors.items()]
    handles.append(plt.Line2D([], [], color="grey", ls="--", lw=1, label="MA threshold"))
    fig.legend(handles=handles, loc="center right", fontsize=7)
    fig.suptitle("selectivity: retain MA while the forget MA falls, epoch by epoch (one line per draw)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.9 / fig.get_figwidth(), 1))
    path = out / "selectivity.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
