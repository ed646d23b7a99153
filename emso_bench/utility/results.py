"""Flatten lm-eval's output into {"<task>/<metric>": value} and summarize it.

Per leaf task: every metric lm-eval reports (its ',none' filter suffix dropped; another filter would be
kept as '<metric>[<filter>]'), `n` (items scored), `chance` (multiple choice: the mean over the scored
items of 1/number of choices; None for loglikelihood, generation and perplexity tasks) and, for each
accuracy (acc, acc_norm), the binomial standard error sqrt(p(1-p)/n). lm-eval's own stderr entries are
dropped: the suite runs with bootstrap_iters=0, where they read 'N/A'. Groups contribute their
aggregated metrics only (emso_reasoning/acc, emso_dialogue/f1).

average_accuracy is the unweighted mean of `acc` over the reasoning tasks asked for. `acc` rather than
`acc_norm`: all nine reasoning tasks report it (COPA, WinoGrande, LAMBADA and the two variants have no
acc_norm), it is the unnormalized log-likelihood choice that Jang et al. 2023 score, and it is what the
emso_reasoning group aggregates.
"""
from __future__ import annotations

import math

from .catalog import leaf_tasks

ACCURACIES = ("acc", "acc_norm")


def binomial_stderr(p: float, n: int) -> float:
    """sqrt(p(1-p)/n): the standard error of a proportion p over n independent items."""
    return math.sqrt(p * (1.0 - p) / n)


def chance_level(output_type: str, samples: list[dict]) -> float | None:
    """Mean of 1/(number of choices) over the scored items of a multiple-choice task, else None."""
    if output_type != "multiple_choice" or not samples:
        return None
    # One (context, continuation) request per choice; WinoGrande's per-option contexts count the same way.
    return sum(1.0 / len(s["arguments"]) for s in samples) / len(samples)


def _metric_key(task: str, key: str) -> str | None:
    """'<task>/<metric>' for an lm-eval 'metric,filter' key; None for stderr and bookkeeping entries."""
    if "," not in key:
        return None  # alias, name, sample_len, ...
    metric, filt = key.split(",", 1)
    if metric.endswith("_stderr"):
        return None
    return f"{task}/{metric}" if filt == "none" else f"{task}/{metric}[{filt}]"


def flatten_results(out: dict) -> dict:
    """lm-eval's simple_evaluate output (with samples logged) as one flat {"<task>/<key>": value} dict."""
    flat: dict = {}
    for task, metrics in out["results"].items():
        for key, value in metrics.items():
            name = _metric_key(task, key)
            if name is not None:
                flat[name] = value
        if task not in out["configs"]:
            continue  # a group: its aggregates only
        n = int(out["n-samples"][task]["effective"])
        flat[f"{task}/n"] = n
        flat[f"{task}/chance"] = chance_level(out["configs"][task]["output_type"], out.get("samples", {}).get(task, []))
        for metric in ACCURACIES:
            p = flat.get(f"{task}/{metric}")
            if p is not None:
                flat[f"{task}/{metric}_stderr"] = binomial_stderr(float(p), n)
    return flat


def average_accuracy(results: dict, tasks) -> float:
    """Unweighted mean of '<task>/acc' over the tasks (groups expanded) that report an accuracy.

    Tasks that were evaluated but report no accuracy (dialogue F1, perplexity) are skipped; a task that
    was not evaluated at all raises KeyError, and so does a selection without any accuracy.
    """
    accs = []
    for task in leaf_tasks(list(tasks)):
        if f"{task}/n" not in results:
            raise KeyError(f"utility task '{task}' is not in the results")
        if f"{task}/acc" in results:
            accs.append(float(results[f"{task}/acc"]))
    if not accs:
        raise KeyError(f"no accuracy among the utility tasks {list(tasks)}")
    return sum(accs) / len(accs)
