"""The memorizer's sequences: challenge rows re-tokenized with the memorizer's own tokenizer.

Each memorizer sequence is T = 100 tokens: the last 50 tokens of a challenge row's 50-token (GPT-2)
prefix and the first 50 tokens of its 50-token suffix, both re-encoded with the memorizer's 4k-token
tokenizer; so the challenge's prefix/suffix boundary sits at position 50. Rows come from the
near-duplicate-free subset (tdec.dedup_rows: 10-grams of the full 200-token row, at most 5% overlap
with rows kept before), in a seeded order. The first `n_unseen_candidates` of that order are reserved
for the unseen split: they never reach the tokenizer or the training data.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from transformers import GPT2TokenizerFast

from .. import tdec
from ..paths import DATA_DIR

HALF = 50  # tokens taken from each side of the prefix/suffix boundary


@lru_cache(maxsize=1)
def gpt2_tokenizer() -> GPT2TokenizerFast:
    return GPT2TokenizerFast.from_pretrained(str(DATA_DIR / "tokenizer-gpt2"))


@lru_cache(maxsize=2)
def candidate_rows(seed: int) -> tuple[tuple[int, str, str], ...]:
    """(row id, prefix text, suffix text) of the deduplicated rows that decode cleanly, in seeded order."""
    rows = tdec.train_rows()
    kept = np.array(tdec.dedup_rows(rows))
    order = kept[np.random.default_rng(seed).permutation(len(kept))]
    tok = gpt2_tokenizer()
    out = []
    for row in order.tolist():
        prefix = tok.decode(rows[row, 100:150].tolist())
        suffix = tok.decode(rows[row, 150:200].tolist())
        if "\ufffd" not in prefix + suffix:  # ~0.5% split a multi-byte character: skip them
            out.append((row, prefix, suffix))
    return tuple(out)


def encode_rows(tokenizer, rows: list[tuple[int, str, str]], want: int) -> tuple[list[int], np.ndarray]:
    """The first `want` rows whose prefix and suffix each encode to >= 50 tokens: (row ids, (want, 100) ids)."""
    ids, seqs = [], []
    for row, prefix, suffix in rows:
        p, s = tokenizer.encode(prefix), tokenizer.encode(suffix)
        if len(p) >= HALF and len(s) >= HALF:
            ids.append(row)
            seqs.append(p[-HALF:] + s[:HALF])
        if len(ids) == want:
            break
    if len(ids) < want:
        raise RuntimeError(f"only {len(ids)} usable challenge rows, {want} wanted")
    return ids, np.array(seqs, dtype=np.int64)


def distractor_rows(seed: int, avoid: list[int], max_overlap: float = 0.05) -> list[tuple[int, str, str]]:
    """Challenge rows a build may show once or twice as Pile-like text it should not recite: every row
    outside `avoid` (the pool and the reserved unseen rows) that shares at most `max_overlap` of its
    distinct 10-grams (over the full 200-token row, the deduplication rule of tdec.dedup_rows) with the
    rows in `avoid`, so that no distractor is a near-copy of a memorized or an unseen row. Near-copies
    among the distractors themselves are kept (the Pile is full of boilerplate). Seeded order."""
    rows = tdec.train_rows()
    avoid_set = set(avoid)
    avoid_grams: set = set()
    for row in avoid:
        avoid_grams |= tdec.ngrams(rows[row].tolist(), 10)
    tok = gpt2_tokenizer()
    out = []
    for row in np.random.default_rng(seed + 2).permutation(len(rows)).tolist():
        if row in avoid_set:
            continue
        grams = tdec.ngrams(rows[row].tolist(), 10)
        if len(grams & avoid_grams) > max_overlap * len(grams):
            continue
        prefix, suffix = tok.decode(rows[row, 100:150].tolist()), tok.decode(rows[row, 150:200].tolist())
        if "\ufffd" not in prefix + suffix:
            out.append((row, prefix, suffix))
    return out
