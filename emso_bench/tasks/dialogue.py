"""Dialogue F1: the model's greedy reply to a dialogue history, scored against the reference last turn.

Data: emso_bench/data/dialogue/<name>.json.gz, `{"text": {"0": [turn, turn, ...], "1": [...], ...}}`
(pandas' to_json of a one-column frame: one dialogue per key, in key order). As in Jang et al. 2023
(knowledge-unlearning, `Datasets.create_dialogue_prompt`), the target is the LAST turn and the prompt
is the history with alternating speaker labels, ending with the label of the speaker who replies:

    User 1: <turn 1>
    User 2: <turn 2>
    ...
    User 2:

The model continues greedily until a newline, at most max_gen_toks (32, set in the YAMLs) tokens.
Turns are whitespace-collapsed (a few contain newlines or runs of spaces); ParlAI's normalize_reply
casing fix-ups used by Jang et al. are not applied (F1 lower-cases and strips punctuation anyway).

F1 is the SQuAD-style unigram F1 of Jang et al.'s `_f1_score`: both strings lower-cased, characters of
string.punctuation deleted, the words a/an/the removed, split on whitespace; F1 = 2PR/(P+R) over the
multiset overlap of the tokens, 0 when nothing overlaps (so an empty reply scores 0).
"""
from __future__ import annotations

import gzip
import json
import re
import string
from collections import Counter
from pathlib import Path

import datasets

DIALOGUE_DIR = Path(__file__).resolve().parent.parent / "data" / "dialogue"
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def read_dialogues(data_file: str) -> list[list[str]]:
    """The dialogues of one file, each a list of turns, in the file's key order."""
    with gzip.open(DIALOGUE_DIR / data_file, "rt", encoding="utf-8") as f:
        return list(json.load(f)["text"].values())


def dialogue_prompt(history: list[str]) -> str:
    """'User 1: ...\\nUser 2: ...\\n' over the history, then the next speaker's label ('User k:')."""
    lines = [f"User {i % 2 + 1}: {' '.join(turn.split())}" for i, turn in enumerate(history)]
    return "\n".join(lines + [f"User {len(history) % 2 + 1}:"])


def dialogue_doc(turns: list[str]) -> dict:
    """One lm-eval doc: the prompt over all turns but the last, the last turn as the target."""
    return {"prompt": dialogue_prompt(turns[:-1]), "target": " ".join(turns[-1].split())}


def load_dialogues(data_file: str, **_ignored) -> dict[str, datasets.Dataset]:
    """lm-eval `custom_dataset` hook: {'test': one doc per dialogue of DIALOGUE_DIR/data_file}."""
    return {"test": datasets.Dataset.from_list([dialogue_doc(t) for t in read_dialogues(data_file)])}


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lower-case, delete punctuation, drop articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def unigram_f1(prediction: str, reference: str) -> float:
    """Unigram F1 between the normalized token multisets; 0.0 when they share no token."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """lm-eval process_results hook: the F1 of the (single) generated reply against the target."""
    return {"f1": unigram_f1(results[0], doc["target"])}
