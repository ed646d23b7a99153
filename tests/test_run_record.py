"""The declared run record (emso_bench/run_record.py): a record of every status round-trips through
results.json, the failure path writes one, every committed record reads, and the report rebuilt from the
committed records gives the tables the committed reports (and the README) show."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from emso_bench import record
from emso_bench.paths import REPO_DIR
from emso_bench.report import pick
from emso_bench.report.collect import collect
from emso_bench.report.tables import aggregate, markdown, selectivity_markdown
from emso_bench.run_record import FINISHED, SCHEMA_VERSION, STATUSES, RunRecord

RUNS = REPO_DIR / "docs" / "results" / "runs"
COMMITTED = sorted(RUNS.rglob("results.json"))


def _finished(status: str) -> RunRecord:
    figures = {"n": 2, "ma": 0.5, "el_10": 0.25, "el_10_max": 0.5, "extract_50": 0.0, "extract_run": 3.0,
               "extractable_frac": 0.5}
    return RunRecord(status=status, model="memorizer", method="ga", select="all", forget={"size": 32, "draw": 1},
                     n_forget=32, seed=0, epochs=3, steps=3, wall_seconds=12.5, erase_seconds=9.0,
                     thresholds={"el_10": 0.01, "ma": 0.3, "source": "unseen"}, metric_params={"el_n": 10},
                     model_ref={"name": "memorizer", "memorizer_key": "7910908ffd50", "hub_id": None,
                                "weights_sha256": "abc"}, weights_sha256="abc",
                     splits={"forget": {"n": 32}}, before={"forget": figures}, after={"forget": figures},
                     heldout_ppl={"before": 10.0, "after": 11.0, "ratio": 1.1}, config={"seed": 0},
                     versions={"python": "3.11"}, notes=[])


@pytest.mark.parametrize("status", FINISHED)
def test_a_finished_record_round_trips_through_results_json(status, tmp_path):
    rec = _finished(status)
    record.write_results(tmp_path, rec)
    data = record.read_results(tmp_path)
    assert RunRecord.from_json(data) == rec
    assert data["schema_version"] == SCHEMA_VERSION and data["status"] == status and record.is_finished(tmp_path)
    assert "model_path" not in data and data["model_ref"]["memorizer_key"] == "7910908ffd50"
    assert "utility" in data and data["utility"] is None  # a finished record writes every field


def test_the_failure_path_writes_a_failed_record_that_round_trips(tmp_path):
    from emso_bench.app import _record_failure
    from tests.helpers import compose

    _record_failure(compose(["method=ga", "debug=default"]), tmp_path, "ValueError: boom", 0.0, "Traceback ...")
    data = record.read_results(tmp_path)
    rec = RunRecord.from_json(data)
    assert (rec.status, rec.error, rec.traceback, rec.method, rec.forget["size"]) == \
        ("failed", "ValueError: boom", "Traceback ...", "ga", 32)
    assert RunRecord.from_json(rec.to_json()) == rec and not record.is_finished(tmp_path)
    assert "before" not in data and "model_ref" not in data  # a failed record leaves out what it never had
    assert set(STATUSES) == set(FINISHED) | {"failed"}


def test_unknown_keys_are_kept_and_a_file_without_status_reads_as_failed():
    rec = RunRecord.from_json({"schema_version": 3, "status": "forgotten", "new_field": [1]})
    assert rec.extra == {"new_field": [1]} and rec.to_json()["new_field"] == [1]
    assert RunRecord.from_json({}).status == "failed"


def test_every_committed_record_reads_without_losing_a_field():
    assert len(COMMITTED) >= 100
    for path in COMMITTED:
        data = json.loads(path.read_text())
        rec = RunRecord.from_json(data)
        assert rec.status in STATUSES and not rec.extra, path
        kept = {k: v for k, v in rec.to_json().items() if v is not None}
        assert kept == {k: v for k, v in data.items() if v is not None}, path
        assert RunRecord.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("sweep", sorted(p.name for p in RUNS.iterdir()))
def test_the_report_from_committed_records_gives_the_committed_tables(sweep):
    records = collect(RUNS / sweep)
    assert len([r for r in records if r.run_dir]) == len(list((RUNS / sweep).rglob("results.json")))
    committed = (REPO_DIR / "docs" / "results" / f"{sweep}.md").read_text()
    table = markdown(aggregate(records))
    assert table in committed  # the README quotes these tables
    assert (selectivity_markdown(aggregate(records)) or "") in committed
    if "## Tuning choice per method" in committed:
        assert pick.markdown(pick.pick(records)) in committed


def test_a_run_names_its_model_portably_and_writes_no_machine_path(small_run, tmp_path):
    from emso_bench.run import execute
    from tests.helpers import compose

    from emso_bench.memorizer.prepare import _build_cfg

    cfg = compose(["method=none", "debug=default", "threads=1"])
    results = execute(cfg, tmp_path / "run")
    text = (tmp_path / "run" / "results.json").read_text()
    assert RunRecord.from_json(json.loads(text)).to_json() == results
    key = _build_cfg(cfg.model).key()  # the default memorizer's build key, from its config
    assert results["model_ref"] == {"name": "memorizer", "memorizer_key": key, "hub_id": None,
                                    "weights_sha256": results["weights_sha256"]}
    assert "model_path" not in results
    for path in (REPO_DIR, tmp_path, Path.home()):
        assert str(path) not in text, path


def test_the_readme_durability_table_is_the_mean_and_std_of_the_committed_records():
    """Every row of the README's durability table, recomputed literally from docs/results/runs/durability:
    mean ± sample std over the draws of each figure, '–' where no draw has one (recovery on `none`)."""
    runs_of: dict[str, list[dict]] = {}
    for path in sorted((RUNS / "durability").rglob("results.json")):
        data = json.loads(path.read_text())
        runs_of.setdefault(data["method"], []).append(data)
    assert len(runs_of) == 12 and all(len(runs) == 3 for runs in runs_of.values())
    readme = (REPO_DIR / "README.md").read_text()

    def cell(values) -> str:
        values = [v for v in values if math.isfinite(v)]
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if values else "–"

    def last(probe: dict, attack: str, key: str) -> float:
        curve = probe["relearn"]["attacks"][attack]
        return curve[str(max(int(s) for s in curve))][key]

    for method, runs in runs_of.items():
        d = [r["durability"] for r in runs]
        q = [p["quantize"]["variants"] for p in d]
        status = {r["status"] for r in runs}
        assert len(status) == 1
        name = "retrain (oracle)" if method == "retrain" else method
        row = (f"| {name} | 3 {status.pop()} | {cell([r['after']['forget']['ma'] for r in runs])} | "
               f"{cell([p['sampling']['best_match'] for p in d])} / {cell([p['sampling']['exact_frac'] for p in d])} | "
               + " | ".join(f"{cell([last(p, a, 'recovery_ma') for p in d])} / {cell([last(p, a, 'forget_el_10') for p in d])}"
                            for a in ("retain", "half"))
               + " | " + " / ".join(cell([v[k]["forget_ma"] for v in q]) for k in ("int8_channel", "int4_channel", "int4_g32"))
               + " | " + " / ".join(cell([p["mia_after"][k] for p in d]) for k in ("loss", "zlib", "min_k")) + " |")
        assert row in readme, row
