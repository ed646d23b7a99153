"""MA, EL_n, extract@k and their summaries against figures worked out by hand.

The sequences are made so that every parameter matters: truths with repeated n-grams (EL's denominator
counts them all), el_first_prefix > 1, n = 5 and 10, the last valid prefix T - n, runs of k - 1, k and
k + 1 for extract@k, misses at the first and the last position for MA. `measure` runs on a model whose
greedy continuations are known in closed form (tests.helpers.successor_gpt_neo), so the whole fast path
(teacher-forced pass, branch decoding, EL from branches) is checked against arithmetic, not against itself.
"""
from __future__ import annotations

import pytest
import torch

from emso_bench.metrics import MetricParams, measure, summarize
from emso_bench.metrics.memorization import _extraction, el_at, memorization_accuracy
from tests.helpers import successor_gpt_neo

# The model's greedy successor of each token: a 4-cycle 0->1->2->3->0 and a chain 4->5->...->63->4.
SUCCESSOR = [1, 2, 3, 0] + list(range(5, 64)) + [4]


def _ints(*parts) -> torch.Tensor:
    return torch.tensor([v for part in parts for v in part])


# Six rows of T = 24 tokens. A "miss at t" means x_t != successor(x_{t-1}); the greedy continuation of
# x_<t is then successor(x_{t-1}), successor of that, ... (T - t tokens).
ROWS = {
    "recited": _ints(range(4, 28)),                      # no miss
    "jump": _ints(range(4, 14), range(40, 54)),          # miss at t = 10 (13 -> 14 predicted, 40 true)
    "cycle": _ints([0, 1, 2, 3] * 6),                    # no miss; every 5-gram of the truth repeats
    "cycle_then_jump": _ints([0, 1, 2, 3] * 3, range(40, 52)),  # miss at t = 12 (0 predicted, 40 true)
    "last_wrong": _ints(range(4, 27), [60]),             # miss at t = 23 only (27 predicted, 60 true)
    "first_wrong": _ints([40], range(4, 27)),            # miss at t = 1 only (41 predicted, 4 true)
}

# EL_5 with f = 1: prefixes t = 1..19 (T - n = 19, the last valid one), 19 terms; term(t) = matched
# continuation 5-grams / the truth's 25 - t - 5 = 20 - t 5-grams.
#   jump: for t <= 10 the continuation is x_t..x_9 then 14, 15, ... (never in the truth), so only the
#     5-grams inside x_t..x_9 match: 6 - t of them for t <= 5, none for t = 6..10; t = 11..19 recite: 1.
#   cycle_then_jump: for t <= 12 the continuation cycles 0 1 2 3 forever (20 - t 5-grams, all periodic);
#     one counts when its phase has a periodic 5-gram inside x_t..x_11 (starts s' in [t, 7]). t <= 4: all
#     four phases, term 1 (a wrong continuation scores 1: EL counts n-grams, not positions); t = 5:
#     phases 1-3, the 15 5-grams start at s = 5..19 and 3 of them (8, 12, 16) have phase 0: 12/15; t = 6:
#     phases 2-3, 8 of 14; t = 7: phase 3, 4 of 13; t = 8..12: no periodic 5-gram in the truth, 0;
#     t = 13..19: 1.
#   last_wrong: the continuation is x_t..x_22 then 27: all its 5-grams but the last match, (19 - t)/(20 - t),
#     which is 0 at the last valid prefix t = 19.
#   first_wrong: t = 1 continues 41..63 (no 5-gram of 4..26): 0; t = 2..19: 1.
EL_5_FROM_1 = {
    "recited": 1.0,
    "jump": (5 / 19 + 4 / 18 + 3 / 17 + 2 / 16 + 1 / 15 + 0 * 5 + 9) / 19,
    "cycle": 1.0,
    "cycle_then_jump": (4 + 12 / 15 + 8 / 14 + 4 / 13 + 0 * 5 + 7) / 19,
    "last_wrong": sum((19 - t) / (20 - t) for t in range(1, 20)) / 19,
    "first_wrong": 18 / 19,
}
# EL_10 with f = 3: prefixes t = 3..14, 12 terms, the truth's 10-grams 15 - t.
#   jump: x_t..x_9 is shorter than 10 for t >= 3, so t = 3..10 give 0 and t = 11..14 give 1: 4/12.
#   cycle_then_jump: no periodic 10-gram fits in x_t..x_11 for t >= 3: 0 for t = 3..12, 1 for 13, 14: 2/12.
#   last_wrong: (14 - t)/(15 - t) for t = 3..14.  first_wrong: the wrong prefix t = 1 is before f: 1.
EL_10_FROM_3 = {
    "recited": 1.0,
    "jump": 4 / 12,
    "cycle": 1.0,
    "cycle_then_jump": 2 / 12,
    "last_wrong": sum((14 - t) / (15 - t) for t in range(3, 15)) / 12,
    "first_wrong": 1.0,
}
MA = {"recited": 1.0, "jump": 22 / 23, "cycle": 1.0, "cycle_then_jump": 22 / 23, "last_wrong": 22 / 23,
      "first_wrong": 22 / 23}  # hits over the T - 1 = 23 predicted positions
