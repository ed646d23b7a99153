"""Every registered method runs end to end on the micro memorizer and writes a complete run record.

This is also the template a new method copies: register it, add conf/method/<name>.yaml, and it is
picked up here automatically (see docs/adding_a_method.md)."""
from __future__ import annotations

import json

import pytest

from emso_bench.registry import registered
from emso_bench.run import execute
from tests.helpers import compose

RECORD_KEYS = {"schema_version", "model", "method", "select", "forget", "n_forget", "seed", "status", "epochs",
               "steps", "wall_seconds", "thresholds", "metric_params", "model_ref", "weights_sha256", "splits",
               "before", "after", "utility", "selection", "distributed", "versions", "git_commit", "config_hash",
               "heldout_ppl"}


@pytest.mark.parametrize("name", registered())
def test_method_writes_a_complete_run_record(name, micro_memorizer, tmp_path):
    cfg = compose(["model=memorizer-micro", "debug=default", f"method={name}", "stop.max_epochs=2"])
    results = execute(cfg, tmp_path)
    assert RECORD_KEYS <= set(results)
    assert results["status"] in {"measured", "forgotten", "budget_exhausted", "collapsed", "retrained"}
    assert json.loads((tmp_path / "results.json").read_text())["status"] == results["status"]
    for when in ("before", "after"):
        assert set(results[when]) == {"forget", "retain", "unseen"}
    phases = results["phase_seconds"]  # where the wall time went, in the order the run spends it
    assert list(phases)[:2] == ["load", "measure_before"] and list(phases)[-1] == "general_after"
    assert min(phases.values()) >= 0 and sum(phases.values()) <= results["wall_seconds"] + 0.1
    if name != "none":
        assert "measure_after" in phases
        kept = results["after"]["retain"]["ma"] / results["before"]["retain"]["ma"]
        assert results["selectivity"]["retain_ma_kept_end"] == pytest.approx(kept)
    else:
        assert results["selectivity"] is None
    if name == "retrain":  # the oracle never saw the forget rows and saw every retained row as often as before
        before, after = results["before"], results["after"]
        assert after["forget"]["ma"] < before["forget"]["ma"] - 0.3
        assert after["retain"]["ma"] > after["forget"]["ma"] + 0.3  # a retrained micro model recites less well
        assert results["method_facts"]["left_out"] == results["n_forget"]
    elif name != "none":
        lines = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
        assert lines
        epochs = [line for line in lines if "forget_ma" in line]
        assert epochs and all("retain_ma" in line and "unseen_ma" not in line for line in epochs)  # eval.per_epoch
        assert "select" in results["phase_seconds"] and results["selectivity"]["epochs_logged"] == len(epochs)
        assert results["selection"]["n_selected"] > 0
        assert results["after"]["forget"]["ma"] != results["before"]["forget"]["ma"]  # the weights moved
