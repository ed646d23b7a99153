"""Mutation testing of the code every reported figure rests on: the metrics (emso_bench/metrics/), the
engine's stop rule and the weight selection. Do the tests notice when that code is wrong?

    python -m tests.mutation                 # every mutant, from the repository root (~10 min on 2 cores)
    python -m tests.mutation -k engine       # the mutants whose name contains "engine"
    python -m tests.mutation --list          # the mutants and the tests meant to kill them
    python -m tests.mutation --cli           # also the command-line mutants (~1 minute each)

Each mutant (tests/mutants.py) is one hand-written change: a file, an exact piece of its text (found exactly once), the
replacement, and the pytest node ids that should fail under it. The working tree is never edited: the
repository's files (tracked and untracked, not ignored) are copied once into a temporary directory; every
mutant is applied there alone, its tests run in a fresh process (`pytest -x`), and the file is restored.
The named tests must first pass on the unmutated copy. A mutant is killed when its tests fail (or run
past the timeout) and survives when they pass. The kill rate is killed / all mutants; mutants known to be
equivalent (they change nothing the suite computes: each says why) stay in the list, count as
survivors, and are printed with their reason. The exit status is 1 when the rate is under --min-rate or
a survivor is not marked equivalent.

The first entries are the changes that passed every fast test before these tests were written (the
issue "Tests that bite and inputs that cannot slip through").
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutants import MUTANTS, SCOPE, Mutant  # the mutants themselves, one per hand-written change

REPO = Path(__file__).resolve().parent.parent


def _prepare(mutant: Mutant, text: str) -> str:
    """The mutated file text; raises when the original text is not found exactly once."""
    if text.count(mutant.old) != 1:
        raise ValueError(f"{mutant.name}: the original text occurs {text.count(mutant.old)} times in {mutant.path}")
    return text.replace(mutant.old, mutant.new)


def copy_repository(dest: Path) -> None:
    """The working tree's files (tracked and untracked, not ignored), with their uncommitted edits."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def ship_micro_memorizer(copy: Path) -> None:
    """Put the micro memorizer among the copy's shipped models, so that each --cli test session finds it
    instead of building it (~2 minutes). It is built once into $EMSO_BENCH_CACHE, or found there."""
    script = ("import shutil, sys; from emso_bench.models import memorizer_dir; from emso_bench.paths import "
              "SHIPPED_MODELS_DIR; from tests.helpers import compose; "
              "path = memorizer_dir(compose(['model=memorizer-micro']).model); "
              "shutil.copytree(path, SHIPPED_MODELS_DIR / path.name, dirs_exist_ok=True)")
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run([sys.executable, "-c", script], cwd=copy, env=env, check=True, capture_output=True)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[str, float, str]:
    """('passed' | 'failed' | 'timeout' | 'error', seconds, last lines) of the tests in the copy."""
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    started = time.time()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.time() - started, ""
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    outcome = {0: "passed", 1: "failed"}.get(proc.returncode, "error")  # 2-5: interrupted, usage, no tests
    failed = [line.split(" - ")[0].removeprefix("FAILED ") for line in lines if line.startswith("FAILED ")]
    return outcome, time.time() - started, failed[0] if failed else "\n".join(lines[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="only the mutants whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per mutant's tests (past it: killed)")
    parser.add_argument("--min-rate", type=float, default=0.9, help="the kill rate below which the exit status is 1")
    parser.add_argument("--cli", action="store_true", help="also the command-line mutants (~1 minute each)")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if args.k in m.name and (args.cli or not m.cli)]
    if args.list:
        for m in mutants:
            print(f"{m.name:50s} {m.path}  ->  {' '.join(m.tests)}{'  [equivalent]' if m.equivalent else ''}")
        return 0
    with tempfile.TemporaryDirectory(prefix="emso-mutation-") as tmp:
        copy = Path(tmp)
        copy_repository(copy)
        if any(m.cli for m in mutants):
            ship_micro_memorizer(copy)
        texts = {m.path: (copy / m.path).read_text() for m in mutants}
        for m in mutants:
            _prepare(m, texts[m.path])  # every original text is found exactly once, before anything runs
        needed = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        outcome, seconds, tail = run_tests(copy, needed, args.timeout * 2)
        print(f"unmutated copy: {len(needed)} test targets {outcome} in {seconds:.0f} s", flush=True)
        if outcome != "passed":
            print(tail)
            return 1
        killed, survivors = 0, []
        for m in mutants:
            (copy / m.path).write_text(_prepare(m, texts[m.path]))
            try:
                outcome, seconds, tail = run_tests(copy, m.tests, args.timeout)
            finally:
                (copy / m.path).write_text(texts[m.path])
            if outcome == "error":
                print(f"ERROR    {m.name}: the tests did not run\n{tail}")
                return 1
            dead = outcome in ("failed", "timeout")
            killed += dead
            if not dead:
                survivors.append(m)
            print(f"{'killed ' if dead else 'SURVIVED'} {m.name:50s} {seconds:4.0f} s  "
                  f"{tail if outcome == 'failed' else outcome}", flush=True)
    rate = killed / len(mutants)
    scoped = [m for m in mutants if m.path in SCOPE]
    scoped_killed = sum(m not in survivors for m in scoped)
    print(f"\nkill rate: {killed}/{len(mutants)} = {rate:.1%}; over the metrics, the stop rule and the selection: "
          f"{scoped_killed}/{len(scoped)} = {scoped_killed / max(1, len(scoped)):.1%}")
    for m in survivors:
        print(f"  survivor {m.name} ({m.path}): " + (f"equivalent: {m.equivalent}" if m.equivalent else "NOT EXPLAINED"))
    return 0 if rate >= args.min_rate and all(m.equivalent for m in survivors) else 1


if __name__ == "__main__":
    sys.exit(main())
