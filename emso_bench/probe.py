"""The selectivity probe: how much does erasing some memorized rows cost the other memorized rows?

    emso-bench-probe                              # the default memorizer: k = 1, 32, 128
    emso-bench-probe model=memorizer-ood --k 1 32 # another memorizer, some k only
    emso-bench-probe model.path=DIR               # any model directory holding pool.npy and unseen.npy

A testbed's own figure, independent of every method under test. For k target rows from the memorized
pool, plain gradient ascent on the targets' tokens alone (Adam, a fixed small rate, one full batch per
step; the gradient of -mean log-likelihood, L_GA) runs until the targets' mean MA has fallen half the way
from its start to the unseen rows' mean MA. Then

    r_MA = mean over the other pool rows of (MA before - MA after)
           / mean over the targets of (MA before - MA after)

and r_EL the same with EL_10 (on a seeded sample of the other rows: EL costs greedy decoding). r = 0:
erasing the targets leaves the rest recited (a selective testbed); r = 1: the rows go together (every
group erasure erases everything). k = 1 is run for `singles` seeded rows (median and spread), larger k
for `draws` seeded draws. Beside it, a gradient-free diagnostic: the mean pairwise cosine of per-row
gradients of the mean log-likelihood among pool rows, and between pool and unseen rows. The mean of k
unit vectors with pairwise cosine c is mostly their shared part (c / (c + (1 - c) / k) of its squared
norm), so a small c can still give a large r at large k: judge a testbed by r, not by c.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .metrics import MetricParams, measure
from .objectives import Batch, mean_log_likelihood


@dataclass(frozen=True)
class ProbeParams:
    lr: float = 1e-4  # Adam rate: small, so the trajectory stays close to the first-order picture
    max_steps: int = 400  # give up (and say so) when the targets have not fallen halfway by then
    ks: tuple[int, ...] = (1, 32, 128)  # target-set sizes
    singles: int = 32  # k = 1: this many seeded single rows (median and spread)
    draws: int = 3  # k > 1: this many seeded draws
    el_others: int = 64  # EL_10 of the other rows on a seeded sample of this many (0: skip EL)
    el_singles: int = 8  # k = 1: EL terms for the first this many singles only (decoding is the cost)
    cosine_rows: int = 32  # rows per side for the gradient cosines
    seed: int = 0


def _ma(model, seqs) -> np.ndarray:
    return np.array([r["ma"] for r in measure(model, seqs, MetricParams(), with_el=False)])


def _el(model, seqs, params: MetricParams) -> np.ndarray:
    return np.array([r[f"el_{params.el_n}"] for r in measure(model, seqs, params, with_el=True)])


def ascend_until_halfway(model, targets, goal_ma: float, lr: float, max_steps: int) -> tuple[int, bool]:
    """Gradient ascent on the targets (full batch, Adam) until their mean MA <= goal_ma: (steps, reached)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batch = Batch.of(targets, next(model.parameters()).device)
    for step in range(1, max_steps + 1):
        loss = mean_log_likelihood(model, batch).mean()  # minimizing it is gradient ascent on the NLL
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if _ma(model, targets).mean() <= goal_ma:
            return step, True
    return max_steps, False


