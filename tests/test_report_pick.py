"""The tuning rule (`emso-bench-report --pick`): forgotten runs first, then most retain kept, then the
smaller perplexity rise; with no forgotten run, the lowest forget EL_10, a spent budget before a collapse."""
from __future__ import annotations

from emso_bench.report.pick import pick
from emso_bench.run_record import RunRecord


def _run(lr, status, retain_after, ppl, forget_el=0.0):
    return RunRecord(method="emso", status=status, epochs=5,
                     overrides={"method": "emso", "method.optim.lr": lr, "forget.draw": 0},
                     before={"retain": {"el_10": 1.0}},
                     after={"retain": {"el_10": retain_after}, "forget": {"el_10": forget_el}},
                     heldout_ppl={"ratio": ppl})


def test_pick_prefers_forgotten_then_retain_kept_then_perplexity():
    runs = [_run(1e-4, "budget_exhausted", 0.9, 1.0, forget_el=0.5), _run(1e-3, "forgotten", 0.2, 1.1),
            _run(3e-3, "forgotten", 0.2, 1.05), _run(1e-2, "forgotten", 0.1, 1.0), _run(0.1, "failed", 1.0, 1.0)]
    (row,) = pick(runs)
    assert row["choice"] == "method.optim.lr=0.003" and row["forgotten_in_grid"] == 3 and row["grid_size"] == 4


def test_pick_without_a_forgotten_run_takes_the_lowest_forget_el():
    (row,) = pick([_run(1e-4, "budget_exhausted", 0.9, 1.0, 0.5), _run(3e-4, "budget_exhausted", 0.5, 1.0, 0.2)])
    assert row["choice"] == "method.optim.lr=0.0003" and row["status"] == "budget_exhausted"


def test_pick_without_a_forgotten_run_prefers_a_spent_budget_to_a_collapse():
    """random_label on the memorizer: every rate above 1e-4 collapsed (perplexity guard) with forget EL_10 0,
    while 1e-4 spent its budget with a small EL_10 left; the collapse must not win on EL_10."""
    runs = [_run(1e-4, "budget_exhausted", 0.0, 1.37, 1e-4), _run(1e-3, "collapsed", 0.0, 3.18, 0.0)]
    (row,) = pick(runs)
    assert row["choice"] == "method.optim.lr=0.0001" and row["status"] == "budget_exhausted"
    (row,) = pick([_run(1e-3, "collapsed", 0.0, 3.18, 0.0), _run(3e-3, "collapsed", 0.0, 8.0, 0.01)])
    assert row["choice"] == "method.optim.lr=0.001"
