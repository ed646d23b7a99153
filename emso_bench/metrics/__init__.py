"""Memorization metrics: MA, EL_n, extract@k and their per-split summaries (see memorization.py), declared
in the metric registry (registry.py)."""
from . import registry
from .memorization import MetricParams, measure, summarize

__all__ = ["MetricParams", "measure", "registry", "summarize"]
