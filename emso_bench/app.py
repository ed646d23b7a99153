"""emso-bench: erase memorized sequences from a causal LM and measure what happened.

    emso-bench                                   # defaults: memorizer, 128-row forget draw
    emso-bench method=none eval=fast             # measure only
    emso-bench model=gpt-neo-125m forget.subset=lm_extraction_128_0
    emso-bench dry_run=true model=gpt-neo-2.7b   # compose, validate and print the plan; loads nothing
    emso-bench -m forget.draw=1,2,3              # a Hydra multirun; see sweeps/ for the paper's tables

One run: compose the config; load the model; build the forget/retain/unseen splits; measure them
"before"; erase (method=none skips this); measure "after"; write the run record (results.json,
per_example.csv, train_log.jsonl) into Hydra's run directory. A finished run directory is skipped
unless overwrite=true. Bad input ends with one line on stderr and exit status 2 before any weights load
and before anything is written into the run directory (`RefuseBadInput`, validate.py); inside a
multirun, a failing job records `status: failed` and the sweep goes on.
"""
from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from . import distributed, record, sweep  # noqa: F401  (sweep registers the job-folder resolver)
from .errors import UserError
from .paths import CONF_DIR
from .run_record import RunRecord

log = logging.getLogger("emso_bench")


def _run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _is_multirun() -> bool:
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> str | None:
    from .run import execute, plan
    from .validate import check_config

    run_dir = _run_dir()
    started = time.time()
    try:
        check_config(cfg)  # a single run's input was checked before Hydra wrote anything; a multirun job's here
        if cfg.dry_run:
            print(plan(cfg))
            return
        if record.is_finished(run_dir) and not cfg.overwrite:
            refuse_another_config(cfg, run_dir)
            log.info("already finished: %s (overwrite=true re-runs it)", run_dir)
            return sweep.SKIPPED  # the sweep's time-left estimate leaves skipped jobs out of its rate
        if cfg.distributed.name != "none" and not distributed.launched():
            _launch(cfg, run_dir, started)  # one distributed launch per run (per job in a sweep)
            return
        if distributed.launched() and _is_multirun():
            raise UserError("a multirun inside a distributed launch is not supported: launch the sweep plainly "
                            "(`emso-bench +sweeps=...`); each job then starts its own distributed run")
        group = Path(HydraConfig.get().sweep.dir).name if _is_multirun() else None
        execute(cfg, run_dir, group=group)
    except UserError as err:
        print(f"emso-bench: error: {err}", file=sys.stderr, flush=True)
        if not _is_multirun():
            sys.exit(2)
        if not cfg.dry_run:  # a dry run writes nothing, not even a failure
            _record_failure(cfg, run_dir, str(err), started, bad_input=True)
    except Exception as err:  # a bug or a crash: keep the traceback, record the failure
        _record_failure(cfg, run_dir, f"{type(err).__name__}: {err}", started, traceback.format_exc())
        if not _is_multirun():
            raise


def refuse_another_config(cfg: DictConfig, run_dir: Path) -> None:
    """A UserError when run_dir holds a finished run of another config (overwrite=true replaces it)."""
    if not record.is_finished(run_dir) or cfg.overwrite:
        return
    changes = record.config_changes(run_dir, OmegaConf.to_container(cfg, resolve=True))
    if changes:  # e.g. the memorizer was rebuilt with other settings since this sweep ran
        more = f" and {len(changes) - 2} more" if len(changes) > 2 else ""
        raise UserError(f"{run_dir / record.RESULTS}: a finished run of another config ({'; '.join(changes[:2])}"
                        f"{more}): overwrite=true replaces it, another hydra.run.dir or sweep dir keeps both")


class RefuseBadInput(Callback):
    """Hydra callback (conf/hydra/default.yaml): a single run's bad input ends here, in one line and exit
    status 2, before Hydra writes `.hydra/` and its log into the run directory, so that a finished run
    directory stays byte-identical, overwrite=true included. A multirun's jobs are checked as each starts
    (run.execute), where a failure is recorded and the sweep goes on."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from .validate import check_config

        task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])  # what main() receives
        try:
            check_config(task)
            if not task.dry_run:
                refuse_another_config(task, Path(config.hydra.run.dir))
        except UserError as err:
            print(f"emso-bench: error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)


def _launch(cfg: DictConfig, run_dir: Path, started: float) -> None:
    """Run this job as a torchrun/deepspeed launch of `distributed.nproc` processes and wait for it."""
    import subprocess

    from .distributed.config import launch_command, shell

    cmd = launch_command(cfg.distributed, list(HydraConfig.get().overrides.task), str(run_dir))
    log.info("launching: %s", shell(cmd))
    code = subprocess.run(cmd).returncode
    if code != 0 and not record.is_finished(run_dir):
        rec = record.read_record(run_dir)
        if rec is None or rec.status != "failed":
            _record_failure(cfg, run_dir, f"distributed launch exited with status {code}", started)
        if not _is_multirun():
            sys.exit(code)


def _record_failure(cfg: DictConfig, run_dir: Path, error: str, started: float, tb: str | None = None,
                    bad_input: bool = False) -> None:
    """Write a failed record, unless the directory holds a finished one that must stay: always on bad input
    (refused before the run began, overwrite=true or not), and on a crash unless overwrite=true re-ran it."""
    log.error("run failed: %s", error)
    if record.is_finished(run_dir) and (bad_input or not cfg.overwrite):
        return  # never replace a finished record with a run that never started
    record.write_results(run_dir, RunRecord(
        status="failed", error=error, traceback=tb, model=cfg.model.name, method=cfg.method.name,
        select=cfg.select.rule, seed=cfg.seed, forget=OmegaConf.to_container(cfg.forget, resolve=True),
        config=OmegaConf.to_container(cfg, resolve=False), wall_seconds=round(time.time() - started, 1),
        versions=record.versions(), git_commit=record.git_commit()))


def cli() -> None:
    """Console entry point: check group choices first, so that a typo is one line, not Hydra's page."""
    from .cli_check import check_overrides

    check_overrides("emso-bench", sys.argv[1:])
    main()


if __name__ == "__main__":  # `python -m emso_bench.app`: what the distributed launchers run
    cli()
