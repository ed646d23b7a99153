"""The local lm-eval tasks (emso_bench/tasks): the catalog, reasoning tasks against lm-eval's stock task
configs run on the same items, dialogue F1 against hand-computed values, perplexity against a direct
forward pass. Offline, on the tiny random GPT-Neo of conftest.py with the vendored GPT-2 tokenizer; no
figure is copied from a run.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from emso_bench.errors import UserError
from emso_bench.tasks import TASKS_DIR
from emso_bench.tasks.dialogue import dialogue_doc, read_dialogues, unigram_f1
from emso_bench.tasks.local_data import utility_rows
from emso_bench.tasks.reasoning import hellaswag_doc, split_hellaswag_ctx
from emso_bench.utility import evaluate_utility, group_names, leaf_tasks, run_lm_eval, task_names

N_STOCK_ITEMS = 20


# ---------------------------------------------------------------- task catalog


def test_catalog_matches_lm_eval_index():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert sorted(tm.all_subtasks) == task_names()
    assert sorted(tm.all_groups) == group_names()
    assert all(name.startswith("emso_") for name in tm.all_tasks)  # never a stock lm-eval name
    assert set(leaf_tasks(["emso_utility"])) == set(task_names())
    with pytest.raises(UserError, match="emso_piqa"):
        leaf_tasks(["emso_piq"])


# ---------------------------------------------------------------- local tasks == stock tasks


def _arc_doc(i, row):
    assert row["query"].startswith("Question: ")
    labels = "ABCDE"[: len(row["choices"])]
    return {"id": str(i), "question": row["query"][len("Question: "):],
            "choices": {"text": row["choices"], "label": list(labels)}, "answerKey": labels[row["gold"]]}


def _piqa_doc(i, row):
    assert row["query"].startswith("Question: ") and row["query"].endswith("\n")
    return {"goal": row["query"][len("Question: "):-1], "sol1": row["choices"][0], "sol2": row["choices"][1],
            "label": row["gold"]}


def _copa_doc(i, row):
    premise, connector = row["query"].rsplit(", ", 1)  # llm-foundry: "<premise w/o period>, <connector>"
    cap = [c[0].upper() + c[1:] for c in row["choices"]]  # SuperGLUE choices are capitalized sentences
    return {"premise": premise + ".", "question": {"because": "cause", "therefore": "effect"}[connector],
            "choice1": cap[0], "choice2": cap[1], "label": row["gold"], "idx": i}


def _winogrande_doc(i, row):
    a, b = row["context_options"]
    prefix = os.path.commonprefix([a, b])
    return {"sentence": prefix + "_ " + row["continuation"], "option1": a[len(prefix):],
            "option2": b[len(prefix):], "answer": str(row["gold"] + 1)}


STOCK = {  # local task: (stock YAML under lm_eval/tasks, local data file, local row -> stock doc)
    "emso_arc_easy": ("arc/arc_easy.yaml", "arc_easy.jsonl.gz", _arc_doc),
    "emso_piqa": ("piqa/piqa.yaml", "piqa.jsonl.gz", _piqa_doc),
    "emso_copa": ("super_glue/copa/default.yaml", "copa.jsonl.gz", _copa_doc),
    "emso_winogrande": ("winogrande/default.yaml", "winogrande.jsonl.gz", _winogrande_doc),
}


def _stock_config(local_task: str, tmp_path: Path) -> dict:
    """The stock task's own config (prompt, choices, metrics), its dataset pointed at stock-format docs
    built from the first local rows."""
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    yaml_path, data_file, to_stock = STOCK[local_task]
    docs = [to_stock(i, row) for i, row in enumerate(utility_rows(data_file)[:N_STOCK_ITEMS])]
    path = tmp_path / "stock.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    cfg = load_yaml(Path(lm_eval.tasks.__file__).parent / yaml_path, resolve_func=True)
    cfg.pop("tag", None)
    cfg.update(dataset_path="json", dataset_name=None, training_split=None, validation_split=None,
               test_split="test", dataset_kwargs={"data_files": {"test": str(path)}, "cache_dir": str(tmp_path / "hf")})
    return cfg


@pytest.mark.parametrize("local_task", sorted(STOCK))
def test_local_task_scores_like_stock_task(local_task, model, tokenizer, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    stock_cfg = _stock_config(local_task, tmp_path)
    stock_task = stock_cfg["task"]
    out = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16), tasks=[local_task, stock_cfg],
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        num_fewshot=0, bootstrap_iters=0, limit=N_STOCK_ITEMS, log_samples=True)
    ours, theirs = out["samples"][local_task], out["samples"][stock_task]
    assert len(ours) == len(theirs) == N_STOCK_ITEMS
    for a, b in zip(ours, theirs):
        assert a["arguments"] == b["arguments"]  # same prompts and continuations, request by request
        assert [r[0] for r in a["filtered_resps"]] == pytest.approx([r[0] for r in b["filtered_resps"]], abs=1e-4)
        assert a["acc"] == b["acc"]
    for key, value in out["results"][stock_task].items():
        if key.startswith("acc") and "stderr" not in key:
            assert out["results"][local_task][key] == pytest.approx(value)


def test_hellaswag_ctx_split_recovers_the_original_fields():
    # (ctx, ctx_a, ctx_b) of items of rowanz/hellaswag hellaswag_val.jsonl (ind 92, 180) and a WikiHow ctx
    assert split_hellaswag_ctx("A lady walks to a barbell. She bends down and grabs the pole. the lady") == (
        "A lady walks to a barbell. She bends down and grabs the pole.", "the lady")
    assert split_hellaswag_ctx("A man is holding a pocket knife while sitting on some rocks in the wilderness. then he") == (
        "A man is holding a pocket knife while sitting on some rocks in the wilderness.", "then he")
    wikihow = "How to make a guy crazy about you. Make eye contact."
    assert split_hellaswag_ctx(wikihow) == (wikihow, "")
    doc = hellaswag_doc({"activity_label": "Roof shingle removal", "ctx": "A man is sitting on a roof. he",
                         "endings": ["a", "b"], "label": 1})
    assert doc["query"] == "Roof shingle removal: A man is sitting on a roof. He"  # stock: ctx_b.capitalize()


# ---------------------------------------------------------------- dialogue F1


def test_unigram_f1_hand_computed():
    # pred -> cat sat on mat, ref -> cat is on mat: 3 shared of 4 and 4 tokens
    assert unigram_f1("The cat sat on the mat!", "A cat is on a mat.") == pytest.approx(0.75)
    # multiset overlap: red x1 + blue x1 = 2; P = 2/3, R = 2/4; F1 = 2PR/(P+R) = 4/7
    assert unigram_f1("red red blue", "Red, blue, green green") == pytest.approx(4 / 7)
    assert unigram_f1("It's fine.", "its FINE") == 1.0  # punctuation deleted, case folded
    assert unigram_f1("", "hello") == 0.0 and unigram_f1("the", "the") == 0.0  # nothing left to overlap


def test_dialogue_docs():
    assert dialogue_doc(["hi  there", "hello", "how are\nyou?"]) == {
        "prompt": "User 1: hi there\nUser 2: hello\nUser 1:", "target": "how are you?"}
    assert dialogue_doc(["a", "b", "c", "d"])["prompt"].endswith("User 1: c\nUser 2:")
    counts = {f: len(read_dialogues(f"{f}.json.gz")) for f in
              ("wizard_of_wikipedia", "wizard_of_internet", "empathetic_dialogues", "blended_skill_talk")}
    assert counts == {"wizard_of_wikipedia": 967, "wizard_of_internet": 516, "empathetic_dialogues": 2758,
                      "blended_skill_talk": 1009}


def test_dialogue_task_end_to_end(model, tokenizer):
    model.eval()
    out = run_lm_eval(model, tokenizer, ["emso_wizard_of_wikipedia"], limit=2, batch_size=1, max_gen_toks=8)
    samples = out["samples"]["emso_wizard_of_wikipedia"]
    assert len(samples) == 2
    f1s = []
    for s in samples:
        prompt, reply = s["arguments"][0][0], s["filtered_resps"][0]
        assert prompt == s["doc"]["prompt"] and prompt.endswith(("User 1:", "User 2:"))
        # The reply is the model's own greedy continuation, cut at the first newline, at most 8 tokens.
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
        text = tokenizer.decode(gen[0, ids.shape[1]:])
        assert reply == text.split("\n")[0].split(tokenizer.eos_token)[0]
        f1s.append(unigram_f1(reply, s["doc"]["target"]))
        assert s["f1"] == pytest.approx(f1s[-1])
    assert out["results"]["emso_wizard_of_wikipedia"]["f1,none"] == pytest.approx(sum(f1s) / 2)


# ---------------------------------------------------------------- perplexity


def test_gutenberg_perplexity_matches_a_direct_forward_pass(model, tokenizer):
    model.eval()
    out = run_lm_eval(model, tokenizer, ["emso_gutenberg_held_out"], limit=1, batch_size=1)
    sample = out["samples"]["emso_gutenberg_held_out"][0]
    text = sample["doc"]["text"]
    ids = [tokenizer.eos_token_id] + tokenizer(text)["input_ids"]  # one window: the doc fits in 2048 tokens
    assert len(ids) <= 2048
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].double(), -1)
    ll = logp.gather(1, torch.tensor(ids[1:])[:, None]).sum().item()
    n_bytes, n_words = len(text.encode("utf-8")), len(text.split())
    res = out["results"]["emso_gutenberg_held_out"]
    assert res["bits_per_byte,none"] == pytest.approx(-ll / n_bytes / math.log(2), rel=1e-4)
    assert res["byte_perplexity,none"] == pytest.approx(math.exp(-ll / n_bytes), rel=1e-4)
    assert res["word_perplexity,none"] == pytest.approx(math.exp(-ll / n_words), rel=1e-3)


def test_wikitext_perplexity_runs(model, tokenizer):
    flat = evaluate_utility(model, tokenizer, ["emso_wikitext2"], limit=1, batch_size=4, max_length=256)
    assert flat["emso_wikitext2/n"] == 1 and flat["emso_wikitext2/chance"] is None
    bpb, byte_ppl = flat["emso_wikitext2/bits_per_byte"], flat["emso_wikitext2/byte_perplexity"]
    assert all(math.isfinite(v) and v > 0 for v in (bpb, byte_ppl, flat["emso_wikitext2/word_perplexity"]))
    assert bpb == pytest.approx(math.log2(byte_ppl))


def test_wikitext_articles():
    from emso_bench.tasks.perplexity import load_wikitext2

    pages = load_wikitext2()["test"]["page"]
    assert len(pages) == 62  # WikiText-2's test articles
    assert all(p.lstrip("\n").startswith(" = ") and not p.lstrip("\n").startswith(" = = ") for p in pages)
