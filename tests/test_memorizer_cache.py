"""Finding and building memorizers: parallel sweep jobs share one build (emso_bench/models.py)."""
from __future__ import annotations

import threading
import time

from omegaconf import OmegaConf

from emso_bench.memorizer import prepare as prepare_mod
from emso_bench.memorizer.build import BuildConfig
from emso_bench.memorizer.prepare import memorizer_dir
from tests.helpers import compose


def test_a_job_waiting_on_a_build_reuses_it_instead_of_building_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EMSO_BENCH_CACHE", str(tmp_path))
    model_cfg = compose(["model=memorizer-micro", "model.build.seed=12345"]).model  # a key nobody built
    key = BuildConfig.from_dict(OmegaConf.to_container(model_cfg.build, resolve=True)).key()
    target = tmp_path / "memorizer" / f"memorizer-micro-{key}"
    built, found = [], []
    monkeypatch.setattr(prepare_mod, "prepare", lambda cfg, out, *args, **kwargs: built.append(out))

    with prepare_mod.build_lock(target):  # a first job is building this memorizer
        waiter = threading.Thread(target=lambda: found.append(memorizer_dir(model_cfg)))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not found, "a second job must wait for the first one's build"
        target.mkdir(parents=True)
        (target / "build.json").write_text("{}")  # the first job's build completes
    waiter.join(timeout=30)

    assert found == [target]
    assert built == [], "the waiting job built the memorizer a second time"
