"""Forget/retain/unseen splits: seeded, nested, disjoint; Jang et al. sets by row id; user files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from emso_bench import tdec
from emso_bench.errors import UserError
from emso_bench.splits import load_splits, read_forget_file
from tests.helpers import compose


def _forget(**kw):
    base = {"size": 8, "draw": 0, "subset": None, "path": None, "retain_size": None}
    base.update(kw)
    return OmegaConf.create(base)


def test_the_challenge_rows_load_with_the_official_md5():
    rows = tdec.train_rows()
    assert rows.shape == (15_000, 200) and rows.max() < 50257


def test_dedup_keeps_rows_that_overlap_the_kept_ones_by_at_most_5_percent():
    rows = tdec.train_rows()[:400]
    kept = tdec.dedup_rows(rows)
    seen = set()
    for idx in kept:
        grams = {tuple(rows[idx, i : i + 10]) for i in range(191)}
        assert len(grams & seen) <= 0.05 * len(grams)
        seen |= grams
    assert 0 < len(kept) < 400


def test_memorizer_draws_are_seeded_nested_and_disjoint_from_retain(micro_memorizer):
    path, _, tok = micro_memorizer
    model_cfg = compose(["model=memorizer-micro"]).model
    small = load_splits(model_cfg, _forget(size=8, draw=1), str(path), tok)
    large = load_splits(model_cfg, _forget(size=16, draw=1), str(path), tok)
    other = load_splits(model_cfg, _forget(size=8, draw=2), str(path), tok)
    assert small["forget"].doc_ids == large["forget"].doc_ids[:8]  # nested
    assert small["forget"].doc_ids != other["forget"].doc_ids
    assert not set(small["forget"].doc_ids) & set(small["retain"].doc_ids)
    assert len(small["forget"].doc_ids) + len(small["retain"].doc_ids) == 48
    assert not set(small["unseen"].doc_ids) & set(small["forget"].doc_ids + small["retain"].doc_ids)
    with pytest.raises(UserError, match="forget.size=100"):
        load_splits(model_cfg, _forget(size=100), str(path), tok)


def test_gpt_neo_splits_use_jang_sets_by_row_id_and_200_token_rows():
    model_cfg = compose(["model=gpt-neo-125m"]).model
    splits = load_splits(model_cfg, _forget(subset="lm_extraction_32_0", retain_size=16), "unused", None)
    ids = tdec.jang_subsets()["lm_extraction_32_0"]["doc_ids"]
    assert splits["forget"].doc_ids == ids
    assert torch.equal(splits["forget"].seqs[0], torch.as_tensor(tdec.train_rows()[ids[0]]))
    assert len(splits["retain"].doc_ids) == 16 and not set(splits["retain"].doc_ids) & set(ids)
    assert splits["unseen"].doc_ids == []
    with pytest.raises(UserError, match="did you mean 'lm_extraction_128_0'"):
        load_splits(model_cfg, _forget(subset="lm_extracton_128_0"), "unused", None)


def test_user_files_jsonl_and_npy(tmp_path, micro_memorizer):
    _, _, tok = micro_memorizer
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": "the quick brown fox " * 40}) for _ in range(3)) + "\n")
    ids, seqs = read_forget_file(str(jsonl), tok, 100)
    assert ids == ["rows.jsonl:1", "rows.jsonl:2", "rows.jsonl:3"] and all(len(s) == 100 for s in seqs)
    npy = tmp_path / "rows.npy"
    np.save(npy, np.arange(300).reshape(2, 150))
    ids, seqs = read_forget_file(str(npy), tok, 100)
    assert len(seqs) == 2 and seqs[1][0].item() == 150 and len(seqs[1]) == 100
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "missing"}\n')
    with pytest.raises(UserError, match="line 2 is not a JSON object with a string 'text' field"):
        read_forget_file(str(bad), tok, 100)
    with pytest.raises(UserError, match="no such file"):
        read_forget_file(str(tmp_path / "absent.jsonl"), tok, 100)
