"""Weights & Biases dashboards for a run (`logger=wandb`); nothing imports wandb otherwise.

Logs the resolved config, one history step per erasure epoch (loss, forget MA and EL_10, retain MA,
held-out perplexity), the final figures as the run summary (with the selectivity summaries and where the
wall time went), a per-example table keyed by doc_id, and the run's MA/EL curve and selectivity curve
(forget MA against retain MA) as images. Runs of one sweep share a W&B group (the sweep directory's name).
`logger.mode=offline` (the default) never needs or waits for a network: the run lands in
<run dir>/wandb/offline-run-*/ and `wandb sync` uploads it later; `online` works where a key exists.
Pile rows contain real names and e-mail addresses, so the table carries doc ids, not text, unless
`logger.log_text=true`.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .record import per_example_columns
from .run_record import RunRecord


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}/{key}" if prefix else str(key), item, out)
    elif isinstance(value, (int, float, bool)) or value is None:
        out[prefix] = value


class WandbLogger:
    def __init__(self, cfg: DictConfig, run_dir: Path, group: str | None = None):
        import wandb

        lcfg = cfg.logger
        self.wandb, self.log_text = wandb, bool(lcfg.log_text)
        self.run = wandb.init(
            project=lcfg.project, entity=lcfg.entity, group=lcfg.group or group, tags=list(lcfg.tags),
            name=f"{cfg.model.name}/{cfg.method.name}/{cfg.forget.size}-{cfg.forget.draw}",
            job_type=cfg.method.name, mode=lcfg.mode, dir=str(lcfg.dir or run_dir),
            config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous",
            settings=wandb.Settings(silent=True, x_disable_stats=True),
        )

    def log_epoch(self, line: dict) -> None:
        """One history step per train-log line (an erasure epoch), steps counted 1, 2, ... across the whole run:
        task_vector's fine-tune epochs and its alpha search each count from 1, and W&B drops a step that does
        not increase, so the line's own epoch is logged as `train/epoch` rather than used as the step."""
        self._step = getattr(self, "_step", 0) + 1
        values = {f"train/{k}": v for k, v in line.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log(values, step=self._step)

    def finish(self, results: RunRecord, per_example: list[dict], texts: dict | None = None,
               run_dir: Path | None = None) -> None:
        """The run's summary, its per-example table and, when it erased for some epochs, its trajectory
        plot (report/plots.curves, drawn into run_dir from the run's train log)."""
        summary: dict = {}
        for key, value in (("before", results.before), ("after", results.after), ("thresholds", results.thresholds),
                           ("heldout_ppl", results.heldout_ppl), ("selection", results.selection),
                           ("durability", results.durability), ("selectivity", results.selectivity),
                           ("phase_seconds", results.phase_seconds)):
            _flatten(key, value, summary)
        utility = results.utility or {}
        _flatten("utility", {"average_before": utility.get("average_before"),
                             "average_after": utility.get("average_after")}, summary)
        summary.update({"status": results.status, "epochs": results.epochs, "wall_seconds": results.wall_seconds})
        self.run.summary.update({k: v for k, v in summary.items() if v is not None})
        if per_example:
            columns = per_example_columns(per_example)  # the CSV's columns: the registered metrics, in order
            rows = [[row.get(c) for c in columns] for row in per_example]
            if self.log_text and texts:
                columns.append("text")
                rows = [row + [texts.get(str(row[0]), "")] for row in rows]
            self.run.log({"per_example": self.wandb.Table(columns=columns, data=rows)})
        if run_dir is not None and results.epochs:
            from dataclasses import replace

            from .report.plots import curves, selectivity

            for draw in (curves, selectivity):
                path = draw([replace(results, run_dir=str(run_dir))], Path(run_dir))
                if path is not None:
                    self.run.log({f"plots/{Path(path).stem}": self.wandb.Image(str(path))})
        self.run.finish()
