"""logger=wandb offline: a run leaves an offline W&B run whose history holds the per-epoch metrics,
with no network; and without logger=wandb nothing imports wandb."""
from __future__ import annotations

import json
import subprocess
import sys

from emso_bench.paths import REPO_DIR
from tests.helpers import read_wandb_history, run_cli


def test_offline_wandb_run_holds_the_per_epoch_metrics(micro_memorizer, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    env_extra = {"WANDB_BASE_URL": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # no network
    for key, value in env_extra.items():
        monkeypatch.setenv(key, value)
    proc = run_cli(["model=memorizer-micro", "debug=default", "logger=wandb", "stop.max_epochs=3",
                    "thresholds.source=fixed", "thresholds.el_10=0.0", "thresholds.ma=0.0",  # never forgotten: 3 epochs
                    f"hydra.run.dir={run_dir}"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    history = read_wandb_history(files[0])
    epochs = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    logged = [row for row in history if "train/forget_ma" in row]
    assert [row["_step"] for row in logged] == [line["epoch"] for line in epochs] == [1, 2, 3]
    assert [row["train/forget_ma"] for row in logged] == [line["forget_ma"] for line in epochs]
    assert [row["train/loss"] for row in logged] == [line["loss"] for line in epochs]
    assert [row["train/retain_ma"] for row in logged] == [line["retain_ma"] for line in epochs]  # the selectivity curve
    # the logger draws the run's trajectory plot itself and logs it beside the per-example table
    keys = {key.rsplit("/", 1)[0] for row in history for key in row}  # an image or a table: <key>/<field>
    assert (run_dir / "curves.png").exists() and {"plots/curves", "plots/selectivity", "per_example"} <= keys
    summary = {key: value for update in read_wandb_history(files[0], "summary") for key, value in update.items()}
    record = json.loads((run_dir / "results.json").read_text())
    assert summary["selectivity/retain_ma_kept_end"] == record["selectivity"]["retain_ma_kept_end"]
    assert summary["phase_seconds/erase"] == record["phase_seconds"]["erase"]


def test_nothing_imports_wandb_without_the_wandb_logger(micro_memorizer, tmp_path):
    code = ("import sys, os; sys.argv=['emso-bench', 'model=memorizer-micro', 'debug=default', 'method=none', "
            f"'hydra.run.dir={tmp_path}'];\nfrom emso_bench.app import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('WANDB_IMPORTED' if 'wandb' in sys.modules else 'WANDB_NOT_IMPORTED')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, timeout=600)
    assert "WANDB_NOT_IMPORTED" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "results.json").exists()


def test_every_train_log_line_gets_its_own_increasing_step_even_when_epochs_restart():
    from emso_bench.wandb_logger import WandbLogger

    class Run:
        def __init__(self):
            self.logged = []

        def log(self, values, step):
            self.logged.append((step, values))

    logger = WandbLogger.__new__(WandbLogger)  # no wandb.init: only the step bookkeeping is under test
    logger.run = Run()
    lines = [{"phase": "finetune", "epoch": 1, "nll": 0.5}, {"phase": "finetune", "epoch": 2, "nll": 0.2},
             {"phase": "negate", "alpha": 0.5, "epoch": 1, "forget_ma": 0.9}, {"phase": "negate", "epoch": 2, "forget_ma": 0.4}]
    for line in lines:
        logger.log_epoch(line)
    assert [step for step, _ in logger.run.logged] == [1, 2, 3, 4]  # task_vector's search is not dropped
    assert [values["train/epoch"] for _, values in logger.run.logged] == [1, 2, 1, 2]
    assert logger.run.logged[2][1] == {"train/alpha": 0.5, "train/epoch": 1, "train/forget_ma": 0.9}
