"""Durability probes (emso_bench/durability/): closed forms for the quantizer and the AUC, seeded
sampling, and relearning on the micro memorizer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emso_bench.durability.mia import auc, scores
from emso_bench.durability.quantize import quantized_copy, rtn
from emso_bench.durability.relearn import RelearnParams, first_halves, fuse_gelu, recovery, relearn
from emso_bench.durability.sampling import SamplingParams, row_figures, sample_suffixes, sampling_extraction
from emso_bench.metrics import MetricParams


def test_rtn_per_channel_matches_the_closed_form():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0, 10.0], [-4.0, -1.0, 0.0, 1.0, 2.0]])
    # row 0, 2 bits: scale = 10/3, zero = 0, q = round(w * 0.3) = 0, 0, 1, 1, 3 -> 0, 0, 10/3, 10/3, 10
    # row 1, 2 bits: scale = 6/3 = 2, zero = round(4/2) = 2, w/2 = -2, -0.5, 0, 0.5, 1 rounds (half to even)
    #   to -2, 0, 0, 0, 1, so q = 0, 2, 2, 2, 3 -> w' = (q - 2) * 2 = -4, 0, 0, 0, 2
    expect = torch.tensor([[0.0, 0.0, 10 / 3, 10 / 3, 10.0], [-4.0, 0.0, 0.0, 0.0, 2.0]])
    assert torch.allclose(rtn(w, 2), expect, atol=1e-6)


def test_rtn_groups_cover_the_row_and_keep_a_constant_last_group():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0, 10.0]])
    # groups of 2: [0, 1] (scale 1/3: exact), [2, 3] (scale 1/3, zero -6: exact), [10] (constant: kept)
    assert torch.allclose(rtn(w, 2, group_size=2), w, atol=1e-6)
    # groups of 3: [0, 1, 2] at 1 bit: scale 2, zero 0, q = round(0, 0.5, 1) = 0, 0, 1 -> 0, 0, 2;
    # [3, 10]: scale 7, zero round(-3/7) = 0, q = round(3/7, 10/7) = 0, 1 -> 0, 7
    assert torch.allclose(rtn(w, 1, group_size=3), torch.tensor([[0.0, 0.0, 2.0, 0.0, 7.0]]), atol=1e-6)
    assert torch.equal(rtn(w, 8, group_size=99), rtn(w, 8))  # a group wider than the row is the channel


def test_quantized_copy_rounds_block_matrices_only(micro_memorizer):
    _, model, _ = micro_memorizer
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    q = dict(quantized_copy(model, 4).named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])  # the original is untouched
        inside = p.dim() == 2 and ".h." in name
        assert torch.equal(q[name], p) != inside, name
        if inside:
            assert torch.equal(q[name], rtn(p, 4))


def test_auc_counts_ties_as_one_half():
    # pairs (3,2) (3,1) (2,2) (2,1) (2,2) (2,1): 4 greater, 2 ties -> (4 + 1) / 6
    assert auc([3, 2, 2], [2, 1]) == pytest.approx(5 / 6)
    assert auc([1, 1], [1, 1]) == 0.5 and auc([0], [1]) == 0.0 and np.isnan(auc([], [1]))


def test_mia_scores_follow_their_definitions():
    lp = [np.log(np.array([0.5, 0.25, 1.0, 0.125, 1.0]))]
    text = "abcabcabcabc"
    import zlib

    loss = -np.mean(lp[0])
    got = scores(lp, [text], k=0.4)  # the 2 lowest of 5: log 0.125 and log 0.25
    assert got["loss"][0] == pytest.approx(-loss)
    assert got["zlib"][0] == pytest.approx(-loss / len(zlib.compress(text.encode())))
    assert got["min_k"][0] == pytest.approx((np.log(0.125) + np.log(0.25)) / 2)


def test_row_figures_take_the_best_sample():
    truth = list(range(20))
    samples = torch.tensor([[0] * 20, truth[:10] + [99] * 10, truth])
    got = row_figures(samples[:2], truth, n=5)
    # sample 2 matches 10 of 20 in place; its 5-grams 0-4 .. 5-9 (6 of the 16 true ones) are found
    assert got == {"best_match": 0.5, "best_el": 6 / 16, "exact": False}
    assert row_figures(samples, truth, n=5)["exact"] is True


def test_sampling_is_reproducible_under_a_seed_and_differs_across_seeds(micro_memorizer):
    path, model, _ = micro_memorizer
    seqs = [torch.as_tensor(r) for r in np.load(path / "unseen.npy").astype(np.int64)[:2]]
    sp = SamplingParams(samples=3, length=12)
    a, b = sampling_extraction(model, seqs, sp), sampling_extraction(model, seqs, sp)
    c = sampling_extraction(model, seqs, SamplingParams(samples=3, length=12, seed=1))
    assert a["rows"] == b["rows"]
    assert a["rows"] != c["rows"]
    pool = [torch.as_tensor(r) for r in np.load(path / "pool.npy").astype(np.int64)[:2]]
    memorized = sampling_extraction(model, pool, sp)
    assert memorized["best_match"] > a["best_match"]  # recited rows come back under sampling too


def test_sampling_does_not_depend_on_which_rows_share_a_batch(micro_memorizer):
    import copy

    path, model, _ = micro_memorizer
    exact = copy.deepcopy(model).double()  # float64: batch shapes cannot move a draw by rounding
    seqs = [torch.as_tensor(r) for r in np.load(path / "unseen.npy").astype(np.int64)[:3]]
    sp = SamplingParams(samples=4, length=12, seed=3)
    alone = sampling_extraction(exact, seqs, sp, rows_per_batch=1)["rows"]
    assert sampling_extraction(exact, seqs, sp, rows_per_batch=3)["rows"] == alone
    assert sampling_extraction(exact, seqs, sp, rows_per_batch=2)["rows"] == alone


def test_top_1_sampling_is_greedy_decoding(micro_memorizer):
    path, model, _ = micro_memorizer
    seqs = [torch.as_tensor(r) for r in np.load(path / "unseen.npy").astype(np.int64)[:2]]
    sp = SamplingParams(samples=2, top_k=1, context=20, length=15)
    got = sample_suffixes(model, seqs, sp, [0, 1])
    with torch.no_grad():  # transformers' own greedy decoding, one row at a time
        want = [model.generate(x[None, :20], max_new_tokens=15, min_new_tokens=15, do_sample=False,
                               pad_token_id=0)[0, 20:] for x in seqs]
    for samples, greedy in zip(got, want):
        assert samples.shape == (2, 15) and all(torch.equal(s, greedy) for s in samples)


def test_relearning_brings_erased_rows_back(micro_memorizer):
    from emso_bench.probe import ascend_until_halfway

    path, model, _ = micro_memorizer
    pool = [torch.as_tensor(r) for r in np.load(path / "pool.npy").astype(np.int64)]
    forget, params = pool[:4], MetricParams()
    erased = type(model).from_pretrained(path)
    ascend_until_halfway(erased, forget, goal_ma=0.3, lr=1e-3, max_steps=100)
    ma = lambda m: np.mean([r["ma"] for r in __import__("emso_bench.metrics", fromlist=["measure"]).measure(  # noqa: E731
        m, forget, params, with_el=False)])
    ma_before, ma_erased = ma(model), ma(erased)
    snapshot = [p.detach().clone() for p in erased.parameters()]
    out = relearn(erased, first_halves(forget), forget, params, RelearnParams(steps=(1, 6), lr=1e-3))
    assert [o["steps"] for o in out] == [1, 6]
    assert all(torch.equal(p, s) for p, s in zip(erased.parameters(), snapshot))  # attacks a copy
    assert out[-1]["forget_ma"] > ma_erased + 0.1  # an attack that trained on nothing would leave it
    assert 0 < recovery(ma_before, ma_erased, out[-1]["forget_ma"]) <= 1.2


def test_fused_gelu_computes_gpt_neos_gelu_new(micro_memorizer):
    """The relearning copy's fused activation against gelu_new's formula written out, and the whole model's
    logits and loss gradient against the unfused model's, in float64 where only rounding may differ."""
    import copy

    path, model, _ = micro_memorizer
    twin = copy.deepcopy(model).double()
    assert fuse_gelu(twin) == model.config.num_layers
    assert all(type(block.mlp.act).__name__ == "GELUTanh" for block in twin.transformer.h)  # the fused kernel
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    literal = 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))
    assert torch.allclose(twin.transformer.h[0].mlp.act(x), literal, rtol=0, atol=1e-14)
    ref = copy.deepcopy(model).double()
    ids = torch.as_tensor(np.load(path / "pool.npy")[:2].astype(np.int64))
    out_fused, out_ref = twin(ids, labels=ids), ref(ids, labels=ids)
    assert torch.allclose(out_fused.logits, out_ref.logits, rtol=0, atol=1e-10)
    out_fused.loss.backward(), out_ref.loss.backward()
    for a, b in zip(twin.parameters(), ref.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-10)


