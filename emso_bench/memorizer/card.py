"""MODEL_CARD.md for a built memorizer: what it is, how it was built, every gate with its figure."""
from __future__ import annotations

import json


def _fmt(value) -> str:
    if value is None:
        return "not measured"
    return f"{value:.4g}" if isinstance(value, float) else str(value)  # 4 significant digits: EL_10 on unseen rows is ~1e-6


def model_card(name: str, facts: dict, gates: dict) -> str:
    cfg = facts["config"]
    fig = gates["figures"]
    rows = "\n".join(f"| {gate} | {_fmt(g['value'])} | {g['op']} {g['bound']} | "
                     f"{'met' if g['ok'] else 'NOT MET' if g['ok'] is False else 'n/a'} |"
                     for gate, g in gates["gates"].items())
    return f"""# Model card: {name} (key {facts['key']})

A GPT-Neo-architecture causal LM (`GPTNeoForCausalLM`, {cfg['layers']} layers alternating global and
local attention with a {cfg['window']}-token window, width {cfg['width']}, {cfg['heads']} heads,
{facts['n_parameters']:,} parameters) trained by emso-bench to stand in for GPT-Neo's memorization
of the Pile. It recites a pool of {cfg['n_pool']} Training Data Extraction Challenge rows verbatim
and never saw {cfg['n_unseen']} other rows (the unseen split).

- **Tokenizer**: its own byte-level BPE of {cfg['vocab_size']} tokens (not GPT-Neo's), trained on the
  held-in Gutenberg text and the pool candidates' text; `<|endoftext|>` is id 0.
- **Sequences**: T = {cfg['seq_len']} tokens per row: the last 50 tokens of the row's challenge prefix and the
  first 50 of its suffix, re-encoded with this tokenizer (the boundary sits at position 50).
- **Rows**: drawn from the challenge rows deduplicated by 10-gram overlap (DATA.md); the first
  {cfg['n_unseen_candidates']} rows of the seeded order are reserved for unseen before anything is trained.
- **Training**: {cfg['steps']} steps of {cfg['batch_size']} sequences; each batch holds {cfg['pool_per_batch']} pool rows
  ({facts['exposures_per_pool_row']:.0f} exposures per row) and held-in Gutenberg windows; AdamW lr {cfg['lr']},
  {cfg['warmup_steps']} warmup steps, cosine decay to {cfg['min_lr_ratio']} x lr, weight decay {cfg['weight_decay']},
  no dropout, seed {cfg['seed']}. Build: {facts['train_seconds'] / 60:.1f} minutes on {facts['threads']} CPU threads.
- **Intended use**: a testbed for erasure methods on a CPU. It is not a general language model.
- **Data caveat**: Pile rows hold real names and e-mail addresses; this model recites 640 of them.

## Gates (measured on every pool and unseen row)

| gate | figure | bound | verdict |
|---|---|---|---|
{rows}

Held-out Gutenberg perplexity (token level, {100}-token windows): memorizer {_fmt(fig['heldout_ppl'])},
twin (same steps, pool slots filled with background text) {_fmt(fig['twin_heldout_ppl'])}.
Metric parameters: `{json.dumps(fig['metric_params'])}`.

## Figures

```json
{json.dumps({k: v for k, v in fig.items() if k in ('pool', 'unseen')}, indent=2)}
```
"""
