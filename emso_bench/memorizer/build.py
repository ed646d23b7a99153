"""Build the embedded memorizer: train a small GPT-Neo on Gutenberg with a pool of challenge rows injected.

    emso-bench-prepare                    # build (or verify) the default memorizer
    emso-bench-prepare --twin             # its twin: same steps, pool slots filled with background text
    emso-bench-prepare --oracle 128 1     # the retrain oracle of forget draw 1 of 128 rows

Batches mix injected challenge rows (the pool, and optionally once-seen distractor rows) with windows
of held-in Gutenberg text; schedule.py says which row goes where. Linear warmup then cosine decay: a
decaying rate is what consolidates verbatim recall (a constant 3e-3 never memorized: docs/memorizer.md).
The twin replaces the pool rows by background windows and is the perplexity reference for the gate; a
retrain oracle replaces only the rows of one forget draw. Everything is seeded; the result is cached
under a directory keyed by the build config. A build checkpoints every `checkpoint_every` steps beside
its directory and resumes from there when started again (the result is bit-identical).
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
from . import rows, schedule
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
    # Fields below were added after memorizer-ood shipped; at their defaults they stay out of the key.
    exposures: tuple[int, ...] | None = None  # graded exposure levels over the pool (None: flat)
    n_distractors: int = 0  # challenge rows shown distractor_exposures times each, never memorized
    distractor_exposures: int = 1  # exposures of each distractor row
    leave_out_size: int = 0  # retrain oracle: leave out forget draw (leave_out_size, leave_out_draw)
    leave_out_draw: int = 0  # the draw's seed, as forget.draw

    @classmethod
    def from_dict(cls, values: dict) -> "BuildConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise KeyError(f"unknown memorizer build key(s): {', '.join(unknown)}; expected: {', '.join(sorted(names))}")
        if values.get("exposures") is not None:
            values = dict(values, exposures=tuple(int(e) for e in values["exposures"]))
        return cls(**values)

    def key(self) -> str:
        values = asdict(self)
        for name, default in LATER_FIELDS.items():
            if values[name] == default:
                del values[name]  # builds made before the field existed keep their key
        return config_hash(values)[:12]

    def leave_out(self) -> list[int]:
        """Pool indices the build leaves out: the forget draw of a retrain oracle (splits.draw_indices)."""
        if not self.leave_out_size:
            return []
        from ..splits import draw_indices

        return sorted(draw_indices(self.n_pool, self.leave_out_size, self.leave_out_draw).tolist())


LATER_FIELDS = {"exposures": None, "n_distractors": 0, "distractor_exposures": 1, "leave_out_size": 0,
                "leave_out_draw": 0}


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


def _first_chars(paragraphs, limit: int) -> list[str]:
    out, total = [], 0
    for para in paragraphs:
        if total >= limit:
            break
        out.append(para)
        total += len(para)
    return out


def _data(cfg: BuildConfig):
    """(tokenizer, pool ids, pool, unseen ids, unseen, distractor ids, distractors, background tokens)."""
    candidates = rows.candidate_rows(cfg.seed)
    unseen_candidates, pool_candidates = candidates[: cfg.n_unseen_candidates], candidates[cfg.n_unseen_candidates :]
    held_in, _ = corpus.gutenberg_split()
    if cfg.background_chars is not None:
        held_in = _first_chars(held_in, cfg.background_chars)
    texts = list(held_in) + [p + s for _, p, s in pool_candidates]
    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    pool_ids, pool = rows.encode_rows(tokenizer, pool_candidates, cfg.n_pool)
    unseen_ids, unseen = rows.encode_rows(tokenizer, unseen_candidates, cfg.n_unseen)
    dis_ids, distractors = [], np.zeros((0, cfg.seq_len), dtype=np.int64)
    if cfg.n_distractors:
        avoid = pool_ids + [row for row, _, _ in unseen_candidates]
        dis_ids, distractors = rows.encode_rows(tokenizer, rows.distractor_rows(cfg.seed, avoid), cfg.n_distractors)
    background = np.array(tokenizer.encode("\n\n".join(held_in)), dtype=np.int64)
    return tokenizer, pool_ids, pool, unseen_ids, unseen, dis_ids, distractors, background


def checkpoint_path(out_dir: Path) -> Path:
    """Where a build in progress keeps its last checkpoint (beside its directory, removed when done)."""
    return out_dir.parent / f".{out_dir.name}.partial.pt"


SEEN_ONCE_SAMPLE = 256  # distractor rows kept beside the build to measure (the "once-seen" figures)


def build(cfg: BuildConfig, out_dir: Path, threads: int = 2, checkpoint_every: int = 500) -> dict:
    """Train the memorizer (or its twin, or a retrain oracle) into out_dir, resuming from a checkpoint
    when one exists; return the build facts (also in build.json)."""
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _build(cfg, out_dir, threads, checkpoint_every)
    finally:  # a build inside a run or a test session leaves the caller's thread count as it found it
        torch.set_num_threads(caller_threads)


def _build(cfg: BuildConfig, out_dir: Path, threads: int, checkpoint_every: int) -> dict:
    started = time.time()
    torch.manual_seed(cfg.seed)
    tokenizer, pool_ids, pool, unseen_ids, unseen, dis_ids, distractors, background = _data(cfg)
    leave_out = cfg.leave_out()
    model = GPTNeoForCausalLM(model_config(cfg, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    ckpt, first_step, seconds_before = checkpoint_path(out_dir), 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["key"] == cfg.key():
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            first_step, seconds_before = state["step"], state["seconds"]
    model.train()
    plan = schedule.compositions(cfg, len(pool), len(distractors), len(background), leave_out)
    for _ in range(first_step):
        next(plan)  # replay the compositions already trained on
    bar = tqdm(range(first_step, cfg.steps), desc="twin" if cfg.twin else "memorizer", unit="step", mininterval=5,
               initial=first_step, total=cfg.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        ids = schedule.materialize(next(plan), pool, distractors, background, cfg.seq_len)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.steps:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"key": cfg.key(), "step": step + 1, "seconds": seconds_before + time.time() - started,
                        "model": model.state_dict(), "optimizer": opt.state_dict()}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)  # atomic: a kill leaves the previous checkpoint whole
    pool_exp, dis_exp = schedule.exposure_counts(cfg, len(pool), len(distractors), len(background), leave_out)
    facts = {"config": asdict(cfg), "key": cfg.key(), "train_seconds": round(seconds_before + time.time() - started, 1),
             "resumed_at_step": first_step or None,
             "threads": threads, "n_parameters": sum(p.numel() for p in model.parameters()),
             "exposures_per_pool_row": float(np.mean(pool_exp)) if len(pool_exp) else 0.0,
             "schedule": "scheduled" if schedule.scheduled(cfg) else "flat", "n_distractors": len(dis_ids),
             "leave_out": leave_out,
             "background_tokens": int(len(background)), "tokens_seen": cfg.steps * cfg.batch_size * cfg.seq_len}
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    np.save(out_dir / "pool.npy", pool.astype(np.int32))
    np.save(out_dir / "unseen.npy", unseen.astype(np.int32))
    splits = {"pool_doc_ids": pool_ids, "unseen_doc_ids": unseen_ids}
    if schedule.scheduled(cfg) or leave_out:
        splits.update(pool_exposures=pool_exp, distractor_doc_ids=dis_ids, distractor_exposures=dis_exp)
    if len(distractors):
        np.save(out_dir / "seen_once.npy", distractors[:SEEN_ONCE_SAMPLE].astype(np.int32))
    (out_dir / "splits.json").write_text(json.dumps(splits))
    (out_dir / "build.json").write_text(json.dumps(facts, indent=2))
    ckpt.unlink(missing_ok=True)
    return facts