def test_side_by_side_runs_each_job_once_on_its_share_of_threads_and_restores_the_count():
    import threading

    from emso_bench.durability.suite import side_by_side

    session_threads = torch.get_num_threads()
    seen = []

    def job(k):
        seen.append(threading.get_ident())
        return k * k, torch.get_num_threads()

    jobs = {("probe", str(k)): (lambda k=k: job(k)) for k in range(5)}
    for threads, workers, share in [(2, 1, 2), (2, 2, 1), (4, 2, 2), (2, 3, 1)]:
        torch.set_num_threads(threads)
        seen.clear()
        done = side_by_side(jobs, workers)
        assert list(done) == list(jobs)  # the order given, whatever finished first
        assert [figures for (figures, _), _seconds in done.values()] == [k * k for k in range(5)]
        assert {t for (_, t), _seconds in done.values()} == {share}
        assert len(seen) == 5 and (threading.get_ident() in seen) == (workers == 1)
        assert torch.get_num_threads() == threads

    def fails():
        raise RuntimeError("probe failed")

    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="probe failed"):
        side_by_side({("probe", "bad"): fails, **jobs}, 2)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(session_threads)


def test_eval_durable_writes_every_probe_into_the_record_the_csv_and_the_report(micro_memorizer, tmp_path):
    import csv
    import json

    from emso_bench.report.tables import aggregate, durability_markdown
    from emso_bench.run import execute
    from tests.helpers import compose

    cfg = compose(["model=memorizer-micro", "debug=default", "method=ga", "stop.max_epochs=2", "eval=durable",
                   "eval.durable.sampling.samples=2", "eval.durable.relearn.steps=[1,2]",
                   "eval.durable.workers=2", "eval.unseen_after=ma"])  # the real jobs side by side
    results = execute(cfg, tmp_path)
    d = json.loads((tmp_path / "results.json").read_text())["durability"]
    assert d["sampling"]["params"]["samples"] == 2 and 0 <= d["sampling"]["best_match"] <= 1
    assert set(d["relearn"]["attacks"]) == {"retain", "half"} and set(d["relearn"]["attacks"]["half"]) == {"1", "2"}
    assert set(d["quantize"]["variants"]) == {"int8_channel", "int4_channel", "int4_g32"}
    assert d["workers"] == 2
    for when in ("mia_before", "mia_after"):
        assert set(d[when]) >= {"loss", "zlib", "min_k"} and all(0 <= d[when][k] <= 1 for k in ("loss", "zlib", "min_k"))
    with open(tmp_path / "per_example.csv") as fh:
        rows = list(csv.DictReader(fh))
    forget = [r for r in rows if r["split"] == "forget"]
    assert forget and all(r["sample_best_match_after"] != "" for r in forget)
    from emso_bench.run_record import RunRecord

    table = durability_markdown(aggregate([RunRecord.from_json(results, run_dir=str(tmp_path))]))
    assert table and "int4 MA" in table
    header, _, row = table.strip().splitlines()[:3]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    last = d["relearn"]["attacks"]
    assert cells["relearn retain EL10"] == f"{last['retain']['2']['forget_el_10']:.3f}"
    assert cells["relearn half rec"] == f"{last['half']['2']['recovery_ma']:.3f}"
