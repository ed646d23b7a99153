"""The run record's files: results.json (atomic), per_example.csv and train_log.jsonl in the run directory.

The report, the tests and the W&B logger read these files; results.json holds a `RunRecord`
(run_record.py), the contract in docs/design.md ("The run record"). `results.json` is written once per
state change with an atomic rename, so a reader never sees half a file and an interrupted run leaves the
previous one intact.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from . import __version__
from .run_record import FINISHED, SCHEMA_VERSION, RunRecord  # noqa: F401  (the declared record; FINISHED for readers)

RESULTS, PER_EXAMPLE, TRAIN_LOG = "results.json", "per_example.csv", "train_log.jsonl"


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temporary file in the same directory and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_results(run_dir: Path, results: RunRecord) -> None:
    write_atomic(run_dir / RESULTS, json.dumps(results.to_json(), indent=2, sort_keys=False, default=str) + "\n")


def read_results(run_dir: Path) -> dict | None:
    """The results.json of a run directory, or None when absent or unreadable."""
    try:
        return json.loads((run_dir / RESULTS).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_record(run_dir: Path) -> RunRecord | None:
    """The run record of a run directory, or None when results.json is absent or unreadable."""
    results = read_results(run_dir)
    return RunRecord.from_json(results) if isinstance(results, dict) else None


def is_finished(run_dir: Path) -> bool:
    rec = read_record(run_dir)
    return rec is not None and rec.finished


RUNTIME_KEYS = {"threads", "overwrite", "dry_run", "logger", "save_model", "device"}  # how a run executes, not what it computes


def config_changes(run_dir: Path, config: dict) -> list[str]:
    """'key: old -> new' for every key present in both the record's resolved config and `config` whose
    value differs (runtime keys aside): a finished run of another config must not pass for this one."""
    old = getattr(read_record(run_dir), "config", None)
    changes: list[str] = []

    def walk(a: dict, b: dict, prefix: str) -> None:
        for key in sorted(a.keys() & b.keys()):
            if prefix or key not in RUNTIME_KEYS:
                if isinstance(a[key], dict) and isinstance(b[key], dict):
                    walk(a[key], b[key], f"{prefix}{key}.")
                elif a[key] != b[key]:
                    changes.append(f"{prefix}{key}: {a[key]!r} -> {b[key]!r}")

    if isinstance(old, dict):
        walk(old, config, "")
    return changes


def per_example_columns(rows: list[dict]) -> list[str]:
    """The columns of the per-example rows (CSV and W&B table): every key of any row, first seen first."""
    return list(dict.fromkeys(k for row in rows for k in row))


def write_per_example(run_dir: Path, rows: list[dict]) -> None:
    """One row per (doc_id, split) with the metrics before and after, written atomically."""
    columns = per_example_columns(rows)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{PER_EXAMPLE}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, run_dir / PER_EXAMPLE)


class TrainLog:
    """train_log.jsonl: one JSON line per epoch, flushed as it is written. Opened (truncated) only
    when erasure starts, after every input has been validated."""

    def __init__(self, run_dir: Path, sink=None):
        self.path = run_dir / TRAIN_LOG
        self.sink = sink  # also called with every line (the W&B logger's log_epoch)
        self._fh = open(self.path, "w", encoding="utf-8")

    def write(self, line: dict) -> None:
        self._fh.write(json.dumps(line, default=float) + "\n")
        self._fh.flush()
        if self.sink is not None:
            self.sink(line)

    def close(self) -> None:
        self._fh.close()


def read_train_log(run_dir: Path | str | None) -> list[dict]:
    """The lines of a run's train_log.jsonl ([] when it has none: method=none, retrain)."""
    path = Path(run_dir) / TRAIN_LOG if run_dir else None
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class NullLog:
    """The train log of ranks other than 0: they write nothing."""

    def write(self, line: dict) -> None:
        pass

    def close(self) -> None:
        pass


def versions() -> dict:
    """Versions of the stack, read from package metadata (imports nothing heavy)."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "torch": version("torch"), "transformers": version("transformers"),
            "lm_eval": version("lm_eval"), "hydra": version("hydra-core"), "omegaconf": version("omegaconf"),
            "deepspeed": version("deepspeed"), "wandb": version("wandb"), "emso_bench": __version__}


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the suite's checkout when this process first asks (run.execute asks as a run starts), with
    '+dirty' when tracked files differ; None outside git. Asked once per process: a sweep worker keeps
    the code it imported, so a commit made while it runs must not be credited with its records."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None
