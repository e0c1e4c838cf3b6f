"""The grokking section of ``mechscope tour``: train the fast recipe, analyse it, draw two pictures."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mechscope.labs.grokking.config import GrokConfig

RUN_NAME = "grok-fast"
TOUR_EPOCHS = 1_200
"""The tour stops the fast recipe at 1,200 of its 2,000 epochs: after its cleanup phase has ended.
Seed 0 reaches 99 % test accuracy at epoch 660 (Intel Xeon) / 720 (AMD EPYC) and its cleanup phase ends
at 880 / 1,030 (phases of the full 2,000-epoch runs); past that the weights only shrink slowly."""
TOUR_CHECKPOINTS = (60, 20)
"""Evenly spaced and log-spaced checkpoints of the tour's run (the CLI's default 200 + 60 would cost
the analysis ~70 s more; the tour draws no animation)."""


def tour_config() -> GrokConfig:
    """``--recipe fast`` seed 0, stopped at :data:`TOUR_EPOCHS`, with fewer checkpoints."""
    from mechscope.labs.grokking.config import GrokConfig

    n_regular, n_log = TOUR_CHECKPOINTS
    return GrokConfig.fast(epochs=TOUR_EPOCHS, n_checkpoints=n_regular, n_log_checkpoints=n_log)


def tour(out_dir: pathlib.Path) -> list[str]:
    """Train (or reuse) ``--recipe fast`` seed 0, stopped at :data:`TOUR_EPOCHS`, under
    ``out_dir/grok-fast`` with a progress bar on stderr, analyse it, write the probe circle and a neuron
    crest PNG into ``out_dir``, and return the lines to print. An existing run there is reused as it is."""
    from mechscope.labs.grokking.analyze import analyze
    from mechscope.labs.grokking.config import GrokConfig
    from mechscope.labs.grokking.figures_neurons import Snapshot, plot_neuron_crest, plot_probe_circle
    from mechscope.labs.grokking.rundir import CONFIG_FILE
    from mechscope.labs.grokking.train import train
    from mechscope.runtime import cpu_threads

    out_dir = pathlib.Path(out_dir)
    run_dir = out_dir / RUN_NAME
    cfg = None if (run_dir / CONFIG_FILE).exists() else tour_config()
    # one thread: with other processes on a 2-core machine, two OpenMP threads stalled on each other
    # (a training step took 5x longer than on one thread)
    with cpu_threads(1):
        summary = train(cfg, run_dir, progress=True)
        result = analyze(run_dir, progress=True)
        circle = plot_probe_circle(result, out_dir / "grok_probe_circle.png")
        crest = plot_neuron_crest(result, Snapshot.of(result.run.weights()), out_dir / "grok_neuron_crest.png")
    s, d = result.summary, result.details
    probe = d["probe"]
    dims = sorted(set(probe["kept_dims_cos"]) | set(probe["kept_dims_sin"]))
    reached = (
        f"99% at epoch {s['epoch_test_acc_99']} ({d['wall_s_test_acc_99']:.0f} s of training)"
        if s["epoch_test_acc_99"] is not None
        else "99% not reached"
    )
    cfg, full = result.run.config, GrokConfig.fast().epochs
    cleanup_end = s["phases"]["cleanup_end"]
    stopped = ""
    if cfg.recipe == "fast" and summary.epochs < full:
        stopped = f" of the recipe's {full:,}" + (f", stopped after cleanup (ended at {cleanup_end:,})" if cleanup_end < summary.epochs else "")
    return [
        f"Grokking lab (--recipe fast, a + b mod {s['p']}, seed 0): {summary.epochs:,} epochs{stopped}, "
        f"{summary.wall_s:.0f} s of training; test accuracy {100 * s['final_test_acc']:.1f}% ({reached})",
        f"  key frequencies: {', '.join(map(str, s['key_frequencies'])) or 'none'}; "
        f"{100 * s['neuron_fve_fraction_085']:.0f}% of neurons have > 85% of their variance in one frequency",
        f"  sparse probe of cos/sin(2π·{probe['frequency']}·x/{s['p']}) on the embeddings: R² {probe['r2']:.3f} "
        f"(cross-validated {probe['r2_cv']:.3f}) using {len(dims)} of {result.run.config.model.d_model} dims",
        f"  phases (epochs): memorisation to {s['phases']['memorisation_end']}, circuit formation to "
        f"{s['phases']['circuit_formation_end']}, cleanup to {s['phases']['cleanup_end']}",
        f"  pictures: {circle} (the circle), {crest} (a neuron computing cos(w(x+y)))",
        f"  more: mechscope grok figures {run_dir}",
    ]
