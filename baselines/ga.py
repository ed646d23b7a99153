"""Gradient ascent (Jang et al. 2023): raise the forget tokens' negative log-likelihood.

    emso-bench method=ga

loss(x) = 1/(T-1) sum_t log p_theta(x_t | x_<t), minimized (the mean over the forget set is L_GA).
Unbounded below: it keeps pushing after the tokens are forgotten, which is why it can collapse.
"""
from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import mean_log_likelihood


@register("ga")
class GradientAscent(GradientMethod):
    def loss(self, model, batch):
        return mean_log_likelihood(model, batch)
