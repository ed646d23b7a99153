"""method=em: EMSO's entropy objective without selective optimization (conf/method/em.yaml sets
`select=all`), the ablation that isolates what the selection adds.

    emso-bench method=em
"""
from . import register
from .emso import EMSO


@register("em")
class EntropyMaximization(EMSO):
    """Same loss as EMSO; only its default selection differs (config)."""
