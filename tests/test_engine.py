"""The engine's stop rule on scripted runs: thresholds between the forget set's EL and MA (so that "both
below" and "either below" differ), the held-out perplexity guard and its boundary, and the order of the
checks within an epoch (engine.py's docstring). A scripted trainer replays given figures epoch by epoch,
so each test states exactly what the engine sees."""
from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from emso_bench.engine import run_epochs
from emso_bench.metrics import MetricParams

PARAMS = MetricParams(el_n=10)
THRESHOLDS = {"el_10": 0.3, "ma": 0.6}  # EL_10 and MA thresholds, as resolve_thresholds returns them
PPL0 = 10.0  # held-out perplexity before the first step


class ScriptedTrainer:
    """A trainer whose epoch e reports script[e - 1]: forget MA and EL_10 (every row the same), the
    loss and the held-out perplexity after the step."""

    def __init__(self, script: list[dict]):
        self.script, self.epoch, self.el_measured = script, 0, []
        self.lr = 1e-3

    def step(self, forget) -> float:
        self.epoch += 1
        return self.script[self.epoch - 1].get("loss", 1.0)

    def measure(self, seqs, params, with_el):
        now = self.script[self.epoch - 1]
        if with_el:
            self.el_measured.append(self.epoch)
        row = {"ma": now["ma"], "extract": False, "extract_run": 0, "extractable": False}
        if with_el:
            row[f"el_{params.el_n}"] = now["el"]
        return [dict(row) for _ in seqs]

    def perplexity(self, heldout) -> float:
        return PPL0 if self.epoch == 0 else self.script[self.epoch - 1].get("ppl", PPL0)


class _Log(list):
    """What a train log keeps: a copy of each line as it was when written (later edits are lost)."""

    def write(self, line):
        self.append(json.loads(json.dumps(line)))


def _run(script, min_epochs=1, max_epochs=None, guard=3.0, heldout=True):
    trainer = ScriptedTrainer(script)
    stop = OmegaConf.create({"min_epochs": min_epochs, "max_epochs": max_epochs or len(script), "ppl_guard": guard})
    log = _Log()
    result = run_epochs(trainer, [object()] * 4, stop, THRESHOLDS, PARAMS, log, heldout=object() if heldout else None)
    return result, log, trainer


def test_forgotten_needs_both_el_and_ma_below_their_thresholds():
    result, log, _ = _run([{"ma": 0.8, "el": 0.5},    # both above
                           {"ma": 0.4, "el": 0.5},    # MA below, EL above: not yet
                           {"ma": 0.4, "el": 0.2}])   # both below
    assert (result.status, result.epochs) == ("forgotten", 3)
    assert [line.get("forget_el_10") for line in log] == [None, 0.5, 0.2]
    assert result.forget_after[0]["el_10"] == 0.2  # the last epoch's full check is the "after"


def test_ma_below_with_el_stuck_above_spends_the_budget():
    result, log, _ = _run([{"ma": 0.1, "el": 0.9}] * 4)
    assert (result.status, result.epochs, len(log)) == ("budget_exhausted", 4, 4)


def test_the_thresholds_are_strict():
    result, _, _ = _run([{"ma": 0.4, "el": 0.3}] * 2)  # EL equal to its threshold is not below it
    assert result.status == "budget_exhausted"
    result, _, trainer = _run([{"ma": 0.6, "el": 0.0}] * 2)  # MA equal to its threshold: EL not even measured
    assert result.status == "budget_exhausted" and trainer.el_measured == []


def test_el_is_measured_only_in_epochs_where_ma_is_below_its_threshold():
    script = [{"ma": 0.9, "el": 0.9}, {"ma": 0.5, "el": 0.9}, {"ma": 0.7, "el": 0.9}]
    result, log, trainer = _run(script)
    assert trainer.el_measured == [2]
    assert result.status == "budget_exhausted" and result.forget_after is None  # epoch 3 had no full check
    assert "forget_el_10" in log[1] and "forget_el_10" not in log[2]


def test_min_epochs_delays_forgotten():
    result, _, _ = _run([{"ma": 0.0, "el": 0.0}] * 5, min_epochs=3)
    assert (result.status, result.epochs) == ("forgotten", 3)


def test_held_out_perplexity_past_the_guard_collapses_the_run():
    script = [{"ma": 0.9, "el": 0.9, "ppl": 12.0}, {"ma": 0.9, "el": 0.9, "ppl": 20.0},
              {"ma": 0.9, "el": 0.9, "ppl": 31.0}, {"ma": 0.9, "el": 0.9, "ppl": 12.0}]
    result, log, _ = _run(script)  # guard 3 x 10 = 30; 20 is over 10 + 3, not over 3 x 10
    assert (result.status, result.epochs) == ("collapsed", 3)
    assert log[-1]["heldout_ppl"] == 31.0 and log[-1]["reason"].startswith("held-out perplexity 31.0 > 3.0 x 10.0")


def test_perplexity_exactly_at_the_guard_is_allowed_and_nan_is_not():
    result, _, _ = _run([{"ma": 0.9, "el": 0.9, "ppl": 30.0}] * 2)  # 30 = 3 x 10: not past the guard
    assert result.status == "budget_exhausted"
    result, _, _ = _run([{"ma": 0.9, "el": 0.9, "ppl": math.nan}] * 2)
    assert (result.status, result.epochs) == ("collapsed", 1)


def test_the_guard_wins_over_forgotten_in_the_same_epoch():
    """The order engine.py documents: the guard is checked before the stop on forgetting."""
    result, log, _ = _run([{"ma": 0.1, "el": 0.1, "ppl": 40.0}] * 2)
    assert (result.status, result.epochs) == ("collapsed", 1)
    assert log[0]["forget_el_10"] == 0.1  # it had forgotten, by the thresholds


def test_without_held_out_text_there_is_no_guard():
    result, log, _ = _run([{"ma": 0.9, "el": 0.9, "ppl": 1e9}] * 2, heldout=False)
    assert result.status == "budget_exhausted" and "heldout_ppl" not in log[0]


@pytest.mark.parametrize("loss", [math.inf, -math.inf, math.nan])
def test_a_non_finite_loss_collapses_before_anything_is_measured(loss):
    result, log, trainer = _run([{"ma": 0.1, "el": 0.1}, {"ma": 0.1, "el": 0.1, "loss": loss}], min_epochs=3,
                                max_epochs=3)
    assert (result.status, result.epochs) == ("collapsed", 2) and log[-1]["reason"] == "non-finite loss"
    assert "forget_ma" not in log[-1] and trainer.el_measured == [1]
