"""Bad input is refused at composition time (validate.check_config), one line naming the key, and good
configs pass: every method's defaults, every model's, the largest forget set each model allows. The
command line's handling of the same errors (exit status 2, nothing written) is in test_cli.py."""
from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
import pytest
from omegaconf import OmegaConf

from emso_bench.errors import UserError
from emso_bench.validate import check_config
from tests.helpers import compose


@lru_cache(maxsize=None)
def _composed(*choices: str):
    return compose(list(choices))


def _cfg(choices=("model=memorizer-micro", "debug=default"), **values):
    """A composed config with values set as Hydra's override parser would give them (str, int, float, list)."""
    cfg = _composed(*choices).copy()
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, force_add=True)
    return cfg


def _refused(cfg, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        check_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size", [-5, 0, "abc", 1.5, True, 48])
def test_forget_size_is_a_positive_integer_that_leaves_a_retain_split(size):
    _refused(_cfg(forget__size=size), rf"forget.size={size}: expected a whole number from 1 to 47 .*48 rows")


def test_the_retain_split_bounds_forget_size_on_each_model():
    full = ("model=memorizer",)  # 640 pool rows, retain_size 128: at most 512
    check_config(_cfg(full, forget__size=512))
    _refused(_cfg(full, forget__size=513), r"forget.size=513: expected a whole number from 1 to 512 .*keeps 128")
    neo = ("model=gpt-neo-125m",)  # 15,000 challenge rows, retain_size 128
    check_config(_cfg(neo, forget__size=14872))
    _refused(_cfg(neo, forget__size=14873), "from 1 to 14872")
    check_config(_cfg(forget__size=47))  # the micro memorizer's 48 rows: its retain split takes the rest
    _refused(_cfg(forget__retain_size=-1), r"forget.retain_size=-1: expected a whole number >= 0 or null")


@pytest.mark.parametrize("draw", [-1, "x", 0.5])
def test_forget_draw_is_a_non_negative_integer(draw):
    _refused(_cfg(forget__draw=draw), rf"forget.draw={draw}: expected a whole number >= 0")


def test_a_forget_file_must_exist_and_parse(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "a row"}) + "\n\n" + json.dumps({"text": "another"}) + "\n")
    check_config(_cfg(forget__path=str(rows)))
    _refused(_cfg(forget__path=str(tmp_path / "missing.jsonl")), "missing.jsonl: no such file")
    bad = tmp_path / "bad.jsonl"
    for text, message in [('{"text": "ok"}\n{"txt": 1}\n', "line 2 is not a JSON object"), ("\n\n", "no rows"),
                          ('{"text": 3}\n', "line 1 is not a JSON object with a string 'text' field")]:
        bad.write_text(text)
        _refused(_cfg(forget__path=str(bad)), message)
    array = tmp_path / "ids.npy"
    for value, message in [(np.arange(5), "expected a 2-D integer array"), (np.zeros((2, 3)), "2-D float64"),
                           (-np.ones((2, 3), dtype=np.int64), "negative token ids")]:
        np.save(array, value)
        _refused(_cfg(forget__path=str(array)), message)
    np.save(array, np.ones((2, 3), dtype=np.int64))
    check_config(_cfg(forget__path=str(array)))


@pytest.mark.parametrize("key,value,message", [
    ("method.optim.lr", 0, r"method.optim.lr=0: expected a finite number > 0 \(a learning rate\)"),
    ("method.optim.lr", -1e-4, "expected a finite number > 0"),
    ("method.optim.lr", math.nan, "expected a finite number > 0"),
    ("method.optim.lr", math.inf, "expected a finite number > 0"),
    ("method.optim.lr", "fast", "expected a finite number > 0"),
    ("method.optim.weight_decay", -0.1, "expected a finite number >= 0"),
    ("method.optim.betas", [0.9, 1.0], r"expected two numbers in \[0, 1\)"),
    ("select.fraction", 0, r"select.fraction=0: expected a finite number in \(0, 1\]"),
    ("select.fraction", 1.5, r"in \(0, 1\]"),
    ("stop.max_epochs", 0, "stop.max_epochs=0: expected a whole number >= 1"),
    ("stop.min_epochs", 0, "stop.min_epochs=0: expected a whole number from 1 to 30"),
    ("stop.min_epochs", 31, "from 1 to 30"),
    ("stop.ppl_guard", 0.5, "stop.ppl_guard=0.5: expected a number >= 1"),
    ("stop.ppl_guard", math.nan, "expected a number >= 1"),
    ("eval.el_n", 0, "eval.el_n=0: expected a whole number >= 1"),
    ("eval.el_first_prefix", 0, "expected a whole number >= 1"),
    ("eval.extract_k", 60, "model.target_length=100: shorter than the 110 tokens the metrics need"),
    ("eval.el_first_prefix", 95, "shorter than the 105 tokens"),
    ("threads", 0, "threads=0: expected a whole number >= 1"),
    ("seed", -1, "seed=-1: expected a whole number >= 0"),
])
def test_numeric_options_out_of_range_are_refused(key, value, message):
    _refused(_cfg(**{key.replace(".", "__"): value}), message)


