"""emso-bench-prepare: build (or verify) the embedded memorizer and write its model card.

    emso-bench-prepare                      # the default memorizer: build if missing, then show its gates
    emso-bench-prepare model=memorizer-2l   # another size (conf/model/memorizer-*.yaml)
    emso-bench-prepare --twin               # also build the perplexity twin and re-measure the gates
    emso-bench-prepare --oracle 128 1       # the retrain oracle of forget draw 1 of 128 rows (method=retrain)
    emso-bench-prepare --out DIR            # build into DIR (for example to ship a checkpoint)

The build is deterministic from its config and cached under $EMSO_BENCH_CACHE/memorizer/<name>-<key>;
a shipped checkpoint (emso_bench/data/memorizer/) with the same key is used as is.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError, exit_on_user_error
from ..paths import cache_dir
from .build import BuildConfig, build

log = logging.getLogger(__name__)


def _build_cfg(model_cfg: DictConfig) -> BuildConfig:
    try:
        return BuildConfig.from_dict(OmegaConf.to_container(model_cfg.build, resolve=True))
    except KeyError as err:
        raise UserError(f"model={model_cfg.name}: {err.args[0]}") from None


@contextmanager
def build_lock(out_dir: Path):
    """Hold the exclusive lock of a memorizer directory: parallel sweep jobs that need the same
    memorizer wait for the first one to build it instead of writing the same files side by side."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is building %s: waiting for it", out_dir)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def memorizer_dir(model_cfg: DictConfig, build_if_missing: bool = True) -> Path:
    """The directory of the memorizer the config describes: shipped, cached, or built now."""
    from ..paths import SHIPPED_MODELS_DIR

    key = _build_cfg(model_cfg).key()
    shipped = SHIPPED_MODELS_DIR / f"{model_cfg.name}-{key}"
    if (shipped / "build.json").exists():
        return shipped
    cached = cache_dir() / "memorizer" / f"{model_cfg.name}-{key}"
    if (cached / "build.json").exists():
        return cached
    if not build_if_missing:
        raise UserError(f"model={model_cfg.name}: memorizer {key} is not built; run `emso-bench-prepare model={model_cfg.name}`")
    with build_lock(cached):
        if not (cached / "build.json").exists():  # a parallel job may have built it while we waited
            log.info("memorizer %s not found (shipped or cached): building it into %s", key, cached)
            prepare(model_cfg, cached)
    return cached


def twin_dir(cfg: BuildConfig, name: str) -> Path:
    return cache_dir() / "memorizer" / f"{name}-twin-{replace(cfg, twin=True).key()}"


def oracle_cfg(cfg: BuildConfig, size: int, draw: int) -> BuildConfig:
    """The retrain oracle of forget draw (size, draw): the same build with those pool rows left out."""
    return replace(cfg, leave_out_size=size, leave_out_draw=draw)


def oracle_dir(model_cfg: DictConfig, size: int, draw: int, build_if_missing: bool = True, threads: int = 2) -> Path:
    """The oracle's directory: shipped, cached, or built now (as long as the memorizer; progress shown)."""
    from ..paths import SHIPPED_MODELS_DIR

    cfg = oracle_cfg(_build_cfg(model_cfg), size, draw)
    name = f"{model_cfg.name}-oracle-{cfg.key()}"
    for where in (SHIPPED_MODELS_DIR / name, cache_dir() / "memorizer" / name):
        if (where / "build.json").exists():
            return where
    out = cache_dir() / "memorizer" / name
    if not build_if_missing:
        raise UserError(f"model={model_cfg.name}: the retrain oracle of forget.size={size} forget.draw={draw} is not "
                        f"built; run `emso-bench-prepare model={model_cfg.name} --oracle {size} {draw}`")
    with build_lock(out):
        if not (out / "build.json").exists():
            log.info("building the retrain oracle of forget.size=%d forget.draw=%d into %s", size, draw, out)
            build(cfg, out, threads)
    return out


