"""KL-regularized gradient ascent: ascent on the forget set, plus KL(p_ref || p_theta) on retain text.

    emso-bench method=kl method.retain_weight=1.0

loss = L_GA(forget) + lambda * mean_t KL(p_ref(. | c_<t) || p_theta(. | c_<t)) over retain-text
positions, with p_ref the frozen starting model (one copy per run).
"""
import torch
import torch.nn.functional as F

from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import mean_log_likelihood

from ._common import RetainText, frozen_copy


def kl_ref_theta(logits_ref: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of KL(p_ref || p_theta) = sum_v p_ref (log p_ref - log p_theta)."""
    logp_ref, logp = F.log_softmax(logits_ref, -1), F.log_softmax(logits, -1)
    kl = (logp_ref.exp() * (logp_ref - logp)).sum(-1)
    return (kl * mask).sum() / mask.sum()


@register("kl")
class KLRegularizedAscent(GradientMethod):
    def setup(self, ctx):
        m = ctx.cfg.method
        self.weight = m.retain_weight
        self.reference = frozen_copy(ctx.model, ctx.cfg.distributed.precision)
        self.retain = RetainText(ctx.tokenizer, ctx.cfg.model.target_length, m.retain_batch, ctx.cfg.seed, ctx.device)

    def loss(self, model, batch):
        return mean_log_likelihood(model, batch)

    def extra_loss(self, model):
        batch = self.retain.next()
        with torch.no_grad():
            ref = self.reference(input_ids=batch.ids, attention_mask=batch.mask).logits[:, :-1]
        logits = model(input_ids=batch.ids, attention_mask=batch.mask).logits[:, :-1]
        return self.weight * kl_ref_theta(ref.float(), logits.float(), batch.target_mask.float())
