"""The tuning rule every method gets (sweeps/emso_grid.yaml, sweeps/lr_grid.yaml): per method, among the
grid's runs that reached `forgotten`, the one that kept the most of the retain split's EL_10 (after /
before), then the smaller held-out perplexity rise, then fewer epochs; when no run forgot, the one
with the lowest forget EL_10 after among the runs that spent their budget, and only when none did, among
those that collapsed (a collapse is a failure, not a near miss); the status says it did not forget."""
from __future__ import annotations

from collections import defaultdict

from ..run_record import RunRecord
from .tables import HEADLINE, _get, _ratio, setting


def _key(r: RunRecord) -> tuple:
    forgotten = r.status == "forgotten"
    kept = _ratio(_get(r.after, "retain", HEADLINE), _get(r.before, "retain", HEADLINE)) or 0.0
    ppl = (r.heldout_ppl or {}).get("ratio") or float("inf")
    forget_el = _get(r.after, "forget", HEADLINE)
    if forgotten:
        return (0, -kept, ppl, r.epochs or 0)
    rank = 1 if r.status == "budget_exhausted" else 2
    return (rank, forget_el if forget_el is not None else float("inf"), -kept, ppl)


def pick(records: list[RunRecord]) -> list[dict]:
    """One line per method: the chosen grid point, why, and the figures it was chosen on."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.status not in ("failed", "missing"):
            by_method[r.method or "?"].append(r)
    out = []
    for method, runs in sorted(by_method.items()):
        best = min(runs, key=_key)
        out.append({"method": method, "choice": setting(best), "status": best.status,
                    "epochs": best.epochs, "retain_kept": _ratio(_get(best.after, "retain", HEADLINE),
                                                                  _get(best.before, "retain", HEADLINE)),
                    "retain_ma_kept": _ratio(_get(best.after, "retain", "ma"), _get(best.before, "retain", "ma")),
                    "ppl_ratio": (best.heldout_ppl or {}).get("ratio"),
                    "forget_el_10": _get(best.after, "forget", HEADLINE),
                    "forgotten_in_grid": sum(r.status == "forgotten" for r in runs), "grid_size": len(runs)})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| method | chosen | status | epochs | retain kept | retain MA kept | ppl x | forget EL10 | forgot in grid |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
        lines.append(f"| {r['method']} | {r['choice']} | {r['status']} | {r['epochs']} | {fmt(r['retain_kept'], 2)} | "
                     f"{fmt(r['retain_ma_kept'], 2)} | {fmt(r['ppl_ratio'], 2)} | {fmt(r['forget_el_10'], 4)} | {r['forgotten_in_grid']}/{r['grid_size']} |")
    return "\n".join(lines) + "\n"