def probe_once(model, pool: list, targets_idx: np.ndarray, unseen_ma: float, base_ma: np.ndarray,
               base_el: dict, el_idx: np.ndarray | None, pp: ProbeParams) -> dict:
    """One probe: ascend on pool[targets_idx] from a copy of the model; the drops and their ratios."""
    others_idx = np.setdiff1d(np.arange(len(pool)), targets_idx)
    targets = [pool[i] for i in targets_idx]
    start = float(base_ma[targets_idx].mean())
    goal = start - (start - unseen_ma) / 2
    edited = copy.deepcopy(model)
    edited.train()
    steps, reached = ascend_until_halfway(edited, targets, goal, pp.lr, pp.max_steps)
    after = _ma(edited, pool)
    drop = base_ma - after
    out = {"k": len(targets_idx), "steps": steps, "reached_halfway": reached, "target_ma_start": start,
           "goal_ma": goal, "target_ma_drop": float(drop[targets_idx].mean()),
           "other_ma_drop": float(drop[others_idx].mean()),
           "r_ma": float(drop[others_idx].mean() / drop[targets_idx].mean())}
    if el_idx is not None:
        params = MetricParams()
        el_others = np.setdiff1d(el_idx, targets_idx)
        t_after = _el(edited, targets, params)
        o_after = _el(edited, [pool[i] for i in el_others], params)
        t_drop = np.array([base_el[i] for i in targets_idx]) - t_after
        o_drop = np.array([base_el[i] for i in el_others]) - o_after
        out.update(target_el_drop=float(t_drop.mean()), other_el_drop=float(o_drop.mean()),
                   r_el=float(o_drop.mean() / t_drop.mean()), el_others_n=len(el_others))
    del edited
    return out


def gradient_cosines(model, pool: list, unseen: list, n: int, seed: int) -> dict:
    """Mean pairwise cosine of per-row gradients of the mean log-likelihood: pool-pool and pool-unseen."""
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device

    def grads(rows):
        out = []
        for x in rows:
            model.zero_grad(set_to_none=True)
            mean_log_likelihood(model, Batch.of([x], device)).sum().backward()
            out.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).double())
        model.zero_grad(set_to_none=True)
        g = torch.stack(out)
        return g / g.norm(dim=1, keepdim=True)

    gp = grads([pool[i] for i in rng.permutation(len(pool))[:n]])
    gu = grads([unseen[i] for i in rng.permutation(len(unseen))[:n]])
    pp = gp @ gp.T
    off = ~torch.eye(len(gp), dtype=torch.bool)
    return {"pool_pool": float(pp[off].mean()), "pool_unseen": float((gp @ gu.T).mean()), "rows": len(gp)}


