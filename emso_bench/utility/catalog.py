"""The names of the local lm-eval tasks and groups, read from emso_bench/tasks without importing lm-eval.

Each YAML there defines one task (`task: <name>`) or one group (`group: <name>`, `task: [members]`),
and its file is named after it. Group YAMLs are plain YAML (no `!function`), so they are read with
yaml.safe_load; task YAMLs are only listed by file name.
"""
from __future__ import annotations

from functools import lru_cache

import yaml

from ..errors import unknown
from ..tasks import TASKS_DIR

PREFIX = "emso_"  # every local task and group: never a stock lm-eval name


@lru_cache(maxsize=1)
def _groups() -> dict[str, tuple[str, ...]]:
    """{group: its direct members} over the group YAMLs."""
    groups = {}
    for path in sorted(TASKS_DIR.glob(f"{PREFIX}*.yaml")):
        text = path.read_text(encoding="utf-8")
        if "\ngroup:" in "\n" + text:
            cfg = yaml.safe_load(text)
            groups[cfg["group"]] = tuple(cfg["task"])
    return groups


def group_names() -> list[str]:
    """The local groups, sorted: emso_dialogue, emso_perplexity, emso_reasoning, emso_utility."""
    return sorted(_groups())


def task_names() -> list[str]:
    """The local leaf tasks, sorted."""
    groups = _groups()
    return sorted(p.stem for p in TASKS_DIR.glob(f"{PREFIX}*.yaml") if p.stem not in groups)


def check_names(names: list[str]) -> None:
    """Raise a UserError naming the first name that is neither a local task nor a local group."""
    known = set(task_names()) | set(group_names())
    for name in names:
        if name not in known:
            raise unknown("utility task or group", name, known)


def leaf_tasks(names: list[str]) -> list[str]:
    """The leaf tasks behind task and group names, groups expanded recursively, first occurrence kept."""
    check_names(list(names))
    groups, out = _groups(), []

    def visit(name: str) -> None:
        if name in groups:
            for member in groups[name]:
                visit(member)
        elif name not in out:
            out.append(name)

    for name in names:
        visit(name)
    return out
