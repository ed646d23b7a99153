"""Rolling-perplexity documents: WikiText-2 test articles and held-out Gutenberg prose.

lm-eval scores each document with `loglikelihood_rolling` (the whole text, in windows of the model's
maximum length, every token predicted once) and reports word_perplexity, byte_perplexity and
bits_per_byte over the summed log-likelihoods.

* WikiText-2: the vendored test.txt.gz is the tokenized `wikitext-2-v1` text (with <unk>), not the raw
  text of lm-eval's stock `wikitext` task (EleutherAI/wikitext_document_level, wikitext-2-raw-v1). It is
  split into its 62 articles as that dataset does: a page starts at each top-level heading line
  ' = Title = ' (not ' = = Section = = '), lines joined with '\\n'. The stock detokenizer and the stock
  process_results (words and bytes counted on the text before detokenization) are reused as they are.
* Gutenberg: the held-out paragraphs (last 5% of each novel, `emso_bench.corpus.gutenberg_split`)
  packed in order into documents of at least GUTENBERG_DOC_WORDS words, paragraphs joined with a blank
  line as in the memorizer's training text; a paragraph is never split (a document may straddle two
  novels). Words and bytes are counted on the document text (lm-eval's default for rolling tasks).
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import datasets

# The stock task's own functions: same detokenization and same word/byte counts as lm-eval's `wikitext`.
from lm_eval.tasks.wikitext.preprocess_wikitext import (  # noqa: F401  (re-exported for the YAML)
    process_results as wikitext_process_results,
    wikitext_detokenizer,
)

WIKITEXT_DIR = Path(__file__).resolve().parent.parent / "data" / "wikitext2"
GUTENBERG_DOC_WORDS = 1000  # ~150 documents over the ~150k held-out words: `limit` stays fine-grained
_TOP_HEADING = re.compile(r"^ = [^=].* = $")


def wikitext_pages(text: str) -> list[str]:
    """The articles of a WikiText file: a new page at each top-level heading, blank-only pages dropped."""
    pages, lines = [], []
    for line in text.split("\n"):
        if _TOP_HEADING.match(line) and lines:
            pages.append("\n".join(lines))
            lines = []
        lines.append(line)
    pages.append("\n".join(lines))
    return [p for p in pages if p.strip()]


def load_wikitext2(split: str = "test", **_ignored) -> dict[str, datasets.Dataset]:
    """lm-eval `custom_dataset` hook: {'test': one {'page': article} doc per WikiText-2 article}."""
    with gzip.open(WIKITEXT_DIR / f"{split}.txt.gz", "rt", encoding="utf-8") as f:
        pages = wikitext_pages(f.read())
    return {"test": datasets.Dataset.from_list([{"page": p} for p in pages])}


def pack_paragraphs(paragraphs, min_words: int) -> list[str]:
    """Consecutive paragraphs joined by blank lines into documents of >= min_words words (the last may be shorter)."""
    docs, current, words = [], [], 0
    for para in paragraphs:
        current.append(para)
        words += len(para.split())
        if words >= min_words:
            docs.append("\n\n".join(current))
            current, words = [], 0
    if current:
        docs.append("\n\n".join(current))
    return docs


def load_gutenberg_held_out(**_ignored) -> dict[str, datasets.Dataset]:
    """lm-eval `custom_dataset` hook: {'test': held-out Gutenberg documents as {'text': ...}}."""
    from emso_bench.corpus import gutenberg_split  # absolute: lm-eval loads this file outside the package

    _, held_out = gutenberg_split()
    docs = pack_paragraphs(held_out, GUTENBERG_DOC_WORDS)
    return {"test": datasets.Dataset.from_list([{"text": d} for d in docs])}
