"""Config validation, recipes and the JSON round trip."""

from __future__ import annotations

import pytest

from mechscope.errors import ConfigError
from mechscope.labs.grokking.config import GrokConfig, GrokModelConfig


def test_paper_recipe_is_the_papers_setup():
    cfg = GrokConfig.paper()
    assert cfg.model == GrokModelConfig(p=113, d_model=128, n_heads=4, d_head=32, d_mlp=512)
    assert (cfg.lr, cfg.weight_decay, cfg.betas, cfg.warmup_steps) == (1e-3, 1.0, (0.9, 0.98), 10)
    assert cfg.frac_train == 0.3 and cfg.epochs == 40_000 and not cfg.grokfast
    assert cfg.n_train == int(0.3 * 113 * 113) == 3830
    assert cfg.model.d_vocab == 114 and cfg.model.eq_token == 113


def test_fast_recipe_is_the_paper_setup_with_stronger_weight_decay():
    fast, paper = GrokConfig.fast(), GrokConfig.paper()
    assert fast.weight_decay == 5.0 and fast.epochs == 2_000 and fast.recipe == "fast" and not fast.grokfast
    assert (fast.model, fast.lr, fast.betas, fast.frac_train) == (paper.model, paper.lr, paper.betas, paper.frac_train)


def test_warmup_matches_lambdalr():
    cfg = GrokConfig.paper()
    assert [cfg.lr_at(s) for s in (0, 5, 10, 500)] == [0.0, 0.5e-3, 1e-3, 1e-3]


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.2, 1.5])
def test_frac_outside_open_interval_is_rejected(frac):
    with pytest.raises(ConfigError, match="frac"):
        GrokConfig(frac_train=frac)


@pytest.mark.parametrize("p", [2, 0, -5])
def test_small_p_is_rejected(p):
    with pytest.raises(ConfigError, match="p must be"):
        GrokModelConfig(p=p)


@pytest.mark.parametrize(
    "field, value",
    [("operation", "divide"), ("epochs", 0), ("n_seeds", 0), ("lr", -1.0), ("betas", (0.9, 1.0)), ("grokfast_alpha", 1.0)],
)
def test_bad_values_are_rejected(field, value):
    with pytest.raises(ConfigError):
        GrokConfig(**{field: value})


def test_json_round_trip():
    cfg = GrokConfig.fast(model=GrokModelConfig(p=17), seed=3, n_seeds=2, operation="subtract")
    assert GrokConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.seeds == [3, 4]


def test_unknown_json_field_is_rejected():
    with pytest.raises(ConfigError, match="unknown"):
        GrokConfig.from_dict({**GrokConfig().to_dict(), "bogus": 1})


def test_a_run_directory_from_before_the_rename_still_loads(tmp_path):
    """config.json stores fields, never the class name: runs saved when the classes were called
    TrainConfig / ModelConfig load as GrokConfig / GrokModelConfig."""
    from mechscope.labs.grokking.rundir import CONFIG_FILE, load_config

    (tmp_path / CONFIG_FILE).write_text(
        '{"format": "mechscope-grok-run/1", "config": {"model": {"p": 113, "d_model": 128, "n_heads": 4, '
        '"d_head": 32, "d_mlp": 512}, "operation": "add", "frac_train": 0.3, "seed": 2, "n_seeds": 1, '
        '"epochs": 2000, "lr": 0.001, "weight_decay": 5.0, "betas": [0.9, 0.98], "eps": 1e-08, "warmup_steps": 10, '
        '"grokfast_alpha": 0.0, "grokfast_lamb": 0.0, "n_checkpoints": 200, "n_log_checkpoints": 60, '
        '"eval_every": 10, "recipe": "fast"}}'
    )
    assert load_config(tmp_path) == GrokConfig.fast(seed=2)


def test_runs_too_big_for_memory_are_refused_before_they_start():
    """``--epochs 10**12`` once grew to 23.7 GB before the kernel killed it; now it is one line."""
    from mechscope.labs.grokking.config import MAX_MEMORY_BYTES, GrokConfig, GrokModelConfig

    assert GrokConfig.paper(n_seeds=4).memory_bytes < 1 << 30  # the real recipes are far below the limit
    for kw in (dict(epochs=10**12), dict(model=GrokModelConfig(p=3000)), dict(n_seeds=10**6)):
        with pytest.raises(ConfigError, match=r"GiB of memory \(limit 16 GiB") as err:
            GrokConfig.paper(**kw)
        assert "\n" not in str(err.value)
    assert MAX_MEMORY_BYTES == 16 << 30
