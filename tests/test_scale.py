"""The cost model (emso_bench/scale): closed-form counts on a tiny GPT-Neo worked out by hand, the
activation formula against what autograd actually saves, and the dry run's cost section and sweep total."""
from __future__ import annotations

import re

import pytest
import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM

from emso_bench.objectives import Batch, mean_entropy, mean_log_likelihood
from emso_bench.scale import compute, memory
from emso_bench.scale.arch import GPT_NEO, Arch
from emso_bench.scale.estimate import estimate
from tests.helpers import compose, run_cli

# V = 10, h = 4, L = 2 blocks, 2 heads, f = 4h = 16, 8 positions
TINY = Arch(vocab=10, hidden=4, layers=2, heads=2, inner=16, positions=8)


def tiny_config(layers: int = 2, **kw) -> GPTNeoConfig:
    return GPTNeoConfig(vocab_size=TINY.vocab, hidden_size=TINY.hidden, num_layers=layers, num_heads=TINY.heads,
                        max_position_embeddings=TINY.positions, window_size=8,
                        attention_types=[[["global", "local"], layers // 2]] * (layers > 1) + [[["global"], 1]] * (layers % 2),
                        embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0, bos_token_id=0, eos_token_id=0, **kw)


def test_parameter_counts_in_closed_form():
    # a block: q, k, v, out 4 x 4x4 = 64, c_fc and c_proj 2 x 4x16 = 128; biases 4 + 16 + 4, layer norms 4 x 4
    assert (TINY.block_matrices, TINY.block_other, TINY.embeddings) == (192, 40, (10 + 8) * 4)
    assert TINY.total == 72 + 2 * (192 + 40) + 2 * 4 == 544
    assert (TINY.eligible("matrices"), TINY.eligible("blocks"), TINY.eligible("all")) == (384, 464, 544)
    assert sum(p.numel() for p in GPTNeoForCausalLM(tiny_config()).parameters()) == TINY.total
    published = {"gpt-neo-125m": 125_198_592, "gpt-neo-1.3b": 1_315_575_808, "gpt-neo-2.7b": 2_651_307_520}
    assert {name: Arch.from_config(GPT_NEO[name]).total for name in published} == published


def test_bytes_per_gpu_of_the_step_and_the_selection_by_hand():
    s = memory.Setting(method="emso", rule="contrastive", eligible=384, fraction=0.25, e=4, e_train=4)
    assert memory.step_state(TINY, s) == {
        "masks": 384, "frozen values": 288 * 4, "reference": 0,
        "weights": 544 * 4 + 2 * 8 * 8,  # + each layer's 8x8 causal-mask buffer
        "gradients": 384 * 4, "optimizer": 2 * 384 * 4}
    z3 = memory.Setting(method="npo", rule="all", eligible=544, fraction=1.0, e=4, e_train=2, world=2, stage=3,
                        bucket=10, sharded_store=True)
    assert memory.step_state(TINY, z3) == {
        "masks": 544, "frozen values": 0, "reference": 544 * 2,
        "weights": 544 * 2 // 2 + 128 + (192 + 40 + 10) * 2,  # partition + buffers + one gathered block, bucket
        "gradients": 544 * 2 // 2 + 2 * 10 * 2, "optimizer": 3 * 544 * 4 // 2, "template": 544 * 4}
    assert memory.step_state(TINY, memory.Setting(**dict(z3.__dict__, offload=True)))["optimizer"] == 0
    assert memory.selection_state(TINY, z3) == {"weights": 544 * 4 + 128, "gradients": 544 * 4,
                                                "selection store": 544 * 4 // 2}


def test_activation_bytes_by_hand():
    # b = 1, T = 3, float32: 3 x (6x4x4 + 8x4 + 5x4x16 + 4x4) + 2 heads x 9 x 4
    assert memory.layer_activations(TINY, 1, 3, 4) == 3 * 464 + 72
    # bfloat16: the q/k and softmax stay float32, the softmax's bf16 copy is kept too
    assert memory.layer_activations(TINY, 1, 3, 2) == 3 * (48 + 32 + 160 + 8) + 2 * 9 * 6 == 852
    # b = 2: two blocks of 6 x 464 + 2 x 2 x 9 x 4 = 2,928; ln_f 2 x 6 x (4 + 1) x 4; five float32
    # (2, 2, 10) log-probability tensors for the entropy loss, three for the log-likelihood
    assert memory.train_activations(TINY, 2, 3, 4, "entropy") == 2 * 2928 + 240 + 800 == 6896
    assert memory.train_activations(TINY, 2, 3, 4, "likelihood") == 6896 - 2 * 160


def _saved(model, batch, loss) -> dict[int, torch.Tensor]:
    """The distinct storages autograd saves for backward (one tensor each), weights and buffers left out."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, torch.Tensor] = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in own:
            seen[t.untyped_storage().data_ptr()] = t
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss(model, batch)
    return seen


def _saved_bytes(model, batch, loss) -> int:
    return sum(t.untyped_storage().nbytes() for t in _saved(model, batch, loss).values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_activation_formula_is_what_autograd_saves(dtype):
    """Two more blocks save exactly 2 x layer_activations; the entropy loss saves two float32
    (b, T-1, V) tensors (log p and p), the log-likelihood one: what HEAD_COPIES builds on."""
    torch.manual_seed(0)
    b, T, e = 3, 8, torch.finfo(dtype).bits // 8
    batch = Batch.of([torch.randint(0, TINY.vocab, (T,)) for _ in range(b)], "cpu")
    model = {n: GPTNeoForCausalLM(tiny_config(n)).to(dtype).train() for n in (1, 3)}
    one, three = (_saved_bytes(model[n], batch, mean_log_likelihood) for n in (1, 3))
    assert three - one == 2 * memory.layer_activations(TINY, b, T, e)
    for loss, copies in ((lambda m, x: -mean_entropy(m, x), 2), (mean_log_likelihood, 1)):
        saved = _saved(model[1], batch, loss).values()
        assert sum(t.dtype == torch.float32 and t.untyped_storage().nbytes() == b * (T - 1) * TINY.vocab * 4
                   for t in saved) == copies


def test_flops_of_passes_and_el_branches_by_hand():
    # per token: 2 x (2 blocks x 192 + 4 x 10) = 848, plus 4 x L x h = 32 per attended position
    assert compute.forward_flops(TINY, 1, 0) == 848 and compute.forward_flops(TINY, 1, 1) == 880
    assert compute.pass_flops(TINY, 5) == 5 * (848 + 32 * 5)
    # T = 5, f = 1: branches at b = 1, 2, 3, 4 decode 3, 2, 1, 0 tokens at contexts (2,3,4), (3,4), (4)
    assert compute.decode_tokens(5, 1) == 6 and compute.decode_tokens(200, 1) == 198 * 199 // 2 == 19_701
    assert compute.decode_flops(TINY, 5, 1) == 6 * 848 + 32 * (2 + 3 + 4 + 3 + 4 + 4)
    assert compute.el_row_flops(TINY, 5, 1, 1.0) == compute.pass_flops(TINY, 5)  # memorized: no branch
    assert compute.el_row_flops(TINY, 5, 1, 0.5) == 5040 + 0.5 * 5728
    assert compute.gpu_hours(3.6e15, 1.0) == pytest.approx(1.0)


def test_the_largest_micro_batch_is_the_one_that_still_fits():
    def fits(est):
        return max(sum(est.phases[p].values()) for p in ("selection", "step")) <= est.gpu_bytes

    for model in GPT_NEO:
        for world, dist in ((1, ["distributed=none"]), (8, ["distributed=zero3", "distributed.nproc=8"])):
            base = [f"model={model}", "forget.size=1024", *dist]
            m = estimate(compose(base)).largest_micro_batch
            assert m and m >= 1
            at, above = (estimate(compose([*base, f"method.micro_batch={k}"])) for k in (m, m + 1))
            assert at.micro_batch == (min(m, 1024) if world == 1 else -(-128 // -(-128 // m))) and fits(at), (model, m)
            # DeepSpeed deals a rank's rows in equal chunks: a larger setting may give the same chunks
            assert fits(above) == (above.micro_batch <= m), (model, dist, m, above.micro_batch)


def test_zero3_shards_the_selection_store_and_the_dry_run_prints_memory_and_gpu_hours(tmp_path):
    base = ["model=gpt-neo-2.7b", "distributed=zero3", "distributed.nproc=8"]
    est = estimate(compose(base))
    store = est.phases["selection"]["selection store"]
    assert store == -(-Arch.from_config(GPT_NEO["gpt-neo-2.7b"]).eligible("matrices") * 4 // 8)
    proc = run_cli([*base, "dry_run=true", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "memory per GPU, GiB" in proc.stdout and "selection store 1.2" in proc.stdout
    hours = re.search(r"estimated GPU-hours: ([\d.]+) at 20 TFLOP/s", proc.stdout)
    assert hours and float(hours.group(1)) == pytest.approx(est.gpu_hours, rel=1e-2)
