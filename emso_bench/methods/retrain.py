"""method=retrain: exact unlearning, the reference every method's collateral is read against.

    emso-bench method=retrain forget.size=128 forget.draw=1

Retraining without the forget rows is what perfect erasure looks like. The retrain oracle is the same
memorizer build with the forget draw's rows left out and nothing else changed: their slots hold
background windows from a separate stream, so every retained row gets exactly its exposures
(memorizer/schedule.py). This method loads the oracle's weights (shipped, cached, or built now: as
long as the memorizer's own build) into the run's model and measures it like any method's result.
Memorizers only: for GPT-Neo nobody can retrain the Pile.
"""
from __future__ import annotations

import json
import logging

from ..errors import UserError
from . import Outcome, RunContext, register

log = logging.getLogger(__name__)


@register("retrain")
class Retrain:
    shardable = False  # loads finished weights: nothing to shard

    @staticmethod
    def check(cfg) -> None:
        """Before anything loads: only a memorizer with a forget draw from its pool has an oracle."""
        if cfg.model.kind != "memorizer" or cfg.model.path or cfg.forget.path:
            raise UserError(f"method=retrain: needs a memorizer and a forget draw from its pool "
                            f"(model={cfg.model.name}, model.path={cfg.model.path}, forget.path={cfg.forget.path})")

    def erase(self, ctx: RunContext) -> Outcome:
        from transformers import AutoModelForCausalLM

        from ..memorizer.prepare import oracle_dir
        from .gradient import after_plan

        cfg = ctx.cfg
        self.check(cfg)
        where = oracle_dir(cfg.model, cfg.forget.size, cfg.forget.draw)
        facts = json.loads((where / "build.json").read_text())
        forget_ids = set(ctx.splits["forget"].doc_ids)
        left = {json.loads((where / "splits.json").read_text())["pool_doc_ids"][i] for i in facts["leave_out"]}
        if left != forget_ids:
            raise UserError(f"method=retrain: the oracle in {where} left out other rows than this forget split")
        oracle = AutoModelForCausalLM.from_pretrained(where, dtype=next(ctx.model.parameters()).dtype)
        ctx.model.load_state_dict(oracle.state_dict())
        after = {}
        plan = {"forget": True, **after_plan(cfg)}
        with ctx.timed("measure_after"):
            for name, with_el in plan.items():
                seqs = ctx.splits[name].seqs
                log.info("after: measuring %s (%d rows)", name, len(seqs))
                after[name] = _measure(ctx, seqs, with_el) if seqs else []
        return Outcome(status="retrained", after=after, extra={"oracle_key": facts["key"],
                                                                 "oracle_train_seconds": facts["train_seconds"],
                                                                 "left_out": len(left)},
                       notes=[f"method=retrain: weights of the retrain oracle {facts['key']} (forget rows left out of "
                              "the build, every other row with its exposures)"])


def _measure(ctx: RunContext, seqs, with_el: bool) -> list[dict]:
    from ..metrics import measure

    return measure(ctx.model, seqs, ctx.params, with_el=with_el)
