"""Sweeps: every GPU-scale job composes (dry run), a killed sweep resumes with only the missing jobs,
and a sweep directory turns into tables and plots with missing and failed jobs shown."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose as hydra_compose, initialize_config_dir
from omegaconf import OmegaConf

from emso_bench.paths import CONF_DIR, REPO_DIR
from emso_bench.report.cli import write_report
from emso_bench.run import plan
from emso_bench.sweep import _fmt, _workers, count_jobs, sweep_jobs, time_left
from tests.helpers import compose, run_cli

CLI = "import sys; from emso_bench.app import cli; sys.argv[0]='emso-bench'; cli()"


def _sweep_jobs(sweep: str, extra: list[str]) -> list[list[str]]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_cfg = hydra_compose(config_name="config", overrides=[f"+sweeps={sweep}"], return_hydra_config=True)
    return sweep_jobs(extra, OmegaConf.to_container(hydra_cfg.hydra.sweeper.params))


def test_command_line_overrides_win_over_the_sweep_files_params_in_the_job_count():
    params = {"method": "emso", "forget.size": "128,256", "forget.draw": "1,2,3"}
    assert count_jobs([], params) == 6
    assert count_jobs(["forget.size=512", "forget.draw=1,2"], params) == 2
    assert count_jobs(["method=emso,ga"], params) == 12
    assert sweep_jobs(["forget.size=512"], {"forget.size": "128,256"}) == [["forget.size=512"]]


@pytest.mark.parametrize("sweep", ["comparison", "comparison_32", "durability"])
def test_the_long_sweeps_run_draw_by_draw_in_hydras_own_job_order(sweep):
    """Hydra's basic sweeper runs the product of the params in file order: draw-major files finish whole draws
    first, so a sweep stopped part-way holds complete draws."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_cfg = hydra_compose(config_name="config", overrides=[f"+sweeps={sweep}"], return_hydra_config=True)
    params = OmegaConf.to_container(hydra_cfg.hydra.sweeper.params)
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    jobs = BasicSweeper.split_arguments(overrides, None)[0]
    draws = [next(o for o in job if o.startswith("forget.draw=")) for job in jobs]
    assert len(set(draws)) == 3 and draws == sorted(draws)


def test_the_time_left_shares_the_jobs_left_among_the_launchers_parallel_workers():
    assert time_left([600.0], jobs_left=29, workers=2) == 29 * 600 / 2  # not 29 x 600: two run at once
    assert time_left([300.0, 900.0], jobs_left=1, workers=2) == 600  # one job left: one worker busy
    assert math.isnan(time_left([], jobs_left=5, workers=2)) and _fmt(math.nan) == "?"  # nothing ran yet: unknown
    assert time_left([], jobs_left=0, workers=2) == 0.0
    joblib = OmegaConf.create({"hydra": {"launcher": {"n_jobs": 2}}})
    slurm = OmegaConf.create({"hydra": {"launcher": {"array_parallelism": 64}}})
    every_core = OmegaConf.create({"hydra": {"launcher": {"n_jobs": -1}}})
    assert (_workers(joblib), _workers(slurm), _workers(OmegaConf.create({"hydra": {}}))) == (2, 64, 1)
    assert _workers(every_core) == os.cpu_count()


def test_the_report_expects_the_jobs_of_the_launch_with_command_line_overrides_winning(tmp_path):
    import yaml

    from emso_bench.report.collect import expected_jobs

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "overrides": {"task": ["+sweeps=emso_draws", "forget.size=128", "threads=1"]},
        "sweeper": {"params": {"method": "emso", "forget.size": "128,256", "forget.draw": "1,2,3"}}}}))
    jobs = expected_jobs(tmp_path)
    assert sorted(job["forget.draw"] for job in jobs) == ["1", "2", "3"]
    assert all(job == {"sweeps": "emso_draws", "method": "emso", "forget.size": "128", "forget.draw": job["forget.draw"]}
               for job in jobs)


