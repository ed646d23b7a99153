"""Memorization metrics: MA, EL_n, extract@k and their per-split summaries (see memorization.py)."""
from .memorization import MetricParams, measure, summarize

__all__ = ["MetricParams", "measure", "summarize"]
