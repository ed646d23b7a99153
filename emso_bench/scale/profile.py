"""Per-component time and peak memory of a real run, measured on the run's own code path.

    with Profile("cpu") as prof:        # wraps the run's functions while active
        execute(cfg, run_dir)           # or the CLI in-process
    print(prof.table())

Each component is the function of the run path that does it: load (run.load_model), the
teacher-forced pass (metrics' teacher_forced), EL branches (greedy_branches), selection
(methods.gradient.select), one step (LocalTrainer.step / DeepSpeedTrainer.step), held-out perplexity
(measure's and the engine's perplexity) and utility (measure.measure_utility); `run` is run.execute as a whole.
Peak memory during a call: on a GPU, torch.cuda.max_memory_allocated (reset at the call's start and
carried to the calls around it); on a CPU, the process's resident set size sampled every 2 ms by a
thread. `base` is the reading when the profile started, before anything was loaded.
"""
from __future__ import annotations

import importlib
import os
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

TARGETS = [  # (module, attribute path, component)
    ("emso_bench.run", "execute", "run"),
    ("emso_bench.run", "load_model", "load"),
    ("emso_bench.metrics.memorization", "teacher_forced", "teacher-forced pass"),
    ("emso_bench.metrics.memorization", "greedy_branches", "EL branches"),
    ("emso_bench.methods.gradient", "select", "selection"),
    ("emso_bench.engine", "LocalTrainer.step", "step"),
    ("emso_bench.distributed.trainer", "DeepSpeedTrainer.step", "step"),
    ("emso_bench.measure", "perplexity", "held-out perplexity"),
    ("emso_bench.engine", "perplexity", "held-out perplexity"),
    ("emso_bench.distributed.trainer", "perplexity", "held-out perplexity"),
    ("emso_bench.measure", "measure_utility", "utility"),
]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


@dataclass
class Component:
    calls: int = 0
    seconds: float = 0.0
    peak: int = 0          # bytes: the highest reading during any call
    first_seconds: float = 0.0

    def record(self) -> dict:
        return {"calls": self.calls, "seconds": round(self.seconds, 2), "first_seconds": round(self.first_seconds, 2),
                "mean_seconds": round(self.seconds / max(1, self.calls), 2), "peak_bytes": self.peak}


@dataclass
class Profile:
    device: str = "cpu"
    components: dict[str, Component] = field(default_factory=dict)
    base: int = 0

    # memory readings: now (a call's start) and the peak since the last reset (a call's end) --------------
    def _now(self) -> int:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.memory_allocated()
        return _rss()

    def _peak(self) -> int:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated()
        return _rss()

    def _sample(self) -> None:
        while self._running:
            value = _rss()
            for frame in self._active:
                frame[1] = max(frame[1], value)
            time.sleep(0.002)

    # wrapping ------------------------------------------------------------------------------------------
    def _wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            frame = [name, self._now()]
            if self.device.startswith("cuda"):
                import torch

                for outer in self._active:  # the peak so far belongs to the calls around this one
                    outer[1] = max(outer[1], torch.cuda.max_memory_allocated())
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            self._active.append(frame)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.device.startswith("cuda"):
                    import torch

                    torch.cuda.synchronize()
                seconds = time.perf_counter() - started
                self._active.remove(frame)
                peak = max(frame[1], self._peak())
                for outer in self._active:
                    outer[1] = max(outer[1], peak)
                c = self.components.setdefault(name, Component())
                c.first_seconds = c.first_seconds if c.calls else seconds
                c.calls, c.seconds, c.peak = c.calls + 1, c.seconds + seconds, max(c.peak, peak)

        return timed

    def __enter__(self) -> "Profile":
        self._stack, self._active, self._running = ExitStack(), [], True
        for module_name, path, name in TARGETS:
            owner = importlib.import_module(module_name)
            *parents, attr = path.split(".")
            for part in parents:
                owner = getattr(owner, part)
            original = getattr(owner, attr)
            setattr(owner, attr, self._wrap(name, original))
            self._stack.callback(setattr, owner, attr, original)
        self.base = self._now()
        if not self.device.startswith("cuda"):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._running = False
        if not self.device.startswith("cuda"):
            self._thread.join()
        self._stack.close()

    def record(self) -> dict:
        return {"device": self.device, "base_bytes": self.base,
                "components": {name: c.record() for name, c in self.components.items()}}


def table(record: dict, model_bytes: dict[str, int] | None = None) -> str:
    """A markdown table of a profile's record; `model_bytes` adds the cost model's figure per component."""
    head = "| component | calls | first s | mean s | total s | peak GiB | above base GiB |"
    rule = "|---|---|---|---|---|---|---|"
    if model_bytes:
        head, rule = head + " model GiB | model / measured |", rule + "---|---|"
    rows = [head, rule]
    base = record["base_bytes"]
    for name, c in record["components"].items():
        above = c["peak_bytes"] - base
        row = (f"| {name} | {c['calls']} | {c['first_seconds']:.1f} | {c['mean_seconds']:.1f} | {c['seconds']:.1f} | "
               f"{c['peak_bytes'] / 2**30:.2f} | {above / 2**30:.2f} |")
        if model_bytes:
            m = model_bytes.get(name)
            row += f" {m / 2**30:.2f} | {m / above:.2f} |" if m and above > 0 else " – | – |"
        rows.append(row)
    return "\n".join(rows)
