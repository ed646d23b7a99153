"""Sweeps: resumable job folders and progress for Hydra multiruns (sweeps/*.yaml).

- `${emso_job_key:${hydra.job.override_dirname}}` names a job folder by a hash of the job's overrides,
  not its number, so a re-run of the same sweep finds each job's folder again and skips the finished
  ones (app.py), whatever the order or the launcher.
- `SweepProgress` (a Hydra callback) prints which job of how many is running and an estimate of the
  time left: the mean duration of the jobs that ran x the jobs left / the launcher's parallel workers.
  A resumed sweep's skipped jobs count as done but take no time, so they are left out of the mean; a
  rate over the sweep's elapsed time would instead read 2x too high after the first of two parallel jobs.
  In a dry run (`dry_run=true`) it keeps each job's cost estimate and prints the sweep's total at the end
  (scale/estimate.py).
"""
from __future__ import annotations

import json
import logging
import math
import os
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
        if head:
            _append(config, {"job": config.hydra.job.num, "start": time.time()})

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if not _multirun(config):
            return
        path = _progress_file(config)
        if not path.exists():
            return
        event = {"job": config.hydra.job.num, "end": time.time(), "skipped": _skipped(job_return)}
        if config.get("dry_run"):
            from .scale.estimate import job_record

            event["cost"] = job_record(config)
        _append(config, event)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        head, events = lines[0], lines[1:]
        starts = {e["job"]: e["start"] for e in events if "start" in e}
        ends = [e for e in events if "end" in e]
        durations = [e["end"] - starts[e["job"]] for e in ends if not e.get("skipped") and e["job"] in starts]
        done = len(ends)
        left = time_left(durations, head["total"] - done, _workers(config))
        log.info("sweep: %d of %d jobs done (%d skipped), %s elapsed, about %s left",
                 done, head["total"], sum(bool(e.get("skipped")) for e in ends),
                 _fmt(time.time() - head["started"]), _fmt(left))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """A dry run's total over its jobs' cost estimates, on stdout after their plans."""
        path = _progress_file(config)
        if not config.get("dry_run") or not path.exists():
            return
        from .scale.estimate import sweep_lines

        events = [json.loads(line) for line in path.read_text().splitlines()[1:]]
        print("\n".join(sweep_lines([e.get("cost") for e in events if "end" in e])), flush=True)

    @staticmethod
    def _head(config: DictConfig) -> dict | None:
        path = _progress_file(config)
        try:
            return json.loads(path.read_text().splitlines()[0])
        except (OSError, IndexError, json.JSONDecodeError):
            return None


def time_left(durations: list[float], jobs_left: int, workers: int) -> float:
    """Seconds left: the mean duration of the jobs that ran, times the jobs left, shared among at most
    `workers` parallel workers (never more workers than jobs). NaN before any job has run."""
    if jobs_left <= 0:
        return 0.0
    if not durations:
        return math.nan
    return sum(durations) / len(durations) * jobs_left / max(1, min(workers, jobs_left))


def _workers(config: DictConfig) -> int:
    """The launcher's parallel jobs: joblib's n_jobs (-1: every core), submitit's array_parallelism, else 1."""
    launcher = config.hydra.get("launcher") or {}
    for key in ("n_jobs", "array_parallelism"):
        value = launcher.get(key)
        if isinstance(value, int) and value != 0:
            return value if value > 0 else max(1, (os.cpu_count() or 1) + 1 + value)
    return 1


def _append(config: DictConfig, event: dict) -> None:
    with open(_progress_file(config), "a") as fh:  # one short line a write: parallel workers do not interleave
        fh.write(json.dumps(event) + "\n")


def _skipped(job_return) -> bool:
    from hydra.core.utils import JobStatus

    return job_return is not None and job_return.status == JobStatus.COMPLETED and job_return.return_value == SKIPPED


def _fmt(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"
