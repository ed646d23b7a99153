"""MA, EL_n and extract@k: closed forms on hand-made sequences, and the fast path against the literal
one (one `generate` per prefix length) in float64, where they must agree exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emso_bench.metrics import MetricParams, measure
from emso_bench.metrics.memorization import check_lengths, el_at
from tests.helpers import float64_attention, literal_el, literal_greedy, tiny_gpt_neo


def test_el_term_counts_continuation_ngrams_found_in_the_true_suffix():
    truth = [1, 2, 3, 4, 5, 6]  # bigrams: 12 23 34 45 56
    assert el_at(truth, truth, 2) == 1.0
    assert el_at(truth, [1, 2, 3, 9, 9, 9], 2) == pytest.approx(2 / 5)  # 12 23
    assert el_at(truth, [4, 5, 6, 1, 2, 3], 2) == pytest.approx(4 / 5)  # 45 56 12 23 (order does not matter)
    assert el_at(truth, [1, 2, 1, 2, 1, 2], 2) == pytest.approx(3 / 5)  # 12 counted each time it occurs
    assert el_at(truth, [7, 7, 7, 7, 7, 7], 2) == 0.0


def test_literal_el_of_a_perfect_reciter_is_one_and_of_a_constant_guesser_is_zero():
    x = torch.arange(1, 31)
    perfect = {(0, t): x[t:].tolist() for t in range(1, 31 - 3 + 1)}
    constant = {(0, t): [0] * (30 - t) for t in range(1, 31 - 3 + 1)}
    assert literal_el([x], perfect, 1, 3) == [1.0]
    assert literal_el([x], constant, 1, 3) == [0.0]


def _params(**kw) -> MetricParams:
    base = dict(el_n=10, el_first_prefix=1, extract_context=20, extract_k=20, batch_size=8, branch_batch=16)
    base.update(kw)
    return MetricParams(**base)


def _literal_ma_and_extract(model, seqs, c, k):
    """MA from one forward pass per sequence, extract@k from a plain greedy generate of k tokens."""
    from transformers import GenerationConfig

    ma, extract = [], []
    config = GenerationConfig(do_sample=False, eos_token_id=None, pad_token_id=0, max_new_tokens=k)
    for x in seqs:
        logits = model(input_ids=x[None]).logits[0]
        ma.append((logits[:-1].argmax(-1) == x[1:]).double().mean().item())
        gen = model.generate(x[None, :c], attention_mask=torch.ones(1, c, dtype=torch.long), generation_config=config)
        extract.append(gen[0, c:].tolist() == x[c : c + k].tolist())
    return ma, extract


def _compare(model, seqs, params):
    with float64_attention():
        fast = measure(model, seqs, params)
        conts = literal_greedy(model, seqs, params.el_first_prefix, params.el_n)
        ma, extract = _literal_ma_and_extract(model, seqs, params.extract_context, params.extract_k)
    lit = literal_el(seqs, conts, params.el_first_prefix, params.el_n)
    assert [r[f"el_{params.el_n}"] for r in fast] == lit  # exact equality, row by row
    assert [r["ma"] for r in fast] == ma
    assert [r["extract"] for r in fast] == extract
    return fast


@pytest.fixture(params=["gpt_neo", "generic"])
def decoder(request, monkeypatch):
    """Run a test with GPT-Neo's shared-prefix decoder and with the generic cached decoder."""
    from emso_bench.metrics import neo_decode

    if request.param == "generic":
        monkeypatch.setattr(neo_decode, "supports", lambda model: False)
    return request.param


