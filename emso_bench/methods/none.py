"""method=none: measure only. The weights are not touched, so "after" equals "before"."""
from . import Outcome, RunContext, register


@register("none")
class MeasureOnly:
    def erase(self, ctx: RunContext) -> Outcome:
        return Outcome(status="measured", notes=["method=none: no erasure, 'after' is the 'before' measurement"])