@pytest.mark.parametrize("key,value,message", [
    ("thresholds.el_10", math.nan, r"thresholds.el_10=nan: expected a finite number in \[0, 1\]"),
    ("thresholds.ma", 1.5, r"thresholds.ma=1.5: expected a finite number in \[0, 1\]"),
    ("thresholds.ma", math.inf, r"expected a finite number in \[0, 1\]"),
])
def test_fixed_thresholds_are_finite_fractions(key, value, message):
    fixed = {"thresholds__source": "fixed", "thresholds__el_10": 0.05, "thresholds__ma": 0.3}
    check_config(_cfg(**fixed))
    _refused(_cfg(**dict(fixed, **{key.replace(".", "__"): value})), message)


def test_method_options_of_the_method_in_use_are_checked():
    tv = ("model=memorizer-micro", "debug=default", "method=task_vector")
    _refused(_cfg(tv, method__alphas=[]), "method.alphas=\\[\\]: expected a non-empty list")
    _refused(_cfg(tv, method__alphas=[0.5, -1.0]), "expected a non-empty list of finite numbers > 0")
    _refused(_cfg(("model=memorizer", "method=npo"), method__beta=0), "method.beta=0: expected a finite number > 0")
    _refused(_cfg(("model=memorizer", "method=gd"), method__retain_batch=0), "method.retain_batch=0")
    _refused(_cfg(tv + ("distributed=zero2",)), "method=task_vector runs in one process only")


@pytest.mark.parametrize("choices", [
    *[("model=memorizer-micro", "debug=default", f"method={m}") for m in
      ("emso", "em", "ga", "gd", "kl", "npo", "dpo", "simnpo", "random_label", "task_vector", "none", "retrain")],
    ("model=memorizer",), ("model=memorizer-design", "forget.size=32"), ("model=gpt-neo-125m",),
    ("model=gpt-neo-2.7b", "method=npo"),
    ("model=memorizer", "select=random", "eval=default", "stop.ppl_guard=inf"),
])
def test_the_shipped_configs_pass(choices):
    check_config(_cfg(tuple(choices)))


@pytest.mark.parametrize("key,value,message", [
    ("eval__per_epoch", ["retain", "forget"], r"eval.per_epoch=\['retain', 'forget'\]: expected a list of split names"),
    ("eval__per_epoch", "retain", r"eval.per_epoch=retain: expected a list"),
    ("eval__unseen_after", "el", r"eval.unseen_after=el: expected full, ma or none"),
])
def test_the_splits_measured_per_epoch_and_after_are_ones_the_engine_knows(key, value, message):
    _refused(_cfg(**{key: value}), message)
    check_config(_cfg(eval__per_epoch=["retain", "unseen"], eval__unseen_after="full"))
    check_config(_cfg(eval__per_epoch=[]))


@pytest.mark.parametrize("key,value,message", [
    ("eval__durable__workers", 0, "eval.durable.workers=0: expected a whole number >= 1"),
    ("eval__durable__workers", "two", "eval.durable.workers=two: expected a whole number >= 1"),
    ("eval__durable__sampling__samples", 0, "eval.durable.sampling.samples=0: expected a whole number >= 1"),
    ("eval__durable__sampling__top_k", 2.5, "eval.durable.sampling.top_k=2.5: expected a whole number >= 1"),
    ("eval__durable__sampling__temperature", 0.0, "eval.durable.sampling.temperature=0.0: expected a finite number > 0"),
    ("eval__durable__relearn__lr", -1e-4, "eval.durable.relearn.lr=-0.0001: expected a finite number > 0"),
    ("eval__durable__relearn__steps", [5, 0], r"eval.durable.relearn.steps=\[5, 0\]: expected a non-empty list"),
    ("eval__durable__relearn__steps", [], r"eval.durable.relearn.steps=\[\]: expected a non-empty list"),
    ("eval__durable__relearn__steps", 5, "eval.durable.relearn.steps=5: expected a non-empty list"),
    ("eval__durable__relearn__attacks", None, "eval.durable.relearn.attacks=None: expected a list"),
    ("eval__durable__quantize__bits", None, "eval.durable.quantize.bits=None: expected a list of bit widths"),
    ("eval__durable__relearn__attacks", ["retain", "forget"], r"eval.durable.relearn.attacks=\['retain', 'forget'\]: expected"),
    ("eval__durable__quantize__bits", [8, 1], r"eval.durable.quantize.bits=\[8, 1\]: expected a list of bit widths"),
    ("eval__durable__quantize__group_size", 0, "eval.durable.quantize.group_size=0: expected a whole number >= 1"),
])
def test_durability_options_out_of_range_are_refused(key, value, message):
    durable = ("model=memorizer-micro", "debug=default", "eval=durable")
    _refused(_cfg(durable, **{key: value}), message)
    check_config(_cfg(durable, eval__durable__workers=3))
    check_config(_cfg(durable))
