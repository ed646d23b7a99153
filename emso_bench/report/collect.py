"""Find the runs under a directory, and the jobs a sweep expected but did not finish.

A run is a folder with results.json. A Hydra sweep folder also holds multirun.yaml, from which the
expected jobs are enumerated (the product of every sweep override); each job folder's
.hydra/overrides.yaml says which job it is. Expected jobs without a record are reported as `missing`,
records with `status: failed` as failed: neither is ever dropped from a report.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..paths import CONF_DIR
from ..run_record import RunRecord

# The flags that do not name a job (threads, logger, ...): the same list Hydra leaves out of job folder names.
IGNORED_KEYS = frozenset(yaml.safe_load((CONF_DIR / "hydra" / "default.yaml").read_text())
                         ["job"]["config"]["override_dirname"]["exclude_keys"])


def _overrides(job_dir: Path) -> dict:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    pairs = (item.split("=", 1) for item in items if "=" in item)
    return {k.lstrip("+~"): v for k, v in pairs if k.lstrip("+~") not in IGNORED_KEYS}


def expected_jobs(sweep_dir: Path) -> list[dict]:
    """The override dicts of every job the last launch of the sweep in sweep_dir asked for, split as
    Hydra's basic sweeper splits them (command-line overrides win over the sweep file's params);
    [] when sweep_dir is not a sweep."""
    path = sweep_dir / "multirun.yaml"
    if not path.exists():
        return []
    from ..sweep import sweep_jobs

    hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
    jobs = sweep_jobs(list(hydra.get("overrides", {}).get("task", [])), hydra.get("sweeper", {}).get("params"))
    pairs = ((item.split("=", 1) for item in job) for job in jobs)
    return [{k.lstrip("+~"): v for k, v in job if k.lstrip("+~") not in IGNORED_KEYS} for job in pairs]


def _missing_record(job: dict) -> RunRecord:
    """A stand-in record for an expected job without results: its config composed, status `missing`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ..paths import CONF_DIR

    overrides = [f"{k}={v}" if not k.startswith("sweeps") else f"+{k}={v}" for k, v in job.items()]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return RunRecord(status="missing", model=cfg.model.name, method=cfg.method.name, select=cfg.select.rule,
                     forget=OmegaConf.to_container(cfg.forget, resolve=True), overrides=job)


def _rows_key(r: RunRecord) -> tuple | None:
    """Which rows a run erased: model, forget size and draw (None for a subset or a file)."""
    forget = r.forget or {}
    if forget.get("subset") or forget.get("path"):
        return None
    return (r.model, forget.get("size"), forget.get("draw"))


def attach_oracles(records: list[RunRecord]) -> None:
    """Give every record the finished retrain oracle (method=retrain) of the same model and forget rows, if the
    same report holds one: the report's gaps to the oracle read it."""
    oracles = {_rows_key(r): r for r in records if r.method == "retrain" and r.status == "retrained"}
    for r in records:
        key = _rows_key(r)
        r.oracle = oracles.get(key) if key is not None else None


def collect(root: Path) -> list[RunRecord]:
    """Every record under root (with the folder it was found in, the job's overrides and the oracle of its
    rows when one is there), and a `missing` stand-in for every job the sweep expected that left no record."""
    records = []
    for path in sorted(root.rglob("results.json")):
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError:
            results = {"status": "failed", "error": "unreadable results.json"}
        records.append(RunRecord.from_json(results, run_dir=str(path.parent), overrides=_overrides(path.parent)))
    found = [r.overrides for r in records]
    records += [_missing_record(job) for job in expected_jobs(root) if job not in found]
    attach_oracles(records)
    return records
