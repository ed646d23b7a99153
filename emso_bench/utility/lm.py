"""lm-eval's HFLM, able to score a continuation longer than the model's context.

HFLM asserts that every scored continuation fits in the model's maximum length. The memorizer reads 128
tokens, and with its 4k vocabulary 54 PIQA items and one HellaSwag item have an answer longer than that,
which would abort the whole evaluation. Here such a continuation is scored in consecutive chunks of
max_length // 2 tokens, each chunk a request of its own whose context is the original context plus the
continuation's earlier tokens (HFLM then truncates that context from the left as usual): every token is
still predicted once, with at least max_length // 2 tokens before it, and the chunk log-likelihoods add
up. Requests that fit are passed through untouched, so the figures equal plain HFLM's wherever it runs.
(lm-eval's request cache, `use_cache`, would file chunk scores under the whole request; it is not used.)

Imported lazily (it imports lm-eval) by emso_bench.utility.evaluate.
"""
from __future__ import annotations

from lm_eval.models.huggingface import HFLM


class ChunkedHFLM(HFLM):
    """HFLM whose loglikelihood requests may have continuations longer than max_length."""

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        step = max(1, self.max_length // 2)
        pieces, owner = [], []
        for i, (key, context_enc, continuation_enc) in enumerate(requests):
            if len(continuation_enc) <= self.max_length:
                pieces.append((key, context_enc, continuation_enc))
                owner.append(i)
                continue
            for start in range(0, len(continuation_enc), step):
                pieces.append((key, context_enc + continuation_enc[:start], continuation_enc[start : start + step]))
                owner.append(i)
        if len(pieces) == len(requests):
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        scores = super()._loglikelihood_tokens(pieces, disable_tqdm=disable_tqdm, override_bs=override_bs)
        total = [0.0] * len(requests)
        greedy = [True] * len(requests)
        for i, (logprob, is_greedy) in zip(owner, scores):
            total[i] += logprob
            greedy[i] = greedy[i] and bool(is_greedy)
        return list(zip(total, greedy))
