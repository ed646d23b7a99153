"""Catch unknown config-group choices (method=foo) before Hydra does, with a one-line error.

Hydra reports an unknown option over several lines; users script against this command, so the
suite answers `emso-bench: error: unknown method 'foo' (did you mean 'emso'?); expected one of: ...`
with exit status 2. Only plain `group=choice[,choice...]` overrides of the suite's own groups are
checked; anything else (sweep functions, `+key=`, dotted keys) is left to Hydra.
"""
from __future__ import annotations

import re
import sys

from .errors import unknown
from .paths import CONF_DIR

_PLAIN = re.compile(r"^([A-Za-z_][\w-]*)=([\w.,-]+)$")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_overrides(prog: str, argv: list[str]) -> None:
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()} - {"hydra"}
    for arg in argv:
        match = _PLAIN.match(arg)
        if not match or match.group(1) not in groups:
            continue
        group, choices = match.group(1), match.group(2).split(",")
        options = group_options(group)
        for choice in choices:
            if choice not in options and choice != "null":
                print(f"{prog}: error: {unknown(group, choice, options)}", file=sys.stderr, flush=True)
                sys.exit(2)
