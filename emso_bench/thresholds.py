"""Forgetting thresholds: a sequence set counts as forgotten when its mean EL_n and MA are below them.

Jang et al. 2023 take the model's own mean EL_10 and MA on text it never saw. `source: unseen` does
exactly that, per model, from the run's unseen split (its "before" measurement is cached per model,
so every run of a sweep reads the same figures). `source: fixed` takes given values, for models
where no truly unseen text is at hand (all challenge rows are in GPT-Neo's training data); the
values and where they come from are recorded. One model's constants are never reused for another:
the memorizer always measures its own.
"""
from __future__ import annotations

from omegaconf import DictConfig

from .errors import UserError


def resolve_thresholds(cfg: DictConfig, unseen_summary: dict | None, el_key: str) -> dict:
    """{el_key: value, 'ma': value, 'source': ..., 'n_unseen': ...} for the stop rule and the record."""
    if cfg.source == "unseen":
        if not unseen_summary or not unseen_summary.get("n"):
            raise UserError("thresholds.source=unseen: this model has no unseen split; "
                            "use thresholds.source=fixed with thresholds.el_10=... thresholds.ma=...")
        return {el_key: unseen_summary[el_key], "ma": unseen_summary["ma"], "source": "unseen",
                "n_unseen": unseen_summary["n"]}
    if cfg.source == "fixed":
        missing = [k for k in ("el_10", "ma") if cfg.get(k) is None]
        if missing:
            raise UserError(f"thresholds.source=fixed: thresholds.{missing[0]} is not set "
                            "(expected a number; see the model's config for the published values)")
        if el_key != "el_10":
            raise UserError(f"thresholds.source=fixed: thresholds.el_10 is an EL_10 value but the run measures "
                            f"{el_key.upper()} (eval.el_n); set eval.el_n=10 or use thresholds.source=unseen")
        return {el_key: float(cfg.el_10), "ma": float(cfg.ma), "source": "fixed",
                "reference": cfg.get("reference")}
    raise UserError(f"thresholds.source={cfg.source}: expected 'unseen' or 'fixed'")
