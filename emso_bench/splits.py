"""The evaluation splits of a run: forget (to erase), retain (memorized, to keep) and unseen.

- memorizer: `forget` is a seeded draw of `forget.size` rows from the memorizer's pool
  (`forget.draw` seeds it; draws of one seed are nested: the 128-row set contains the 32-row set),
  `retain` is the rest of the pool, `unseen` the rows it never trained on.
- GPT-Neo (`model.splits: tdec`): `forget` is a Jang et al. 2023 forget set (`forget.subset`, row ids)
  or a seeded draw from the 15,000 challenge rows; `retain` a seeded draw of `forget.retain_size`
  other rows; there is no truly unseen text (all of it is in the Pile), so `unseen` is empty and
  thresholds must be fixed.
- `forget.path`: the user's own file, jsonl with a `text` field or `.npy` token ids; retain and
  unseen then come from the model's own source.
Sequences are truncated to `model.target_length` tokens (T) and must be long enough for the metrics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from . import tdec
from .errors import UserError
from .hashing import ids_hash


@dataclass
class Split:
    name: str
    doc_ids: list
    seqs: list[torch.Tensor]

    def record(self) -> dict:
        return {"n": len(self.doc_ids), "doc_ids_sha256": ids_hash(self.doc_ids),
                "lengths": sorted({len(s) for s in self.seqs})}


def draw_indices(n_total: int, size: int, draw: int) -> np.ndarray:
    """The forget draw: the first `size` of a permutation seeded by `draw` (so draws of one seed nest).
    The retrain oracle's build leaves out exactly these pool indices."""
    return np.random.default_rng(draw).permutation(n_total)[:size]


def _draw(n_total: int, size: int, draw: int, what: str) -> np.ndarray:
    if size > n_total:
        raise UserError(f"forget.size={size}: larger than the {n_total} rows of {what}")
    return draw_indices(n_total, size, draw)


def _tensors(rows) -> list[torch.Tensor]:
    return [torch.as_tensor(np.asarray(r, dtype=np.int64)) for r in rows]


def parse_forget_file(path: str) -> tuple[list[str], list[str] | np.ndarray]:
    """(doc ids, texts or a 2-D array of token ids) of a forget file: it exists and parses (checked when
    the config is, before the model loads: validate.py). Tokenizing and the vocabulary check come later."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"forget.path={path}: no such file (expected a .jsonl with a 'text' field or a .npy of token ids)")
    if file.suffix == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except Exception as err:  # numpy raises several types for a malformed file
            raise UserError(f"forget.path={path}: not a readable .npy array of token ids ({type(err).__name__})") from None
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise UserError(f"forget.path={path}: expected a 2-D integer array of token ids, got {array.ndim}-D {array.dtype}")
        if not len(array):
            raise UserError(f"forget.path={path}: no rows")
        if array.min() < 0:
            raise UserError(f"forget.path={path}: negative token ids")
        return [f"{file.name}:{i}" for i in range(len(array))], array
    doc_ids, texts = [], []
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"forget.path={path}: not UTF-8 text (expected a .jsonl with a 'text' field or a .npy)") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
            if not isinstance(text, str):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"forget.path={path}: line {lineno} is not a JSON object with a string 'text' field") from None
        doc_ids.append(f"{file.name}:{lineno}")
        texts.append(text)
    if not texts:
        raise UserError(f"forget.path={path}: no rows (expected one JSON object with a 'text' field per line)")
    return doc_ids, texts


def read_forget_file(path: str, tokenizer, target_length: int) -> tuple[list, list[torch.Tensor]]:
    """(doc ids, sequences of at most T tokens) from a jsonl file with a `text` field or a `.npy` array of
    token ids. Long texts are cut here, so the tokenizer's notice about sequences longer than the
    model's maximum (verbose) would say nothing."""
    doc_ids, rows = parse_forget_file(path)
    if isinstance(rows, np.ndarray):
        if rows.max() >= len(tokenizer):
            raise UserError(f"forget.path={path}: token ids outside the tokenizer's vocabulary [0, {len(tokenizer)})")
        return doc_ids, _tensors(rows[:, :target_length])
    return doc_ids, [torch.tensor(tokenizer.encode(text, verbose=False)[:target_length], dtype=torch.long)
                     for text in rows]


def memorizer_splits(model_dir: Path, forget: DictConfig) -> dict[str, Split]:
    pool = np.load(model_dir / "pool.npy")
    unseen = np.load(model_dir / "unseen.npy")
    ids = json.loads((model_dir / "splits.json").read_text())
    pool_ids, unseen_ids = ids["pool_doc_ids"], ids["unseen_doc_ids"]
    chosen = _draw(len(pool), forget.size, forget.draw, "the memorizer's pool")
    rest = np.setdiff1d(np.arange(len(pool)), chosen)
    return {"forget": Split("forget", [pool_ids[i] for i in chosen], _tensors(pool[chosen])),
            "retain": Split("retain", [pool_ids[i] for i in rest], _tensors(pool[rest])),
            "unseen": Split("unseen", list(unseen_ids), _tensors(unseen))}


def tdec_splits(forget: DictConfig, target_length: int) -> dict[str, Split]:
    rows = tdec.train_rows()[:, -target_length:]
    if forget.subset:
        subsets = tdec.jang_subsets()
        if forget.subset not in subsets:
            from .errors import unknown

            raise unknown("forget.subset", forget.subset, subsets)
        chosen = np.array(subsets[forget.subset]["doc_ids"])
    else:
        chosen = _draw(len(rows), forget.size, forget.draw, "the challenge's train split")
    rest = np.setdiff1d(np.arange(len(rows)), chosen)
    retain = rest[np.random.default_rng(forget.draw + 1000).permutation(len(rest))[: forget.retain_size]]
    return {"forget": Split("forget", chosen.tolist(), _tensors(rows[chosen])),
            "retain": Split("retain", retain.tolist(), _tensors(rows[retain])),
            "unseen": Split("unseen", [], [])}


def load_splits(model_cfg: DictConfig, forget: DictConfig, source: str, tokenizer) -> dict[str, Split]:
    """forget / retain / unseen for this run, as token-id tensors of at most T tokens each."""
    if model_cfg.splits == "pool":
        splits = memorizer_splits(Path(source), forget)
    elif model_cfg.splits == "tdec":
        splits = tdec_splits(forget, model_cfg.target_length)
    else:
        raise UserError(f"model.splits={model_cfg.splits}: expected 'pool' (memorizer) or 'tdec' (challenge rows)")
    if forget.path:
        doc_ids, seqs = read_forget_file(forget.path, tokenizer, model_cfg.target_length)
        splits["forget"] = Split("forget", doc_ids, seqs)
    if forget.retain_size is not None and len(splits["retain"].doc_ids) > forget.retain_size:
        keep = forget.retain_size
        splits["retain"] = Split("retain", splits["retain"].doc_ids[:keep], splits["retain"].seqs[:keep])
    return splits
