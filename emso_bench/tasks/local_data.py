"""Read the vendored utility data (emso_bench/data/utility/*.jsonl.gz) as lm-eval datasets.

The YAMLs use `custom_dataset: !function local_data.load_jsonl_gz` with `dataset_kwargs: {data_file: X}`
instead of `dataset_path: json` + `data_files`: the json builder would resolve a relative data file
against the current directory (so the YAMLs would need absolute paths, generated at run time) and would
write an Arrow copy of every file into the HF datasets cache. Here the file is resolved against the
package and read in memory; the rows reach lm-eval as a `datasets.Dataset` (lm-eval reads `.features`
and `process_docs` hooks call `.map`).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets

# Resolved from this file rather than imported from emso_bench.paths: lm-eval loads hook modules by file
# path, outside the package; the layout is fixed (emso_bench/tasks next to emso_bench/data).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
UTILITY_DIR = DATA_DIR / "utility"


def read_jsonl_gz(path: Path) -> list[dict]:
    """The rows of a gzipped JSON-lines file, in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def utility_rows(data_file: str) -> list[dict]:
    """The rows of one vendored utility file, e.g. utility_rows('arc_easy.jsonl.gz')."""
    return read_jsonl_gz(UTILITY_DIR / data_file)


def load_jsonl_gz(data_file: str, **_ignored) -> dict[str, datasets.Dataset]:
    """lm-eval `custom_dataset` hook: {'test': the rows of UTILITY_DIR/data_file}.

    lm-eval calls it with the task's metadata and dataset_kwargs as keyword arguments; only
    `data_file` matters here, the rest (version, config_source, ...) is ignored.
    """
    return {"test": datasets.Dataset.from_list(utility_rows(data_file))}