def prepare(model_cfg: DictConfig, out_dir: Path, threads: int = 2, with_twin: bool = False,
            with_probe: bool = False) -> dict:
    """Build the memorizer into out_dir when missing; measure its gates (and, with_probe, the selectivity
    probe: probe.json, the k = 32 gate); write MODEL_CARD.md."""
    from transformers import GPT2TokenizerFast, GPTNeoForCausalLM

    from .card import model_card
    from .gates import heldout_chunks, measure_gates
    from ..perplexity import perplexity

    cfg = _build_cfg(model_cfg)
    if not (out_dir / "build.json").exists():
        build(cfg, out_dir, threads)
    facts = json.loads((out_dir / "build.json").read_text())
    twin_ppl = None
    tdir = twin_dir(cfg, model_cfg.name)
    if with_twin and not (tdir / "build.json").exists():
        build(replace(cfg, twin=True), tdir, threads)
    if (tdir / "build.json").exists():
        twin = GPTNeoForCausalLM.from_pretrained(tdir)
        twin_ppl = perplexity(twin, heldout_chunks(GPT2TokenizerFast.from_pretrained(tdir)))
    model = GPTNeoForCausalLM.from_pretrained(out_dir)
    tokenizer = GPT2TokenizerFast.from_pretrained(out_dir)
    probe_result = None
    if with_probe:
        from ..probe import ProbeParams, probe_memorizer

        probe_result = probe_memorizer(out_dir, ProbeParams(), threads, progress=log.info)
        probe_result["model"] = {"name": model_cfg.name, "source": out_dir.name}  # as emso-bench-probe records it
        (out_dir / "probe.json").write_text(json.dumps(probe_result, indent=1))
    elif (out_dir / "probe.json").exists():
        probe_result = json.loads((out_dir / "probe.json").read_text())
    gates = measure_gates(model, tokenizer, out_dir, facts["train_seconds"] / 60, twin_ppl, probe_result)
    (out_dir / "gates.json").write_text(json.dumps(gates, indent=2))
    (out_dir / "MODEL_CARD.md").write_text(model_card(model_cfg.name, facts, gates))
    return gates


def _compose(overrides: list[str]) -> DictConfig:
    from ..cli_check import check_overrides
    from ..config import compose

    check_overrides("emso-bench-prepare", overrides)
    return compose(overrides)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="emso-bench-prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=memorizer model.build.steps=100")
    parser.add_argument("--twin", action="store_true", help="also build the perplexity twin (same cost again)")
    parser.add_argument("--oracle", type=int, nargs=2, metavar=("SIZE", "DRAW"),
                        help="build the retrain oracle of forget draw SIZE, DRAW instead (method=retrain)")
    parser.add_argument("--out", type=Path, help="build into this directory instead of the cache")
    parser.add_argument("--no-probe", action="store_true", help="skip the selectivity probe (emso-bench-probe)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (results do not depend on it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error("emso-bench-prepare"):
        cfg = _compose(args.overrides)
        if cfg.model.kind != "memorizer":
            raise UserError(f"model={cfg.model.name}: not a memorizer (emso-bench-prepare builds memorizers only)")
        if args.oracle:
            size, draw = args.oracle
            n_pool = _build_cfg(cfg.model).n_pool
            if not 0 < size < n_pool or draw < 0:
                raise UserError(f"--oracle {size} {draw}: expected 0 < SIZE < {n_pool} (the pool) and DRAW >= 0")
            started = time.time()
            out = oracle_dir(cfg.model, size, draw, threads=args.threads)
            print(f"retrain oracle: {out} ({time.time() - started:.0f}s)")
            return
        if args.out:
            out = args.out
        else:
            try:
                out = memorizer_dir(cfg.model, build_if_missing=False)
            except UserError:
                out = cache_dir() / "memorizer" / f"{cfg.model.name}-{_build_cfg(cfg.model).key()}"
        started = time.time()
        with build_lock(out):
            gates = prepare(cfg.model, out, args.threads, with_twin=args.twin, with_probe=not args.no_probe)
        print(f"memorizer: {out} ({time.time() - started:.0f}s)")
        for name, gate in gates["gates"].items():
            verdict = "met" if gate["ok"] else "NOT MET" if gate["ok"] is False else "n/a (build the twin: --twin)"
            print(f"  {name:20s} {gate['value']!s:>24} {gate['op']} {gate['bound']}: {verdict}")
        print(f"model card: {out / 'MODEL_CARD.md'}")
