"""Every method `method=<name>` can name: the modules that define them, listed once, here.

Each module's class declares its name with `@emso_bench.methods.register("<name>")`; this table says
which modules to import, so the list of methods is explicit and nothing is discovered by walking
packages. The method contract (RunContext, Outcome, register) lives in `emso_bench.methods`; methods
and baselines import it, and only this module imports them, so the import graph has no cycle.
"""
from __future__ import annotations

import importlib

METHOD_MODULES = (
    "emso_bench.methods.none",       # measure only
    "emso_bench.methods.emso",       # EMSO (our reconstruction)
    "emso_bench.methods.em",         # its ablation: entropy on every weight
    "emso_bench.methods.retrain",    # exact unlearning: the retrain oracle (memorizers)
    "emso_bench.baselines.ga",
    "emso_bench.baselines.gd",
    "emso_bench.baselines.kl",
    "emso_bench.baselines.npo",
    "emso_bench.baselines.dpo",
    "emso_bench.baselines.simnpo",
    "emso_bench.baselines.random_label",
    "emso_bench.baselines.task_vector",
)


def _load() -> dict:
    from .methods import REGISTRY

    for module in METHOD_MODULES:
        importlib.import_module(module)
    return REGISTRY


def get_method(name: str):
    """An instance of the method registered as `name`, or a one-line error with a did-you-mean."""
    from .errors import unknown

    methods = _load()
    if name not in methods:
        raise unknown("method", name, methods)
    return methods[name]()


def registered() -> list[str]:
    return sorted(_load())