# (extract, extract_run, extractable) with c = 4, k = 6, f = 1: t = 4..9 are hits in every row (the
# jump's miss at 10 comes right after a run of exactly k); every row has a hit run of at least 6.
EXTRACT_C4_K6 = dict.fromkeys(ROWS, (True, 6, True))
# c = 11, k = 13 (c + k = T: the last token is the run's last), f = 3:
#   jump: t = 11..23, exactly 13 hits; its longest run from t = 3 is those 13 (exactly k): extractable.
#   cycle_then_jump: a miss at 12 ends the run at 1; runs 3..11 (9) and 13..23 (11) are short of 13.
#   last_wrong: t = 11..22, a run of 12 = k - 1: not extracted; 3..22 (20 hits) is extractable.
EXTRACT_C11_K13 = {"recited": (True, 13, True), "jump": (True, 13, True), "cycle": (True, 13, True),
                   "cycle_then_jump": (False, 1, False), "last_wrong": (False, 12, True),
                   "first_wrong": (True, 13, True)}


@pytest.fixture(params=["gpt_neo", "generic"])
def successor_model(request, monkeypatch):
    """The closed-form model, its branches decoded by GPT-Neo's shared-prefix decoder and by the generic one."""
    from emso_bench.metrics import neo_decode

    if request.param == "generic":
        monkeypatch.setattr(neo_decode, "supports", lambda model: False)
    return successor_gpt_neo(SUCCESSOR)


@pytest.mark.parametrize("n,first,c,k,el,extraction", [
    (5, 1, 4, 6, EL_5_FROM_1, EXTRACT_C4_K6),
    (10, 3, 11, 13, EL_10_FROM_3, EXTRACT_C11_K13),
])
def test_measure_gives_the_hand_computed_figures(successor_model, n, first, c, k, el, extraction):
    params = MetricParams(el_n=n, el_first_prefix=first, extract_context=c, extract_k=k, batch_size=4,
                          branch_batch=3)  # two teacher-forced batches, several branch batches
    rows = measure(successor_model, list(ROWS.values()), params)
    for name, row in zip(ROWS, rows):
        assert row[f"el_{n}"] == pytest.approx(el[name], rel=1e-12), name
        assert row["ma"] == pytest.approx(MA[name], rel=1e-12), name
        assert (row["extract"], row["extract_run"], row["extractable"]) == extraction[name], name


def test_ma_counts_every_predicted_position_from_the_first_to_the_last():
    x = torch.arange(10)
    a = x[1:].clone()  # a[t-1] predicts x_t: all 9 right
    assert memorization_accuracy(x, a) == 1.0
    a[0] = 99  # the first prediction (t = 1) wrong: 8/9
    assert memorization_accuracy(x, a) == pytest.approx(8 / 9)
    a[0], a[-1] = 1, 99  # only the last one (t = 9) wrong: 8/9
    assert memorization_accuracy(x, a) == pytest.approx(8 / 9)
    a[0] = 99  # both ends wrong: 7/9
    assert memorization_accuracy(x, a) == pytest.approx(7 / 9)
    assert memorization_accuracy(x, torch.full((9,), 99)) == 0.0


