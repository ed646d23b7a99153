"""Relearning: do a few fine-tuning steps bring the erased rows back?

A copy of the edited model is fine-tuned (Adam at a fixed rate, one full batch of the attack text per
step, the mean token NLL) for s steps, s in `steps` (5, 10, 25 by default), on
- `retain`: text that contains none of the forget rows (the retain split), or
- `half`: the first half of each forget row only (the attacker knows how the rows begin),
and after each s the forget rows are measured whole (MA and EL_n). Recovery is the share of the erased
MA that came back: (MA attacked - MA erased) / (MA before erasure - MA erased). On the retrain oracle,
nothing can come back that the attack itself did not teach: the same attack there is the reference.
(Lynch et al. 2024, "Eight Methods to Evaluate Robust Unlearning in LLMs"; Hu et al., ICLR 2025,
"Jogging the Memory of Unlearned LLMs".)
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from transformers.activations import GELUTanh

from ..metrics import MetricParams, measure, summarize
from ..objectives import Batch, mean_log_likelihood


@dataclass(frozen=True)
class RelearnParams:
    steps: tuple[int, ...] = (5, 10, 25)  # measure after each of these step counts
    lr: float = 1e-4  # Adam: the suite's gradient-ascent rate, in the other direction
    micro_batch: int = 64  # rows per forward/backward (the step is one full batch)

    def record(self) -> dict:
        return asdict(self)


def _step(model, opt, rows: Sequence[torch.Tensor], micro_batch: int) -> float:
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(rows), micro_batch):
        chunk = list(rows[start:start + micro_batch])
        loss = -mean_log_likelihood(model, Batch.of(chunk, device)).sum() / len(rows)
        loss.backward()
        total += loss.item()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return total


def fuse_gelu(model) -> int:
    """Swap GPT-Neo's gelu_new modules for transformers' GELUTanh, torch's fused kernel of the same formula
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): one kernel instead of eight elementwise ops and their
    backward passes, a relearning step ~1.2x faster on the memorizer (the greedy decoder fuses it too).
    Only the rounding differs. Returns how many modules were swapped (other activations are left alone)."""
    swapped = 0
    if getattr(model.config, "model_type", None) == "gpt_neo" and model.config.activation_function == "gelu_new":
        for block in model.transformer.h:
            block.mlp.act = GELUTanh()
            swapped += 1
    return swapped


def relearn(model, attack: Sequence[torch.Tensor], forget: Sequence[torch.Tensor], params: MetricParams,
            rp: RelearnParams = RelearnParams()) -> list[dict]:
    """[{steps, loss, forget_ma, forget_el_n}] after each of rp.steps steps on `attack`."""
    twin = copy.deepcopy(model)
    fuse_gelu(twin)
    twin.train()
    opt = torch.optim.Adam(twin.parameters(), lr=rp.lr)
    out, done = [], 0
    for s in sorted(rp.steps):
        loss = math.nan
        while done < s:
            loss = _step(twin, opt, attack, rp.micro_batch)
            done += 1
        summary = summarize(measure(twin, forget, params), params)
        out.append({"steps": s, "loss": loss, "forget_ma": summary["ma"],
                    f"forget_el_{params.el_n}": summary[f"el_{params.el_n}"]})
    del twin
    return out


def recovery(before: float, erased: float, attacked: float) -> float:
    """Share of the erased figure that came back (NaN when nothing was erased)."""
    return (attacked - erased) / (before - erased) if before != erased else math.nan


def first_halves(seqs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [x[: len(x) // 2] for x in seqs]
