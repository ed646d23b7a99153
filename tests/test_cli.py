"""The command line end to end on the micro memorizer: a measured run writes the whole record, and bad
input gets one line, exit status 2, no traceback, and leaves an existing record untouched."""
from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli

MICRO = ["model=memorizer-micro", "debug=default"]


@pytest.fixture(scope="module")
def measured_run(tmp_path_factory, micro_memorizer):
    run_dir = tmp_path_factory.mktemp("run")
    proc = run_cli([*MICRO, "method=none", f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_a_measured_run_writes_the_run_record(measured_run):
    results = json.loads((measured_run / "results.json").read_text())
    assert results["status"] == "measured" and results["n_forget"] == 32
    for split in ("forget", "retain", "unseen"):
        for when in ("before", "after"):
            figures = results[when][split]
            assert {"n", "ma", "el_10", "extract_50", "extractable_frac", "el_10_max"} <= set(figures)
    assert results["thresholds"]["source"] == "unseen"
    assert results["metric_params"] == {"el_n": 10, "el_first_prefix": 1, "target_length": 100,
                                        "extract_context": 50, "extract_k": 50}
    assert set(results["versions"]) >= {"python", "torch", "transformers", "lm_eval", "hydra", "deepspeed", "emso_bench"}
    assert results["weights_sha256"] and results["config_hash"] and results["splits"]["forget"]["doc_ids_sha256"]
    lines = (measured_run / "per_example.csv").read_text().splitlines()
    assert lines[0].startswith("doc_id,split,ma_before") and len(lines) == 1 + 32 + 16 + 16


def _record_files(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.suffix in (".json", ".csv", ".jsonl")}


@pytest.mark.parametrize("args,message", [
    (["forget.path=/nonexistent/rows.jsonl"], "forget.path=/nonexistent/rows.jsonl: no such file"),
    (["forget.path={bad}"], "line 1 is not a JSON object"),
    (["forget.path={short}"], "shorter than the 100 tokens the metrics need"),
    (["model.path=/nonexistent/model"], "model.path=/nonexistent/model: no such model directory"),
    (["method=emsoo"], "unknown method 'emsoo' (did you mean 'emso'?)"),
    (["method=task_vector", "distributed=zero2"], "method=task_vector runs in one process only: use distributed=none"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_the_record_alone(measured_run, tmp_path, args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"text": "far too short"}) + "\n")
    args = [a.format(bad=bad, short=short) for a in args]
    before = _record_files(measured_run)
    proc = run_cli([*MICRO, *args, f"hydra.run.dir={measured_run}", "overwrite=true"])
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert errors[-1].startswith("emso-bench: error: ") and message in errors[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert _record_files(measured_run) == before


def test_a_finished_run_of_another_config_is_neither_skipped_nor_replaced(measured_run):
    before = _record_files(measured_run)
    proc = run_cli([*MICRO, "method=none", "seed=7", f"hydra.run.dir={measured_run}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "a finished run of another config (seed: 0 -> 7)" in proc.stderr.splitlines()[-1], proc.stderr[-2000:]
    assert _record_files(measured_run) == before
    same = run_cli([*MICRO, "method=none", "threads=1", f"hydra.run.dir={measured_run}"])  # runtime keys aside
    assert same.returncode == 0 and "already finished" in same.stderr + same.stdout, same.stderr[-2000:]
    assert _record_files(measured_run) == before
