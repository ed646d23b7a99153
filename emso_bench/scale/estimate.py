"""A run's cost estimate from its composed config, as the dry run prints it, and a sweep's total.

    emso-bench model=gpt-neo-2.7b distributed=zero3 distributed.nproc=8 dry_run=true
    emso-bench +sweeps=three_scales dry_run=true     # each job's estimate, then the sweep's total

The settings are the config's `cost` node: the GPU memory to check against, the TFLOP/s a GPU achieves
by training dtype, the MA charged to every EL_n row and the epochs charged (memory.py and compute.py
say what each figure counts). Memory is the peak of each phase on one GPU; GPU-hours are the run's
FLOPs at the stated throughput. Utility (lm-eval) FLOPs are not modelled; its memory is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import compute, memory
from .arch import Arch, arch_of

GiB = 2 ** 30
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
HALF = {"bf16": "bfloat16", "fp16": "float16"}  # distributed.precision -> the dtype DeepSpeed trains in
ACTIVE = ("selection", "step")  # the phases whose activations grow with the micro-batch


@dataclass
class Estimate:
    model: str
    arch: Arch
    method: str
    world: int
    dtype: str               # the training dtype the throughput is taken for
    micro_batch: int
    phases: dict[str, dict[str, int]]
    gpu_bytes: int
    largest_micro_batch: int | None
    flops: dict[str, float]
    tflops: float
    epochs: int
    epochs_from: str
    el_ma: float
    el_row: dict[str, float] = field(default_factory=dict)

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda p: sum(self.phases[p].values()))

    @property
    def peak_bytes(self) -> int:
        return sum(self.phases[self.peak_phase].values())

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.gpu_bytes

    @property
    def gpu_hours(self) -> float:
        return compute.gpu_hours(sum(self.flops.values()), self.tflops)

    def record(self) -> dict:
        """What a sweep sums (sweep.py keeps one per job)."""
        return {"model": self.model, "method": self.method, "gpu_hours": self.gpu_hours, "world": self.world,
                "peak_gib": self.peak_bytes / GiB, "fits": self.fits, "largest_micro_batch": self.largest_micro_batch}


def _rows(cfg) -> tuple[int, int, int]:
    """(forget, retain, unseen) row counts of the run, read from the config and the vendored subsets."""
    forget = cfg.forget
    if forget.get("subset"):
        from ..tdec import jang_subsets

        n = len(jang_subsets()[forget.subset]["doc_ids"])
    elif forget.get("path"):
        n = forget.size  # a user's file: not read by a dry run; forget.size stands in for its length
    else:
        n = forget.size
    build = cfg.model.get("build")
    if cfg.model.splits == "pool" and build is not None:
        retain = build.n_pool - n if forget.retain_size is None else min(forget.retain_size, build.n_pool - n)
        return n, retain, build.n_unseen
    return n, forget.retain_size or 0, 0


def _setting(cfg, arch: Arch) -> memory.Setting:
    d, s = cfg.distributed, cfg.select
    e = BYTES[cfg.model.dtype]
    stage = int(d.stage) if d.name != "none" else 0
    world = int(d.nproc) if stage else 1
    e_train = BYTES[HALF[d.precision]] if stage and d.precision in HALF else e
    return memory.Setting(method=cfg.method.name, rule=s.rule, eligible=arch.eligible(s.params),
                          fraction=float(s.fraction), e=e, e_train=e_train, world=world, stage=stage,
                          offload=stage > 0 and d.offload == "cpu", sharded_store=world > 1,
                          bucket=int(d.get("bucket_size") or 0))


def _phases(cfg, a: Arch, s: memory.Setting, rows: tuple[int, int, int], m_sel: int, m_step: int) -> dict:
    T, ev = cfg.model.target_length, cfg.eval
    B = max(1, min(ev.batch_size, math.ceil(max(rows) / s.world)))
    metrics = max(memory.teacher_forced(a, B, T, s.e), memory.branches(a, B, ev.branch_batch, T, s.e))
    weights = {"weights": a.total * s.e + a.buffers}
    phases = {"metrics before": dict(weights, **{"working set": metrics})}
    if cfg.method.name == "none":
        pass
    else:
        if s.rule in compute.GRADIENT_RULES:
            phases["selection"] = dict(memory.selection_state(a, s),
                                       activations=memory.train_activations(a, m_sel, T, s.e, "entropy"))
        state = memory.step_state(a, s)
        loss = "entropy" if cfg.method.name in memory.ENTROPY else "likelihood"
        phases["step"] = dict(state, activations=memory.PAIRED.get(s.method, 1)
                              * memory.train_activations(a, m_step, T, s.e_train, loss))
        measure = max(metrics, memory.perplexity(a, ev.ppl_windows, T, s.e))
        phases["metrics during erasure"] = dict(state, **{"working set": measure})
    if ev.get("utility"):
        phases["utility"] = dict(weights, **{"working set": memory.utility(a, ev.utility.batch_size, s.e)})
    return phases


def _largest_micro_batch(phases: dict, cfg, a: Arch, s: memory.Setting, gpu_bytes: int) -> int | None:
    """The largest micro-batch with which selection and step both fit, or None when none does."""
    T = cfg.model.target_length
    loss = "entropy" if cfg.method.name in memory.ENTROPY else "likelihood"
    per_row = {"selection": memory.train_activations(a, 1, T, s.e, "entropy"),
               "step": memory.PAIRED.get(s.method, 1) * memory.train_activations(a, 1, T, s.e_train, loss)}
    fits = [(gpu_bytes - sum(v for k, v in phases[p].items() if k != "activations")) // per_row[p]
            for p in ACTIVE if p in phases]
    best = min(fits) if fits else None
    return None if best is not None and best < 1 else best


def estimate(cfg) -> Estimate:
    """The estimate of one run (ValueError when its model or method is not modelled)."""
    if cfg.method.name in ("retrain", "task_vector"):
        raise ValueError(f"method={cfg.method.name} is not modelled (its cost is a fine-tune, not erasure epochs)")
    a = arch_of(cfg.model)
    s = _setting(cfg, a)
    rows = _rows(cfg)
    micro = int(cfg.method.get("micro_batch", 64))
    per_rank = math.ceil(rows[0] / s.world)
    m_sel = min(micro, per_rank)
    # the largest micro-batch of a step: engine.full_batch_step slices micro rows at a time; DeepSpeed
    # deals a rank's rows into equal chunks (distributed/config.py)
    m_step = math.ceil(per_rank / math.ceil(per_rank / micro)) if s.stage else min(micro, rows[0])
    cost = cfg.cost
    gpu_bytes = int(cost.gpu_memory_gib * GiB)
    phases = _phases(cfg, a, s, rows, m_sel, m_step)
    epochs = int(cost.epochs) if cost.epochs is not None else int(cfg.stop.max_epochs)
    shape = compute.RunShape(method=cfg.method.name, rule=cfg.select.rule, forget=rows[0], retain=rows[1],
                             unseen=rows[2], T=cfg.model.target_length, first=cfg.eval.el_first_prefix,
                             epochs=0 if cfg.method.name == "none" else epochs, ppl_windows=cfg.eval.ppl_windows,
                             unseen_after=cfg.eval.unseen_after, retain_batch=int(cfg.method.get("retain_batch", 0)),
                             per_epoch=sum({"retain": rows[1], "unseen": rows[2]}[n] for n in cfg.eval.get("per_epoch") or []))
    flops = compute.run_flops(a, shape, float(cost.el_ma))
    if cfg.method.name == "none":
        flops = {"metrics before": flops["metrics before"]}
    dtype = HALF.get(cfg.distributed.precision, cfg.model.dtype) if s.stage else cfg.model.dtype
    T, first = cfg.model.target_length, cfg.eval.el_first_prefix
    return Estimate(model=cfg.model.name, arch=a, method=cfg.method.name, world=s.world, dtype=dtype,
                    micro_batch=m_step, phases=phases, gpu_bytes=gpu_bytes,
                    largest_micro_batch=_largest_micro_batch(phases, cfg, a, s, gpu_bytes), flops=flops,
                    tflops=float(cost.tflops[dtype]), epochs=epochs,
                    epochs_from="cost.epochs" if cost.epochs is not None else
                    "stop.max_epochs: the budget, an upper bound; cost.epochs=N charges N",
                    el_ma=float(cost.el_ma),
                    el_row={"memorized": compute.el_row_flops(a, T, first, 1.0),
                            "unmemorized": compute.el_row_flops(a, T, first, 0.0),
                            "decoded": compute.decode_tokens(T, first)})


def component_bytes(cfg) -> dict[str, int]:
    """The model's bytes for each component scale/profile.py measures, in one process: the weights, plus
    the component's working set, plus what erasure holds when the component also runs during it."""
    est = estimate(cfg)
    a, T, ev = est.arch, cfg.model.target_length, cfg.eval
    e = BYTES[cfg.model.dtype]
    B = max(1, min(ev.batch_size, max(_rows(cfg))))
    weights = est.phases["metrics before"]["weights"]
    held = max(weights, sum(v for k, v in est.phases.get("metrics during erasure", {}).items() if k != "working set"))
    out = {"load": weights, "teacher-forced pass": held + memory.teacher_forced(a, B, T, e),
           "EL branches": held + memory.branches(a, B, ev.branch_batch, T, e),
           "held-out perplexity": held + memory.perplexity(a, ev.ppl_windows, T, e)}
    for phase in ("selection", "step", "utility"):
        if phase in est.phases:
            out[phase] = sum(est.phases[phase].values())
    if "step" in out and "selection" not in out:  # select=all: the masks, all True
        out["selection"] = weights + a.eligible(cfg.select.params)
    out["run"] = max(out.values())
    return out


