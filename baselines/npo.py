"""Negative Preference Optimization (Zhang et al. 2024) on the forget sequences.

    emso-bench method=npo method.beta=0.1

loss(x, y) = -(2 / beta) * log sigmoid(-beta * (log p_theta(y | x) - log p_ref(y | x)))
with sequence log-likelihoods (sums over y's tokens, never raw logits), y the tokens after the first
`method.prefix_length` tokens of the row, p_ref the frozen starting model. As beta -> 0 it becomes
gradient ascent on log p_theta(y | x) (up to a constant); the sigmoid bounds how far it pushes.
"""
import torch
import torch.nn.functional as F

from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import sequence_log_likelihood

from ._common import frozen_copy


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref))


@register("npo")
class NPO(GradientMethod):
    def setup(self, ctx):
        self.beta, self.prefix = ctx.cfg.method.beta, ctx.cfg.method.prefix_length
        self.reference = frozen_copy(ctx.model, ctx.cfg.distributed.precision)

    def loss(self, model, batch):
        with torch.no_grad():
            ref = sequence_log_likelihood(self.reference, batch, self.prefix)
        return npo_loss(sequence_log_likelihood(model, batch, self.prefix), ref, self.beta)
