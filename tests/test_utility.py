"""evaluate_utility (emso_bench/utility): the flat result dict, stderrs against p and n, the caller's state
left as it was, chunked scoring of long answers against a plain-torch spec, and cheap imports. Offline,
on the tiny random GPT-Neo of conftest.py with the vendored GPT-2 tokenizer.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from emso_bench.errors import UserError
from emso_bench.tasks import TASKS_DIR
from emso_bench.utility import average_accuracy, evaluate_utility, leaf_tasks


# ---------------------------------------------------------------- evaluate_utility


def test_evaluate_utility_flat_dict_and_caller_state(model, tokenizer):
    model.train()
    tokenizer.pad_token = None  # HFLM sets one; the caller's tokenizer must get its own back
    rng = torch.get_rng_state()
    flat = evaluate_utility(model, tokenizer, ["emso_reasoning"], limit=4, batch_size=8)
    assert model.training and tokenizer.pad_token is None and torch.equal(rng, torch.get_rng_state())
    tasks = leaf_tasks(["emso_reasoning"])
    for task in tasks:
        n, p = flat[f"{task}/n"], flat[f"{task}/acc"]
        assert n == 4 and 0.0 <= p <= 1.0
        assert flat[f"{task}/acc_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / n))
        if f"{task}/acc_norm" in flat:
            q = flat[f"{task}/acc_norm"]
            assert flat[f"{task}/acc_norm_stderr"] == pytest.approx(math.sqrt(q * (1 - q) / n))
    chance = {"emso_piqa": 1 / 2, "emso_copa": 1 / 2, "emso_winogrande": 1 / 2, "emso_hellaswag": 1 / 4,
              "emso_arc_easy": 1 / 4, "emso_arc_challenge": 1 / 4, "emso_mathqa_letters": 1 / 4,
              "emso_pubmedqa_options": 1 / 3}
    assert {t: flat[f"{t}/chance"] for t in chance} == pytest.approx(chance)
    assert flat["emso_lambada_openai/chance"] is None  # open-vocabulary completion
    assert "emso_lambada_openai/perplexity" in flat
    mean_acc = sum(flat[f"{t}/acc"] for t in tasks) / len(tasks)
    assert average_accuracy(flat, ["emso_reasoning"]) == pytest.approx(mean_acc)
    assert flat["emso_reasoning/acc"] == pytest.approx(mean_acc)  # lm-eval's own group aggregate
    with pytest.raises(KeyError):
        average_accuracy(flat, ["emso_dialogue"])


def test_evaluate_utility_rejects_unknown_task_and_wrong_device(model, tokenizer):
    with pytest.raises(UserError, match="emso_arc_easy"):
        evaluate_utility(model, tokenizer, ["emso_arc_esy"], limit=1, batch_size=1)
    with pytest.raises(ValueError, match="own device"):
        evaluate_utility(model, tokenizer, ["emso_copa"], limit=1, batch_size=1, device="meta")


def _direct_chunked_loglikelihood(model, context, continuation, max_length):
    """The spec of ChunkedHFLM in plain torch: chunks of max_length // 2 continuation tokens, each
    predicted from the max_length tokens that precede its end."""
    tokens, step, total = context + continuation, max_length // 2, 0.0
    for start in range(0, len(continuation), step):
        end = len(context) + min(start + step, len(continuation))
        window = tokens[max(0, end - max_length - 1):end]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([window[:-1]])).logits[0].double(), -1)
        n = end - len(context) - start
        targets = torch.tensor(window[-n:])
        total += logp[-n:].gather(1, targets[:, None]).sum().item()
    return total


def test_answers_longer_than_the_context_are_scored_in_chunks(model, tokenizer):
    from lm_eval.models.huggingface import HFLM

    from emso_bench.utility.lm import ChunkedHFLM

    model.eval()
    lm = ChunkedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=16)
    context, long_answer, short_answer = list(range(100, 120)), list(range(200, 237)), list(range(300, 305))
    (long_ll, _), (short_ll, _) = lm._loglikelihood_tokens([(("", ""), context, long_answer),
                                                            (("", ""), context, short_answer)])
    assert long_ll == pytest.approx(_direct_chunked_loglikelihood(model, context, long_answer, 16), rel=1e-4)
    plain = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=16)
    with pytest.raises(AssertionError):  # what the chunking is for
        plain._loglikelihood_tokens([(("", ""), context, long_answer)])
    assert short_ll == pytest.approx(plain._loglikelihood_tokens([(("", ""), context, short_answer)])[0][0])


# ---------------------------------------------------------------- imports


def test_imports_are_cheap_and_pull_no_wandb_or_deepspeed():
    code = (
        "import sys\n"
        "import emso_bench.utility\n"
        "heavy = [m for m in ('torch', 'lm_eval', 'datasets', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import lm_eval.evaluator, lm_eval.models.huggingface\n"
        "import emso_bench.tasks.dialogue, emso_bench.tasks.perplexity, emso_bench.tasks.reasoning\n"
        "bad = [m for m in ('wandb', 'deepspeed') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(TASKS_DIR.parent.parent)})
