"""No late slowdown: the last 20 % of a ``--recipe fast`` run's epochs cost no more than the first 20 %.

Issue 9 target, on any CPU: time per epoch of the last 20 % of the epochs <= 1.3x that of the first
20 %. Without flushing subnormal floats, Intel cores slowed from 16 to 1.8 epochs/s once the loss
reached ~1e-6 (softmax outputs and gradients full of subnormals, handled in microcode).

Trains seed 0 of the fast recipe (2,000 epochs) into a temporary directory with the real training loop
(checkpoints and evaluation included), in two sessions: to 80 % of the epochs, then to the end. The
per-epoch times come from the run's own clock (``metrics.wall_s``). ``ratio`` is the mean time per
epoch of the last 20 % over the first 20 %; ``ratio_median`` uses median epochs (insensitive to the
checkpoint saves, which are denser early). Both must be <= 1.3 to pass.

The cost of subnormals, measured in the same run: a copy of the state at 80 % is trained on for
``--no-flush-epochs`` epochs (default 100) with flushing off, and its median epoch is compared with the
flushed run's median epoch over the same epochs (``no_flush_over_flush_late``) and with the first 20 %
(``ratio_median_without_flush``); ``same_results`` says how far the two drifted apart (train loss,
test accuracy, weights at the last common checkpoint). ``--no-flush-epochs 0`` skips it.

    . .venv/bin/activate && python benchmarks/grok_late_slowdown.py        # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _common import emit, versions

TARGET = 1.3


def epoch_times(run_dir: Path) -> np.ndarray:
    """Seconds per epoch (update of epoch e and the forward of e + 1), from the run's own clock."""
    from mechscope.labs.grokking.rundir import STATE_FILE, read_safetensors

    wall = read_safetensors(run_dir / STATE_FILE)["metrics.wall_s"].numpy()
    return np.diff(wall[~np.isnan(wall)])


def same_results(run: Path, copy: Path, epoch: int) -> dict:
    """How far the unflushed copy drifted from the flushed run after ``epoch`` updates (both trained from
    the same state): train loss and test accuracy last logged, weights at the last checkpoint."""
    import torch

    from mechscope.labs.grokking.rundir import STATE_FILE, Run, read_safetensors

    a, b = read_safetensors(run / STATE_FILE), read_safetensors(copy / STATE_FILE)
    logged = epoch - 1  # a session stopped after `epoch` updates logged epochs up to epoch - 1
    loss_a, loss_b = float(a["metrics.train_loss"][0, logged]), float(b["metrics.train_loss"][0, logged])
    ev = int((b["metrics.eval_epoch"][: int(b["metrics.n_eval"])] <= logged).sum()) - 1
    acc_a, acc_b = float(a["metrics.test_acc"][0, ev]), float(b["metrics.test_acc"][0, ev])
    ckpt = max(e for e in Run.open(copy).epochs if e <= epoch)
    wa, wb = Run.open(run).weights(ckpt), Run.open(copy).weights(ckpt)
    rel = max(float((wa[n] - wb[n]).abs().max() / wa[n].abs().max().clamp_min(1e-30)) for n in wa)
    return {
        "logged_epoch": logged,
        "train_loss_flush_vs_not": [loss_a, loss_b],
        "test_acc_flush_vs_not": [acc_a, acc_b],
        "checkpoint_epoch": ckpt,
        "max_rel_weight_diff": rel,
        "weights_bit_identical": all(torch.equal(wa[n], wb[n]) for n in wa),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the fast recipe's (2,000)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as `mechscope grok train`)")
    ap.add_argument("--no-flush-epochs", type=int, default=100, help="late epochs trained without flushing (0: skip)")
    args = ap.parse_args()

    import torch

    from mechscope.labs.grokking.config import GrokConfig
    from mechscope.labs.grokking.rundir import STATE_FILE, read_safetensors
    from mechscope.labs.grokking.train import train
    from mechscope.runtime import cpu_model, cpu_threads

    overrides = {"seed": args.seed} | ({"epochs": args.epochs} if args.epochs else {})
    cfg = GrokConfig.fast(**overrides)
    n = cfg.epochs
    window = n // 5
    with tempfile.TemporaryDirectory() as tmp, cpu_threads(args.threads):
        run = Path(tmp) / "run"
        train(cfg, run, progress=True, max_epochs_this_session=n - window)
        copy = Path(tmp) / "no-flush"
        if args.no_flush_epochs:
            shutil.copytree(run, copy)
        summary = train(None, run, progress=True)
        dt = epoch_times(run)
        first, last = dt[:window], dt[-window:]
        fields = {
            "ratio": round(float(last.mean() / first.mean()), 3),
            "ratio_median": round(float(np.median(last) / np.median(first)), 3),
            "first_20pct_ms_per_epoch": {"mean": round(1e3 * first.mean(), 2), "median": round(1e3 * np.median(first), 2)},
            "last_20pct_ms_per_epoch": {"mean": round(1e3 * last.mean(), 2), "median": round(1e3 * np.median(last), 2)},
            "wall_s": round(summary.wall_s, 1),
            "final_test_acc": summary.final_test_acc[0],
            "epoch_test_acc_99": summary.epoch_test_acc_99[0],
            "final_train_loss": float(read_safetensors(run / STATE_FILE)["metrics.train_loss"][0, -1]),
        }
        if args.no_flush_epochs:
            k = min(args.no_flush_epochs, window)
            train(None, copy, progress=True, max_epochs_this_session=k, flush_denormals=False)
            slow = epoch_times(copy)[n - window : n - window + k - 1]
            same = dt[n - window : n - window + k - 1]
            fields["no_flush"] = {
                "epochs": k,
                "late_ms_per_epoch_median": round(1e3 * float(np.median(slow)), 2),
                "no_flush_over_flush_late": round(float(np.median(slow) / np.median(same)), 2),
                "ratio_median_without_flush": round(float(np.median(slow) / np.median(first)), 2),
                **same_results(run, copy, n - window + k),
            }
    passed = fields["ratio"] <= TARGET and fields["ratio_median"] <= TARGET
    emit(
        "grok_late_slowdown_fast",
        baseline="time per epoch of the first 20 % of the epochs, same run",
        target=f"last 20 % <= {TARGET}x the first 20 % per epoch (mean and median)",
        passed=passed,
        epochs=n,
        seed=args.seed,
        threads=args.threads,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_model=cpu_model(),
        **fields,
        versions=versions("torch"),
    )
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