def test_three_scales_composes_every_job_in_a_dry_run():
    """All 324 jobs composed once each (in process: the CLI composes every job twice, ~3.5 min) and
    planned by the app's own dry run."""
    jobs = _sweep_jobs("three_scales", [])
    assert len(jobs) == 3 * 9 * 4 * 3  # scales x methods x forget sizes x draws
    seen = set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for job in jobs:
            cfg = hydra_compose(config_name="config", overrides=["+sweeps=three_scales", "dry_run=true", *job])
            text = plan(cfg)
            assert text.startswith("# emso-bench dry run"), job
            assert f"model: {cfg.model.path}" in text and cfg.eval.name == "paper", job
            seen.add((cfg.model.name, cfg.method.name, cfg.forget.size, cfg.forget.draw))
    assert len(seen) == len(jobs)  # every job is a different run


def test_three_scales_dry_run_through_the_cli(tmp_path):
    """The real multirun path (sweeper, launcher, job folders) on a slice: 3 scales x 2 methods."""
    proc = run_cli(["+sweeps=three_scales", "dry_run=true", "method=emso,npo", "forget.size=1024",
                    "forget.draw=2", f"hydra.sweep.dir={tmp_path}"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "error:" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.count("# emso-bench dry run") == 3 * 2
    for model in ("gpt-neo-125m", "gpt-neo-1.3b", "gpt-neo-2.7b"):
        assert f"model: {compose([f'model={model}']).model.path}" in proc.stdout
    # each job's cost estimate, then the sweep's total of them (scale/estimate.py)
    hours = [float(h) for h in re.findall(r"estimated GPU-hours: ([\d.e+]+) at", proc.stdout)]
    total = re.search(r"sweep cost estimate: 6 jobs, ([\d,.]+) GPU-hours over the 6 modelled", proc.stdout)
    assert len(hours) == 6 and total, proc.stdout[-3000:]
    assert float(total.group(1).replace(",", "")) == pytest.approx(sum(hours), abs=0.1)


def _sweep(sweep_dir):
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR), OMP_NUM_THREADS="1")
    args = ["-m", "model=memorizer-micro", "debug=default", "method=none", "forget.draw=1,2,3",
            f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO_DIR, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finished(sweep_dir):
    return sorted(p.parent for p in sweep_dir.glob("*/results.json"))


def test_a_killed_sweep_resumes_with_only_the_missing_jobs_and_reports(micro_memorizer, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = _sweep(sweep_dir)
    deadline = time.time() + 600
    while not _finished(sweep_dir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # kill the sweep midway
    proc.wait()
    first = _finished(sweep_dir)
    assert 1 <= len(first) < 3, "the sweep should have been killed after its first job"
    stamps = {d: (d / "results.json").stat().st_mtime_ns for d in first}

    proc = _sweep(sweep_dir)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    done = _finished(sweep_dir)
    assert len(done) == 3
    assert all((d / "results.json").stat().st_mtime_ns == stamps[d] for d in first)  # not re-run
    assert err.count("already finished") == len(first)
    assert "job 3 of 3" in err and "left" in err  # progress: which job of how many, time left
    assert f"3 of 3 jobs done ({len(first)} skipped)" in err  # the time-left rate leaves skipped jobs out

    (done[-1] / "results.json").unlink()  # one job lost, another failed: both must show in the report
    failed = json.loads((done[0] / "results.json").read_text())
    (done[0] / "results.json").write_text(json.dumps(dict(failed, status="failed", error="planted")))
    report = write_report(sweep_dir, tmp_path / "report")
    statuses = " ".join(row["status"] for row in report["rows"])
    assert "1 failed" in statuses and "1 measured" in statuses and "1 missing" in statuses
    for name in ("report.md", "report.csv", "report.tex", "tradeoff.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "missing" in (tmp_path / "report" / "report.md").read_text()
