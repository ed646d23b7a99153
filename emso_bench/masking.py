"""Sparse updates as a hard constraint: unselected weights stay bit-identical after every step.

Zeroing their gradients is not enough: AdamW's decoupled weight decay moves every weight it holds,
and a moment left from an earlier mask keeps moving a weight whose gradient is now zero. So after
each optimizer step `MaskedUpdate.restore` writes the frozen values back and zeroes the optimizer
state of the frozen entries, whatever the optimizer. Parameters that are not eligible at all are
not given to the optimizer (requires_grad off) and cannot move; nor are eligible ones with nothing
selected, unless the masks may be refreshed (`refreshable`), when a later mask may select them.
"""
from __future__ import annotations

import torch


class MaskedUpdate:
    def __init__(self, model, masks: dict[str, torch.Tensor], refreshable: bool = False):
        self.params = dict(model.named_parameters())
        self.refreshable = refreshable  # every eligible tensor goes to the optimizer: a refresh may select it
        self.set_masks(masks)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.params.values() if p.requires_grad]

    def snapshot(self) -> None:
        """Remember the current values of the frozen entries (after a mask refresh, too)."""
        self.frozen = {name: self.params[name].detach()[~mask].clone() for name, mask in self.masks.items()
                       if not bool(mask.all())}

    def set_masks(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks = masks
        for name, p in self.params.items():
            p.requires_grad_(name in masks and (self.refreshable or bool(masks[name].any())))
        self.snapshot()

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of frozen entries (saves the optimizer from seeing them)."""
        for name, mask in self.masks.items():
            p = self.params[name]
            if p.grad is not None:
                p.grad.mul_(mask)

    @torch.no_grad()
    def restore(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Write the frozen entries back, bit for bit, and zero their optimizer state."""
        for name, values in self.frozen.items():
            p, frozen = self.params[name], ~self.masks[name]
            p.data[frozen] = values
            if optimizer is not None:
                for state in optimizer.state.get(p, {}).values():
                    if torch.is_tensor(state) and state.shape == p.shape:
                        state[frozen] = 0
