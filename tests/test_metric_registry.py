"""The metric registry: a metric declared once (its registration and its function, nothing else) shows in
the per-example CSV, the split summaries, the report's table and the W&B per-example table.

The run is the real `run.execute` with method=none on the shipped memorizer, cut to a few rows per split
(the `small_run` fixture, conftest.py); W&B is a stand-in module that keeps what it is given."""
from __future__ import annotations

import csv
import json
from contextlib import contextmanager

import pytest
import torch

from emso_bench import run
from emso_bench.measure import measure_split
from emso_bench.metrics import MetricParams, registry
from emso_bench.report.cli import write_report
from emso_bench.splits import Split
from tests.helpers import compose, tiny_gpt_neo


@contextmanager
def first_hit_registered():
    """A made-up metric: whether the model's first prediction is the row's second token."""
    @registry.metric("first_hit", (registry.Summary("first_hit", "mean", column="first hit"),),
                     lower_is_forgotten=True)
    def first_hit(ex: registry.Example, params) -> bool:
        return bool(ex.a[0] == ex.x[1])

    try:
        yield "first_hit"
    finally:
        registry.unregister("first_hit")


@pytest.fixture
def made_up_metric():
    with first_hit_registered() as key:
        yield key


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


def test_a_cached_measurement_is_not_served_once_another_metric_is_registered(cache_root):
    """The unseen split's cache is keyed by the registered metrics: a metric registered outside
    emso_bench/metrics/ (whose code keys the cache too) is measured, not read from a stale entry."""
    split = Split("unseen", [0, 1], [torch.arange(12) % 97, torch.arange(12, 24) % 97])
    params, cache_on = MetricParams(el_n=2, extract_context=4, extract_k=4), {"weights": "registry-test"}
    model = tiny_gpt_neo()
    assert "first_hit" not in measure_split(model, split, params, cache_on=cache_on)[0]
    with first_hit_registered():
        assert "first_hit" in measure_split(model, split, params, cache_on=cache_on)[0]


def test_a_summary_key_names_its_metric_and_which_way_is_forgotten():
    params = MetricParams(el_n=5, extract_k=20)
    assert registry.metric_of("el_5_max", params).key == "el_{el_n}"
    assert all(registry.metric_of(k, params).lower_is_forgotten for k in ("ma", "el_5", "extract_20", "extractable_frac"))
    with pytest.raises(KeyError, match="'el_10'"):
        registry.metric_of("el_10", params)  # el_n=5 measures EL_5 only
