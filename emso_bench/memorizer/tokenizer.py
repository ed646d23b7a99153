"""The memorizer's own byte-level BPE tokenizer (GPT-2 style, 4k tokens, trained by the suite).

GPT-Neo's 50,257-token vocabulary would make the output layer dominate a small model's cost on a CPU
(8x the transformer blocks at width 128); a 4k vocabulary trained on the memorizer's own training
text keeps a build affordable. `<|endoftext|>` is id 0 and serves as BOS, EOS and UNK, as in GPT-2.
"""
from __future__ import annotations

from typing import Iterable

from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2TokenizerFast

EOT = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> GPT2TokenizerFast:
    """Train a byte-level BPE on `texts` (deterministic for a given text order)."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT], show_progress=False)
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOT, eos_token=EOT, unk_token=EOT)
    tok.model_max_length = 2048
    return tok
