"""Utility in a run: before and after in the record, and utility-before computed once per model and
eval config (a second run reads it from the cache)."""
from __future__ import annotations

import logging

from emso_bench.run import execute
from tests.helpers import compose

OVERRIDES = ["model=memorizer-micro", "debug=default", "method=ga", "stop.max_epochs=1", "eval=default",
             "eval.utility.tasks=[emso_copa,emso_gutenberg_held_out]", "eval.utility.limit=4"]


def test_utility_before_is_computed_once_and_reused(micro_memorizer, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="emso_bench")
    first = execute(compose(OVERRIDES), tmp_path / "first")["utility"]
    second = execute(compose(OVERRIDES + ["forget.draw=1"]), tmp_path / "second")["utility"]
    assert first["before_cached"] is False and second["before_cached"] is True
    assert first["cache_key"] == second["cache_key"]
    assert second["before"] == first["before"] and second["seconds_before"] == first["seconds_before"]
    assert sum("utility: cached" in r.getMessage() for r in caplog.records) == 1
    for when in ("before", "after"):
        figures = second[when]
        assert figures["emso_copa/n"] == 4 and 0.0 <= figures["emso_copa/acc"] <= 1.0
        assert figures["emso_copa/chance"] == 0.5
        assert figures["emso_gutenberg_held_out/word_perplexity"] > 1.0
    assert second["average_before"] == second["before"]["emso_copa/acc"]  # the only reasoning task asked for
