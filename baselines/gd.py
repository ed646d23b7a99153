"""Gradient difference: ascent on the forget set plus descent on retain text.

    emso-bench method=gd method.retain_weight=1.0

loss = L_GA(forget) + lambda * NLL(retain_text), the NLL averaged over the retain batch's tokens;
retain_text is held-in Gutenberg text (trained on, never an evaluation split).
"""
from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import mean_log_likelihood

from ._common import RetainText


@register("gd")
class GradientDifference(GradientMethod):
    def setup(self, ctx):
        m = ctx.cfg.method
        self.weight = m.retain_weight
        self.retain = RetainText(ctx.tokenizer, ctx.cfg.model.target_length, m.retain_batch, ctx.cfg.seed, ctx.device)

    def loss(self, model, batch):
        return mean_log_likelihood(model, batch)

    def extra_loss(self, model):
        return -self.weight * mean_log_likelihood(model, self.retain.next()).mean()
