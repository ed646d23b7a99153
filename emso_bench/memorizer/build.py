"""Build the embedded memorizer: train a small GPT-Neo on Gutenberg with a pool of challenge rows injected.

    emso-bench-prepare                    # build (or verify) the default memorizer, ~40 min on 2 cores
    emso-bench-prepare --twin             # its twin: same steps, pool slots filled with background text

Each batch holds `pool_per_batch` pool rows (cycled in seeded epochs, so every row gets the same number
of exposures) and background windows of held-in Gutenberg text. Linear warmup then cosine decay: a
decaying rate is what consolidates verbatim recall (a constant 3e-3 never memorized, NOTES.md). The
twin replaces the pool rows by background windows and is the perplexity reference for the gate.
Everything is seeded; the result is cached under a directory keyed by the build config.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import GPTNeoConfig, GPTNeoForCausalLM

from .. import corpus
from ..hashing import config_hash
from . import rows
from .tokenizer import train_tokenizer


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    n_pool: int = 640  # >= 640: a 512-row forget set still leaves a 128-row retain split
    n_unseen: int = 256  # the unseen split: thresholds and the "never trained on" gate
    n_unseen_candidates: int = 320  # rows reserved for unseen before anything is trained
    vocab_size: int = 4096  # small vocabulary: the output layer would dominate a CPU build otherwise
    layers: int = 4
    width: int = 128
    heads: int = 4
    window: int = 32  # GPT-Neo local attention window (alternating global/local layers)
    seq_len: int = 100  # T: 50-token prefix + 50-token suffix
    steps: int = 11200
    batch_size: int = 16
    pool_per_batch: int = 4  # pool rows per batch: exposures per row = steps * pool_per_batch / n_pool
    lr: float = 2e-3
    warmup_steps: int = 400
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.0  # weight decay works against verbatim recall
    background_chars: int | None = None  # cap on held-in Gutenberg characters (None: all; tests use less)
    twin: bool = False  # the perplexity reference: pool slots filled with background text

    @classmethod
    def from_dict(cls, values: dict) -> "BuildConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise KeyError(f"unknown memorizer build key(s): {', '.join(unknown)}; expected: {', '.join(sorted(names))}")
        return cls(**values)

    def key(self) -> str:
        return config_hash(asdict(self))[:12]


def model_config(cfg: BuildConfig, tokenizer) -> GPTNeoConfig:
    return GPTNeoConfig(
        vocab_size=len(tokenizer), max_position_embeddings=128, hidden_size=cfg.width, num_layers=cfg.layers,
        num_heads=cfg.heads, attention_types=[[["global", "local"], cfg.layers // 2]], window_size=cfg.window,
        intermediate_size=4 * cfg.width, embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def lr_at(step: int, cfg: BuildConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _batches(cfg: BuildConfig, pool: np.ndarray, background: np.ndarray, rng: np.random.Generator):
    """Yield (batch_size, seq_len) batches: pool rows cycled epoch by epoch, background windows likewise."""
    n_pool_slots = 0 if cfg.twin else cfg.pool_per_batch
    n_windows = len(background) // cfg.seq_len
    pool_order, bg_order = np.array([], dtype=int), np.array([], dtype=int)
    offset = 0
    while True:
        if len(pool_order) < n_pool_slots:
            pool_order = np.concatenate([pool_order, rng.permutation(len(pool))])
        if len(bg_order) < cfg.batch_size - n_pool_slots:
            offset = int(rng.integers(cfg.seq_len))  # a new window grid each pass over the text
            bg_order = np.concatenate([bg_order, rng.permutation(n_windows - 1)])
        take_pool, pool_order = pool_order[:n_pool_slots], pool_order[n_pool_slots:]
        take_bg, bg_order = bg_order[: cfg.batch_size - n_pool_slots], bg_order[cfg.batch_size - n_pool_slots :]
        bg = [background[offset + i * cfg.seq_len : offset + (i + 1) * cfg.seq_len] for i in take_bg]
        yield torch.tensor(np.concatenate([pool[take_pool].reshape(-1, cfg.seq_len), np.array(bg)]), dtype=torch.long)


def _first_chars(paragraphs, limit: int) -> list[str]:
    out, total = [], 0
    for para in paragraphs:
        if total >= limit:
            break
        out.append(para)
        total += len(para)
    return out


def build(cfg: BuildConfig, out_dir: Path, threads: int = 2) -> dict:
    """Train the memorizer (or its twin) into out_dir; return the build facts (also in build.json)."""
    torch.set_num_threads(threads)
    started = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    candidates = rows.candidate_rows(cfg.seed)
    unseen_candidates, pool_candidates = candidates[: cfg.n_unseen_candidates], candidates[cfg.n_unseen_candidates :]
    held_in, _ = corpus.gutenberg_split()
    if cfg.background_chars is not None:
        held_in = _first_chars(held_in, cfg.background_chars)
    texts = list(held_in) + [p + s for _, p, s in pool_candidates]
    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    pool_ids, pool = rows.encode_rows(tokenizer, pool_candidates, cfg.n_pool)
    unseen_ids, unseen = rows.encode_rows(tokenizer, unseen_candidates, cfg.n_unseen)
    background = np.array(tokenizer.encode("\n\n".join(held_in)), dtype=np.int64)

    model = GPTNeoForCausalLM(model_config(cfg, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    model.train()
    batches = _batches(cfg, pool, background, rng)
    bar = tqdm(range(cfg.steps), desc="twin" if cfg.twin else "memorizer", unit="step", mininterval=5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        ids = next(batches)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    facts = {"config": asdict(cfg), "key": cfg.key(), "train_seconds": round(time.time() - started, 1),
             "threads": threads, "n_parameters": sum(p.numel() for p in model.parameters()),
             "exposures_per_pool_row": 0 if cfg.twin else cfg.steps * cfg.pool_per_batch / cfg.n_pool,
             "background_tokens": int(len(background)), "tokens_seen": cfg.steps * cfg.batch_size * cfg.seq_len}
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    np.save(out_dir / "pool.npy", pool.astype(np.int32))
    np.save(out_dir / "unseen.npy", unseen.astype(np.int32))
    (out_dir / "splits.json").write_text(json.dumps({"pool_doc_ids": pool_ids, "unseen_doc_ids": unseen_ids}))
    (out_dir / "build.json").write_text(json.dumps(facts, indent=2))
    return facts
