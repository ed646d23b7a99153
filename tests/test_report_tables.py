"""The report's table: one row per method x forget size, mean and sample std over the draws with a
record, failed and missing runs counted in the status and kept out of the numbers."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from emso_bench.report.tables import aggregate, markdown
from emso_bench.run_record import RunRecord


def _run(draw, status="forgotten", forget_ma=0.1, retain=(0.9, 0.3), unseen_ma=0.08, ppl=1.2):
    return RunRecord(model="memorizer", method="ga", select="all", status=status, epochs=10 + draw,
                     forget={"size": 128, "draw": draw}, overrides={"method": "ga", "forget.draw": draw},
                     before={"retain": {"el_10": retain[0]}},
                     after={"forget": {"el_10": 0.0, "ma": forget_ma}, "retain": {"el_10": retain[1], "ma": 0.2 * draw},
                            "unseen": {"el_10": 0.0, "ma": unseen_ma}},
                     heldout_ppl={"ratio": ppl}, wall_seconds=100.0 * draw)


def test_a_row_holds_the_mean_and_spread_of_every_metric_over_the_recorded_draws():
    runs = [_run(1, unseen_ma=0.06, retain=(0.9, 0.45)), _run(2, unseen_ma=0.10, retain=(0.9, 0.15), ppl=math.inf),
            RunRecord(method="ga", select="all", model="memorizer", status="failed", forget={"size": 128, "draw": 3},
                      overrides={"method": "ga", "forget.draw": 3})]
    (row,) = aggregate(runs)
    assert row["status"] == "1 failed, 2 forgotten" and row["runs"] == 2 and row["forget"] == 128
    mean, std, n = row["unseen MA"]
    assert n == 2 and math.isclose(mean, 0.08) and math.isclose(std, math.sqrt(2 * 0.02 ** 2 / (2 - 1)))
    mean, std, n = row["retain MA"]
    assert math.isclose(mean, 0.3) and math.isclose(std, math.sqrt((0.1 ** 2 + 0.1 ** 2) / (2 - 1)))
    mean, _, _ = row["retain kept"]  # after / before, per run, then averaged
    assert math.isclose(mean, (0.45 / 0.9 + 0.15 / 0.9) / 2)
    assert row["epochs"][:2] == pytest.approx((11.5, math.sqrt(0.5))) and row["wall s"][:2] == pytest.approx((150.0, math.sqrt(5000)))
    assert row["ppl x"] == (1.2, 0.0, 1)  # the infinite ratio is left out of the mean ...
    line = markdown([row]).splitlines()[2]
    assert "0.080 ± 0.028" in line and "1 failed, 2 forgotten" in line
    assert "| 1.20 (1 of 2) |" in line  # ... and the cell says so


def test_tradeoff_plot_orders_forget_sizes_numerically_and_needs_no_utility(tmp_path):
    from emso_bench.report.plots import _size_order, tradeoff

    assert sorted([256, "lm_extraction_128_0", 32, 128], key=_size_order) == [32, 128, 256, "lm_extraction_128_0"]
    runs = [_run(1), replace(_run(2), forget={"size": 32, "draw": 2})]  # no utility: perplexity panels only
    path = tradeoff(runs, tmp_path)
    assert path == tmp_path / "tradeoff.png" and path.stat().st_size > 0
    assert tradeoff([replace(_run(1), status="failed")], tmp_path / "none") is None  # nothing measured: no plot


def test_tradeoff_error_bars_are_the_tables_sample_std(tmp_path, monkeypatch):
    import matplotlib.axes

    from emso_bench.report.plots import tradeoff

    calls = []
    draw = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", lambda ax, *a, **kw: calls.append((a, kw)) or draw(ax, *a, **kw))
    runs = [_run(1, ppl=1.1), _run(2, ppl=1.3)]
    runs[1].after["forget"]["el_10"] = 2e-4
    tradeoff(runs + [_run(3, ppl=math.inf)], tmp_path)  # an infinite ratio is no point, as in the table
    ((x, y), kw), = calls  # one row, one size, the perplexity panel only
    assert (x, y) == pytest.approx((1e-4, 1.2))
    assert kw["xerr"] == pytest.approx(math.sqrt(2) * 1e-4) and kw["yerr"] == pytest.approx(aggregate(runs)[0]["ppl x"][1])
    assert kw["yerr"] == pytest.approx(math.sqrt(0.02))  # n - 1: 0.141, not the population 0.1


def test_tradeoff_x_range_shows_the_threshold_apart_from_points_that_all_forgot(tmp_path, monkeypatch):
    import matplotlib.figure

    from emso_bench.report.plots import tradeoff

    axes = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **kw: axes.extend(fig.axes) or save(fig, *a, **kw))
    runs = [replace(_run(d), thresholds={"el_10": 3e-6}) for d in (1, 2)]  # every point at EL_10 = 0
    tradeoff(runs, tmp_path)
    (ax,) = axes
    left, right = ax.get_xlim()
    assert left < 0 < 3e-6 < right <= 1.05 * 2 * 3e-6  # the threshold is in range, not lost in a +-0.05 default
    assert ax.get_xlabel() == "forget EL$_{10}$ after"  # short: the axis' "1e-6" scale sits at its right end


def test_curves_plot_reads_each_runs_epoch_log_and_skips_runs_without_epochs(tmp_path):
    import json

    from emso_bench.report.plots import curves

    run_dir = tmp_path / "job"
    run_dir.mkdir()
    epochs = [{"epoch": 1, "forget_ma": 0.9}, {"epoch": 2, "forget_ma": 0.2, "forget_el_10": 0.0}]
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    path = curves([replace(_run(1), run_dir=str(run_dir))], tmp_path)
    assert path == tmp_path / "curves.png" and path.stat().st_size > 0
    # task vector has no epochs of ascent, a failed run has no history: nothing to draw
    assert curves([replace(_run(1), method="task_vector", run_dir=str(run_dir)), replace(_run(2), status="failed")],
                  tmp_path / "none") is None
