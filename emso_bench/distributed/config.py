"""The DeepSpeed config, generated from the Hydra `distributed` node, and the launch command.

An epoch stays one full-batch step: with N forget rows, world size W and micro-batch m, each rank
holds ceil(N/W) rows (strided; the last ranks may hold one fewer) in g = ceil(ceil(N/W)/m)
micro-batches, so every rank runs the same g forward/backward passes (ZeRO-3 gathers weights in
every forward: unequal counts would deadlock) and DeepSpeed steps once per epoch. The loss is
averaged per row over the whole forget set, not per micro-batch: each micro-batch contributes
sum(loss) * W / N, and DeepSpeed's average over ranks divides the W back out.
"""
from __future__ import annotations

import math
import shlex
import sys

from omegaconf import DictConfig

from ..errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")


def accumulation(n_rows: int, world: int, micro_batch: int) -> tuple[int, int]:
    """(rows on the fullest rank, micro-batches per rank)."""
    if n_rows < world:
        raise UserError(f"forget set of {n_rows} rows is smaller than the world size {world}: "
                        "use fewer processes (distributed.nproc)")
    per_rank = math.ceil(n_rows / world)
    return per_rank, math.ceil(per_rank / micro_batch)


def ds_config(dcfg: DictConfig, n_rows: int, world: int, micro_batch: int) -> dict:
    """A DeepSpeed config dict for one erasure run."""
    if dcfg.precision not in PRECISIONS:
        raise UserError(f"distributed.precision={dcfg.precision}: expected one of {', '.join(PRECISIONS)}")
    if dcfg.offload not in ("none", "cpu"):
        raise UserError(f"distributed.offload={dcfg.offload}: expected none or cpu")
    _, gas = accumulation(n_rows, world, micro_batch)
    zero = {"stage": int(dcfg.stage), "overlap_comm": False, "contiguous_gradients": True,
            "reduce_bucket_size": int(dcfg.bucket_size), "allgather_bucket_size": int(dcfg.bucket_size)}
    if int(dcfg.stage) == 3:
        zero.update({"stage3_prefetch_bucket_size": int(dcfg.bucket_size), "stage3_param_persistence_threshold": 0})
        del zero["allgather_bucket_size"]
    if dcfg.offload == "cpu":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
        if int(dcfg.stage) == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": gas,
        "train_batch_size": micro_batch * gas * world,
        "zero_optimization": zero,
        "bf16": {"enabled": dcfg.precision == "bf16"},
        "fp16": {"enabled": dcfg.precision == "fp16", "initial_scale_power": 16},
        "gradient_clipping": 0.0,                 # the erasure step is not clipped in one process either
        "zero_allow_untested_optimizer": True,    # the method's own torch optimizer (Adam)
        "zero_force_ds_cpu_optimizer": False,     # offload works with it too (no DeepSpeedCPUAdam build)
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def launch_command(dcfg: DictConfig, overrides: list[str], run_dir: str) -> list[str]:
    """The command that runs this job as one distributed launch of `dcfg.nproc` processes."""
    keep = [o for o in overrides if not o.startswith(("hydra.run.dir=", "hydra/launcher=", "hydra.launcher.",
                                                       "hydra.sweep.", "hydra.mode="))]
    args = keep + [f"hydra.run.dir={run_dir}", "hydra.mode=RUN"]  # one run: a sweep file's jobs never nest
    if dcfg.launcher == "deepspeed":
        return ["deepspeed", f"--num_gpus={dcfg.nproc}", "--module", "emso_bench.app", *args]
    if dcfg.launcher != "torchrun":
        raise UserError(f"distributed.launcher={dcfg.launcher}: expected torchrun or deepspeed")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={dcfg.nproc}",
            "-m", "emso_bench.app", *args]


def shell(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
