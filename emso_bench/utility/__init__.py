"""Utility after each erasure: the paper's lm-eval suite on an in-memory model, fully offline.

    from emso_bench.utility import evaluate_utility, average_accuracy
    flat = evaluate_utility(model, tokenizer, ["emso_reasoning"], limit=None, batch_size=16)
    average_accuracy(flat, ["emso_reasoning"])

The tasks themselves are lm-eval YAMLs in emso_bench/tasks (README.md there). Importing this package is
cheap: lm-eval, datasets and torch are imported only when an evaluation runs.
"""
from .catalog import group_names, leaf_tasks, task_names
from .evaluate import evaluate_utility, run_lm_eval
from .results import average_accuracy, binomial_stderr, flatten_results

__all__ = [
    "average_accuracy",
    "binomial_stderr",
    "evaluate_utility",
    "flatten_results",
    "group_names",
    "leaf_tasks",
    "run_lm_eval",
    "task_names",
]