def _spread(values: list[float]) -> dict:
    v = np.array(values, dtype=float)
    return {"median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)), "q75": float(np.quantile(v, 0.75)),
            "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def probe(model, pool: list, unseen: list, pp: ProbeParams = ProbeParams(), progress=None) -> dict:
    """Every probe of `pp` on one model: r at each k (with spread), the cosines, and the parameters."""
    started = time.time()
    model.eval()
    params = MetricParams()
    base_ma = _ma(model, pool)
    unseen_ma = float(_ma(model, unseen).mean())
    rng = np.random.default_rng(pp.seed)
    el_idx = np.sort(rng.permutation(len(pool))[: pp.el_others]) if pp.el_others else None
    base_el: dict = {}
    out: dict = {"params": asdict(pp), "metric_params": params.record(len(pool[0])), "pool_n": len(pool),
                 "unseen_n": len(unseen), "pool_ma": float(base_ma.mean()), "unseen_ma": unseen_ma, "k": {}}
    for k in pp.ks:
        if k >= len(pool):
            out["k"][str(k)] = {"skipped": f"k={k} leaves no other pool row (pool of {len(pool)})"}
            continue
        runs = []
        n_runs = pp.singles if k == 1 else pp.draws
        for i in range(n_runs):
            draw = np.sort(np.random.default_rng(pp.seed * 1000 + k * 7 + i).permutation(len(pool))[:k])
            with_el = el_idx is not None and (k > 1 or i < pp.el_singles)
            if with_el:
                need = sorted((set(draw.tolist()) | set(el_idx.tolist())) - set(base_el))
                if need:
                    base_el.update(zip(need, _el(model, [pool[j] for j in need], params).tolist()))
            runs.append(probe_once(model, pool, draw, unseen_ma, base_ma, base_el, el_idx if with_el else None, pp))
            if progress:
                progress(f"k={k} {i + 1}/{n_runs}: r_MA {runs[-1]['r_ma']:.3f} in {runs[-1]['steps']} steps")
        summary = {"r_ma": _spread([r["r_ma"] for r in runs]), "runs": runs,
                   "reached_halfway": sum(r["reached_halfway"] for r in runs)}
        el_runs = [r["r_el"] for r in runs if "r_el" in r]
        if el_runs:
            summary["r_el"] = _spread(el_runs)
        out["k"][str(k)] = summary
    out["cosines"] = gradient_cosines(model, pool, unseen, pp.cosine_rows, pp.seed)
    out["seconds"] = round(time.time() - started, 1)
    return out


def probe_memorizer(model_dir, pp: ProbeParams, threads: int = 2, progress=None) -> dict:
    """The probe on a model directory that holds pool.npy and unseen.npy (every memorizer build)."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from .errors import UserError

    model_dir = Path(model_dir)
    missing = [f for f in ("pool.npy", "unseen.npy") if not (model_dir / f).exists()]
    if missing:
        raise UserError(f"model directory {model_dir}: no {' or '.join(missing)} (expected a memorizer build: "
                        "the probe needs the memorized pool and never-seen rows)")
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    pool = [torch.as_tensor(r) for r in np.load(model_dir / "pool.npy").astype(np.int64)]
    unseen = [torch.as_tensor(r) for r in np.load(model_dir / "unseen.npy").astype(np.int64)]
    return probe(model, pool, unseen, pp, progress)


def print_summary(result: dict) -> None:
    print(f"pool {result['pool_n']} rows (MA {result['pool_ma']:.3f}), unseen MA {result['unseen_ma']:.3f}; "
          f"lr {result['params']['lr']}, {result['seconds']:.0f}s")
    for k, s in result["k"].items():
        if "skipped" in s:
            print(f"  k={k:>4}: {s['skipped']}")
            continue
        el = f", r_EL median {s['r_el']['median']:.3f}" if "r_el" in s else ""
        print(f"  k={k:>4}: r_MA median {s['r_ma']['median']:.3f} (q25 {s['r_ma']['q25']:.3f}, q75 "
              f"{s['r_ma']['q75']:.3f}, n={s['r_ma']['n']}){el}; halfway reached {s['reached_halfway']}/{s['r_ma']['n']}")
    c = result["cosines"]
    print(f"  gradient cosines ({c['rows']} rows a side): pool-pool {c['pool_pool']:.3f}, pool-unseen {c['pool_unseen']:.3f}")


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import logging
    from pathlib import Path

    from .errors import UserError, exit_on_user_error

    parser = argparse.ArgumentParser(prog="emso-bench-probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=memorizer-ood or model.path=DIR")
    parser.add_argument("--k", type=int, nargs="+", default=list(ProbeParams.ks), help="target-set sizes")
    parser.add_argument("--singles", type=int, default=ProbeParams.singles, help="single rows probed at k=1")
    parser.add_argument("--draws", type=int, default=ProbeParams.draws, help="seeded draws at each k > 1")
    parser.add_argument("--out", type=Path, help="write the full result (JSON) here")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error("emso-bench-probe"):
        if any(k < 1 for k in args.k) or args.singles < 1 or args.draws < 1:
            raise UserError(f"--k {args.k} --singles {args.singles} --draws {args.draws}: expected positive integers")
        if args.out and args.out.exists() and not args.out.is_file():
            raise UserError(f"--out {args.out}: exists and is not a file")
        from .cli_check import check_overrides
        from .config import compose
        from .models import model_source

        check_overrides("emso-bench-probe", args.overrides)
        cfg = compose(args.overrides)
        source = model_source(cfg.model)
        pp = ProbeParams(ks=tuple(args.k), singles=args.singles, draws=args.draws)
        result = probe_memorizer(source, pp, args.threads, progress=logging.getLogger(__name__).info)
        result["model"] = {"name": cfg.model.name, "source": Path(source).name}
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
        print_summary(result)
