"""The mutants `python -m tests.mutation` applies: one hand-written change each (file, exact text found once,
replacement) and the pytest node ids that must fail under it. Add one here; tests/mutation.py runs them."""
from __future__ import annotations

from dataclasses import dataclass

MEM, GREEDY, NEO = "emso_bench/metrics/memorization.py", "emso_bench/metrics/greedy.py", "emso_bench/metrics/neo_decode.py"
REG = "emso_bench/metrics/registry.py"  # the split summaries' reducers
ENGINE, SELECT, VALIDATE = "emso_bench/engine.py", "emso_bench/selection.py", "emso_bench/validate.py"
SCOPE = (MEM, REG, GREEDY, NEO, ENGINE, SELECT)  # the code the issue asks to measure; the rest guards other tests

CLOSED = "tests/test_metrics_closed_form.py"
MEASURED = f"{CLOSED}::test_measure_gives_the_hand_computed_figures"
RECITES = "tests/test_metrics.py::test_fast_el_equals_literal_in_float64_on_a_model_that_recites"
DECODERS = "tests/test_metrics.py::test_gpt_neo_decoder_and_generic_decoder_give_the_same_branches"
ENG = "tests/test_engine.py"
SEL = "tests/test_selection.py"
CONTRASTIVE = "tests/test_emso.py::test_contrastive_score_equals_the_product_of_independently_computed_gradients"
REFRESH = "tests/test_emso.py::test_a_mask_refresh_can_select_a_tensor_the_first_mask_left_out"
VALID = "tests/test_validate.py"
CLI_TESTS = "tests/test_cli.py"


# the engine's last two checks, for the mutant that swaps them
_GUARD = ('        if broke_guard:\n'
          '            status = "collapsed"\n'
          '            break\n')
_FORGOTTEN = ('        forgotten = line.get(f"forget_{el_key}", math.inf) < thresholds[el_key] and line["forget_ma"] < thresholds["ma"]\n'
              '        if forgotten and epoch >= cfg_stop.min_epochs:\n'
              '            status = "forgotten"\n'
              '            break\n')


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    equivalent: str = ""  # why the change cannot alter anything the suite computes, when it cannot
    cli: bool = False  # its tests run the command line on the micro memorizer: only with --cli


