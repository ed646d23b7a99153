"""Find the runs under a directory, and the jobs a sweep expected but did not finish.

A run is a folder with results.json. A Hydra sweep folder also holds multirun.yaml, from which the
expected jobs are enumerated (the product of every sweep override); each job folder's
.hydra/overrides.yaml says which job it is. Expected jobs without a record are reported as `missing`,
records with `status: failed` as failed: neither is ever dropped from a report.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import yaml

IGNORED_KEYS = {"overwrite", "dry_run", "threads", "logger", "logger.mode"}  # as conf/hydra/default.yaml


def _overrides(job_dir: Path) -> dict:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    pairs = (item.split("=", 1) for item in items if "=" in item)
    return {k.lstrip("+~"): v for k, v in pairs if k.lstrip("+~") not in IGNORED_KEYS}


def expected_jobs(sweep_dir: Path) -> list[dict]:
    """The override dicts of every job the sweep in sweep_dir asked for ([] when it is not a sweep)."""
    path = sweep_dir / "multirun.yaml"
    if not path.exists():
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = yaml.safe_load(path.read_text())
    hydra = cfg.get("hydra", {})
    lines = list(hydra.get("overrides", {}).get("task", []))
    lines += [f"{k}={v}" for k, v in (hydra.get("sweeper", {}).get("params") or {}).items()]
    axes: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element().lstrip("+~")
        if key in IGNORED_KEYS:
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        axes[key] = values
    keys = sorted(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def _missing_record(job: dict) -> dict:
    """A stand-in record for an expected job without results: its config composed, status `missing`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ..paths import CONF_DIR

    overrides = [f"{k}={v}" if not k.startswith("sweeps") else f"+{k}={v}" for k, v in job.items()]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return {"status": "missing", "model": cfg.model.name, "method": cfg.method.name, "select": cfg.select.rule,
            "forget": OmegaConf.to_container(cfg.forget, resolve=True), "_overrides": job, "_dir": None}


def collect(root: Path) -> list[dict]:
    """Every record under root (results.json plus `_dir` and `_overrides`), and a `missing` stand-in for
    every job the sweep expected that left no record."""
    records = []
    for path in sorted(root.rglob("results.json")):
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError:
            results = {"status": "failed", "error": "unreadable results.json"}
        results["_dir"] = str(path.parent)
        results["_overrides"] = _overrides(path.parent)
        records.append(results)
    found = [r["_overrides"] for r in records]
    return records + [_missing_record(job) for job in expected_jobs(root) if job not in found]
