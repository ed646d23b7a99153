"""Compose the suite's Hydra config from Python (tests, benchmarks, the prepare and probe commands).

    from emso_bench.config import compose
    cfg = compose(["model=memorizer-micro", "method=ga"])
"""
from __future__ import annotations

from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from .paths import CONF_DIR


def compose(overrides: list[str]):
    """The composed config of `emso-bench <overrides>` (no Hydra run directory, nothing launched)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=False)