def test_el_term_divides_by_every_ngram_of_the_truth_repeats_included():
    truth = [1, 2, 1, 2, 1]  # bigrams 12 21 12 21: four, two of them distinct
    assert el_at(truth, [1, 2, 3, 3, 3], 2) == pytest.approx(1 / 4)  # 12 found; 23 33 33 not: 1/4, not 1/2
    assert el_at(truth, [2, 1, 2, 1, 2], 2) == 1.0  # 21 12 21 12, each found: 4/4, not 4/2
    assert el_at(truth, [1, 2, 1, 2, 2], 2) == pytest.approx(3 / 4)  # 12 21 12 found, 22 not
    truth5 = [0, 1, 2, 3] * 2 + [9]  # 5-grams 01230 12301 23012 30123 01239: five, four distinct
    assert el_at(truth5, [0, 1, 2, 3] * 2 + [7], 5) == pytest.approx(4 / 5)  # 4 found, 01237 not: 4/5, not 4/4


@pytest.mark.parametrize("run,expected", [(3, (False, 3)), (4, (True, 4)), (5, (True, 4))])
def test_extract_needs_a_run_of_k_hits_from_the_context(run, expected):
    x = torch.arange(20)
    a = x[1:].clone()
    a[5 + run - 1] = 0  # c = 5, k = 4: hits at t = 5 .. 5 + run - 1, then a miss
    extract, extract_run, _ = _extraction(x, a, c=5, k=4, first=1)
    assert (extract, extract_run) == expected  # runs of k - 1, k, k + 1; the run is capped at k


def test_extract_past_the_end_of_the_row_is_false():
    x = torch.arange(10)
    assert _extraction(x, x[1:].clone(), c=5, k=6, first=1)[:2] == (False, 5)  # only t = 5..9 exist


@pytest.mark.parametrize("first,k,expected", [
    (1, 4, True),   # hit runs t = 1..4 (4) and 6..8 (3): a run of k
    (1, 5, False),  # no run of 5
    (2, 4, False),  # from prefix length 2 on, the runs are 2..4 (3) and 6..8 (3): only k - 1
    (2, 3, True),
])
def test_extractable_needs_a_run_of_k_hits_from_el_first_prefix_on(first, k, expected):
    x = torch.arange(10)
    a = x[1:].clone()
    a[5 - 1] = a[9 - 1] = 0  # misses at t = 5 and t = 9
    assert _extraction(x, a, c=1, k=k, first=first)[2] is expected


def test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold():
    rows = [{"ma": 1.0, "el_10": 0.75, "extract": True, "extract_run": 50, "extractable": True},
            {"ma": 0.5, "el_10": 0.25, "extract": False, "extract_run": 10, "extractable": True},
            {"ma": 0.25, "el_10": 0.125, "extract": False, "extract_run": 0, "extractable": False},
            {"ma": 0.25, "el_10": 0.125, "extract": False, "extract_run": 2, "extractable": False}]
    params = MetricParams(el_n=10, extract_k=50)
    assert summarize(rows, params, threshold_el=0.125) == {
        "n": 4,
        "ma": 0.5,                        # (1 + .5 + .25 + .25) / 4 (the median would be .375)
        "extract_50": 0.25,               # one row of four extracted
        "extract_run": 15.5,              # (50 + 10 + 0 + 2) / 4
        "extractable_frac": 0.5,          # two of four
        "el_10": 0.3125,                  # (.75 + .25 + .125 + .125) / 4
        "el_10_max": 0.75,
        "el_10_above_threshold_frac": 0.5,  # strictly above .125: two rows (four at >=)
    }
    without_el = [{k: v for k, v in r.items() if k != "el_10"} for r in rows]
    assert set(summarize(without_el, MetricParams(el_n=10, extract_k=20))) == {
        "n", "ma", "extract_20", "extract_run", "extractable_frac"}
    assert "el_10_above_threshold_frac" not in summarize(rows, params)  # no threshold, no fraction
