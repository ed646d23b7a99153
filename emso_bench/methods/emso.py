"""EMSO: Entropy Maximization with Selective Optimization (Zhang, Liu and Patras, COLING 2025).

    emso-bench method=emso                          # the default method
    emso-bench method=emso method.objective=uniform_ce select.fraction=0.1

Our reconstruction from the paper's abstract (its full text was not available; README says so):
- loss: L_EM = -1/|B| sum_x 1/(T-1) sum_t H(p_theta(. | x_<t)) on the forget set: maximize the model's
  predictive entropy on the sequences to forget. Bounded (H <= log|V|), its gradient vanishes at the
  uniform distribution, unlike gradient ascent's unbounded loss. Its gradient also vanishes at a
  one-hot prediction, so strongly memorized tokens start on a plateau; `method.objective=uniform_ce`
  minimizes the cross-entropy to the uniform distribution instead (gradient p - 1/|V| in the logits).
- selection: `select=contrastive` (selection.py), the top fraction rho of weights with a positive
  s_i = g_EM,i * g_GA,i; only those move (hard masks). No reference model, no data beyond the forget set.
"""
from __future__ import annotations

from ..objectives import mean_entropy, mean_uniform_cross_entropy
from . import register
from .gradient import GradientMethod

OBJECTIVES = {"entropy": lambda model, batch: -mean_entropy(model, batch),
              "uniform_ce": mean_uniform_cross_entropy}


@register("emso")
class EMSO(GradientMethod):
    def setup(self, ctx) -> None:
        objective = ctx.cfg.method.objective
        if objective not in OBJECTIVES:
            raise ValueError(f"method.objective={objective}: expected one of {', '.join(OBJECTIVES)}")
        self._loss = OBJECTIVES[objective]

    def loss(self, model, batch):
        return self._loss(model, batch)
