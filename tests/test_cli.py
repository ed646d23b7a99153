"""The command line end to end on the micro memorizer: a measured run writes the whole record without
notices that say nothing, and bad input gets one line, exit status 2, no traceback, and leaves an existing
record untouched (the whole run directory, when the input is refused as the config is composed)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli

MICRO = ["model=memorizer-micro", "debug=default"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory, micro_memorizer):
    """The finished run every test here reads or tries to spoil, and what the run printed on stderr."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = run_cli([*MICRO, "method=none", f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stderr


@pytest.fixture(scope="module")
def measured_run(measured):
    return measured[0]


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


def _every_file(run_dir):
    """Every file under the run directory, Hydra's .hydra/ and its log included."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


COMPOSITION = _every_file  # refused before Hydra writes into the run directory: nothing in it changes
AFTER_TOKENIZER = _record_files  # found once the tokenizer has read the rows: the record stays as it was


@pytest.mark.parametrize("args,message,untouched", [
    (["forget.size=-5"], "forget.size=-5: expected a whole number from 1 to 47", COMPOSITION),
    (["forget.size=0", "method=ga"], "forget.size=0: expected a whole number from 1 to 47", COMPOSITION),
    (["forget.size=abc"], "forget.size=abc: expected a whole number from 1 to 47", COMPOSITION),
    (["forget.draw=-1"], "forget.draw=-1: expected a whole number >= 0", COMPOSITION),
    (["forget.size=-5", "dry_run=true"], "forget.size=-5: expected a whole number", COMPOSITION),
    (["forget.path=/nonexistent/rows.jsonl"], "forget.path=/nonexistent/rows.jsonl: no such file", COMPOSITION),
    (["forget.path={bad}"], "line 1 is not a JSON object", COMPOSITION),
    (["forget.path={short}"], "shorter than the 100 tokens the metrics need", AFTER_TOKENIZER),
    (["model.path=/nonexistent/model"], "model.path=/nonexistent/model: no such model directory", COMPOSITION),
    (["method=emsoo"], "unknown method 'emsoo' (did you mean 'emso'?)", COMPOSITION),
    (["method=task_vector", "distributed=zero2"], "method=task_vector runs in one process only: use distributed=none",
     COMPOSITION),
])
def test_bad_input_is_one_line_exit_2_and_leaves_the_record_alone(measured_run, tmp_path, args, message, untouched):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"text": "far too short"}) + "\n")
    args = [a.format(bad=bad, short=short) for a in args]
    before = untouched(measured_run)
    proc = run_cli([*MICRO, *args, f"hydra.run.dir={measured_run}", "overwrite=true"])
    assert proc.returncode == 2
    if untouched is COMPOSITION:  # nothing but the one line: no log line, no warning
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and not proc.stdout, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert errors[-1].startswith("emso-bench: error: ") and message in errors[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert untouched(measured_run) == before


def test_a_run_prints_no_notice_that_says_nothing_about_it(measured):
    _, stderr = measured
    assert "Skipping publisher trust check" not in stderr  # the kernels package's offline notices
    assert "Token indices sequence length is longer" not in stderr  # held-out text the suite windows itself


def test_only_the_offline_kernel_notice_is_dropped(caplog):
    import logging

    from emso_bench.quiet import KERNELS_LOGGER

    logger = logging.getLogger(KERNELS_LOGGER)
    with caplog.at_level(logging.WARNING, logger=KERNELS_LOGGER):
        logger.warning("Skipping publisher trust check for 'kernels-community/flash-attn2' because Hugging Face "
                       "Hub is in offline mode.")
        logger.warning("Skipping publisher trust check for 'kernels-community/x': the Hub could not be reached")
        logger.warning("kernel 'x' failed to load")
    assert [r.getMessage() for r in caplog.records] == [
        "Skipping publisher trust check for 'kernels-community/x': the Hub could not be reached", "kernel 'x' failed to load"]


def test_a_finished_run_of_another_config_is_neither_skipped_nor_replaced(measured_run):
    before = _every_file(measured_run)
    proc = run_cli([*MICRO, "method=none", "seed=7", f"hydra.run.dir={measured_run}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "a finished run of another config (seed: 0 -> 7)" in proc.stderr.splitlines()[-1], proc.stderr[-2000:]
    assert _every_file(measured_run) == before  # .hydra/config.yaml still says seed 0
    before = _record_files(measured_run)
    same = run_cli([*MICRO, "method=none", "threads=1", f"hydra.run.dir={measured_run}"])  # runtime keys aside
    assert same.returncode == 0 and "already finished" in same.stderr + same.stdout, same.stderr[-2000:]
    assert _record_files(measured_run) == before


def test_a_multirun_job_refused_as_bad_input_never_replaces_a_finished_record(measured_run, tmp_path):
    """In a multirun a job's input is checked as the job starts, after its folder exists; refused input
    there leaves a finished record alone even under overwrite=true (a crash of a re-run does replace it)."""
    import shutil

    from emso_bench.app import _record_failure
    from tests.helpers import compose

    cfg = compose([*MICRO, "method=none", "overwrite=true"])
    job = tmp_path / "job"
    shutil.copytree(measured_run, job)
    finished = (job / "results.json").read_text()
    _record_failure(cfg, job, "forget.size=-5: expected a whole number", 0.0, bad_input=True)
    assert (job / "results.json").read_text() == finished
    _record_failure(cfg, job, "RuntimeError: out of memory", 0.0)  # the re-run overwrite=true asked for crashed
    assert json.loads((job / "results.json").read_text())["status"] == "failed"
