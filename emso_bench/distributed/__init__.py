"""Runs sharded with DeepSpeed (`distributed=zero2|zero3`): process-group helpers shared by the rest.

One run = one distributed launch (torchrun or DeepSpeed's launcher), every rank running the same
code. Ranks split the forget set (strided), the memorization metrics (each on its own rows, gathered)
and the record is written by rank 0 only. A sweep of such runs launches one distributed run per job
(app.py re-launches itself); a multirun is never nested inside a distributed launch.
"""
from __future__ import annotations

import os

import torch


def launched() -> bool:
    """True inside a torchrun / deepspeed launch (the launcher sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    return torch.distributed.get_rank() if active() else 0


def world() -> int:
    return torch.distributed.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(backend: str = "auto", cpu_shm: bool = True) -> None:
    """Initialize DeepSpeed's process group: NCCL on GPUs, gloo on CPUs. `cpu_shm=False` skips
    DeepSpeed's shared-memory op for CPU collectives (compiled on first use, about a minute)."""
    if active():
        return
    import deepspeed
    import deepspeed.comm.torch as ds_torch

    if not cpu_shm:
        ds_torch.build_shm_op = lambda: None
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    deepspeed.init_distributed(dist_backend=backend)


def shard(items: list, r: int | None = None, w: int | None = None) -> list:
    """This rank's share of a list: every world-th item from its rank (balanced, order kept)."""
    r, w = rank() if r is None else r, world() if w is None else w
    return items[r::w]


def unshard(parts: list[list]) -> list:
    """Inverse of shard over all ranks' parts: the items in their original order."""
    out, longest = [], max(len(p) for p in parts)
    for i in range(longest):
        out += [p[i] for p in parts if i < len(p)]
    return out


def gather(obj) -> list:
    """Every rank's obj, in rank order (all_gather_object); [obj] outside a process group."""
    if not active():
        return [obj]
    out = [None] * world()
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj):
    """Rank 0's obj on every rank."""
    if not active():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if active():
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def owners(sizes: dict[str, int], w: int | None = None) -> dict[str, int]:
    """name -> the rank that owns it: largest first to the least loaded rank (ties: the lower rank), so
    every rank computes the same assignment and each holds about 1/world of the total size."""
    w = world() if w is None else w
    load, out = [0] * w, {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        r = min(range(w), key=lambda i: (load[i], i))
        out[name] = r
        load[r] += sizes[name]
    return out


def reduce_to(tensor: torch.Tensor, dst: int) -> torch.Tensor | None:
    """The sum of `tensor` over ranks on rank `dst` (None on the others); the tensor itself alone."""
    if not active():
        return tensor
    torch.distributed.reduce(tensor, dst=dst, op=torch.distributed.ReduceOp.SUM)
    return tensor if rank() == dst else None


def broadcast_tensor(tensor: torch.Tensor, src: int) -> torch.Tensor:
    """Rank `src`'s tensor on every rank (in place into `tensor`, which has its shape elsewhere)."""
    if active():
        torch.distributed.broadcast(tensor, src=src)
    return tensor
