"""Random-label fine-tuning: train the forget prefixes toward random continuations.

    emso-bench method=random_label

loss(x) = -1/|y~| log p_theta(y~ | x), x the first `method.prefix_length` tokens of a forget row and
y~ a continuation of the same length drawn uniformly from the vocabulary, fixed for the run: seeded by
the run's seed and the row's own tokens, so every rank, micro-batch size and epoch order gives a row the
same y~. (Records before commit "random_label: seed each row by its tokens" seeded by the order rows were
first seen: same distribution, other draws.)
"""
import hashlib

import torch

from emso_bench.methods import register
from emso_bench.methods.gradient import GradientMethod
from emso_bench.objectives import Batch, token_log_probs

from ._common import split_prefix


@register("random_label")
class RandomLabel(GradientMethod):
    def setup(self, ctx):
        self.prefix, self.device = ctx.cfg.method.prefix_length, ctx.device
        self.vocab = ctx.model.get_output_embeddings().weight.shape[0]
        self.seed = ctx.cfg.seed
        self.labels: dict[bytes, torch.Tensor] = {}

    def _relabel(self, x: torch.Tensor) -> torch.Tensor:
        key = x.cpu().numpy().tobytes()
        if key not in self.labels:  # one fixed random continuation per row, a function of (seed, row)
            digest = hashlib.sha256(str(self.seed).encode() + b"\0" + key).digest()
            g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
            self.labels[key] = torch.randint(0, self.vocab, (len(x) - self.prefix,), generator=g)
        return torch.cat([x[: self.prefix].cpu(), self.labels[key]])

    def loss(self, model, batch):
        rows = [ids[: int(mask.sum())] for ids, mask in zip(batch.ids, batch.mask)]
        relabeled = Batch.of([self._relabel(x) for x in rows], self.device)
        keep = split_prefix(relabeled, self.prefix)
        return -(token_log_probs(model, relabeled) * keep).sum(-1) / keep.sum(-1)
