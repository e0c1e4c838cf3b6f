"""Pictures of the mechanism at the last checkpoint: neurons, logits and the probe circle.

Every function takes the ``Analysis`` and a ``Snapshot`` of the final weights and writes one PNG.
Inputs are called x (first operand, vertical axis of heatmaps) and y (second operand, horizontal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mechscope.labs.grokking import fourier
from mechscope.labs.grokking.analyze import Analysis
from mechscope.labs.grokking.drawing import new_figure, save
from mechscope.labs.grokking.measures import forward_all_pairs
from mechscope.labs.grokking.model import Params

@dataclass(frozen=True)
class Snapshot:
    """Logits and neuron activations of one set of weights over all pairs (x, y)."""

    logits: np.ndarray
    """[x, y, answer] logits of the p answer tokens."""
    post: np.ndarray
    """[x, y, neuron] MLP activations at "="."""

    @classmethod
    def of(cls, weights: Params) -> Snapshot:
        logits, post = forward_all_pairs(weights)
        p = post.shape[0]
        return cls(logits[:, :p].reshape(p, p, p).numpy(), post.numpy())


def cluster_neurons(analysis: Analysis, k: int) -> np.ndarray:
    """Neurons whose best frequency is k, best explained first."""
    freq, fve = np.asarray(analysis.details["neuron_frequency"]), np.asarray(analysis.details["neuron_fve"])
    idx = np.nonzero(freq == k)[0]
    return idx[np.argsort(-fve[idx])]


def main_frequencies(analysis: Analysis) -> list[int]:
    """Key frequencies, largest neuron cluster first (falls back to the best-explained frequencies)."""
    key = analysis.summary["key_frequencies"]
    if not key:
        freq = np.asarray(analysis.details["neuron_frequency"])
        counts = np.bincount(freq[freq > 0], minlength=2)
        key = [int(k) for k in np.argsort(-counts)[:3] if counts[k] > 0] or [1]
    return sorted(key, key=lambda k: -len(cluster_neurons(analysis, k)))


def _clearest_wave(post: np.ndarray, candidates: np.ndarray, k: int) -> int:
    """The candidate whose x = 0 slice is best fitted by a cosine of frequency k (0 if none)."""
    if len(candidates) == 0:
        return 0
    spread = np.array([post[0, :, c].std() for c in candidates])
    if spread.max() <= 0:
        return int(candidates[0])
    candidates = candidates[spread >= 0.5 * np.median(spread[spread > 0])]  # clearly active at x = 0
    y = np.arange(post.shape[0])
    scores = []
    for n in candidates:
        act = post[0, :, n]
        c, r, phi = fourier.fit_cosine(act, k)
        resid = act - (c + r * np.cos(2 * np.pi * k * y / len(y) - phi))
        scores.append(1 - resid.var() / max(act.var(), 1e-12))
    return int(candidates[int(np.argmax(scores))])


def plot_neuron_wave(analysis: Analysis, snap: Snapshot, path: Path) -> Path:
    """A neuron's activation against y for x = 0, with the least-squares cosine of its frequency."""
    post = snap.post
    p = post.shape[0]
    freqs = sorted(main_frequencies(analysis)[:4])[:3]  # of the 4 biggest clusters, the slowest waves
    fig = new_figure(4.2 * len(freqs), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(freqs)))
    y = np.arange(p)
    fine = np.linspace(0, p - 1, 800)
    for ax, k in zip(axes, freqs):
        n = _clearest_wave(post, cluster_neurons(analysis, k)[:80], k)
        act = post[0, :, n]
        c, r, phi = fourier.fit_cosine(act, k)
        ax.plot(fine, c + r * np.cos(2 * np.pi * k * fine / p - phi), color="#d62728", lw=1.2, label="fitted cosine")
        ax.scatter(y, act, s=12, color="#1f77b4", label="activation", zorder=3)
        sign = "−" if phi > 0 else "+"
        ax.set_xlabel("y (second operand), x = 0")
        ax.set_ylabel("neuron activation")
        ax.set_title(f"neuron {n}: {c:.2f} + {r:.2f}·cos(2π·{k}y/{p} {sign} {abs(phi):.2f})", fontsize=9.5)
        ax.set_ylim(top=ax.get_ylim()[1] + 0.25 * (ax.get_ylim()[1] - ax.get_ylim()[0]))
        ax.legend(fontsize=7.5, loc="upper right", ncols=2)
    fig.suptitle("Each neuron reads a wave: activation vs y at x = 0, with the fitted cosine", fontsize=11)
    return save(fig, path)


