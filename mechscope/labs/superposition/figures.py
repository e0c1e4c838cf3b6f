"""Pictures of the superposition lab (matplotlib on its own Agg canvas, PNGs written atomically).

- :func:`plot_directions`: each instance's feature directions W_i for m = 2 (the pentagon);
- :func:`plot_wtw`: WᵀW heatmaps and biases per instance;
- :func:`plot_dimensionality`: D_i against 1/(1 - S) with the sticky fractions, and D*;
- :func:`plot_phase`: the phase diagram of one extra feature;
- :func:`plot_angles`: the angle histograms of random and optimised vector sets with the honest numbers;
- :func:`plot_capacity`: vectors within ±ε of 90° against dimension, with the Welch and JL bounds.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch

from mechscope.io import atomic_path
from mechscope.viz.palette import viridis

RANDOM, THREE_B1B, MAXCOS, BOUND = "#7f7f7f", "#d62728", "#1f77b4", "#2ca02c"


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_directions(W: torch.Tensor, path: str | Path, importance: torch.Tensor | None = None,
                    title: str | None = None) -> Path:  # fmt: skip
    """Feature directions (columns of each [2, n] W) as arrows, coloured by importance (yellow = most)."""
    inst, m, n = W.shape
    if m != 2:
        raise ValueError(f"feature directions are drawn for m = 2, got m = {m}")
    imp = torch.ones(n) if importance is None else importance
    cols = min(inst, 4)
    rows = math.ceil(inst / cols)
    fig = new_figure(2.6 * cols, 2.6 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    lim = max(1.3, float(W.norm(dim=1).max()) * 1.15)
    for k, ax in enumerate(axes.flat):
        ax.set_aspect("equal")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= inst:
            ax.axis("off")
            continue
        ax.add_patch(Circle((0, 0), 1.0, fill=False, lw=0.6, ls=":", color="#999999"))
        for i in range(n):
            x, y = float(W[k, 0, i]), float(W[k, 1, i])
            colour = viridis(float(imp[i] / imp.max()))
            ax.annotate("", xy=(x, y), xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.8))
            ax.text(1.1 * x, 1.1 * y, str(i), fontsize=7, ha="center", va="center")
        ax.set_title(f"instance {k}", fontsize=8)
    fig.suptitle(title or f"feature directions W_i ({n} features, 2 dims; colour = importance)", fontsize=9)
    return save(fig, path)


def plot_wtw(W: torch.Tensor, b: torch.Tensor, path: str | Path, max_instances: int = 4) -> Path:
    """WᵀW (n × n, red +, blue -) and the bias b of up to ``max_instances`` instances."""
    k = min(W.shape[0], max_instances)
    fig = new_figure(2.8 * k, 3.3)
    axes = fig.subplots(2, k, squeeze=False, height_ratios=[6, 1])
    for j in range(k):
        wtw = (W[j].T @ W[j]).numpy()
        lim = max(1e-6, float(abs(wtw).max()))
        im = axes[0, j].imshow(wtw, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, j].set_title(f"WᵀW, instance {j}", fontsize=8)
        axes[1, j].imshow(b[j][None, :].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        axes[1, j].set_yticks([0], ["b"])
        for ax in axes[:, j]:
            ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes[0, -1], shrink=0.8)
    return save(fig, path)


def plot_dimensionality(sweep, path: str | Path) -> Path:
    """Per-feature D_i (dots) and D* (line) against 1/(1 - S) = 1/density, with the sticky fractions."""
    from mechscope.labs.superposition.sweep import STICKY

    fig = new_figure(6.4, 4.0)
    ax = fig.subplots()
    x = (1.0 / sweep.densities).tolist()
    n = sweep.dimensionality.shape[1]
    for i, xi in enumerate(x):
        ax.scatter([xi] * n, sweep.dimensionality[i].tolist(), s=6, alpha=0.35, color=MAXCOS, lw=0)
    ax.plot(x, sweep.d_star.tolist(), color="black", lw=1.2, label="D* = m / ‖W‖²_F")
    for value, label in STICKY:
        ax.axhline(value, color="#999999", lw=0.6, ls="--")
        ax.text(x[-1] * 1.05, value, label, fontsize=7, va="center")
    ax.set_xscale("log")
    ax.set_xlabel("1 / (1 - S)  (1 / feature density)")
    ax.set_ylabel("feature dimensionality D_i")
    m = sweep.W.shape[1]
    ax.set_title(f"D_i against sparsity (n = {n}, m = {m}, uniform importance)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return save(fig, path)


def plot_phase(phase, path: str | Path) -> Path:
    """Feature 1's outcome on the (relative importance, density) grid."""
    from matplotlib.colors import ListedColormap

    from mechscope.labs.superposition.sweep import PHASES

    colours = ["#dddddd", "#2a788e", "#fde725"]
    fig = new_figure(5.2, 4.2)
    ax = fig.subplots()
    imp, dens = phase.importances.log10(), phase.densities.log10()
    ax.pcolormesh(imp.numpy(), dens.numpy(), phase.phase.numpy(), cmap=ListedColormap(colours), vmin=-0.5, vmax=2.5,
                  shading="nearest")  # fmt: skip
    ax.set_xlabel("log10 relative importance of feature 1")
    ax.set_ylabel("log10 feature density")
    handles = [Patch(color=c, label=p) for c, p in zip(colours, PHASES)]
    ax.legend(handles=handles, fontsize=7, loc="lower left")
    ax.set_title("2 features in 1 dimension: what happens to feature 1", fontsize=9)
    return save(fig, path)


