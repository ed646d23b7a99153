"""Background text: 19 public-domain Gutenberg novels and WikiText-2 (vendored, gzipped).

Each novel is stripped of its Project Gutenberg header and footer and split by paragraph: the last
`HELD_OUT_FRACTION` of every novel's paragraphs is held out. The memorizer trains on the held-in part;
the held-out part measures perplexity (the memorizer's gate, the engine's collapse guard and the
utility suite). `retain_text` for the regularized baselines is held-in text: text the model was trained
on, never an evaluation split.
"""
from __future__ import annotations

import gzip
import re
from functools import lru_cache

from .paths import DATA_DIR

GUTENBERG_DIR = DATA_DIR / "gutenberg"
WIKITEXT_DIR = DATA_DIR / "wikitext2"
HELD_OUT_FRACTION = 0.05  # 5% of each novel: ~150k words of held-out prose, enough for a stable perplexity

_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG EBOOK.*$", re.M)
_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG EBOOK.*$", re.M)


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg file: between the START and END marker lines, newlines normalized."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    start, end = _START.search(text), _END.search(text)
    if not start or not end:
        raise ValueError("no Project Gutenberg START/END markers")
    return text[start.end() : end.start()].strip("\n")


def _paragraphs(body: str) -> list[str]:
    """Paragraphs with their line breaks joined, empty ones dropped."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if p.strip()]


@lru_cache(maxsize=1)
def gutenberg_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(held_in, held_out) paragraphs over all novels, in a fixed order (novels sorted by file name)."""
    held_in, held_out = [], []
    for path in sorted(GUTENBERG_DIR.glob("*.txt.gz")):
        paras = _paragraphs(strip_gutenberg(gzip.open(path, "rt", encoding="utf-8").read()))
        cut = int(round(len(paras) * (1 - HELD_OUT_FRACTION)))
        held_in += paras[:cut]
        held_out += paras[cut:]
    return tuple(held_in), tuple(held_out)


def wikitext2(split: str = "test") -> str:
    """The raw WikiText-2 text of one split ('test' or 'valid')."""
    return gzip.open(WIKITEXT_DIR / f"{split}.txt.gz", "rt", encoding="utf-8").read()
