"""Run the local lm-eval tasks on an in-memory model, fully offline, and flatten the figures.

    flat = evaluate_utility(model, tokenizer, ["emso_reasoning", "emso_wikitext2"], limit=200, batch_size=16)
    flat["emso_piqa/acc"], flat["emso_piqa/acc_stderr"], flat["emso_piqa/n"], flat["emso_piqa/chance"]

lm-eval is imported inside the functions: importing emso_bench.utility costs nothing (no torch,
lm-eval or datasets import), and a run that never evaluates utility never loads them.

How lm-eval is driven, and why:
* HFLM (as ChunkedHFLM, lm.py, which also scores answers longer than the context) wraps the model
  object and the tokenizer object (given no tokenizer it would look one up on the hub). It evaluates
  on the model's own device: HFLM ignores `device` for a model object, so `device` is only checked
  against it. The batch size goes to HFLM: simple_evaluate ignores its own for a ready LM object.
* TaskManager(include_path=TASKS_DIR, include_defaults=False): only the local tasks are indexed;
  indexing lm-eval's ~15k stock tasks would take ~20 s per call and nothing here needs them.
* num_fewshot=0, bootstrap_iters=0 (binomial stderrs are computed from p and n instead), and seeds
  None so that lm-eval does not reseed the global RNGs (they are restored afterwards regardless).
* The model's maximum length comes from its config (max_position_embeddings: 128 for the memorizer):
  longer contexts are truncated from the left, longer answers are scored in chunks (lm.py), rolling
  perplexity uses windows of that length and generation keeps the last max_length - max_gen_toks
  tokens of the prompt.
"""
from __future__ import annotations

from ..tasks import TASKS_DIR
from .catalog import check_names
from .isolation import offline_env, preserved_caller_state, quiet_lm_eval
from .results import flatten_results


def _check_device(model, device: str | None) -> None:
    """ValueError unless `device` (if given) is where the model's parameters are ('cuda' matches 'cuda:0')."""
    if device is None:
        return
    import torch

    want, have = torch.device(device), next(model.parameters()).device
    if want.type != have.type or (want.index is not None and want.index != have.index):
        raise ValueError(f"utility: the model is on {have}, not {device}; HFLM evaluates a model object "
                         "on its own device (move the model first)")


def run_lm_eval(
    model,
    tokenizer,
    tasks: list[str],
    limit: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    max_gen_toks: int | None = None,
    max_length: int | None = None,
    quiet: bool = True,
) -> dict:
    """lm-eval's raw simple_evaluate output (results, configs, n-samples, samples) for local tasks/groups.

    limit: items per task (the first ones, in file order; None: all). max_gen_toks overrides the
    dialogue tasks' 32. max_length overrides the model's context length (rolling window, truncation).
    The model's train mode, the tokenizer's pad token and the global RNG states are restored after.
    """
    tasks = list(tasks)
    check_names(tasks)
    _check_device(model, device)
    with offline_env(), quiet_lm_eval(quiet), preserved_caller_state(model, tokenizer):
        import lm_eval
        from lm_eval.tasks import TaskManager

        from .lm import ChunkedHFLM

        lm = ChunkedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
        return lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
            num_fewshot=0,
            bootstrap_iters=0,
            limit=limit,
            gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks is not None else None,
            log_samples=True,  # chance levels are read off the scored requests
            random_seed=None,
            numpy_random_seed=None,
            torch_random_seed=None,
        )


def evaluate_utility(
    model,
    tokenizer,
    tasks: list[str],
    limit: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    max_gen_toks: int | None = None,
    max_length: int | None = None,
    quiet: bool = True,
) -> dict:
    """Flat {"<task>/<metric>": value, "<task>/<acc>_stderr", "<task>/n", "<task>/chance"} (see results.py).

    tasks: local task and group names (emso_*; see emso_bench/tasks/README.md). Arguments as run_lm_eval.
    """
    return flatten_results(run_lm_eval(model, tokenizer, tasks, limit=limit, batch_size=batch_size, device=device,
                                       max_gen_toks=max_gen_toks, max_length=max_length, quiet=quiet))
