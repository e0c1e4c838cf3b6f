"""Training: checkpoints, atomic files, bit-identical resume, multi-seed stacking."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mechscope.errors import ConfigError, RunError
from mechscope.labs.grokking import rundir
from mechscope.labs.grokking.config import GrokConfig
from mechscope.labs.grokking.rundir import Run, checkpoint_epochs
from mechscope.labs.grokking.train import train
from mechscope.runtime import cpu_threads


def test_checkpoint_schedule_is_log_plus_regular_and_at_least_200():
    epochs = checkpoint_epochs(40_000, 200, 60)
    assert len(epochs) >= 200 and epochs[0] == 0 and epochs[-1] == 40_000
    assert {1, 2, 3, 200, 400, 39_800} <= set(epochs)
    assert sum(e < 1000 for e in epochs) > 20  # dense early (log-spaced)
    assert len(checkpoint_epochs(3000, 200, 60)) >= 200


def test_run_directory_layout(tmp_path, tiny_cfg):
    summary = train(tiny_cfg, tmp_path / "run", progress=False)
    assert summary.complete and summary.epochs == 60
    run = Run.open(tmp_path / "run")
    assert run.epochs == checkpoint_epochs(60, 6, 4)
    assert run.metrics["train_loss"].shape == (61,) and run.metrics["eval_epoch"][-1] == 60
    assert json.loads((tmp_path / "run" / rundir.CONFIG_FILE).read_text())["config"] == tiny_cfg.to_dict()
    assert not list((tmp_path / "run").rglob("*.tmp"))  # atomic writes leave no temporaries
    meta_weights = load_file(rundir.checkpoint_path(tmp_path / "run", 0, 60))
    assert meta_weights["W_E"].shape == (24, 32)
    # the train loss logged at epoch 0 is the loss of the initial weights
    assert run.metrics["train_loss"][0] == pytest.approx(float(torch.log(torch.tensor(24.0))), abs=0.5)


@pytest.mark.parametrize("stop_at", [1, 17, 44])
def test_resume_is_bit_identical(tmp_path, tiny_cfg, stop_at):
    cfg = GrokConfig.fast(model=tiny_cfg.model, epochs=60, n_checkpoints=6, n_log_checkpoints=4, n_seeds=2,
                           grokfast_alpha=0.98, grokfast_lamb=2.0)  # fmt: skip
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", progress=False, max_epochs_this_session=stop_at)
    assert Run.open(tmp_path / "resumed").step == stop_at
    train(None, tmp_path / "resumed", progress=False)  # resume from the saved config
    a = load_file(tmp_path / "straight" / rundir.STATE_FILE)
    b = load_file(tmp_path / "resumed" / rundir.STATE_FILE)
    for key in a:
        if key.startswith(("param.", "opt.", "metrics.train", "metrics.test")):
            assert torch.equal(a[key], b[key]), key
    assert "opt.grad_ema.W_E" in a  # the Grokfast filter is part of the state


def test_resume_after_an_interrupt(tmp_path, tiny_cfg, monkeypatch):
    """A KeyboardInterrupt mid-run (as after Ctrl-C) leaves a resumable run."""
    from mechscope.labs.grokking import train as train_module

    train(tiny_cfg, tmp_path / "straight", progress=False)
    calls = {"n": 0}
    real_step = train_module.adamw_step

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 33:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "adamw_step", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg, tmp_path / "killed", progress=False)
    monkeypatch.setattr(train_module, "adamw_step", real_step)
    assert Run.open(tmp_path / "killed").step < 33
    train(tiny_cfg, tmp_path / "killed", progress=False)
    w1, w2 = Run.open(tmp_path / "straight").weights(), Run.open(tmp_path / "killed").weights()
    assert all(torch.equal(w1[n], w2[n]) for n in w1)


def test_stacked_seeds_train_like_single_seeds(tmp_path, tiny_cfg):
    cfg2 = GrokConfig.paper(model=tiny_cfg.model, epochs=30, n_checkpoints=3, n_log_checkpoints=0, seed=5, n_seeds=2)
    cfg1 = GrokConfig.paper(model=tiny_cfg.model, epochs=30, n_checkpoints=3, n_log_checkpoints=0, seed=6)
    # the promise is "bit-identical to training the seed alone on one thread" (MECHSCOPE_TEST_THREADS
    # may be 2: a lone seed would then split its reductions over two threads, the seed workers never do)
    with cpu_threads(1):
        train(cfg2, tmp_path / "both", progress=False)  # CPU default: one seed per chunk
        train(cfg2, tmp_path / "stacked", progress=False, seeds_per_chunk=2)  # both seeds in one fast-path call
        train(cfg1, tmp_path / "one", progress=False)
    w_one = Run.open(tmp_path / "one").weights()
    w_both = Run.open(tmp_path / "both", seed=6).weights()
    w_stacked = Run.open(tmp_path / "stacked", seed=6).weights()
    for n in w_one:
        assert torch.equal(w_both[n], w_one[n]), n  # seed 6 alone or beside seed 5: the same bits
        assert torch.allclose(w_stacked[n], w_one[n], atol=1e-5), n  # stacked: same up to rounding
    assert not torch.allclose(Run.open(tmp_path / "both", seed=5).weights()["W_E"], w_one["W_E"])


def test_seeds_on_parallel_workers_are_bit_identical_to_sequential(tmp_path, tiny_cfg):
    cfg = GrokConfig.paper(model=tiny_cfg.model, epochs=25, n_checkpoints=3, n_log_checkpoints=0, seed=2, n_seeds=3)
    with cpu_threads(1):
        train(cfg, tmp_path / "seq", progress=False, seed_workers=1)
        train(cfg, tmp_path / "par", progress=False, seed_workers=2)  # 3 seeds on 2 worker threads
        assert torch.get_num_threads() == 1  # restored after the pool
    for seed in (2, 3, 4):
        w_seq, w_par = Run.open(tmp_path / "seq", seed=seed).weights(), Run.open(tmp_path / "par", seed=seed).weights()
        assert all(torch.equal(w_seq[n], w_par[n]) for n in w_seq), seed
    s_seq, s_par = load_file(tmp_path / "seq" / rundir.STATE_FILE), load_file(tmp_path / "par" / rundir.STATE_FILE)
    assert set(s_seq) == set(s_par)
    for key in s_seq:  # losses, accuracies, optimizer moments: the same bits (wall-clock aside)
        if "wall" not in key:
            assert torch.equal(s_seq[key], s_par[key]), key


def test_a_different_config_on_an_existing_run_is_refused(tmp_path, tiny_cfg):
    train(tiny_cfg, tmp_path / "run", progress=False, max_epochs_this_session=3)
    with pytest.raises(ConfigError, match="different config"):
        train(GrokConfig.paper(model=tiny_cfg.model, epochs=61), tmp_path / "run", progress=False)


def test_missing_or_corrupted_runs_raise_run_error(tmp_path, tiny_cfg):
    with pytest.raises(RunError, match="does not exist"):
        Run.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a grokking run"):
        Run.open(tmp_path / "empty")
    train(tiny_cfg, tmp_path / "run", progress=False)
    (tmp_path / "run" / rundir.STATE_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(RunError, match="corrupted"):
        Run.open(tmp_path / "run")
    with pytest.raises(RunError, match="corrupted"):
        train(None, tmp_path / "run", progress=False)


def test_stop_at_test_accuracy_then_resume(tmp_path, tiny_cfg):
    train(tiny_cfg, tmp_path / "straight", progress=False)
    early = train(tiny_cfg, tmp_path / "stopped", progress=False, stop_at_test_acc=0.0)
    assert early.epochs == 0 and not early.complete  # accuracy >= 0 holds at the first evaluation
    train(None, tmp_path / "stopped", progress=False)
    a = Run.open(tmp_path / "straight")
    b = Run.open(tmp_path / "stopped")
    assert a.metrics["eval_epoch"].tolist() == b.metrics["eval_epoch"].tolist()  # no duplicated evaluation
    assert all(torch.equal(a.weights()[n], b.weights()[n]) for n in a.weights())
