"""DPO-style erasure (Rafailov et al. 2023, as used for unlearning): the memorized suffix is rejected,
a refusal string or a retain-text continuation is chosen.

    emso-bench method=dpo method.chosen=refusal method.beta=0.1

loss(x) = -log sigmoid(beta * [(log p_theta(y_w | x) - log p_ref(y_w | x)) - (log p_theta(y_l | x) - log p_ref(y_l | x))])
with x the first `method.prefix_length` tokens of a forget row, y_l its memorized rest, y_w the chosen
continuation, sequence log-likelihoods, p_ref the frozen starting model. A sampled continuation of a
memorizer would just repeat the suffix, so y_w is a fixed refusal or held-in text (`method.chosen`).
"""
import hashlib

import torch
import torch.nn.functional as F

from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import Batch, sequence_log_likelihood

from ._common import RetainText, frozen_copy


def dpo_loss(lw: torch.Tensor, lw_ref: torch.Tensor, ll: torch.Tensor, ll_ref: torch.Tensor, beta: float) -> torch.Tensor:
    return -F.logsigmoid(beta * ((lw - lw_ref) - (ll - ll_ref)))


@register("dpo")
class DPO(GradientMethod):
    def setup(self, ctx):
        m = ctx.cfg.method
        self.beta, self.prefix, self.device = m.beta, m.prefix_length, ctx.device
        self.reference = frozen_copy(ctx.model, ctx.cfg.distributed.precision)
        if m.chosen == "refusal":
            self.refusal = torch.tensor(ctx.tokenizer.encode(m.refusal), dtype=torch.long)
            self.retain = None
        elif m.chosen == "retain_text":
            self.retain = RetainText(ctx.tokenizer, ctx.cfg.model.target_length, 1, ctx.cfg.seed, ctx.device)
        else:
            raise ValueError(f"method.chosen={m.chosen}: expected refusal or retain_text")

    def _chosen(self, x: torch.Tensor) -> torch.Tensor:
        prefix = x[: self.prefix].cpu()
        if self.retain is None:
            return torch.cat([prefix, self.refusal])
        # a fixed held-in continuation per row (chosen by a hash of its prefix, so every epoch agrees)
        pick = int(hashlib.sha256(prefix.numpy().tobytes()).hexdigest(), 16) % len(self.retain.chunks)
        return torch.cat([prefix, self.retain.chunks[pick][: len(x) - self.prefix]])

    def loss(self, model, batch):
        rows = [ids[: int(mask.sum())] for ids, mask in zip(batch.ids, batch.mask)]
        chosen = Batch.of([self._chosen(x) for x in rows], self.device)
        with torch.no_grad():
            lw_ref = sequence_log_likelihood(self.reference, chosen, self.prefix)
            ll_ref = sequence_log_likelihood(self.reference, batch, self.prefix)
        lw = sequence_log_likelihood(model, chosen, self.prefix)
        ll = sequence_log_likelihood(model, batch, self.prefix)
        return dpo_loss(lw, lw_ref, ll, ll_ref, self.beta)
