"""The metric registry: a metric declared once (its registration and its function, nothing else) shows in
the per-example CSV, the split summaries, the report's table and the W&B per-example table.

The run is the real `run.execute` with method=none on the shipped memorizer, cut to a few rows per split
(the `small_run` fixture, conftest.py); W&B is a stand-in module that keeps what it is given."""
from __future__ import annotations

import csv
import json

import pytest

from emso_bench import run
from emso_bench.metrics import registry
from emso_bench.report.cli import write_report
from tests.helpers import compose


@pytest.fixture
def made_up_metric():
    """A made-up metric: whether the model's first prediction is the row's second token."""
    @registry.metric("first_hit", (registry.Summary("first_hit", "mean", column="first hit"),),
                     lower_is_forgotten=True)
    def first_hit(ex: registry.Example, params) -> bool:
        return bool(ex.a[0] == ex.x[1])

    yield "first_hit"
    registry.unregister("first_hit")


def test_a_registered_metric_reaches_the_csv_the_summaries_the_report_and_wandb(made_up_metric, small_run, tmp_path):
    cfg = compose(["method=none", "debug=default", "logger=wandb", "threads=1"])
    results = run.execute(cfg, tmp_path / "run")
    with open(tmp_path / "run" / "per_example.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(row["first_hit_before"] in ("True", "False") for row in rows)
    forget = [row["first_hit_before"] == "True" for row in rows if row["split"] == "forget"]
    recorded = json.loads((tmp_path / "run" / "results.json").read_text())
    assert recorded["before"]["forget"]["first_hit"] == results["before"]["forget"]["first_hit"] == \
        pytest.approx(sum(forget) / len(forget))
    report = write_report(tmp_path / "run", tmp_path / "report")
    header = (tmp_path / "report" / "report.md").read_text().split("| model |")[1].splitlines()[0]
    assert "| forget first hit |" in header and "| unseen first hit |" in header
    assert report["rows"][0]["forget first hit"][0] == pytest.approx(sum(forget) / len(forget))
    ((columns, data),) = small_run.tables
    assert {"first_hit_before", "first_hit_after"} <= set(columns)
    logged = [row[columns.index("first_hit_before")] for row in data]
    assert logged == [row["first_hit_before"] == "True" for row in rows]


def test_a_metric_key_is_registered_once_and_summaries_reduce_by_a_known_rule(made_up_metric):
    with pytest.raises(ValueError, match="'first_hit' is registered twice"):
        registry.metric("first_hit", (), lower_is_forgotten=True)(lambda ex, params: 0)
    with pytest.raises(ValueError, match="reduces by 'median'"):
        registry.metric("other", (registry.Summary("other", "median"),), lower_is_forgotten=True)(lambda ex, p: 0)
