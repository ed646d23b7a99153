"""The declared run record: every field of results.json, what writes it and what reads it.

`run.execute` and the failure path (app.py) build a `RunRecord`; `record.write_results` writes it;
the report (collect, tables, pick, plots) and the W&B logger read it by field. docs/design.md ("The
run record") describes the fields. Schema versions:

- 1: the model's weights named by `model_path`, the machine path they were loaded from;
- 2: named portably by `model_ref` (name, memorizer key, hub id, weights hash); no machine path.

Version 1 records (docs/results/runs) still read: `model_path` is kept as read, never written anew.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

SCHEMA_VERSION = 2
FINISHED = ("measured", "forgotten", "budget_exhausted", "collapsed", "retrained")  # terminal states a re-run skips
STATUSES = FINISHED + ("failed",)  # "missing" is the report's stand-in for a job that left no record
_NOT_WRITTEN = ("run_dir", "overrides", "oracle")  # the report's own fields; not part of the file
_ONLY_WHEN_SET = ("model_ref", "model_path", "saved_model", "error", "traceback")  # absent from a file rather than null


@dataclass(kw_only=True)
class RunRecord:
    schema_version: int = SCHEMA_VERSION
    model: str | None = None  # the model config's name
    method: str | None = None
    select: str | None = None  # the selection rule
    forget: dict | None = None  # the resolved forget config (size, draw, subset, path)
    n_forget: int | None = None
    seed: int | None = None
    status: str  # one of STATUSES
    epochs: int | None = None
    steps: int | None = None
    wall_seconds: float | None = None
    erase_seconds: float | None = None
    phase_seconds: dict | None = None  # where the wall time went: load, measure_before, select, erase, measure_after, ...
    thresholds: dict | None = None  # {el_10, ma, source, ...}: the stop rule's thresholds
    metric_params: dict | None = None
    model_ref: dict | None = None  # version 2: {name, memorizer_key, hub_id, weights_sha256}
    model_path: str | None = None  # version 1 only: a machine path, read but never written anew
    weights_sha256: str | None = None
    splits: dict | None = None  # {split: {n, doc_ids_sha256, lengths}}
    before: dict | None = None  # {split: {summary key: value}}: the metric registry's summaries
    after: dict | None = None
    heldout_ppl: dict | None = None  # {before, after, ratio, windows, window, text}
    utility: dict | None = None
    durability: dict | None = None
    selectivity: dict | None = None  # emso_bench/selectivity.py: retain MA kept along the way, drop ratios r
    selection: dict | None = None
    method_facts: dict | None = None
    distributed: dict | None = None
    device: str | None = None
    torch_threads: int | None = None
    versions: dict | None = None
    git_commit: str | None = None
    config_hash: str | None = None
    config: dict | None = None  # the resolved config (unresolved on the failure path)
    notes: list | None = None
    saved_model: str | None = None  # the edited model's folder, relative to the run directory
    error: str | None = None  # failed runs: the one-line error and the traceback of a crash
    traceback: str | None = None
    extra: dict = field(default_factory=dict)  # keys this code does not declare (a newer writer's), kept as read
    run_dir: str | None = None  # the report's: where the record was found
    overrides: dict = field(default_factory=dict)  # the report's: the job's overrides (.hydra/overrides.yaml)
    oracle: "RunRecord | None" = field(default=None, repr=False)  # the report's: method=retrain on the same rows

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict:
        """The dict written to results.json: declared fields in order, then `extra`. A failed record
        leaves out what it never had; a finished one writes every field, null when not measured."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _NOT_WRITTEN or f.name == "extra":
                continue
            if value is None and (self.status == "failed" or f.name in _ONLY_WHEN_SET):
                continue
            out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict, run_dir: str | None = None, overrides: dict | None = None) -> "RunRecord":
        """A record from a results.json dict of any schema version (a file without a status reads as failed)."""
        declared = {f.name for f in fields(cls)} - set(_NOT_WRITTEN) - {"extra"}
        known = {k: v for k, v in data.items() if k in declared}
        known.setdefault("status", "failed")
        known.setdefault("schema_version", 1)
        return cls(**known, extra={k: v for k, v in data.items() if k not in declared}, run_dir=run_dir,
                   overrides=dict(overrides or {}))
