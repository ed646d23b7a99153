"""The metric registry: every per-example metric and its split summaries, declared once.

A metric is a function of one measured example (its tokens, the model's argmax predictions, its greedy
branches) registered with `@metric(...)` beside its definition (memorization.py). The registry drives
the per-example figures (`measure`), the split summaries (`summarize`), the per-example CSV and W&B
table (their columns, in registration order) and the report's per-split columns. docs/adding_a_metric.md
shows how to add one.

Keys are templates formatted with MetricParams' fields ("el_{el_n}" is "el_10" at el_n=10).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

REDUCERS = {  # how a summary reduces a split's per-example values
    "mean": lambda values, threshold: float(np.mean(values)),
    "max": lambda values, threshold: float(np.max(values)),
    "above_threshold": lambda values, threshold: float(np.mean([v > threshold for v in values])),
}


@dataclass(frozen=True)
class Example:
    """What a per-example metric sees of one measured row."""

    x: object  # the tokens x_0..x_{T-1} (a 1-D tensor)
    a: object  # a_t = argmax p(. | x_<t) for t = 1..T-1, from one teacher-forced pass
    branches: dict  # {(i, b): greedy continuation decoded at branch point b}; empty without EL
    i: int  # this row's index in `branches`


@dataclass(frozen=True)
class Summary:
    """One figure of a split: `reduce` over the metric's per-example values."""

    key: str  # its key in the record's before/after split dicts (a template)
    reduce: str  # a REDUCERS name; "above_threshold" needs the stop rule's threshold for the metric
    column: str | None = None  # the report's label, a template ("EL{el_n}": "forget EL10", ...); None: no column
    column_order: int = 100  # the column's place among a split's columns (lower first)


@dataclass(frozen=True)
class Metric:
    key: str  # its per-example key (a template)
    fn: Callable  # fn(example: Example, params: MetricParams) -> number or bool
    summaries: tuple[Summary, ...]
    lower_is_forgotten: bool  # whether a lower value means more forgotten
    needs_el: bool = False  # needs the decoded greedy branches: computed only when EL is measured


METRICS: list[Metric] = []


def metric(key: str, summaries: tuple[Summary, ...], lower_is_forgotten: bool, needs_el: bool = False):
    """Decorator: register fn as the per-example metric `key` (one key once)."""
    def register(fn: Callable) -> Callable:
        if any(m.key == key for m in METRICS):
            raise ValueError(f"metric {key!r} is registered twice")
        for s in summaries:
            if s.reduce not in REDUCERS:
                raise ValueError(f"metric {key!r}: summary {s.key!r} reduces by {s.reduce!r}; expected one of "
                                 f"{', '.join(REDUCERS)}")
        METRICS.append(Metric(key, fn, tuple(summaries), lower_is_forgotten, needs_el))
        return fn

    return register


def name(template: str, params) -> str:
    """A key template filled in with the metric parameters (a MetricParams)."""
    return template.format(**asdict(params))


def per_example(example: Example, params, with_el: bool) -> dict:
    """Every registered metric of one example, in registration order."""
    return {name(m.key, params): m.fn(example, params) for m in METRICS if with_el or not m.needs_el}


def summaries(rows: list[dict], params, thresholds: dict | None = None) -> dict:
    """Every registered summary of a split's rows: n, then each metric's in registration order. A metric
    that needs EL is summarized only when the rows carry it; "above_threshold" only with its threshold."""
    out: dict = {"n": len(rows)}
    for m in METRICS:
        key = name(m.key, params)
        if m.needs_el and not (rows and key in rows[0]):
            continue
        values = [r[key] for r in rows]
        for s in m.summaries:
            threshold = (thresholds or {}).get(key)
            if s.reduce == "above_threshold" and threshold is None:
                continue
            out[name(s.key, params)] = REDUCERS[s.reduce](values, threshold)
    return out


def columns(params) -> list[tuple[str, str]]:
    """(label, summary key) of the report's per-split columns, in column order."""
    listed = [(s.column_order, name(s.column, params), name(s.key, params)) for m in METRICS for s in m.summaries
              if s.column]
    return [(label, key) for _, label, key in sorted(listed, key=lambda c: c[0])]


def metric_of(summary_key: str, params) -> Metric:
    """The registered metric a split summary's key belongs to (its direction: `lower_is_forgotten`)."""
    for m in METRICS:
        if any(name(s.key, params) == summary_key for s in m.summaries):
            return m
    raise KeyError(f"no registered metric has a summary {summary_key!r}")


def unregister(key: str) -> None:
    """Remove a registered metric (tests that register a made-up one)."""
    METRICS[:] = [m for m in METRICS if m.key != key]
