"""The real-size benchmark's path on a reduced GPT-Neo: benchmarks/bench_scale.py builds a random model
of 125M's config with 2 blocks of width 64, runs EMSO and GA for one epoch through the CLI
(`model=gpt-neo-125m model.path=DIR`, a Jang et al. forget set, fixed thresholds, eval=default), and
every run writes a complete record with each component measured (T = 64 here: EL costs grow with T^2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from emso_bench.paths import REPO_DIR

COMPONENTS = {"load", "teacher-forced pass", "EL branches", "selection", "step", "held-out perplexity", "utility",
              "run"}


def test_a_reduced_gpt_neo_125m_writes_complete_records_for_emso_and_ga(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO_DIR / "benchmarks" / "bench_scale.py"), "--layers", "2", "--width", "64",
           "--heads", "2", "--subset", "lm_extraction_1_0", "--retain", "1", "--utility-limit", "1",
           "--tasks", "emso_copa", "--ppl-windows", "2", "--in-process", "--out", str(tmp_path),
           "model.target_length=64", "model.extract_context=32", "eval.extract_k=16"]
    proc = subprocess.run(cmd, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = {m["method"]: m for m in json.loads((tmp_path / "bench_scale.json").read_text())}
    assert set(runs) == {"emso", "ga"}
    for method, run in runs.items():
        assert run["missing"] == [], (method, run["missing"])
        results = json.loads((tmp_path / method / "results.json").read_text())
        assert results["epochs"] == 1 and results["model"] == "gpt-neo-125m"
        assert "model_path" not in results and results["config"]["model"]["path"] == str(tmp_path / "model")
        assert results["model_ref"] == {"name": "gpt-neo-125m", "memorizer_key": None, "hub_id": None,
                                        "weights_sha256": results["weights_sha256"]}  # a local folder: no path
        assert results["n_forget"] == 1 and results["utility"]["after"]["emso_copa/n"] == 1
        measured = run["profile"]["components"]
        assert set(measured) == COMPONENTS and all(c["calls"] >= 1 for c in measured.values()), method
        assert measured["step"]["calls"] == 1 and set(run["model"]) == COMPONENTS
    assert runs["emso"]["model"]["selection"] > runs["ga"]["model"]["selection"]  # two gradients and a store
    assert "| EL branches |" in proc.stdout and "model / measured" in proc.stdout
