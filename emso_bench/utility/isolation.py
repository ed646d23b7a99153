"""Keep an lm-eval run from leaking into the caller: offline, same train mode, RNG and tokenizer after.

lm-eval's HFLM calls model.eval() and sets a pad token on the tokenizer it is given; an erasure run
that evaluates utility between steps must continue exactly as if it had not (same mode, same random
stream, same tokenizer). lm-eval also logs one warning per truncated request, which the memorizer's
128-token context makes thousands of; they are silenced unless asked for.
"""
from __future__ import annotations

import logging
import os
import random
from contextlib import contextmanager
from typing import Iterator

OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@contextmanager
def offline_env() -> Iterator[None]:
    """Set the Hugging Face offline variables for the duration (restored after).

    The local tasks never reach the hub (their data comes from custom_dataset hooks); this guards the
    rest: libraries that read the variables late honour them, and nothing can block on a network.
    """
    saved = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def preserved_caller_state(model, tokenizer) -> Iterator[None]:
    """Restore the model's train/eval mode, the tokenizer's pad token and every global RNG after."""
    import numpy as np
    import torch

    was_training = model.training
    pad_token = tokenizer.pad_token
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
           torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None)
    try:
        yield
    finally:
        model.train(was_training)
        if tokenizer.pad_token != pad_token:
            tokenizer.pad_token = pad_token
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if rng[3] is not None:
            torch.cuda.set_rng_state_all(rng[3])


@contextmanager
def quiet_lm_eval(quiet: bool = True) -> Iterator[None]:
    """Raise the 'lm_eval' logger to ERROR for the duration when quiet (its level restored after)."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