def dry_run_lines(cfg) -> list[str]:
    """The cost section of `emso-bench dry_run=true` (run.plan), or one line saying why there is none."""
    try:
        return lines(estimate(cfg), cfg.eval.el_n)
    except ValueError as err:
        return [f"cost estimate: not available ({err})"]


def job_record(cfg) -> dict | None:
    """One sweep job's record for the sweep's total, or None when the job is not modelled."""
    try:
        return dict(estimate(cfg).record(), tflops=dict(cfg.cost.tflops))
    except (ValueError, KeyError):
        return None


def _gib(n: float) -> str:
    return f"{n / GiB:.1f}"


def lines(est: Estimate, el_n: int = 10) -> list[str]:
    """The dry run's cost section."""
    a = est.arch
    where = f"{est.world} GPUs" if est.world > 1 else "1 GPU"
    out = [f"cost estimate (emso_bench/scale: a model, not a measurement): {est.model}, {a.total:,} weights, "
           f"{est.method} on {where}, micro-batch {est.micro_batch}, trained in {est.dtype}",
           f"  memory per GPU, GiB (peak of each phase; {_gib(est.gpu_bytes)} GiB available, cost.gpu_memory_gib):"]
    for name, parts in est.phases.items():
        terms = " + ".join(f"{k} {_gib(v)}" for k, v in parts.items() if v)
        out.append(f"    {name:<24}{_gib(sum(parts.values())):>7} = {terms}")
    verdict = "fits" if est.fits else "does NOT fit"
    largest = est.largest_micro_batch
    out.append(f"  peak {_gib(est.peak_bytes)} GiB per GPU ({est.peak_phase}): {verdict}; largest micro-batch for "
               f"selection and step: {largest if largest is not None else 'none fits'} (method.micro_batch)")
    r = est.el_row
    out.append(f"  EL_{el_n} per row: memorized {r['memorized'] / 1e12:.2f} TFLOP (one teacher-forced pass), "
               f"unmemorized {r['unmemorized'] / 1e12:.2f} TFLOP ({r['decoded']:,} decoded tokens)")
    out.append(f"  steps: {est.epochs} epochs of one full-batch step ({est.epochs_from})")
    flops = ", ".join(f"{k} {v:.2e}" for k, v in est.flops.items())
    out.append(f"  FLOPs: {flops} (utility not modelled; every EL row at MA {est.el_ma}, cost.el_ma)")
    out.append(f"  estimated GPU-hours: {est.gpu_hours:.3g} at {est.tflops:g} TFLOP/s per GPU "
               f"(cost.tflops.{est.dtype}), {est.gpu_hours / est.world:.3g} h on {where}")
    return out


def sweep_lines(records: list[dict | None]) -> list[str]:
    """The sweep dry run's total over its jobs' records (None: a job not modelled)."""
    known = [r for r in records if r]
    hours = sum(r["gpu_hours"] for r in known)
    rates = ", ".join(sorted({f"{k} {v:g}" for r in known for k, v in r["tflops"].items()}))
    out = [f"sweep cost estimate: {len(records)} jobs, {hours:,.1f} GPU-hours over the {len(known)} modelled"
           + (f" ({len(records) - len(known)} not modelled)" if len(known) < len(records) else "")
           + f" (TFLOP/s per GPU: {rates}; cost.tflops)"]
    by_model: dict[str, list[dict]] = {}
    for r in known:
        by_model.setdefault(r["model"], []).append(r)
    for model, rs in by_model.items():
        bad = sum(not r["fits"] for r in rs)
        out.append(f"  {model}: {len(rs)} jobs, {sum(r['gpu_hours'] for r in rs):,.1f} GPU-hours, peak "
                   f"{max(r['peak_gib'] for r in rs):.1f} GiB per GPU, {bad} jobs do not fit")
    return out
