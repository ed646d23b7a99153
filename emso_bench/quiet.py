"""Log lines that say nothing about a run, dropped at the logger that emits them; every other line stays.

Importing GPT-Neo makes transformers probe the Hub for flash-attention kernels (the `kernels` package);
offline, which is how the suite runs, that logs "Skipping publisher trust check for 'kernels-community/...'
because Hugging Face Hub is in offline mode" three times per process, before every run and every failure.
The suite never uses those kernels. Only that message is dropped: the `kernels` logger's other warnings
pass. (The tokenizer's "Token indices sequence length is longer than the specified maximum" notice is not
filtered: the suite encodes the text it windows itself with verbose=False, so the notice still shows
wherever a text is fed whole.)
"""
from __future__ import annotations

import logging

KERNELS_LOGGER = "kernels._internals.hf_hub"


class _OfflineTrustNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Skipping publisher trust check") and "offline mode" in message)


def install() -> None:
    """Attach the filter (once) to the logger that emits the notice."""
    logger = logging.getLogger(KERNELS_LOGGER)
    if not any(isinstance(f, _OfflineTrustNotice) for f in logger.filters):
        logger.addFilter(_OfflineTrustNotice())
