"""The Training Data Extraction Challenge rows (GPT-Neo/GPT-2 token ids from The Pile).

15,000 train rows of 200 tokens: a 100-token pre-prefix, a 50-token prefix and a 50-token suffix.
The challenge's loader checks the md5 of the concatenated rows; so do we. The rows are full of
boilerplate (licence headers, e-mail footers), so the memorizer draws from a near-duplicate-free
subset (`dedup_rows`). Pile rows contain real names and e-mail addresses: never log their text
unless asked.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from .paths import DATA_DIR

TDEC_DIR = DATA_DIR / "tdec"
TRAIN_MD5 = "6d85d7f2b48e34e6f96541a546a699bf"  # the official loader's hash of the concatenated train rows
N_ROWS = 15_000
ROW_TOKENS = 200


@lru_cache(maxsize=1)
def train_rows() -> np.ndarray:
    """All 15,000 train rows as a (15000, 200) int64 array of GPT-2 token ids, md5-checked."""
    parts = [np.load(TDEC_DIR / f"train_{name}.npy") for name in ("preprefix", "prefix", "suffix")]
    rows = np.concatenate(parts, axis=1)
    digest = hashlib.md5(rows.astype(np.uint16).tobytes()).hexdigest()
    if digest != TRAIN_MD5:
        raise RuntimeError(f"{TDEC_DIR}: md5 {digest} of the train rows differs from the challenge's {TRAIN_MD5}")
    return rows.astype(np.int64)


@lru_cache(maxsize=1)
def jang_subsets() -> dict:
    """Jang et al. 2023 forget sets: name -> {'doc_ids': [...], 'corpus': [...]} (row indices)."""
    return json.loads((TDEC_DIR / "jang2023_forget_subsets.json").read_text())


def ngrams(ids, n: int) -> set:
    """The distinct n-grams of a token list."""
    return {tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)}


def dedup_rows(rows: np.ndarray, n: int = 10, max_overlap: float = 0.05) -> list[int]:
    """Greedy near-duplicate filter: keep a row (in index order) when at most `max_overlap` of its
    distinct n-grams already occur in the rows kept so far. Returns the kept row indices."""
    seen: set = set()
    kept = []
    for idx, row in enumerate(rows.tolist()):
        grams = ngrams(row, n)
        if len(grams & seen) <= max_overlap * len(grams):
            kept.append(idx)
            seen |= grams
    return kept
