"""Selectivity summaries (emso_bench/selectivity.py), the report's gaps to the retrain oracle and the
selectivity plot, on hand-made trajectories whose answers are worked out below by hand."""
from __future__ import annotations

import json
import math

import pytest

from emso_bench.report.collect import attach_oracles
from emso_bench.report.tables import aggregate, selectivity_markdown
from emso_bench.run_record import RunRecord
from emso_bench.selectivity import curve, retain_kept_at, summary

BEFORE = {"forget": {"ma": 0.9, "el_10": 0.8}, "retain": {"ma": 0.8, "el_10": 0.6}}
AFTER = {"forget": {"ma": 0.05, "el_10": 0.0}, "retain": {"ma": 0.5, "el_10": 0.3}}
HISTORY = [{"epoch": 1, "forget_ma": 0.7, "retain_ma": 0.78}, {"epoch": 2, "forget_ma": 0.4, "retain_ma": 0.6},
           {"epoch": 3, "forget_ma": 0.05, "retain_ma": 0.5, "forget_el_10": 0.0}]


def test_the_summary_matches_a_hand_computation():
    s = summary(BEFORE, AFTER, HISTORY, threshold_ma=0.1)
    # halfway: (0.9 + 0.1) / 2 = 0.5, crossed between epoch 1 (0.7) and 2 (0.4) at 2/3 of the way;
    # retain there 0.78 + 2/3 * (0.6 - 0.78) = 0.66, over its start 0.8
    assert s["half_target_ma"] == pytest.approx(0.5)
    assert s["retain_ma_kept_half"] == pytest.approx(0.66 / 0.8)
    assert s["retain_ma_kept_end"] == pytest.approx(0.5 / 0.8)
    assert s["r_ma"] == pytest.approx((0.8 - 0.5) / (0.9 - 0.05))
    assert s["r_el_10"] == pytest.approx((0.6 - 0.3) / (0.8 - 0.0))
    assert s["epochs_logged"] == 3


def test_a_curve_starts_before_erasure_and_skips_lines_without_both_splits():
    lines = [{"phase": "finetune", "epoch": 1, "nll": 0.1}] + HISTORY
    assert curve(BEFORE, lines) == [(0, 0.9, 0.8), (1, 0.7, 0.78), (2, 0.4, 0.6), (3, 0.05, 0.5)]


def test_a_run_that_never_gets_halfway_and_one_that_did_not_forget_at_all():
    points = curve(BEFORE, HISTORY[:1])  # forget MA only reached 0.7
    assert retain_kept_at(points, 0.5) is None
    assert retain_kept_at(points, 0.7) == pytest.approx(0.78 / 0.8)  # reaching the target exactly counts
    unmoved = {"forget": {"ma": 0.9, "el_10": 0.8}, "retain": {"ma": 0.7, "el_10": 0.6}}
    s = summary(BEFORE, unmoved, [], threshold_ma=0.1)
    assert s["r_ma"] is None and s["retain_ma_kept_half"] is None  # no forget drop: no ratio
    assert summary({"forget": BEFORE["forget"]}, AFTER, HISTORY, 0.1) is None  # no retain split


def _record(method, draw, forget_ma, retain_ma, status="forgotten", size=128):
    return RunRecord(model="memorizer", method=method, select="all", status=status, forget={"size": size, "draw": draw},
                     overrides={"method": method, "forget.draw": draw}, thresholds={"ma": 0.1, "el_10": 0.01},
                     before=BEFORE, after={"forget": {"ma": forget_ma, "el_10": 0.0}, "retain": {"ma": retain_ma, "el_10": 0.3}})


def test_gaps_are_read_against_the_oracle_of_the_same_draw():
    runs = [_record("ga", 1, 0.05, 0.5), _record("ga", 2, 0.09, 0.4),
            _record("retrain", 1, 0.2, 0.79, status="retrained"), _record("retrain", 2, 0.3, 0.78, status="retrained"),
            _record("ga", 1, 0.05, 0.5, size=32)]  # no oracle of 32 rows in this report
    attach_oracles(runs)
    rows = {(row["method"], row["forget"]): row for row in aggregate(runs)}
    mean, std, n = rows["ga", 128]["forget MA − oracle"]
    assert n == 2 and mean == pytest.approx(((0.05 - 0.2) + (0.09 - 0.3)) / 2)
    assert std == pytest.approx(math.sqrt(2 * 0.03 ** 2))  # -0.15 and -0.21 around -0.18
    assert rows["ga", 128]["retain MA − oracle"][0] == pytest.approx(((0.5 - 0.79) + (0.4 - 0.78)) / 2)
    assert rows["retrain", 128]["forget MA − oracle"] is None  # not against itself
    assert rows["ga", 32]["forget MA − oracle"] is None
    assert rows["ga", 32]["r MA"][0] == pytest.approx((0.8 - 0.5) / (0.9 - 0.05))  # from the figures, no record block
    table = selectivity_markdown(list(rows.values()))
    assert "| -0.180 ± 0.042 |" in table


def test_the_selectivity_plot_draws_each_runs_epochs_and_the_oracle(tmp_path, monkeypatch):
    import matplotlib.axes

    from emso_bench.report.plots import selectivity

    run_dir = tmp_path / "ga"
    run_dir.mkdir()
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in HISTORY))
    ga = _record("ga", 1, 0.05, 0.5)
    ga.run_dir = str(run_dir)
    oracle = _record("retrain", 1, 0.2, 0.79, status="retrained")
    drawn = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, *a, **kw: drawn.append(a) or plot(ax, *a, **kw))
    path = selectivity([ga, oracle], tmp_path)
    assert path == tmp_path / "selectivity.png" and path.stat().st_size > 0
    assert ([0.9, 0.7, 0.4, 0.05], [0.8, 0.78, 0.6, 0.5], "-") in drawn  # epoch 0 first, then the log
    assert (0.2, 0.79, "*") in drawn
    assert selectivity([oracle], tmp_path / "none") is None  # no trajectory: no plot


def test_the_time_table_averages_each_phase_over_the_draws():
    from dataclasses import replace

    from emso_bench.report.tables import phases_markdown

    runs = [replace(_record("ga", 1, 0.05, 0.5), phase_seconds={"load": 2.0, "erase": 100.0, "measure_after": 30.0}),
            replace(_record("ga", 2, 0.05, 0.5), phase_seconds={"load": 4.0, "erase": 140.0, "measure_after": 50.0})]
    (row,) = aggregate(runs)
    assert row["erase s"][:2] == pytest.approx((120.0, math.sqrt(800.0))) and row["select s"] is None
    assert "| 3 ± 1 | – | – | 120 ± 28 | 40 ± 14 |" in phases_markdown([row])
    assert phases_markdown(aggregate([_record("ga", 1, 0.05, 0.5)])) is None  # records from before phase_seconds
