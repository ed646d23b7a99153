"""Shared fixtures: offline, one CPU thread, a private cache, and a micro memorizer built once per session."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network in tests, ever
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # shared 2-core machines: one thread is steadier (docs/design.md, facts)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    """A private EMSO_BENCH_CACHE for the whole session (also seen by CLI subprocesses)."""
    root = tmp_path_factory.mktemp("emso-cache")
    os.environ["EMSO_BENCH_CACHE"] = str(root)
    return root


@pytest.fixture(scope="session")
def micro_cfg(cache_root):
    """The composed config of a run on the micro memorizer (conf/model/memorizer-micro.yaml)."""
    from tests.helpers import compose

    return compose(["model=memorizer-micro", "debug=default"])


@pytest.fixture(scope="session")
def micro_memorizer(micro_cfg):
    """(model directory, model, tokenizer) of the micro memorizer, built once per session (~1 minute)."""
    from transformers import GPT2TokenizerFast, GPTNeoForCausalLM

    from emso_bench.memorizer.prepare import memorizer_dir

    path = memorizer_dir(micro_cfg.model)
    return path, GPTNeoForCausalLM.from_pretrained(path), GPT2TokenizerFast.from_pretrained(path)


@pytest.fixture(scope="session")
def tokenizer():
    """The vendored GPT-2 tokenizer (the utility tests)."""
    from transformers import GPT2TokenizerFast

    from emso_bench.paths import DATA_DIR

    return GPT2TokenizerFast.from_pretrained(DATA_DIR / "tokenizer-gpt2")


@pytest.fixture(scope="session")
def model(tokenizer):
    """A tiny random GPT-Neo over the GPT-2 vocabulary, with room for 2048-token lm-eval windows."""
    from tests.helpers import tiny_gpt_neo

    return tiny_gpt_neo(vocab=len(tokenizer), positions=2048, window=16, eos=tokenizer.eos_token_id)


@pytest.fixture
def small_run(cache_root, monkeypatch):
    """`run.execute` on the shipped memorizer (nothing built) with its splits cut to 3 rows each and held-out
    perplexity on 2 windows: a whole run in seconds. W&B is a stand-in (`logger=wandb` keeps its tables
    in the returned FakeWandb)."""
    import sys

    from emso_bench import run
    from emso_bench.splits import Split
    from tests.helpers import FakeWandb

    real_splits = run.load_splits
    monkeypatch.setattr(run, "load_splits", lambda *args: {name: Split(s.name, s.doc_ids[:3], s.seqs[:3])
                                                           for name, s in real_splits(*args).items()})
    monkeypatch.setattr(run, "heldout_windows", lambda tokenizer, cfg: torch.arange(200).reshape(2, 100))
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake
