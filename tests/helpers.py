"""Test helpers: the composed config, tiny models, float64 attention, the literal EL, the CLI in a subprocess,
a stand-in wandb."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM

from emso_bench.config import compose  # noqa: F401  (tests import it from here)
from emso_bench.metrics.literal import literal_el, literal_greedy  # noqa: F401  (the reference EL)
from emso_bench.paths import REPO_DIR


def tiny_gpt_neo(vocab: int = 97, width: int = 32, layers: int = 2, seed: int = 0, positions: int = 128,
                 window: int = 8, eos: int = 0) -> GPTNeoForCausalLM:
    """A random GPT-Neo with global and local attention layers."""
    torch.manual_seed(seed)
    cfg = GPTNeoConfig(vocab_size=vocab, hidden_size=width, num_layers=layers, num_heads=2,
                       attention_types=[[["global", "local"], layers // 2]], window_size=window,
                       max_position_embeddings=positions, intermediate_size=2 * width, embed_dropout=0.0,
                       attention_dropout=0.0, resid_dropout=0.0, bos_token_id=eos, eos_token_id=eos)
    return GPTNeoForCausalLM(cfg).eval()


def successor_gpt_neo(successor: list[int]) -> GPTNeoForCausalLM:
    """A GPT-Neo whose greedy prediction after token v is successor[v], whatever came before: attention,
    MLP and position embeddings are zero, so the residual stream is the one-hot embedding of the last
    token; its layer norm is a*onehot + c (the same a > 0 and c for every token) and the untied output
    layer is the permutation matrix of `successor` (each row sums to 1), so the logits are a*[v == successor]
    + c. Greedy continuations, MA, EL and extract@k then follow in closed form from the sequence alone,
    through the same cached decoding every real model goes through."""
    vocab = len(successor)
    assert sorted(successor) == list(range(vocab)), "successor must be a permutation"
    cfg = GPTNeoConfig(vocab_size=vocab, hidden_size=vocab, num_layers=2, num_heads=2,
                       attention_types=[[["global", "local"], 1]], window_size=4, max_position_embeddings=64,
                       intermediate_size=8, embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0,
                       bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    model = GPTNeoForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in [model.transformer.ln_f] + [m for b in model.transformer.h for m in (b.ln_1, b.ln_2)]:
            norm.weight.fill_(1.0)
        model.transformer.wte.weight.copy_(torch.eye(vocab))
        model.lm_head.weight[successor, torch.arange(vocab)] = 1.0
    return model


def _attn_float64(self, query, key, value, attention_mask=None):
    """GPT-Neo's attention without its cast of queries and keys to float32 (all else as upstream)."""
    weights = torch.matmul(query, key.transpose(-1, -2))
    q_len, k_len = query.size(-2), key.size(-2)
    causal = self.bias[:, :, k_len - q_len : k_len, :k_len]
    weights = torch.where(causal, weights, torch.tensor(torch.finfo(weights.dtype).min, dtype=weights.dtype))
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1)
    return torch.matmul(weights, value), weights


@contextmanager
def float64_attention():
    """Make a float64 GPT-Neo compute attention in float64 too (upstream casts it to float32)."""
    from transformers.models.gpt_neo import modeling_gpt_neo as mod

    original = mod.GPTNeoSelfAttention._attn
    mod.GPTNeoSelfAttention._attn = _attn_float64
    try:
        yield
    finally:
        mod.GPTNeoSelfAttention._attn = original


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a console command of the suite in a subprocess with the test environment."""
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", "import sys; from emso_bench.app import cli; sys.argv[0]='emso-bench'; cli()",
                           *args], cwd=cwd or REPO_DIR, env=env, capture_output=True, text=True, timeout=timeout)


def read_wandb_history(run_file: Path, record_type: str = "history") -> list[dict]:
    """The history rows (or, with record_type="summary", the summary updates) of an offline W&B run file
    (run-*.wandb), read without the W&B service.

    The file is a 7-byte header (':W&B', magic 0xBEE1, version) followed by LevelDB-log records in
    32 KiB blocks (4-byte CRC, 2-byte length, 1-byte type: 1 full, 2 first, 3 middle, 4 last); each
    record is a serialized wandb `Record` protobuf."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file}: not a W&B run file"
    block, pos, pending, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == record_type:
                items = record.history.item if record_type == "history" else record.summary.update
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


class FakeWandb(types.ModuleType):
    """The part of `wandb` the logger calls, keeping the tables it is given (no W&B service started)."""

    def __init__(self):
        super().__init__("wandb")
        self.tables = []
        self.Settings = lambda **kwargs: kwargs
        self.Image = lambda path: path

    def Table(self, columns, data):  # noqa: N802 (wandb's name)
        self.tables.append((list(columns), data))
        return self.tables[-1]

    def init(self, **kwargs):
        return types.SimpleNamespace(log=lambda *a, **kw: None, summary={}, finish=lambda: None)