@pytest.fixture(scope="module")
def reciter():
    """A tiny float64 GPT-Neo trained (60 full-batch Adam steps, ~2 s) on three rows, and seven ragged rows
    to measure: the three it recites (EL 1), edited copies of two of them and a half-copy (it branches at
    the edits, then may fall back into the row: EL strictly between 0 and 1), and a random row (EL ~0)."""
    model = tiny_gpt_neo(positions=64, window=8).double()
    g = torch.Generator().manual_seed(4)
    rows = [torch.randint(1, 97, (T,), generator=g) for T in (36, 36, 30)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        sum(torch.nn.functional.cross_entropy(model(input_ids=r[None]).logits[0, :-1], r[1:]) for r in rows).backward()
        optimizer.step()
    model.eval()
    one_edit, two_edits = rows[0].clone(), rows[1].clone()
    one_edit[12] = one_edit[12] % 96 + 1
    two_edits[5], two_edits[20] = two_edits[5] % 96 + 1, two_edits[20] % 96 + 1
    half = torch.cat([rows[2][:15], torch.randint(1, 97, (15,), generator=g)])
    return model, rows + [one_edit, two_edits, half, torch.randint(1, 97, (33,), generator=g)]


@pytest.fixture(scope="module")
def literal_figures(reciter):
    """(EL_n, MA, extract@k) of the reciter's rows by the literal route, once per (n, first)."""
    model, seqs = reciter
    cache = {}

    def figures(n, first, c, k):
        if (n, first) not in cache:
            with torch.no_grad(), float64_attention():
                conts = literal_greedy(model, seqs, first, n)
                ma, extract = _literal_ma_and_extract(model, seqs, c, k)
            cache[(n, first)] = literal_el(seqs, conts, first, n), ma, extract
        return cache[(n, first)]

    return figures


@torch.no_grad()
@pytest.mark.parametrize("n,first", [(5, 1), (10, 3)])
def test_fast_el_equals_literal_in_float64_on_a_model_that_recites(reciter, literal_figures, decoder, n, first):
    """Exact equality row by row, on EL values that are 1, strictly between 0 and 1, and 0, with
    el_first_prefix 1 and 3 (the literal route shares no code with the fast one)."""
    model, seqs = reciter
    params = _params(el_n=n, el_first_prefix=first, extract_context=10, extract_k=10, batch_size=3, branch_batch=7)
    with float64_attention():
        fast = measure(model, seqs, params)
    el, ma, extract = literal_figures(n, first, 10, 10)
    assert [r[f"el_{n}"] for r in fast] == el
    assert [r["ma"] for r in fast] == ma
    assert [r["extract"] for r in fast] == extract
    assert el[:3] == [1.0] * 3 and sum(0 < v < 1 for v in el) >= 3  # the comparison has teeth


@torch.no_grad()
def test_one_batch_of_branches_of_every_length_decodes_as_each_branch_alone(decoder):
    """Finished branches leave a batch (and, in the generic decoder, all-padding slots are dropped):
    decoding every branch of ragged rows in one batch gives the continuations each branch gets
    decoded on its own."""
    from emso_bench.metrics.greedy import greedy_branches, teacher_forced

    model = tiny_gpt_neo(positions=64, window=8).double()
    g = torch.Generator().manual_seed(2)
    for weight in (p for p in model.parameters() if p.dim() == 2):  # large weights: every key moves the argmax
        weight.copy_(torch.randn(weight.shape, generator=g, dtype=weight.dtype) * 0.3)
    seqs = [torch.randint(1, 97, (n,), generator=g) for n in (40, 23, 31, 40, 15)]
    with float64_attention():
        preds, kv = teacher_forced(model, seqs, with_cache=True)
        together = greedy_branches(model, seqs, preds, kv, first=1, batch_size=10_000)
        alone = greedy_branches(model, seqs, preds, kv, first=1, batch_size=1)
    assert len(together) > 100  # a random model branches almost everywhere: lengths 1..38 in one batch
    assert together.keys() == alone.keys()
    assert all(torch.equal(together[key], alone[key]) for key in alone)
    assert all(len(cont) == len(seqs[i]) - b for (i, b), cont in together.items())


@pytest.mark.parametrize("block", [1, 7, 64, 97, 512])
def test_blocked_argmax_is_torch_argmax_of_the_logits_ties_to_the_lowest_id(block):
    """The GPT-Neo decoder's argmax, a vocabulary block at a time, against torch.argmax of the whole
    logits. Small integers make every logit exact whatever the order of the sums, so ties are real and
    frequent; torch.argmax returns the first maximal id, and so must the blocks."""
    from emso_bench.metrics.neo_decode import _argmax_logits

    g = torch.Generator().manual_seed(0)
    weight = torch.randint(-2, 3, (97, 6), generator=g).double()
    h = torch.randint(-2, 3, (400, 6), generator=g).double()
    logits = h @ weight.T
    want = torch.argmax(logits, dim=-1)
    ties = (logits == logits.max(-1, keepdim=True).values).sum(-1) > 1
    assert ties.sum() > 100 and len(set(want.tolist())) > 20
    assert torch.equal(_argmax_logits(weight, h, block), want)


@torch.no_grad()
def test_gpt_neo_decoder_and_generic_decoder_give_the_same_branches(monkeypatch):
    """The shared-prefix GPT-Neo decoder against the generic one (each branch a copy of its prefix's
    cache) on a random model that branches everywhere, with local windows shorter than the prefixes."""
    from emso_bench.metrics import neo_decode
    from emso_bench.metrics.greedy import greedy_branches, teacher_forced

    model = tiny_gpt_neo(positions=64, window=5, layers=4).double()
    g = torch.Generator().manual_seed(3)
    for weight in (p for p in model.parameters() if p.dim() == 2):
        weight.copy_(torch.randn(weight.shape, generator=g, dtype=weight.dtype) * 0.3)
    seqs = [torch.randint(1, 97, (n,), generator=g) for n in (50, 37, 50, 12, 44, 29)]
    assert neo_decode.supports(model)
    calls = []  # batches that went through the GPT-Neo decoder
    decode = neo_decode.decode_batch
    monkeypatch.setattr(neo_decode, "decode_batch", lambda *args: calls.append(1) or decode(*args))
    with float64_attention():
        preds, kv = teacher_forced(model, seqs, with_cache=True)
        neo = greedy_branches(model, seqs, preds, kv, first=1, batch_size=40)
        neo_batches = len(calls)
        generic = greedy_branches(model, seqs, preds, kv, first=1, batch_size=40, generic=True)
    assert len(neo) > 150 and neo_batches > 1 and len(calls) == neo_batches  # generic=True bypassed it
    assert neo.keys() == generic.keys()
    assert all(torch.equal(neo[key], generic[key]) for key in generic)


@torch.no_grad()
def test_fast_el_equals_literal_in_float64_on_the_micro_memorizer(micro_memorizer):
    path, model, _ = micro_memorizer
    model = model.double()
    pool = np.load(path / "pool.npy").astype(np.int64)
    unseen = np.load(path / "unseen.npy").astype(np.int64)
    seqs = [torch.as_tensor(r) for r in np.concatenate([pool[:6], unseen[:4]])]
    fast = _compare(model, seqs, _params(extract_context=50, extract_k=50, batch_size=4, branch_batch=64))
    assert np.mean([r["ma"] for r in fast[:6]]) > np.mean([r["ma"] for r in fast[6:]])


def test_extract_and_run_lengths_follow_the_argmax_hits():
    from emso_bench.metrics.memorization import _extraction

    x = torch.arange(12)
    a = x[1:].clone()  # every prediction right
    assert _extraction(x, a, c=4, k=5, first=1) == (True, 5, True)
    a[6 - 1] = 0  # prefix length 6 predicts wrong: the run from c=4 is 2 long
    assert _extraction(x, a, c=4, k=5, first=1) == (False, 2, True)  # t=7..11 is still a 5-long run
    a[9 - 1] = 0  # runs are now t=1..5, 7..8, 10..11: still extractable from prefix length 1
    assert _extraction(x, a, c=4, k=5, first=1) == (False, 2, True)
    a[3 - 1] = 0  # no run of 5 is left
    assert _extraction(x, a, c=4, k=5, first=1) == (False, 2, False)
    assert _extraction(x, a, c=4, k=5, first=4)[2] is False


def test_sequences_too_short_for_the_metrics_are_named():
    with pytest.raises(ValueError, match="forget: 1 sequence"):
        check_lengths([torch.arange(100), torch.arange(60)], MetricParams(), "forget")


def test_perplexity_is_exp_of_the_mean_token_nll_and_inf_past_the_float_range():
    import math

    from emso_bench.perplexity import perplexity
    from tests.test_emso import FixedLogits

    p = [[0.5, 0.25, 0.25], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [1 / 3] * 3]
    chunk = torch.tensor([[0, 1, 2, 0]])  # predicted: 1 (0.25), 2 (0.5), 0 (0.6)
    model = FixedLogits(torch.log(torch.tensor(p, dtype=torch.float64))[None])
    assert perplexity(model, chunk) == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.5) + math.log(0.6)) / 3))
    logits = torch.zeros(1, 4, 3, dtype=torch.float64)
    logits[0, :3, 1:] = -3000.0  # every target token ~3000 nats away: exp(mean NLL) is past float range
    assert perplexity(FixedLogits(logits), torch.tensor([[0, 1, 2, 0]])) == math.inf


