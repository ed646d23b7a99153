"""Every config file composes, unknown keys fail loudly, and every entry point has its launch command."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from emso_bench.cli_check import group_options
from emso_bench.paths import CONF_DIR
from tests.helpers import compose

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "debug", "sweeps"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_config_option_composes_and_resolves(group, option):
    cfg = compose([f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.model.name and cfg.method.name and cfg.eval.name


@pytest.mark.parametrize("sweep", group_options("sweeps"))
def test_every_sweep_file_composes(sweep):
    cfg = compose([f"+sweeps={sweep}"])
    OmegaConf.to_container(cfg, resolve=True)


def test_debug_configs_compose():
    options = group_options("debug")
    assert options
    for option in options:
        OmegaConf.to_container(compose([f"debug={option}"]), resolve=True)


def test_the_defaults_are_the_memorizer_emso_and_a_128_row_draw():
    cfg = compose([])
    assert (cfg.model.name, cfg.method.name, cfg.select.rule, cfg.forget.size, cfg.seed) == \
        ("memorizer", "emso", "contrastive", 128, 0)
    assert cfg.thresholds.source == "unseen" and cfg.logger.name == "none" and cfg.distributed.name == "none"


def test_gpt_neo_configs_use_fixed_thresholds_and_200_token_rows():
    for name in ("gpt-neo-125m", "gpt-neo-1.3b", "gpt-neo-2.7b"):
        cfg = compose([f"model={name}"])
        assert cfg.thresholds.source == "fixed" and cfg.model.target_length == 200 and cfg.model.splits == "tdec"


def test_unknown_keys_fail_loudly():
    cfg = compose([])
    with pytest.raises(ConfigAttributeError):
        cfg.method.no_such_key  # noqa: B018  (struct mode)
    with pytest.raises(Exception, match="no_such_key"):
        compose(["method.no_such_key=1"])


def test_every_config_default_has_a_why_comment():
    missing = []
    for path in CONF_DIR.rglob("*.yaml"):
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-", "defaults:")) or stripped.endswith(":"):
                continue
            if "#" not in line and not stripped.startswith(("name:", "rule:", "kind:")):
                missing.append(f"{path.relative_to(CONF_DIR)}:{lineno}: {stripped}")
    assert not missing, "config defaults without a why-comment:\n" + "\n".join(missing)


def test_thresholds_come_from_the_unseen_split_or_fixed_el10_values_only():
    from emso_bench.errors import UserError
    from emso_bench.thresholds import resolve_thresholds

    unseen = {"n": 128, "ma": 0.4, "el_10": 0.02, "el_5": 0.05}
    got = resolve_thresholds(OmegaConf.create({"source": "unseen"}), unseen, "el_5")
    assert got == {"el_5": 0.05, "ma": 0.4, "source": "unseen", "n_unseen": 128}
    fixed = OmegaConf.create({"source": "fixed", "el_10": 0.03, "ma": 0.5, "reference": "paper"})
    assert resolve_thresholds(fixed, None, "el_10")["el_10"] == 0.03
    with pytest.raises(UserError, match="EL_5"):  # an EL_10 value is never a bar for EL_5
        resolve_thresholds(fixed, None, "el_5")


def test_eval_full_is_default_and_durable_together():
    """The presets each re-include fast: a `durable: null` or `utility: null` in fast would silently drop one."""
    full, default, durable = (compose([f"eval={name}"]).eval for name in ("full", "default", "durable"))
    assert full.utility == default.utility and full.utility.tasks
    assert full.durable == durable.durable and full.durable.sampling.samples == 16
    assert compose([]).eval.get("durable") is None  # eval=fast, the default: no probes
