"""An animated GIF over checkpoints: the probe circle and a neuron surface forming during training.

Each frame shows, at one checkpoint: the token embeddings seen through the final sparse probe
(cos vs sin of the probe's frequency), the activation surface of one final key-frequency neuron over
(x, y), and the loss curves with a marker at the current epoch. Frames are rendered with the Agg
canvas and assembled with Pillow (no extra dependency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mechscope.io import atomic_path
from mechscope.labs.grokking.analyze import Analysis
from mechscope.labs.grokking.drawing import new_figure, shade_phases
from mechscope.labs.grokking.figures_neurons import Snapshot, cluster_neurons, main_frequencies

MAX_FRAMES = 60


def frame_epochs(epochs: list[int], n: int = MAX_FRAMES, focus: tuple[int, int] | None = None) -> list[int]:
    """n checkpoints (all if fewer): about half spread evenly over the checkpoint list (log +
    regular), the rest over the checkpoints inside ``focus`` (circuit formation and cleanup)."""
    if len(epochs) <= n:
        return list(epochs)
    picks = set(np.rint(np.linspace(0, len(epochs) - 1, n // 2 if focus else n)).astype(int).tolist())
    inside = [i for i, e in enumerate(epochs) if focus and focus[0] <= e <= focus[1]]
    for pool in (inside, list(range(len(epochs)))):  # fill up: focus first, then anywhere
        for m in range(2, 2 * len(pool) + 2):
            if len(picks) >= n or not pool:
                break
            for j in np.rint(np.linspace(0, len(pool) - 1, m)).astype(int):
                if len(picks) < n:
                    picks.add(pool[j])
    return [epochs[i] for i in sorted(picks)]


def write_animation(analysis: Analysis, path: Path, n_frames: int = MAX_FRAMES, frame_ms: int = 140) -> Path:
    from PIL import Image

    run, details = analysis.run, analysis.details
    p = run.config.model.p
    pm = details["probe_map"]
    mean, scale = np.asarray(pm["x_mean"]), np.asarray(pm["x_scale"])
    coef, intercept = np.asarray(pm["coef"]), np.asarray(pm["intercept"])
    k_probe = details["probe"]["frequency"]
    k_neuron = main_frequencies(analysis)[0]
    neurons = cluster_neurons(analysis, k_neuron)
    neuron = int(neurons[0]) if len(neurons) else 0
    m = run.metrics
    x = np.arange(p)
    order = np.argsort((k_probe * x) % p)

    fig = new_figure(13, 4.4, layout=None, dpi=80)  # fixed layout: constrained layout per frame is slow
    ax_c, ax_n, ax_l = fig.subplots(1, 3, width_ratios=(1, 1, 1.3))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.13, top=0.84, wspace=0.3)
    t = np.linspace(0, 2 * np.pi, 200)
    ax_c.plot(np.cos(t), np.sin(t), color="0.85", lw=1, ls="--")
    ring, = ax_c.plot([], [], color="0.6", lw=0.6, animated=True)
    dots = ax_c.scatter(np.zeros(p), np.zeros(p), c=x, cmap="twilight", s=18, edgecolor="k", linewidth=0.2, animated=True)
    ax_c.set_xlim(-1.6, 1.6)
    ax_c.set_ylim(-1.6, 1.6)
    ax_c.set_aspect("equal")
    ax_c.set_xlabel(f"cos probe (k = {k_probe})")
    ax_c.set_ylabel(f"sin probe (k = {k_probe})")
    img = ax_n.imshow(np.zeros((p, p)), origin="lower", cmap="viridis", vmin=0, vmax=1, animated=True)
    ax_n.set_xlabel("y")
    ax_n.set_ylabel("x")
    ax_n.set_title(f"neuron {neuron} (final frequency {k_neuron}), scaled per frame", fontsize=9)
    shade_phases(ax_l, analysis)
    ax_l.plot(m["epoch"][1:], m["train_loss"][1:], color="#1f77b4", lw=1, label="train loss")
    keep = m["eval_epoch"] >= 1
    ax_l.plot(m["eval_epoch"][keep], m["test_loss"][keep], color="#d62728", lw=1, label="test loss")
    ax_l.set_xscale("log")
    ax_l.set_yscale("log")
    ax_l.set_xlim(1, max(run.final_epoch, 2))
    ax_l.set_xlabel("epoch (log scale)")
    ax_l.set_ylabel("loss")
    ax_l.legend(loc="lower left", fontsize=7)
    marker = ax_l.axvline(1, color="k", lw=1.2, animated=True)
    ax_c.set_title("token embeddings through the final probe", fontsize=9)
    title = fig.text(0.5, 0.95, "", ha="center", va="center", fontsize=12, animated=True)
    # Blitting: draw the static parts once, then only the artists that change.
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)

    frames = []
    ph = analysis.summary["phases"]
    for epoch in frame_epochs(run.epochs, n_frames, (ph["memorisation_end"], int(1.2 * ph["cleanup_end"]))):
        weights = run.weights(epoch)
        emb = weights["W_E"][0, :p].double().numpy()
        circle = ((emb - mean) / scale) @ coef.T + intercept
        dots.set_offsets(circle)
        ring.set_data(np.r_[circle[order, 0], circle[order[0], 0]], np.r_[circle[order, 1], circle[order[0], 1]])
        act = Snapshot.of(weights).post[:, :, neuron]
        span = act.max() - act.min()
        img.set_data((act - act.min()) / span if span > 0 else act * 0)
        marker.set_xdata([max(epoch, 1)] * 2)
        title.set_text(f"Grokking a + b mod {p}: the circle and the neuron form (epoch {epoch})")
        fig.canvas.restore_region(background)
        for ax, artist in ((ax_c, ring), (ax_c, dots), (ax_n, img), (ax_l, marker)):
            ax.draw_artist(artist)
        fig.draw_artist(title)
        rgba = np.asarray(fig.canvas.buffer_rgba())
        frames.append(Image.fromarray(rgba[..., :3].copy()).convert("P", palette=Image.Palette.ADAPTIVE, colors=128))
    durations = [frame_ms] * (len(frames) - 1) + [1500]
    with atomic_path(path, suffix=".gif") as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=True)
    return path
