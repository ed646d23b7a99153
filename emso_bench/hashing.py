"""Stable hashes of configs, id lists and weights, recorded with every figure."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def config_hash(obj) -> str:
    """sha256 of the canonical JSON of a (nested) config."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def ids_hash(ids) -> str:
    """sha256 of a list of doc ids (order matters)."""
    return hashlib.sha256(json.dumps([int(i) if not isinstance(i, str) else i for i in ids]).encode()).hexdigest()


def source_hash(*package_dirs: Path, patterns: tuple[str, ...] = ("*.py",)) -> str:
    """sha256 of packages' source files (names and contents; .py unless `patterns` says more): keys caches
    that their code computes."""
    digest = hashlib.sha256()
    for package_dir in package_dirs:
        for path in sorted({p for pattern in patterns for p in package_dir.glob(pattern)}):
            digest.update(f"{package_dir.name}/{path.name}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
