"""Where the suite's files live: vendored data, configs and the build cache.

Everything the suite reads ships in the repository (see DATA.md); nothing is downloaded at run time.
The cache (built memorizers, thresholds, utility-before figures) lives under $EMSO_BENCH_CACHE, by
default ~/.cache/emso-bench, so that it survives between runs and sweeps.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DATA_DIR = PACKAGE_DIR / "data"
CONF_DIR = REPO_DIR / "conf"
SHIPPED_MODELS_DIR = DATA_DIR / "memorizer"


def cache_dir() -> Path:
    """The writable cache root; created on first use."""
    root = Path(os.environ.get("EMSO_BENCH_CACHE", Path.home() / ".cache" / "emso-bench")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