def _copy_packages(tmp_path, *names):
    import shutil

    from emso_bench.paths import PACKAGE_DIR

    for name in names:
        shutil.copytree(PACKAGE_DIR / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return [tmp_path / name for name in names]


def test_the_metric_code_key_is_the_metric_files_and_changes_with_any_of_them(tmp_path):
    """measure.py's cache of "before" figures must not outlive a fix to the code that computed them."""
    from emso_bench.hashing import source_hash
    from emso_bench.measure import METRICS_CODE

    (copy,) = _copy_packages(tmp_path, "metrics")
    assert source_hash(copy) == METRICS_CODE  # the key of a copy elsewhere: it depends on these files only
    for path in sorted(copy.glob("*.py")):
        original = path.read_bytes()
        path.write_bytes(original + b"# edited\n")
        assert source_hash(copy) != METRICS_CODE, path.name
        path.write_bytes(original)
    (copy / "greedy.py").rename(copy / "greedy2.py")  # same bytes, another name
    assert source_hash(copy) != METRICS_CODE


def test_a_cached_measurement_is_reused_only_under_the_same_metric_code(tmp_path, monkeypatch):
    from emso_bench import measure as cached
    from emso_bench.splits import Split

    monkeypatch.setenv("EMSO_BENCH_CACHE", str(tmp_path))
    computed = []
    monkeypatch.setattr(cached, "measure", lambda model, seqs, params, with_el: computed.append(1) or
                        [{"ma": 0.5} for _ in seqs])
    split = Split("unseen", [0, 1], [torch.arange(24), torch.arange(1, 25)])
    for _ in range(2):
        assert cached.measure_split(None, split, MetricParams(), cache_on={"weights": "w"}) == [{"ma": 0.5}] * 2
    assert len(computed) == 1  # the second call read the cache
    monkeypatch.setattr(cached, "METRICS_CODE", "the code after a fix")
    cached.measure_split(None, split, MetricParams(), cache_on={"weights": "w"})
    assert len(computed) == 2


def test_the_utility_code_key_covers_the_task_yaml_and_the_harness_code(tmp_path):
    from emso_bench.hashing import source_hash
    from emso_bench.measure import UTILITY_CODE

    tasks, utility = _copy_packages(tmp_path, "tasks", "utility")

    def key():
        return source_hash(tasks, utility, patterns=("*.py", "*.yaml"))

    assert key() == UTILITY_CODE
    for path in (tasks / "emso_copa.yaml", tasks / "reasoning.py", utility / "evaluate.py"):
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        assert key() != UTILITY_CODE, path.name
        path.write_bytes(original)
    (tasks / "README.md").write_text("prose only\n")  # documentation does not change what is computed
    assert key() == UTILITY_CODE
