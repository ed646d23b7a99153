"""SimNPO (Fan et al. 2024): reference-free, length-normalized NPO with a margin.

    emso-bench method=simnpo method.beta=2.5 method.gamma=0.0

loss(x, y) = -(2 / beta) * log sigmoid(-(beta / |y|) * log p_theta(y | x) - gamma)
with y the tokens after the first `method.prefix_length` tokens and |y| their number.
"""
import torch
import torch.nn.functional as F

from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import sequence_log_likelihood

from ._common import split_prefix


def simnpo_loss(logp: torch.Tensor, length: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-(beta / length) * logp - gamma)


@register("simnpo")
class SimNPO(GradientMethod):
    def setup(self, ctx):
        m = ctx.cfg.method
        self.beta, self.gamma, self.prefix = m.beta, m.gamma, m.prefix_length

    def loss(self, model, batch):
        length = split_prefix(batch, self.prefix).sum(-1).to(torch.float64)
        logp = sequence_log_likelihood(model, batch, self.prefix)
        return simnpo_loss(logp, length.to(logp.dtype), self.beta, self.gamma)
