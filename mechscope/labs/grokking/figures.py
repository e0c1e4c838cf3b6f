"""``mechscope grok figures``: the pictures of the paper and the video, as PNG (plus one GIF).

Curves and spectra live here; neuron/logit/probe pictures in ``figures_neurons.py``; the animation
in ``animation.py``; the canvas, saving and phase shading they share in ``drawing.py`` (imports run
drawing <- figures_neurons <- animation <- figures: no cycle). Figures are drawn on
``matplotlib.figure.Figure`` objects with the Agg canvas (no pyplot, no global backend change), so
this works headless and inside notebooks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mechscope.labs.grokking import animation as anim
from mechscope.labs.grokking import figures_neurons as fn
from mechscope.labs.grokking.analyze import Analysis, analyze
from mechscope.labs.grokking.drawing import EXCLUDED, RESTRICTED, TEST, TRAIN, new_figure, save, shade_phases

def _epochs_axis(ax, analysis: Analysis, log: bool = True) -> None:
    if log:
        ax.set_xscale("log")
        ax.set_xlim(1, max(analysis.run.final_epoch, 2))
        ax.set_xlabel("epoch (log scale)")
    else:  # the paper's linear view; past twice the end of cleanup nothing changes, so cut there
        end = min(analysis.run.final_epoch, max(2 * analysis.summary["phases"]["cleanup_end"], 100))
        ax.set_xlim(0, end)
        ax.set_xlabel("epoch" + (f" (cut at {end:,} of {analysis.run.final_epoch:,})" if end < analysis.run.final_epoch else ""))
    ax.grid(True, which="major", alpha=0.3)


def plot_curves(analysis: Analysis, path: Path) -> Path:
    """Train/test loss and accuracy over training, log x, with the phases shaded."""
    m = analysis.run.metrics
    ep, eval_ep = m["epoch"][1:], m["eval_epoch"]
    keep = eval_ep >= 1
    fig = new_figure(12, 4.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax in (ax_loss, ax_acc):
        shade_phases(ax, analysis)
        _epochs_axis(ax, analysis)
    ax_loss.plot(ep, m["train_loss"][1:], color=TRAIN, lw=1.2, label="train loss")
    ax_loss.plot(eval_ep[keep], m["test_loss"][keep], color=TEST, lw=1.2, label="test loss")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_loss.set_title("Loss: memorise first, generalise much later")
    ax_loss.legend(loc="lower left", fontsize=8)
    ax_acc.plot(ep, 100 * m["train_acc"][1:], color=TRAIN, lw=1.2, label="train accuracy")
    ax_acc.plot(eval_ep[keep], 100 * m["test_acc"][keep], color=TEST, lw=1.2, label="test accuracy")
    ax_acc.set_ylim(-2, 102)
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy")
    ax_acc.legend(loc="center left", fontsize=8)
    s = analysis.summary
    fig.suptitle(
        f"Grokking a + b mod {s['p']} ({analysis.run.config.recipe} recipe, seed {analysis.run.seed}): "
        f"train 99% at epoch {s['epoch_train_acc_99']}, test 99% at epoch {s['epoch_test_acc_99']}",
        fontsize=11,
    )
    return save(fig, path)


def plot_progress_measures(analysis: Analysis, path: Path) -> Path:
    """Excluded and restricted loss against train/test loss; Gini coefficients and weight norm."""
    meas, key = analysis.measures, analysis.summary["key_frequencies"]
    ep = meas["epoch"]
    fig = new_figure(12, 4.8)
    ax, ax_g = fig.subplots(1, 2)
    shade_phases(ax, analysis, start=0)
    _epochs_axis(ax, analysis, log=False)
    ax.plot(ep, meas["train_loss"], color=TRAIN, lw=1.3, label="train loss")
    ax.plot(ep, meas["test_loss"], color=TEST, lw=1.3, label="test loss")
    ax.plot(ep, meas["restricted_loss"], color=RESTRICTED, lw=1.6, label="restricted loss (key freqs only)")
    ax.plot(ep, meas["excluded_loss_all"], color=EXCLUDED, lw=1.6, label="excluded loss (key freqs removed)")
    for i, k in enumerate(key):
        ax.plot(ep, meas["excluded_loss"][:, i], color=EXCLUDED, lw=0.6, alpha=0.5, ls="--",
                label="excluded loss, one freq at a time" if i == 0 else None)  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(f"Progress measures (key frequencies {', '.join(map(str, key))})")
    ax.legend(loc="lower right", fontsize=7.5)

    shade_phases(ax_g, analysis, label=False, start=0)
    _epochs_axis(ax_g, analysis, log=False)
    ax_g.plot(ep, meas["gini_W_E"], color="#8c564b", lw=1.5, label="Gini of W_E Fourier norms")
    ax_g.plot(ep, meas["gini_W_L"], color="#e377c2", lw=1.5, label="Gini of W_L Fourier norms")
    ax_g.plot(ep, meas["fve_fraction"], color="#17becf", lw=1.5, label="neurons with FVE > 0.85")
    ax_g.set_ylim(0, 1.02)
    ax_g.set_ylabel("Gini coefficient / fraction")
    ax_w = ax_g.twinx()
    ax_w.plot(ep, meas["sum_sq_weights"], color="0.3", lw=1.3, ls=":", label="sum of squared weights")
    ax_w.set_ylabel("sum of squared weights", color="0.3")
    lines = ax_g.get_legend_handles_labels()
    lines_w = ax_w.get_legend_handles_labels()
    ax_g.legend(lines[0] + lines_w[0], lines[1] + lines_w[1], loc="center left", fontsize=7.5)
    ax_g.set_title("Fourier sparsity rises as weight decay cleans up")
    return save(fig, path)


def plot_spectra(analysis: Analysis, path: Path) -> Path:
    """Fourier spectrum (norm per frequency) of W_E and of W_L, key frequencies highlighted."""
    d, key = analysis.details, set(analysis.summary["key_frequencies"])
    fig = new_figure(12, 6)
    axes = fig.subplots(2, 1)
    for ax, name, title in (
        (axes[0], "W_E_frequency_norms", "Embedding W_E in the Fourier basis: a few frequencies carry everything"),
        (axes[1], "W_L_frequency_norms", "Neuron-to-logit map W_L = W_out W_U over output tokens"),
    ):
        norms = np.asarray(d[name])
        freqs = np.arange(1, len(norms) + 1)
        colours = ["#d62728" if k in key else "#9fb3c8" for k in freqs]
        ax.bar(freqs, norms, color=colours, width=0.85)
        for k in sorted(key):
            ax.annotate(str(k), (k, norms[k - 1]), ha="center", va="bottom", fontsize=8, color="#d62728")
        ax.set_xlim(0, len(norms) + 1)
        ax.set_xlabel("frequency k  (component cos/sin(2πk·x/p))")
        ax.set_ylabel("norm")
        ax.set_title(title + "  (red: key frequencies)", fontsize=10)
    return save(fig, path)


def plot_neuron_clusters(analysis: Analysis, path: Path) -> Path:
    """How many neurons each frequency explains, and how well (FVE)."""
    d, key = analysis.details, analysis.summary["key_frequencies"]
    freq, fve = np.asarray(d["neuron_frequency"]), np.asarray(d["neuron_fve"])
    n_freq = len(d["W_E_frequency_norms"])
    fig = new_figure(12, 4.2)
    ax_c, ax_f = fig.subplots(1, 2, width_ratios=(2, 1))
    counts = np.bincount(freq[fve >= 0.5], minlength=n_freq + 1)[1:]
    ax_c.bar(np.arange(1, n_freq + 1), counts, color=["#d62728" if k in key else "#9fb3c8" for k in range(1, n_freq + 1)])
    ax_c.set_xlabel("best frequency of the neuron")
    ax_c.set_ylabel("neurons (FVE ≥ 0.5)")
    ax_c.set_title("Neurons cluster on the key frequencies")
    ax_f.hist(fve, bins=np.linspace(0, 1, 41), color="#17becf")
    ax_f.axvline(0.85, color="k", ls="--", lw=1)
    ax_f.set_xlabel("fraction of variance explained by the best frequency")
    ax_f.set_ylabel("neurons")
    ax_f.set_title(f"{100 * analysis.summary['neuron_fve_fraction_085']:.1f}% of neurons above 0.85")
    return save(fig, path)


def write_figures(
    run_dir: str | Path,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    animation: bool = True,
    progress: bool = True,
    animation_frames: int = 60,
) -> list[Path]:
    """Analyse the run if needed and write every figure; returns the paths written.

    Subnormal floats are flushed to zero meanwhile (CPU, this thread; ``runtime.flush_denormals``): the
    neuron pictures and the animation run the model on every pair at many checkpoints."""
    from mechscope.runtime import flush_denormals

    with flush_denormals():
        return _write_figures(run_dir, seed, out_dir, animation, progress, animation_frames)


def _write_figures(
    run_dir: str | Path, seed: int | None, out_dir: str | Path | None, animation: bool, progress: bool, animation_frames: int
) -> list[Path]:
    analysis = analyze(run_dir, seed=seed, progress=progress)
    out = Path(out_dir) if out_dir is not None else analysis.run.seed_dir / "figures"
    snap = fn.Snapshot.of(analysis.run.weights())
    jobs: list[tuple[str, Callable[[Path], Path]]] = [
        ("curves.png", lambda p: plot_curves(analysis, p)),
        ("progress_measures.png", lambda p: plot_progress_measures(analysis, p)),
        ("fourier_spectra.png", lambda p: plot_spectra(analysis, p)),
        ("neuron_clusters.png", lambda p: plot_neuron_clusters(analysis, p)),
        ("neuron_wave.png", lambda p: fn.plot_neuron_wave(analysis, snap, p)),
        ("neuron_loops.png", lambda p: fn.plot_neuron_loops(analysis, snap, p)),
        ("neuron_surfaces.png", lambda p: fn.plot_neuron_surfaces(analysis, snap, p)),
        ("neuron_crest.png", lambda p: fn.plot_neuron_crest(analysis, snap, p)),
        ("logit_surface.png", lambda p: fn.plot_logit_surface(analysis, snap, p)),
        ("probe_circle.png", lambda p: fn.plot_probe_circle(analysis, p)),
    ]
    if animation:
        jobs.append(("formation.gif", lambda p: anim.write_animation(analysis, p, n_frames=animation_frames)))
    paths = []
    for name, job in tqdm(jobs, desc="grok figures", unit="fig", file=sys.stderr, disable=not progress):
        paths.append(job(out / name))
    return paths