def plot_angles(random_stats, runs, path: str | Path, n: int, dim: int) -> Path:
    """Histograms of pairwise angles (log counts, so the tail shows) for the random start and each loss."""
    from mechscope.labs.superposition.orthogonal import HIST_BINS

    edges = torch.linspace(-1, 1, HIST_BINS + 1)
    centres_deg = torch.rad2deg(torch.arccos(((edges[:-1] + edges[1:]) / 2).clamp(-1, 1)))
    sets = [("random", random_stats, RANDOM)] + [(r.loss, r.stats, THREE_B1B if r.loss == "3b1b" else MAXCOS) for r in runs]
    fig = new_figure(6.8, 1.2 + 1.5 * len(sets))
    axes = fig.subplots(len(sets), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, st, colour) in zip(axes, sets):
        keep = st.hist > 0
        ax.bar(centres_deg[keep].numpy(), st.hist[keep].numpy(), width=0.06, color=colour, lw=0)
        ax.axvspan(89, 91, color="#fde725", alpha=0.35, lw=0)
        ax.set_yscale("log")
        ax.set_ylabel("pairs", fontsize=7)
        ax.text(0.01, 0.95, f"{name}: min {st.min_angle_deg:.1f}°, max {st.max_angle_deg:.1f}°, "
                            f"{100 * st.frac_within_89_91:.1f}% within 89–91°, max |cos| {st.max_abs_cos:.3f}",
                transform=ax.transAxes, fontsize=7, va="top")  # fmt: skip
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("pairwise angle (degrees); yellow band = 89–91°")
    fig.suptitle(f"{n:,} vectors in {dim} dimensions: every pair counted (log scale)", fontsize=9)
    return save(fig, path)


def plot_capacity(curve, path: str | Path) -> Path:
    """Measured capacity against dimension with the Welch (upper) and JL (lower) bounds, log scale."""
    import numpy as np

    fig = new_figure(5.6, 4.0)
    ax = fig.subplots()
    dims = curve.dims
    ax.plot(dims, curve.measured, "o-", color=MAXCOS, label="measured (optimised, lower bound)")
    ax.plot(dims, dims, ":", color=RANDOM, label="N = dim (orthonormal basis)")
    welch = [w if math.isfinite(w) else np.nan for w in curve.welch]
    ax.plot(dims, welch, "--", color=THREE_B1B, label="Welch upper bound")
    d_fine = np.geomspace(min(dims), max(dims) * 64, 200)
    s2 = math.sin(math.radians(curve.eps_deg)) ** 2
    ax.plot(d_fine, np.exp(d_fine * s2 / 4), "-", color=BOUND, lw=1, label="JL / union bound e^{d sin²ε / 4}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension")
    ax.set_ylabel(f"vectors pairwise within ±{curve.eps_deg:g}° of 90°")
    ax.legend(fontsize=7)
    ax.set_title("How many nearly perpendicular directions fit", fontsize=9)
    return save(fig, path)
