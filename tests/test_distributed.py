"""DeepSpeed sharding on the CPU (gloo): every option yields a config DeepSpeed accepts, and two-process
ZeRO-2 and ZeRO-3 EMSO runs match the single-process run (same mask, same stopping epoch, metrics
within 1e-3, weights within 1e-5, frozen weights bit-identical), forget rows of unequal length included."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emso_bench.distributed.config import accumulation, ds_config
from tests.helpers import compose, run_cli


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
@pytest.mark.parametrize("offload", ["none", "cpu"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_distributed_option_yields_a_config_deepspeed_accepts(stage, offload, precision):
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = compose([f"distributed={stage}", f"distributed.offload={offload}", f"distributed.precision={precision}"])
    config = ds_config(cfg.distributed, n_rows=128, world=1, micro_batch=cfg.method.micro_batch)
    parsed = DeepSpeedConfig(config)  # validates; without a process group DeepSpeed assumes one process
    assert parsed.zero_optimization_stage == int(stage[-1])
    assert parsed.train_batch_size == 128 and parsed.gradient_accumulation_steps == 2
    assert (parsed.bfloat16_config.enabled, parsed.float16_config.enabled) == (precision == "bf16", precision == "fp16")


def test_an_epoch_stays_one_full_batch_step_at_any_world_size():
    assert accumulation(128, 2, 64) == (64, 1)
    assert accumulation(129, 2, 64) == (65, 2)  # the odd row: one more micro-batch, not a second step
    assert accumulation(5, 2, 2) == (3, 2)


@pytest.fixture(scope="module")
def ragged_forget(micro_memorizer, tmp_path_factory):
    """8 memorized rows cut to lengths 70..100 (unequal), as a user's jsonl file."""
    path, _, tok = micro_memorizer
    rows = np.load(path / "pool.npy")[:8]
    out = tmp_path_factory.mktemp("forget") / "ragged.jsonl"
    out.write_text("".join(json.dumps({"text": tok.decode(r[: 100 - 4 * i].tolist())}) + "\n" for i, r in enumerate(rows)))
    return out


COMMON = ["model=memorizer-micro", "debug=default", "method=emso", "select.fraction=0.1", "method.optim.lr=0.003",
          "method.micro_batch=2", "eval.extract_k=20", "eval.unseen_after=none", "stop.max_epochs=6",
          "thresholds.source=fixed", "thresholds.ma=0.5", "thresholds.el_10=0.2", "save_model=true"]


def _run(tmp_path, name, extra, forget):
    run_dir = tmp_path / name
    proc = run_cli([*COMMON, f"forget.path={forget}", *extra, f"hydra.run.dir={run_dir}"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((run_dir / "results.json").read_text())
    weights = load_file(run_dir / "model" / "model.safetensors")
    masks = torch.load(run_dir / "model" / "selection_masks.pt")
    return results, weights, masks


@pytest.fixture(scope="module")
def single_run(micro_memorizer, ragged_forget, tmp_path_factory):
    """The single-process reference, run once for both stages."""
    return _run(tmp_path_factory.mktemp("single"), "single", [], ragged_forget)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_process_zero_runs_match_the_single_process_run(stage, micro_memorizer, ragged_forget, single_run,
                                                            tmp_path):
    path, _, _ = micro_memorizer
    start = load_file(path / "model.safetensors")
    ref, ref_w, ref_masks = single_run
    got, got_w, got_masks = _run(tmp_path, stage, [f"distributed={stage}", "distributed.nproc=2",
                                                   "distributed.cpu_shm=false"], ragged_forget)
    assert sorted(ref["splits"]["forget"]["lengths"]) == sorted(got["splits"]["forget"]["lengths"]) != [100]
    assert got["distributed"]["world_size"] == 2 and got["distributed"]["zero_stage"] == int(stage[-1])
    assert set(ref_masks) == set(got_masks) and all(torch.equal(ref_masks[n], got_masks[n]) for n in ref_masks)
    assert (got["status"], got["epochs"]) == (ref["status"], ref["epochs"]) and ref["epochs"] > 1
    for key in ("ma", "el_10"):
        assert abs(got["after"]["forget"][key] - ref["after"]["forget"][key]) <= 1e-3
    for name, tensor in ref_w.items():
        assert torch.allclose(got_w[name], tensor, atol=1e-5, rtol=0), name
        mask = ref_masks.get(name)
        frozen = ~mask if mask is not None else torch.ones_like(tensor, dtype=torch.bool)
        key = name if name in start else name.replace("transformer.", "")
        assert torch.equal(got_w[name][frozen], start[key][frozen]), name  # bit-identical
        assert torch.equal(ref_w[name][frozen], start[key][frozen]), name


def test_gpt_neo_27b_zero3_dry_run_prints_the_deepspeed_config_and_launch_command(tmp_path):
    proc = run_cli(["model=gpt-neo-2.7b", "distributed=zero3", "dry_run=true", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"stage": 3' in proc.stdout and "torch.distributed.run --standalone --nproc_per_node=2" in proc.stdout
    assert not (tmp_path / "results.json").exists()