def plot_neuron_loops(analysis: Analysis, snap: Snapshot, path: Path) -> Path:
    """7 x 7 grid: pairs of neurons of one frequency cluster over y (x = 0) trace loops."""
    post = snap.post
    p = post.shape[0]
    k = main_frequencies(analysis)[0]
    neurons = _spread_phases(post, cluster_neurons(analysis, k)[:80], k, 7)
    if len(neurons) < 7:  # pad with the next best-explained neurons
        fve = np.asarray(analysis.details["neuron_fve"])
        neurons += [int(n) for n in np.argsort(-fve) if n not in neurons][: 7 - len(neurons)]
    y = np.arange(p)
    order = np.argsort((k * y) % p)  # around the circle
    fig = new_figure(12, 12)
    axes = fig.subplots(7, 7)
    for i, ni in enumerate(neurons):
        for j, nj in enumerate(neurons):
            ax = axes[i, j]
            if i == j:
                ax.plot(y, post[0, :, ni], color="0.3", lw=0.8)
                ax.text(0.03, 0.9, f"n{ni} vs y", transform=ax.transAxes, fontsize=7)
            else:
                a, b = post[0, :, nj], post[0, :, ni]
                ax.plot(np.r_[a[order], a[order[0]]], np.r_[b[order], b[order[0]]], color="0.75", lw=0.5, zorder=1)
                sc = ax.scatter(a, b, c=y, cmap="twilight", s=5, zorder=2, vmin=0, vmax=p - 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 6:
                ax.set_xlabel(f"neuron {nj}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"neuron {ni}", fontsize=8)
    cbar = fig.colorbar(sc, ax=axes, shrink=0.5, pad=0.01)
    cbar.set_label("y (second operand)")
    fig.suptitle(
        f"Pairs of frequency-{k} neurons over y (x = 0) trace loops: two phases of one rotation "
        f"(grey line joins y in the order {k}·y mod {p})",
        fontsize=11,
    )
    return save(fig, path)


def _spread_phases(post: np.ndarray, candidates: np.ndarray, k: int, n: int) -> list[int]:
    """Up to n neurons whose phases (of frequency k over y at x = 0) are evenly spread, so that the
    pairs draw open loops rather than lines."""
    spread = np.array([post[0, :, c].std() for c in candidates])
    candidates = candidates[spread >= 0.5 * np.median(spread)]  # clearly active at x = 0
    if len(candidates) <= n:
        return [int(c) for c in candidates]
    phases = np.array([fourier.fit_cosine(post[0, :, c], k)[2] for c in candidates]) % (2 * np.pi)
    order = np.argsort(phases)
    picks = order[np.rint(np.linspace(0, len(order), n, endpoint=False)).astype(int)]
    return [int(candidates[i]) for i in picks]


def plot_neuron_surfaces(analysis: Analysis, snap: Snapshot, path: Path) -> Path:
    """Three neurons: activation over (x, y), its 3x3 block of 2-D Fourier terms of its frequency
    (const, cos k, sin k on each axis), and the surface those nine terms rebuild."""
    post = snap.post
    p = post.shape[0]
    freqs = sorted(main_frequencies(analysis)[:4])[:3]  # of the 4 biggest clusters, the slowest waves
    basis = fourier.fourier_basis(p).numpy()
    fig = new_figure(13.5, 3.9 * len(freqs))
    axes = np.atleast_2d(fig.subplots(len(freqs), 3))
    for row, k in zip(axes, freqs):
        neurons = cluster_neurons(analysis, k)
        n = int(neurons[0]) if len(neurons) else 0
        act = post[:, :, n]
        coeffs = fourier.fft2d(torch.from_numpy(act - act.mean())).numpy()
        idx = [0, 2 * k - 1, 2 * k]
        block = coeffs[np.ix_(idx, idx)]
        share = block**2 / max((coeffs**2).sum(), 1e-12)
        rebuilt = act.mean() + basis[idx].T @ block @ basis[idx]
        lim = max(act.max(), rebuilt.max())
        im = row[0].imshow(act, origin="lower", cmap="viridis", vmin=min(0, rebuilt.min()), vmax=lim)
        row[0].set_title(f"neuron {n} (frequency {k}) over (x, y)", fontsize=10)
        fig.colorbar(im, ax=row[0], shrink=0.85, label="activation")
        bl = np.abs(block).max()
        row[1].imshow(block, cmap="RdBu_r", vmin=-bl, vmax=bl)
        for i in range(3):
            for j in range(3):
                row[1].text(j, i, f"{block[i, j]:+.1f}\n{100 * share[i, j]:.0f}%", ha="center", va="center", fontsize=9,
                            color="white" if abs(block[i, j]) > 0.6 * bl else "black")  # fmt: skip
        row[1].set_xticks(range(3), ["1", f"cos {k}y", f"sin {k}y"])
        row[1].set_yticks(range(3), ["1", f"cos {k}x", f"sin {k}x"])
        top = max(((i, j) for i in range(3) for j in range(3)), key=lambda ij: share[ij])
        tx, ty = ["1", f"cos {k}x", f"sin {k}x"][top[0]], ["1", f"cos {k}y", f"sin {k}y"][top[1]]
        name = tx if ty == "1" else ty if tx == "1" else f"{tx}·{ty}"
        row[1].set_title(f"its frequency-{k} terms (coefficient, share of variance)\nlargest term: {name}", fontsize=9.5)
        im = row[2].imshow(rebuilt, origin="lower", cmap="viridis", vmin=min(0, rebuilt.min()), vmax=lim)
        fve = analysis.details["neuron_fve"][n]
        row[2].set_title(f"rebuilt from these 9 terms ({100 * fve:.1f}% of the variance)", fontsize=10)
        fig.colorbar(im, ax=row[2], shrink=0.85)
        for ax in (row[0], row[2]):
            ax.set_xlabel("y")
            ax.set_ylabel("x")
    fig.suptitle("Each neuron is a few 2-D Fourier terms of one frequency: waves in x and in y, and products like cos(wx)·cos(wy)",
                 fontsize=11)  # fmt: skip
    return save(fig, path)


def _diagonal(ax, p: int, c: int, colour: str = "white") -> None:
    """Draw x + y ≡ c (mod p) on an (y horizontal, x vertical) heatmap."""
    for total in (c, c + p):
        ys = np.array([max(0, total - (p - 1)), min(p - 1, total)])
        if ys[0] <= ys[1]:
            ax.plot(ys, total - ys, color=colour, lw=1.2, ls="--")


def plot_neuron_crest(analysis: Analysis, snap: Snapshot, path: Path) -> Path:
    """The neuron with the largest cos/sin(w(x + y)) part. Tokens are listed in the order k·t mod p
    (t at position k·t mod p), which turns frequency k into one period per axis: the neuron's x + y
    wave then has a single crest, on the wrapped diagonal x + y ≡ c (mod p)."""
    post = snap.post
    p = post.shape[0]
    op = analysis.run.config.operation
    freqs = main_frequencies(analysis)
    best = (0.0, int(cluster_neurons(analysis, freqs[0])[0]) if len(cluster_neurons(analysis, freqs[0])) else 0, freqs[0])
    if op in ("add", "subtract"):
        for k in freqs:
            d = fourier.sum_directions(p, [k], op).numpy()
            cand = cluster_neurons(analysis, k)
            v = post[:, :, cand].reshape(p * p, -1)
            v = v - v.mean(0)
            shares = ((d @ v) ** 2).sum(0) / np.maximum((v**2).sum(0), 1e-12)
            if len(cand) and shares.max() > best[0]:
                best = (float(shares.max()), int(cand[int(np.argmax(shares))]), k)
    share, n, k = best
    act = post[:, :, n]
    d = fourier.sum_directions(p, [k], op if op in ("add", "subtract") else "add").numpy()
    centred = act.reshape(-1) - act.mean()
    wave = (d.T @ (d @ centred)).reshape(p, p)  # the x + y (or x - y) part
    sign = -1 if op == "subtract" else 1
    sym = "−" if op == "subtract" else "+"
    s = (np.arange(p)[:, None] + sign * np.arange(p)[None, :]) % p
    c = int(s[np.unravel_index(np.argmax(wave), wave.shape)])  # crest: x + y ≡ c
    pos = (k * np.arange(p)) % p  # display position of token t
    order = np.argsort(pos)  # token shown at each position
    fig = new_figure(15, 4.9)
    ax_a, ax_w, ax_s = fig.subplots(1, 3, width_ratios=(1, 1, 1.05))
    for ax, img, title, cmap in (
        (ax_a, act, f"neuron {n} (frequency {k}) activation", "magma"),
        (ax_w, wave, f"its x {sym} y part: {100 * share:.0f}% of the variance", "RdBu_r"),
    ):
        shown = img[np.ix_(order, order)]
        lim = np.abs(shown).max()
        im = ax.imshow(shown, origin="lower", cmap=cmap, vmin=-lim if cmap == "RdBu_r" else None, vmax=lim if cmap == "RdBu_r" else None)
        if op != "subtract":
            _diagonal(ax, p, (k * c) % p, "#00e5ff" if cmap == "magma" else "k")
        ax.set_xlim(-0.5, p - 0.5)
        ax.set_ylim(-0.5, p - 0.5)
        ax.set_xlabel(f"y' = {k}·y mod {p}")
        ax.set_ylabel(f"x' = {k}·x mod {p}")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.85)
    means = np.array([act[s == r].mean() for r in range(p)])
    ax_s.plot(np.arange(p), means[order], color="#d62728", marker="o", ms=2.5, lw=1.2)
    ax_s.axvline(pos[c], color="k", ls="--", lw=1)
    ax_s.set_xlabel(f"s' = {k}·(x {sym} y) mod {p}")
    ax_s.set_ylabel("mean activation over pairs with that sum")
    ax_s.set_title(f"one crest, at s' = {pos[c]}, i.e. x {sym} y ≡ {c} (mod {p})", fontsize=10)
    fig.suptitle(f"A neuron's crest lies on x {sym} y ≡ {c} (mod {p}), the dashed line x' {sym} y' ≡ {pos[c]}  "
                 f"(coordinates multiplied by {k} mod {p}, so one period of its wave spans each axis)", fontsize=11)  # fmt: skip
    return save(fig, path)


def plot_logit_surface(analysis: Analysis, snap: Snapshot, path: Path, token: int | None = None) -> Path:
    """Logit of one output token over (x, y): highest on the diagonal x + y ≡ token (mod p)."""
    logits = snap.logits
    p = logits.shape[0]
    token = (p // 3) if token is None else token
    surface = logits[:, :, token]
    op = analysis.run.config.operation
    fig = new_figure(12, 5)
    ax, ax_s = fig.subplots(1, 2, width_ratios=(1.1, 1))
    im = ax.imshow(surface, origin="lower", cmap="RdBu_r", aspect="equal",
                   vmin=-np.abs(surface).max(), vmax=np.abs(surface).max())  # fmt: skip
    if op == "add":
        _diagonal(ax, p, token, "k")
    ax.set_xlim(-0.5, p - 0.5)
    ax.set_ylim(-0.5, p - 0.5)
    ax.set_xlabel("y")
    ax.set_ylabel("x")
    ax.set_title(f"logit of answer {token} over all inputs (dashed: x + y ≡ {token})", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.85, label="logit")
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    s = (x + y) % p if op != "subtract" else (x - y) % p
    ax_s.plot(np.arange(p), [surface[s == c].mean() for c in range(p)], color="#1f77b4", marker="o", ms=2.5, lw=1.2)
    ax_s.axvline(token, color="k", ls="--", lw=1)
    ax_s.set_xlabel("(x + y) mod p" if op != "subtract" else "(x − y) mod p")
    ax_s.set_ylabel(f"mean logit of {token}")
    ax_s.set_title("a sum of cosines of (x + y − c) peaks only at the right answer", fontsize=10)
    fig.suptitle("The logits are constant along diagonals: the model computes x + y", fontsize=11)
    return save(fig, path)


def plot_probe_circle(analysis: Analysis, path: Path) -> Path:
    """cos probe vs sin probe over all tokens x: the embedding places tokens on a circle."""
    probe = analysis.details["probe"]
    circle = np.asarray(analysis.details["probe_circle"])
    p, k = circle.shape[0], probe["frequency"]
    x = np.arange(p)
    order = np.argsort((k * x) % p)
    fig = new_figure(7, 7)
    ax = fig.subplots()
    t = np.linspace(0, 2 * np.pi, 300)
    ax.plot(np.cos(t), np.sin(t), color="0.8", lw=1, ls="--", label="unit circle")
    ax.plot(np.r_[circle[order, 0], circle[order[0], 0]], np.r_[circle[order, 1], circle[order[0], 1]],
            color="0.6", lw=0.6, label=f"tokens in the order {k}·x mod {p}")  # fmt: skip
    sc = ax.scatter(circle[:, 0], circle[:, 1], c=x, cmap="twilight", s=28, zorder=3, edgecolor="k", linewidth=0.3)
    step = 1 if p <= 60 else 2
    for i in range(0, p, step):
        ax.annotate(str(i), circle[i], fontsize=6 if p > 60 else 8, xytext=(3, 3), textcoords="offset points")
    ax.set_aspect("equal")
    ax.set_xlabel(f"cos probe: predicted cos(2π·{k}x/{p})")
    ax.set_ylabel(f"sin probe: predicted sin(2π·{k}x/{p})")
    dims = sorted(set(probe["kept_dims_cos"]) | set(probe["kept_dims_sin"]))
    ax.set_title(
        f"Sparse probe of frequency {k} on the embeddings: R² {probe['r2']:.3f} (cv {probe['r2_cv']:.3f})\n"
        f"uses {len(dims)} of {analysis.run.config.model.d_model} embedding dims: {dims[:12]}{' ...' if len(dims) > 12 else ''}",
        fontsize=9.5,
    )
    fig.colorbar(sc, ax=ax, shrink=0.7, label="token x")
    ax.legend(loc="center", fontsize=8, frameon=False)  # the middle of the circle is empty
    return save(fig, path)