MUTANTS = [
    # the changes the issue found passing every fast test
    Mutant("el_prefix_range_stops_one_early", MEM, "for t in range(first, T - n + 1)]", "for t in range(first, T - n)]",
           (MEASURED, RECITES)),
    Mutant("el_denominator_counts_distinct_ngrams", MEM, "ngram_list(continuation, n)) / len(truth)",
           "ngram_list(continuation, n)) / len(found)", (f"{CLOSED}::test_el_term_divides_by_every_ngram_of_the_truth_repeats_included", MEASURED)),
    Mutant("extract_accepts_a_run_of_k_minus_1", MEM, "return run == k, run, longest >= k",
           "return run >= k - 1, run, longest >= k", (f"{CLOSED}::test_extract_needs_a_run_of_k_hits_from_the_context", MEASURED)),
    Mutant("el_first_prefix_ignored", MEM, "    was_training = model.training\n",
           "    params = MetricParams(**{**asdict(params), 'el_first_prefix': 1})\n    was_training = model.training\n",
           (MEASURED, RECITES)),
    Mutant("el_max_is_a_mean", MEM, 'Summary("el_{el_n}_max", "max")', 'Summary("el_{el_n}_max", "mean")',
           (f"{CLOSED}::test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold",)),
    Mutant("engine_forgotten_when_either_is_below", ENGINE, 'thresholds[el_key] and line["forget_ma"]',
           'thresholds[el_key] or line["forget_ma"]', (ENG,)),
    Mutant("engine_perplexity_guard_off", ENGINE, "broke_guard = ppl0 is not None and not", "broke_guard = False and not", (ENG,)),
    # metrics: memorization.py
    Mutant("extractable_accepts_a_run_of_k_minus_1", MEM, "return run == k, run, longest >= k",
           "return run == k, run, longest >= k - 1", (f"{CLOSED}::test_extractable_needs_a_run_of_k_hits_from_el_first_prefix_on",)),
    Mutant("extract_run_not_capped_at_k", MEM, "for t in range(c, min(c + k, len(x))):", "for t in range(c, len(x)):",
           (f"{CLOSED}::test_extract_needs_a_run_of_k_hits_from_the_context",)),
    Mutant("extractable_ignores_el_first_prefix", MEM, "for t in range(max(first, 1), len(x)):", "for t in range(1, len(x)):",
           (f"{CLOSED}::test_extractable_needs_a_run_of_k_hits_from_el_first_prefix_on",)),
    Mutant("ma_skips_the_first_position", MEM, "return (a == x[1:]).double()", "return (a[1:] == x[2:]).double()",
           (f"{CLOSED}::test_ma_counts_every_predicted_position_from_the_first_to_the_last", MEASURED)),
    Mutant("ma_skips_the_last_position", MEM, "return (a == x[1:]).double()", "return (a[:-1] == x[1:-1]).double()",
           (f"{CLOSED}::test_ma_counts_every_predicted_position_from_the_first_to_the_last", MEASURED)),
    Mutant("summary_ma_is_a_max", MEM, 'Summary("ma", "mean"', 'Summary("ma", "max"',
           (f"{CLOSED}::test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold",)),
    Mutant("summary_el_is_a_max", MEM, 'Summary("el_{el_n}", "mean"', 'Summary("el_{el_n}", "max"',
           (f"{CLOSED}::test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold",)),
    Mutant("summary_above_threshold_inclusive", REG, "[v > threshold for v in values]", "[v >= threshold for v in values]",
           (f"{CLOSED}::test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold",)),
    Mutant("summary_extract_run_is_a_max", MEM, 'Summary("extract_run", "mean")', 'Summary("extract_run", "max")',
           (f"{CLOSED}::test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold",)),
    Mutant("summary_extractable_is_a_max", MEM, 'Summary("extractable_frac", "mean")',
           'Summary("extractable_frac", "max")', (f"{CLOSED}::test_summarize_gives_means_the_max_and_the_fraction_above_the_threshold",)),
    Mutant("el_term_looks_up_the_continuation", MEM, "found = set(truth)", "found = set(ngram_list(continuation, n))",
           (f"{CLOSED}::test_el_term_divides_by_every_ngram_of_the_truth_repeats_included", MEASURED)),
    Mutant("ngrams_drop_the_last", MEM, "for i in range(len(seq) - n + 1)]", "for i in range(len(seq) - n)]", (MEASURED,)),
    Mutant("branch_points_skip_the_last_position", MEM, "for t in range(T - 1, 0, -1):", "for t in range(T - 2, 0, -1):",
           (MEASURED,)),
    Mutant("continuation_keeps_the_true_token_at_the_branch", MEM, "x[t:b] + branches[(i, b)].tolist()",
           "x[t:b + 1] + branches[(i, b)].tolist()[1:]", (MEASURED,)),
    # metrics: greedy.py and neo_decode.py (the branches EL is computed from)
    Mutant("teacher_forced_without_the_padding_mask", GREEDY, "attention_mask=mask.to(device), use_cache=with_cache)",
           "use_cache=with_cache)", (MEASURED, RECITES),
           equivalent="rows are right-padded and attention is causal, so no real position ever attends to padding, "
                      "and GPT-Neo's position ids do not depend on the mask; branches read only cache positions "
                      "< b, which are real tokens"),
    Mutant("branches_decoded_before_el_first_prefix", GREEDY, "for b in range(max(first, 1), len(x)):",
           "for b in range(1, len(x)):", (MEASURED, RECITES),
           equivalent="decodes branches at positions b < el_first_prefix too, which EL never reads (its prefixes "
                      "t >= f only look up branch points >= t); only slower"),
    Mutant("branch_condition_inverted", GREEDY, "if a[b - 1] != x[b]:", "if a[b - 1] == x[b]:", (MEASURED,)),
    Mutant("branches_sorted_shortest_first", GREEDY, "jobs.sort(reverse=True)", "jobs.sort()", (MEASURED, RECITES)),
    Mutant("branch_head_off_by_one", GREEDY, "heads = torch.stack([preds[i][b - 1] for", "heads = torch.stack([preds[i][b - 2] for",
           (MEASURED,)),
    Mutant("generic_decoder_positions_skip_one", GREEDY, "positions = positions + 1", "positions = positions + 2", (RECITES,)),
    Mutant("neo_decoder_local_window_one_wider", NEO, "(slots[None, lo:hi] > (b + s - window)[:, None])",
           "(slots[None, lo:hi] >= (b + s - window)[:, None])", (RECITES, DECODERS)),
    Mutant("neo_decoder_own_ring_one_wider", NEO, "min(ring or self.GROW, steps)", "min(ring + 1 if ring else self.GROW, steps)",
           (RECITES, DECODERS)),
    Mutant("neo_decoder_growth_drops_the_first_slot", NEO, "self.k[:, :, :cap], self.v[:, :, :cap] = old_k, old_v",
           "self.k[:, :, :cap - 1], self.v[:, :, :cap - 1] = old_k[:, :, 1:], old_v[:, :, 1:]", (RECITES, DECODERS)),
    Mutant("neo_decoder_one_unwritten_slot_unmasked", NEO, "if filled < slots:\n        own[..., filled:]",
           "if filled + 1 < slots:\n        own[..., filled + 1:]", (RECITES, DECODERS)),
    Mutant("neo_decoder_argmax_ties_to_the_last_block", NEO, "top = values.argmax(dim=1, keepdim=True)",
           "top = values.shape[1] - 1 - values.flip(1).argmax(dim=1, keepdim=True)",
           ("tests/test_metrics.py::test_blocked_argmax_is_torch_argmax_of_the_logits_ties_to_the_lowest_id",)),
    Mutant("neo_decoder_position_off_by_one", NEO, "net.wpe(b + s))", "net.wpe(b + s + 1))", (RECITES, DECODERS)),
    Mutant("neo_decoder_prefix_sees_the_branch_point", NEO, "before = slots[None, :hi] < b[:, None]",
           "before = slots[None, :hi] <= b[:, None]", (RECITES, DECODERS)),
    # the stop rule: engine.run_epochs
    Mutant("engine_guard_allows_no_equality", ENGINE, 'not line["heldout_ppl"] <= cfg_stop', 'not line["heldout_ppl"] < cfg_stop', (ENG,)),
    Mutant("engine_guard_lets_nan_through", ENGINE, 'not line["heldout_ppl"] <= cfg_stop.ppl_guard',
           'line["heldout_ppl"] > cfg_stop.ppl_guard', (ENG,)),
    Mutant("engine_guard_additive", ENGINE, "cfg_stop.ppl_guard * ppl0\n", "cfg_stop.ppl_guard + ppl0\n", (ENG,)),
    Mutant("engine_forgotten_checked_before_the_guard", ENGINE, _GUARD + _FORGOTTEN, _FORGOTTEN + _GUARD, (ENG,)),
    Mutant("engine_min_epochs_off_by_one", ENGINE, "epoch >= cfg_stop.min_epochs", "epoch > cfg_stop.min_epochs", (ENG,)),
    Mutant("engine_el_threshold_inclusive", ENGINE, "math.inf) < thresholds[el_key]", "math.inf) <= thresholds[el_key]", (ENG,)),
    Mutant("engine_missing_el_counts_as_zero", ENGINE, "math.inf) < thresholds[el_key]", "0.0) < thresholds[el_key]", (ENG,),
           equivalent="EL is missing from an epoch's line only when MA was not below its threshold, and then the "
                      "MA half of `forgotten` is false whatever EL stands in"),
    Mutant("engine_el_measured_every_epoch", ENGINE, 'if line["forget_ma"] < thresholds["ma"]:', "if True:", (ENG,)),
    Mutant("engine_forget_after_from_an_earlier_epoch", ENGINE, "if last_full is not None and last_full[0] == epoch else",
           "if last_full is not None else", (ENG,)),
    Mutant("engine_infinite_loss_not_caught", ENGINE, "if not math.isfinite(loss):", "if math.isnan(loss):", (ENG,)),
    # the selection
    Mutant("contrastive_keeps_non_positive_scores", SELECT, 'positive_only = rule == "contrastive"', "positive_only = False",
           (SEL, CONTRASTIVE)),
    Mutant("top_k_counts_non_positive_scores", SELECT, "lo, hi = int(positive_only), torch.iinfo(ints).max",
           "lo, hi = 0, torch.iinfo(ints).max", (SEL, CONTRASTIVE)),
    Mutant("rho_floored_globally", SELECT, "int(round(fraction * n_weights))", "int(fraction * n_weights)", (SEL, CONTRASTIVE)),
    Mutant("rho_floored_per_tensor", SELECT, "int(round(fraction * scores.numel()))", "int(fraction * scores.numel())", (SEL,)),
    Mutant("threshold_exclusive", SELECT, "keep = scores >= threshold if", "keep = scores > threshold if", (SEL, CONTRASTIVE)),
    Mutant("contrastive_score_is_a_sum", SELECT, "store[name].mul_(g_em.to(store_device))", "store[name].add_(g_em.to(store_device))", (CONTRASTIVE, SEL)),
    Mutant("em_gradient_sign_flipped", SELECT, "mean_entropy, micro_batch, device, sign=-1.0", "mean_entropy, micro_batch, device, sign=1.0",
           (CONTRASTIVE, SEL)),
    Mutant("magnitude_rules_keep_the_sign", SELECT, '            if rule != "contrastive":\n', "            if False:\n", (SEL,)),
    Mutant("matrices_include_vectors", SELECT, "if p.dim() == 2}", "if p.dim() >= 1}", (SEL,)),
    Mutant("scores_computed_with_dropout_on", SELECT, "    model.eval()  # dropout off", "    pass  # dropout off", (SEL,)),
    Mutant("random_rule_ignores_the_seed", SELECT, "torch.Generator().manual_seed(seed)", "torch.Generator().manual_seed(0)", (SEL,)),
    Mutant("frozen_tensors_not_scored", SELECT, "        p.requires_grad_(True)\n", "        pass\n", (REFRESH,)),
    Mutant("top_k_bisection_off_by_one", SELECT, "lo, hi = (mid, hi) if count(mid) >= k else (lo, mid - 1)",
           "lo, hi = (mid, hi) if count(mid) > k else (lo, mid - 1)", (CONTRASTIVE, SEL)),
    # the tests that replaced ones that could not fail
    Mutant("metric_cache_key_covers_other_code", "emso_bench/measure.py", 'source_hash(PACKAGE_DIR / "metrics")',
           'source_hash(PACKAGE_DIR / "metrics", PACKAGE_DIR / "tasks")',
           ("tests/test_metrics.py::test_the_metric_code_key_is_the_metric_files_and_changes_with_any_of_them",)),
    Mutant("measurement_cache_ignores_the_code", "emso_bench/measure.py", '"code": METRICS_CODE, "metrics": metrics}',
           '"metrics": metrics}', ("tests/test_metrics.py::test_a_cached_measurement_is_reused_only_under_the_same_metric_code",)),
    Mutant("utility_cache_key_ignores_yaml", "emso_bench/measure.py", 'PACKAGE_DIR / "utility", patterns=("*.py", "*.yaml"))',
           'PACKAGE_DIR / "utility", patterns=("*.py",))',
           ("tests/test_metrics.py::test_the_utility_code_key_covers_the_task_yaml_and_the_harness_code",)),
    Mutant("time_left_zero_before_any_job", "emso_bench/sweep.py", "        return math.nan\n", "        return 0.0\n",
           ("tests/test_sweeps.py::test_the_time_left_shares_the_jobs_left_among_the_launchers_parallel_workers",)),
    # input validation
    Mutant("forget_size_zero_allowed", VALIDATE, '_integer(cfg, "forget.size", 1,', '_integer(cfg, "forget.size", 0,', (VALID,)),
    Mutant("forget_size_ignores_the_retain_split", VALIDATE, "return total - retain, f", "return total, f", (VALID,)),
    Mutant("booleans_pass_as_integers", VALIDATE, "isinstance(value, Integral) and not isinstance(value, bool)",
           "isinstance(value, Integral)", (VALID,)),
    Mutant("forget_draw_negative_allowed", VALIDATE, '"forget.draw": (0,', '"forget.draw": (-10,', (VALID,)),
    Mutant("learning_rate_zero_allowed", VALIDATE, '"method.optim.lr": (0.0, None, False,', '"method.optim.lr": (0.0, None, True,',
           (VALID,)),
    Mutant("rho_above_one_allowed", VALIDATE, '"select.fraction": (0.0, 1.0, False,', '"select.fraction": (0.0, None, False,',
           (VALID,)),
    Mutant("forget_file_not_read", VALIDATE, "        parse_forget_file(str(cfg.forget.path))\n", "        pass\n", (VALID,)),
    Mutant("nan_threshold_allowed", VALIDATE, "(not _is_real(value) or not 0 <= value <= 1)", "(value > 1)", (VALID,)),
    # the command line (--cli): refused before Hydra writes, and no notices that say nothing
    Mutant("bad_input_checked_only_after_hydra_writes", "emso_bench/app.py", "            check_config(task)\n", "",
           (f"{CLI_TESTS}::test_bad_input_is_one_line_exit_2_and_leaves_the_record_alone",), cli=True),
    Mutant("forget_split_not_checked", VALIDATE, "    _check_forget(cfg)\n", "",
           (f"{CLI_TESTS}::test_bad_input_is_one_line_exit_2_and_leaves_the_record_alone",), cli=True),
    Mutant("kernels_offline_notice_kept", "emso_bench/quiet.py", "        return not (message", "        return True or (message",
           (f"{CLI_TESTS}::test_a_run_prints_no_notice_that_says_nothing_about_it",), cli=True),
    Mutant("tokenizer_length_notice_kept", "emso_bench/run.py", '.join(held_out), verbose=False)', '.join(held_out))',
           (f"{CLI_TESTS}::test_a_run_prints_no_notice_that_says_nothing_about_it",), cli=True),
]
