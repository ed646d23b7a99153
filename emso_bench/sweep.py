"""Sweeps: resumable job folders and progress for Hydra multiruns (sweeps/*.yaml).

- `${emso_job_key:${hydra.job.override_dirname}}` names a job folder by a hash of the job's overrides,
  not its number, so a re-run of the same sweep finds each job's folder again and skips the finished
  ones (app.py), whatever the order or the launcher.
- `SweepProgress` (a Hydra callback) prints which job of how many is running and an estimate of the
  time left, from the rate of the jobs that ran (a resumed sweep's skipped jobs count as done but take
  no time, so they would make the estimate far too short).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .hashing import config_hash

log = logging.getLogger("emso_bench.sweep")

SKIPPED = "skipped"  # what the app returns for a job whose record is already complete


def job_key(override_dirname: str) -> str:
    return config_hash(override_dirname)[:12]


if not OmegaConf.has_resolver("emso_job_key"):
    OmegaConf.register_new_resolver("emso_job_key", job_key)


def sweep_jobs(overrides: list[str], sweeper_params: dict | None) -> list[list[str]]:
    """Every job's overrides, split as Hydra's basic sweeper splits them: the sweep file's params first,
    then the command line's overrides, which win over a param of the same key."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={v}" for k, v in (sweeper_params or {}).items()] + list(overrides)
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
    return [job for batch in batches for job in batch]


def count_jobs(overrides: list[str], sweeper_params: dict | None) -> int:
    return len(sweep_jobs(overrides, sweeper_params))


def _multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return config.hydra.mode == RunMode.MULTIRUN


def _progress_file(config: DictConfig) -> Path:
    return Path(config.hydra.sweep.dir) / ".progress.jsonl"


class SweepProgress(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        total = count_jobs(list(config.hydra.overrides.task), OmegaConf.to_container(config.hydra.sweeper.params)
                           if config.hydra.sweeper.get("params") else None)
        path = _progress_file(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"total": total, "started": time.time()}) + "\n")
        log.info("sweep: %d jobs into %s", total, config.hydra.sweep.dir)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if not _multirun(config):
            return
        head = self._head(config)
        total = head["total"] if head else "?"
        log.info("sweep: job %d of %s: %s", config.hydra.job.num + 1, total, config.hydra.job.override_dirname)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if not _multirun(config):
            return
        path = _progress_file(config)
        if not path.exists():
            return
        with open(path, "a") as fh:
            fh.write(json.dumps({"job": config.hydra.job.num, "end": time.time(), "skipped": _skipped(job_return)}) + "\n")
        lines = path.read_text().splitlines()
        head, ends = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
        done, ran = len(ends), sum(not end.get("skipped") for end in ends)
        elapsed = time.time() - head["started"]
        left = (head["total"] - done) * elapsed / ran if ran else math.nan
        log.info("sweep: %d of %d jobs done (%d skipped), %s elapsed, about %s left",
                 done, head["total"], done - ran, _fmt(elapsed), _fmt(left))

    @staticmethod
    def _head(config: DictConfig) -> dict | None:
        path = _progress_file(config)
        try:
            return json.loads(path.read_text().splitlines()[0])
        except (OSError, IndexError, json.JSONDecodeError):
            return None


def _skipped(job_return) -> bool:
    from hydra.core.utils import JobStatus

    return job_return is not None and job_return.status == JobStatus.COMPLETED and job_return.return_value == SKIPPED


def _fmt(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"
