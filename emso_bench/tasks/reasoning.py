"""Dataset hooks that rebuild lm-eval's stock prompts from the vendored copies of HellaSwag and COPA.

The other reasoning tasks need no Python: their local fields map onto the stock template directly (see
the YAMLs). These two copies lost the stock fields, so they are reconstructed:

* HellaSwag (rowanz's hellaswag_val.jsonl, reduced to activity_label/ctx/endings/label): the stock task
  builds `activity_label + ": " + ctx_a + " " + ctx_b.capitalize()`, but the copy only keeps
  `ctx = ctx_a + " " + ctx_b`. ctx_b is the lower-cased start of the next ActivityNet sentence and is
  empty for WikiHow items (whose ctx ends a sentence), so it is recovered as the text after the last
  sentence end of a ctx that does not itself end a sentence. A ctx_b that contains a sentence end of its
  own ("mr. smith") would be split wrongly: only its capitalization would differ from the stock prompt.
* COPA: llm-foundry writes `premise[:-1] + ", because|therefore"` with choices already starting in lower
  case; the stock task writes `premise[:-1] + " because|therefore"` and choices `" " + choice`.
"""
from __future__ import annotations

import re

import datasets

# The stock task's own text clean-up (WikiHow bracket artifacts; the copy is already cleaned, so it only
# collapses the odd double space, as the stock task does).
from lm_eval.tasks.hellaswag.utils import preprocess as hellaswag_preprocess

from emso_bench.tasks.local_data import utility_rows  # absolute: lm-eval loads this file by path

_LAST_SENTENCE_END = re.compile(r".*[.?!] ", re.S)  # greedy: up to the last "<end mark><space>"


def split_hellaswag_ctx(ctx: str) -> tuple[str, str]:
    """(ctx_a, ctx_b) recovered from ctx = ctx_a + ' ' + ctx_b (ctx_b may be '')."""
    if ctx.rstrip()[-1:] in ".?!":
        return ctx, ""
    head = _LAST_SENTENCE_END.match(ctx)
    if head is None:
        return ctx, ""
    return head.group(0)[:-1], ctx[head.end():]


def hellaswag_doc(row: dict) -> dict:
    """Stock fields query/choices/gold (and label), as lm-eval's hellaswag.utils.process_docs writes them."""
    ctx_a, ctx_b = split_hellaswag_ctx(row["ctx"])
    ctx = ctx_a + " " + ctx_b.capitalize()
    return {
        "query": hellaswag_preprocess(row["activity_label"] + ": " + ctx),
        "choices": [hellaswag_preprocess(ending) for ending in row["endings"]],
        "gold": int(row["label"]),
        "label": int(row["label"]),
    }


def load_hellaswag(data_file: str, **_ignored) -> dict[str, datasets.Dataset]:
    """lm-eval `custom_dataset` hook: the copy's rows in the stock fields (built once, not per access
    as a process_docs hook would be: lm-eval re-runs process_docs on every eval_docs access)."""
    return {"test": datasets.Dataset.from_list([hellaswag_doc(r) for r in utility_rows(data_file)])}


_COPA_CONNECTOR = re.compile(r", (because|therefore)$")


def copa_stock_text(query: str) -> str:
    """The stock COPA prompt (premise without its period + ' because|therefore') from llm-foundry's query."""
    match = _COPA_CONNECTOR.search(query)
    if match is None:
        raise ValueError(f"COPA query does not end with ', because' or ', therefore': {query!r}")
    return query[: match.start()] + " " + match.group(1)


def copa_doc(row: dict) -> dict:
    """Stock prompt in `query`; choices as the stock task writes them: ' ' + first letter lower-cased.

    With the default target_delimiter ' ' the scored continuation starts with two spaces; that is what
    lm-eval's stock `copa` scores too, and it is kept so the figures stay comparable with it.
    """
    return {
        "query": copa_stock_text(row["query"]),
        "choices": [" " + c[:1].lower() + c[1:] for c in row["choices"]],
        "gold": int(row["gold"]),
    }


def load_copa(data_file: str, **_ignored) -> dict[str, datasets.Dataset]:
    """lm-eval `custom_dataset` hook: the copy's rows with the stock prompt and choices."""
    return {"test": datasets.Dataset.from_list([copa_doc(r) for r in utility_rows(data_file)])}
