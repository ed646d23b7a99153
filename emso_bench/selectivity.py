"""Selectivity: what erasing the forget rows costs the retain rows, read off a run's trajectory.

The engine logs, every epoch, the forget split's MA and the retain split's (`eval.per_epoch`); with the
figures before erasure as epoch 0 this is the run's selectivity curve, forget MA falling from f0 towards
the MA threshold t while retain MA should stay at r0. Its scalar summaries, in the record's
`selectivity` and the report:

- `retain_ma_kept_half`: retain MA / r0 when forget MA first reaches (f0 + t) / 2, halfway to the
  threshold, linearly interpolated between the two epochs around that crossing (None when it never does);
- `retain_ma_kept_end`: retain MA / r0 at the stopping epoch (the run's status says whether that is
  `forgotten`); for the retrain oracle, its retain MA after over the memorizer's before;
- `r_ma`, `r_el_10`: the probe's ratio at the stopping epoch, retain drop / forget drop (0: only the
  forget rows moved; 1: the retain rows fell as far; emso_bench/probe.py measures the same ratio for
  the memorizer itself), by MA and by EL_10.

A method that erases selectively keeps both `kept` figures near 1 and r near 0, as the oracle does.
"""
from __future__ import annotations


def curve(before: dict, history: list[dict]) -> list[tuple[int, float, float]]:
    """(epoch, forget MA, retain MA): epoch 0 from the figures before, then every logged epoch that has both."""
    points = [(0, before["forget"]["ma"], before["retain"]["ma"])]
    return points + [(h["epoch"], h["forget_ma"], h["retain_ma"]) for h in history
                     if "forget_ma" in h and "retain_ma" in h]


def retain_kept_at(points: list[tuple[int, float, float]], target: float) -> float | None:
    """Retain MA / its start where forget MA first falls to `target` (linear between epochs), or None."""
    r0 = points[0][2]
    for (_, f_prev, r_prev), (_, f, r) in zip(points, points[1:]):
        if f <= target < f_prev:
            share = (f_prev - target) / (f_prev - f)
            return (r_prev + share * (r - r_prev)) / r0 if r0 else None
    return None


def drop_ratio(before: dict, after: dict, key: str) -> float | None:
    """(retain before - after) / (forget before - after) of summary `key`; None when the forget figure did not fall."""
    try:
        forget_drop = before["forget"][key] - after["forget"][key]
        retain_drop = before["retain"][key] - after["retain"][key]
    except (KeyError, TypeError):
        return None
    return retain_drop / forget_drop if forget_drop > 0 else None


def summary(before: dict, after: dict, history: list[dict], threshold_ma: float, el_key: str = "el_10") -> dict | None:
    """The record's `selectivity` block (module docstring); None without a forget and a retain split."""
    if not (before.get("forget") and before.get("retain") and after.get("forget") and after.get("retain")):
        return None
    points = curve(before, history)
    f0, r0 = points[0][1], points[0][2]
    half = (f0 + threshold_ma) / 2 if f0 > threshold_ma else None
    return {"half_target_ma": half,
            "retain_ma_kept_half": retain_kept_at(points, half) if half is not None and len(points) > 1 else None,
            "retain_ma_kept_end": after["retain"]["ma"] / r0 if r0 else None,
            "r_ma": drop_ratio(before, after, "ma"), f"r_{el_key}": drop_ratio(before, after, el_key),
            "epochs_logged": len(points) - 1}
