"""Load the model and tokenizer a run edits: the embedded memorizer, a local directory or a hub id.

Every model goes through `from_pretrained`; the memorizer is just a directory the suite builds (or
ships) first. `trust_remote_code` stays off unless a config turns it on. Errors a user can fix (a
path that does not exist, a hub id that cannot be reached offline) become one-line UserErrors.
"""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from .errors import UserError

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def model_source(model_cfg: DictConfig, build_if_missing: bool = True) -> str:
    """Where the weights come from: a local directory or a hub id (validated, nothing loaded)."""
    if model_cfg.path:
        path = str(model_cfg.path)
        looks_local = path.startswith((".", "/", "~")) or Path(path).expanduser().exists() or path.count("/") > 1
        if looks_local:
            local = Path(path).expanduser()
            if not (local / "config.json").exists():
                raise UserError(f"model.path={path}: no such model directory (expected a folder with config.json)")
            return str(local.resolve())
        return path  # a hub id: resolved by from_pretrained (offline machines need it in the HF cache)
    if model_cfg.kind == "memorizer":
        from .memorizer.prepare import memorizer_dir

        return str(memorizer_dir(model_cfg, build_if_missing))
    raise UserError(f"model={model_cfg.name}: model.path is empty (expected a hub id or a local directory)")


def model_ref(model_cfg: DictConfig, source: str, fingerprint: str) -> dict:
    """The model as a record names it, without a machine path: its config name, the memorizer's build key
    (from the build.json of a memorizer directory), the hub id it loaded from (None for a local
    directory) and the hash of its weights."""
    import json

    local = Path(source).expanduser()
    build = local / "build.json"
    key = json.loads(build.read_text()).get("key") if local.is_dir() and build.exists() else None
    return {"name": model_cfg.name, "memorizer_key": key, "hub_id": None if local.is_dir() else source,
            "weights_sha256": fingerprint}


def load_model(model_cfg: DictConfig, device: str):
    """(model, tokenizer, source) with the model in train mode on `device` in `model.dtype`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = model_source(model_cfg)
    if model_cfg.dtype not in DTYPES:
        raise UserError(f"model.dtype={model_cfg.dtype}: expected one of {', '.join(DTYPES)}")
    kwargs = {"revision": model_cfg.get("revision"), "trust_remote_code": bool(model_cfg.trust_remote_code)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[model_cfg.dtype], **kwargs)
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"model.path={source}: cannot load a causal LM from it ({reason})") from None
    model.to(device)
    model.train()
    return model, tokenizer, source


def weights_fingerprint(source: str, model) -> str:
    """sha256 of the weight files when they are local (cheap and stable), else of the tensors."""
    from .hashing import file_sha256

    local = Path(source)
    files = sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin")) if local.is_dir() else []
    if files:
        from .hashing import config_hash

        return config_hash({f.name: file_sha256(f) for f in files})
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
