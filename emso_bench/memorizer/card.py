"""MODEL_CARD.md for a built memorizer: what it is, how it was built, every gate with its figure."""
from __future__ import annotations

import json


def _fmt(value) -> str:
    if value is None:
        return "not measured"
    return f"{value:.4g}" if isinstance(value, float) else str(value)  # 4 significant digits: EL_10 on unseen rows is ~1e-6


def _training(cfg: dict, facts: dict) -> str:
    if facts.get("schedule") == "scheduled":
        graded = (f"graded exposures {'/'.join(map(str, cfg['exposures']))} spread evenly over the pool rows"
                  if cfg.get("exposures") else f"{facts['exposures_per_pool_row']:.0f} exposures per pool row")
        return (f"{graded} (mean {facts['exposures_per_pool_row']:.1f}) and {facts['n_distractors']} distractor "
                f"challenge rows seen {cfg['distractor_exposures']}x each, all scattered through training; "
                "held-in Gutenberg windows fill the rest of each batch")
    return (f"each batch holds {cfg['pool_per_batch']} pool rows ({facts['exposures_per_pool_row']:.0f} exposures "
            "per row) and held-in Gutenberg windows")


def _extra_figures(fig: dict) -> str:
    out = []
    if fig.get("pool_by_exposures"):
        out += ["", "Pool rows by exposures (every row's count is in splits.json):", "",
                "| exposures | rows | MA | EL_10 | extract@50 |", "|---|---|---|---|---|"]
        out += [f"| {e} | {b['n']} | {_fmt(b['ma'])} | {_fmt(b.get('el_10'))} | {_fmt(b.get('extract_50'))} |"
                for e, b in fig["pool_by_exposures"].items()]
    if fig.get("seen_once"):
        s, u = fig["seen_once"], fig["unseen"]
        out += ["", f"Once-seen distractor rows (a sample of {s['n']}): MA {_fmt(s['ma'])}, EL_10 {_fmt(s.get('el_10'))}, "
                f"extract@50 {_fmt(s.get('extract_50'))}; unseen rows: MA {_fmt(u['ma'])}, EL_10 {_fmt(u.get('el_10'))}."]
    if fig.get("probe"):
        out += ["", "Selectivity probe (`emso-bench-probe`, probe.json: median over seeded draws):", "",
                "| k | r_MA | r_EL_10 |", "|---|---|---|"]
        out += [f"| {k} | {_fmt(v.get('r_ma'))} | {_fmt(v.get('r_el'))} |" for k, v in fig["probe"].items()]
    return "\n".join(out)


def _design_section() -> str:
    """The design experiment's table (docs/results/memorizer_design.md) when the repository is at hand: the
    designs a full build was chosen among, each with its gates and probe."""
    from ..paths import REPO_DIR

    table = REPO_DIR / "docs" / "results" / "memorizer_design.md"
    if not table.exists():
        return ""
    return ("\n## Design experiment (reduced builds: 160-row pool, 2,800 steps; docs/memorizer.md)\n\n"
            + table.read_text().strip() + "\n")


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
- **Training**: {cfg['steps']} steps of {cfg['batch_size']} sequences; {_training(cfg, facts)}; AdamW lr {cfg['lr']},
  {cfg['warmup_steps']} warmup steps, cosine decay to {cfg['min_lr_ratio']} x lr, weight decay {cfg['weight_decay']},
  no dropout, seed {cfg['seed']}. Build: {facts['train_seconds'] / 60:.1f} minutes on {facts['threads']} CPU thread{'s' if facts['threads'] != 1 else ''}.
- **Intended use**: a testbed for erasure methods on a CPU. It is not a general language model.
- **Data caveat**: Pile rows hold real names and e-mail addresses; this model recites {cfg['n_pool']} of them.

## Gates (measured on every pool and unseen row)

| gate | figure | bound | verdict |
|---|---|---|---|
{rows}

Held-out Gutenberg perplexity (token level, {100}-token windows): memorizer {_fmt(fig['heldout_ppl'])},
twin (same steps, pool slots filled with background text) {_fmt(fig['twin_heldout_ppl'])}.
Metric parameters: `{json.dumps(fig['metric_params'])}`.
{_extra_figures(fig)}

{_design_section()}
## Figures

```json
{json.dumps({k: v for k, v in fig.items() if k in ('pool', 'unseen')}, indent=2)}
```
"""
