"""Patching and causal-tracing heatmaps as PNGs (``mechscope patch --png``, ``mechscope trace --png``).

Inputs are the JSON dicts of :class:`~mechscope.attribution.patching.PatchResult` and
:class:`~mechscope.attribution.tracing.TraceResult`; no torch here, matplotlib imported on use.
"""

from __future__ import annotations

from pathlib import Path

PANEL_TITLES = {"resid_pre": "residual stream (resid_pre)", "attn_out": "attention output", "mlp_out": "MLP output",
                "resid": "single restored state (resid)", "mlp": "MLP window restored", "attn": "attention window restored"}  # fmt: skip
CMAPS = {"resid_pre": "RdBu", "attn_out": "RdBu", "mlp_out": "RdBu", "resid": "Purples", "mlp": "Greens", "attn": "Reds"}


def _labels(tokens: list[str], marks: set[int] = frozenset()) -> list[str]:
    from mechscope.viz.tokens import visible

    return [visible(t)[:14] + ("*" if i in marks else "") for i, t in enumerate(tokens)]


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    from mechscope.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def patch_figure(data: dict):
    """One layer × position heatmap per patched component (normalised logit difference), plus layer × head."""
    import numpy as np

    plt = _mpl()
    panels = list(data["effects"].items()) + ([("heads", data["heads"])] if data.get("heads") is not None else [])
    n_pos = len(data["tokens"])
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.0, 0.45 * n_pos + 1.6) * len(panels), 5.2), dpi=100,
                             squeeze=False)  # fmt: skip
    for ax, (kind, grid) in zip(axes[0], panels):
        arr = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
        lim = max(1.0, float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0)
        im = ax.imshow(arr, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto", origin="lower", interpolation="nearest")
        ax.set_ylabel("layer")
        if kind == "heads":
            ax.set_xlabel("head")
            ax.set_xticks(range(arr.shape[1]))
        else:
            ax.set_xticks(range(n_pos), _labels(data["tokens"]), rotation=70, fontsize=8)
        ax.set_title(PANEL_TITLES.get(kind, "per head (z, all positions)"), fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
    method = "attribution patching (gradient estimate)" if data.get("method") == "attribution" else "activation patching"
    fig.suptitle(f"{method}: {data['metric']} — clean {data['clean_logit_diff']:.2f}, corrupt "
                 f"{data['corrupt_logit_diff']:.2f} (logit {data['answer']!r} − {data['wrong']!r})", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def save_patch_png(data: dict, path) -> Path:
    return _save(patch_figure(data), path)


def trace_figure(data: dict):
    """ROME's three panels: P(answer) indirect effect of restoring resid / MLP window / attention window."""
    import numpy as np

    plt = _mpl()
    marks = set(data["subject_positions"])
    n_pos = len(data["tokens"])
    fig, axes = plt.subplots(1, 3, figsize=(max(4.0, 0.42 * n_pos + 1.8) * 3, 5.0), dpi=100)
    for ax, kind in zip(axes, ("resid", "mlp", "attn")):
        arr = np.array(data["effects"][kind], dtype=float)
        im = ax.imshow(arr, cmap=CMAPS[kind], vmin=min(0.0, float(arr.min())), aspect="auto", origin="lower",
                       interpolation="nearest")  # fmt: skip
        ax.set_xticks(range(n_pos), _labels(data["tokens"], marks), rotation=70, fontsize=8)
        ax.set_ylabel("layer")
        ax.set_title(PANEL_TITLES[kind] + (f", window {data['window']}" if kind != "resid" else ""), fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, label="indirect effect on P(answer)")
    fig.suptitle(f"causal tracing: P({data['answer']!r}) clean {data['clean_prob']:.3f}, subject noised "
                 f"{data['corrupted_prob']:.3f} (* = subject token, {data['samples']} noise samples)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def save_trace_png(data: dict, path) -> Path:
    return _save(trace_figure(data), path)


def facts_figure(data: dict):
    """Meng et al.'s averaged picture: indirect effect by layer at the last subject token and the last token."""
    plt = _mpl()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100, sharey=True)
    for ax, where in zip(axes, ("last_subject", "last")):
        for kind, color in (("resid", "#7b3294"), ("mlp", "#1b9e77"), ("attn", "#d95f02")):
            ys = data["average"][kind][where]
            ax.plot(range(len(ys)), ys, "o-", color=color, label=kind, markersize=3)
        ax.set_title("last subject token" if where == "last_subject" else "last token", fontsize=10)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("average indirect effect on P(answer)")
    axes[0].legend(frameon=False)
    fig.suptitle(f"causal tracing over {data['n_facts']} facts (window {data['window']}, {data['samples']} samples)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def save_facts_png(data: dict, path) -> Path:
    return _save(facts_figure(data), path)
