"""Pictures of SAE quality: one SAE's evaluation (``mechscope sae eval --png``) and a width sweep
(``mechscope sae sweep --png``).

Inputs are the JSON schemas of :meth:`mechscope.sae.evaluate.SAEEval.to_dict` and
:meth:`mechscope.sae.sweep.SweepResult.to_dict`; no torch here, matplotlib imported on use (Agg).
"""

from __future__ import annotations

from pathlib import Path

CE_COLORS = {"clean": "#1b9e77", "SAE spliced": "#7570b3", "zero-ablated": "#d95f02"}
LINE = "#3b528b"


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    from mechscope.io import atomic_path

    plt = _mpl()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _density_panel(ax, hist: dict, label: str | None = None, color: str = LINE) -> None:
    edges, counts = hist["log10_edges"], hist["counts"]
    ax.stairs(counts, edges, color=color, fill=label is None, alpha=0.8 if label is None else 1.0,
              label=f"{label} ({hist['dead']:,} dead)" if label else None, linewidth=1.5)  # fmt: skip
    ax.set_xlabel("log10(fraction of tokens where the latent fires)")
    ax.set_ylabel("live latents")
    ax.grid(True, alpha=0.3)


def eval_figure(data: dict, title: str | None = None):
    """Latent density histogram (live latents; the dead count in the title) and the three losses."""
    plt = _mpl()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    hist = data["density_histogram"]
    _density_panel(ax0, hist)
    ax0.set_title(f"L0 {data['l0']:.1f} · FVU {data['fvu']:.3f} · {hist['dead']:,}/{data['width']:,} dead · "
                  f"{data['dense_fraction']:.1%} dense", fontsize=9, loc="left")  # fmt: skip
    names = list(CE_COLORS)
    vals = [data["ce_clean"], data["ce_spliced"], data["ce_zero"]]
    bars = ax1.bar(names, vals, color=[CE_COLORS[n] for n in names])
    for b, v in zip(bars, vals):
        ax1.annotate(f"{v:.3f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax1.set_ylabel("next-token loss (nats)")
    rec = data.get("loss_recovered")
    ax1.set_title(f"loss recovered {rec:.1%}" if rec is not None else "loss recovered: n/a", fontsize=9, loc="left")
    ax1.grid(True, axis="y", alpha=0.3)
    sub = f"{data['label']} at {data['hook']}" + (f" -> {data['target']}" if data["target"] != data["hook"] else "")
    sub += f" · {data['tokens']:,} held-out positions ({data['positions']})"
    fig.suptitle((title + "\n" if title else "") + sub, fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def save_eval_png(data: dict, path: str | Path, title: str | None = None) -> Path:
    return _save(eval_figure(data, title), path)


def sweep_figure(data: dict, title: str | None = None):
    """Four panels over width: FVU and loss recovered; dead and dense fractions; latent densities; and the
    distribution of each smaller latent's best decoder cosine in the next width (with split counts)."""
    plt = _mpl()
    rows = data["rows"]
    widths = [r["width"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=110)
    ax = axes[0, 0]
    ax.plot(widths, [r["fvu"] for r in rows], "o-", color=LINE, label="FVU")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width (latents)")
    ax.set_ylabel("FVU", color=LINE)
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    rec = [r["loss_recovered"] if r["loss_recovered"] is not None else float("nan") for r in rows]
    ax2.plot(widths, rec, "s--", color=CE_COLORS["clean"], label="loss recovered")
    ax2.set_ylabel("loss recovered", color=CE_COLORS["clean"])
    l0s = ", ".join(f"{r['l0']:.1f}" for r in rows)
    ax.set_title(f"L0 {l0s}", fontsize=9, loc="left")
    ax = axes[0, 1]
    ax.plot(widths, [100 * r["dead_fraction"] for r in rows], "o-", color=CE_COLORS["zero-ablated"], label="dead")
    ax.plot(widths, [100 * r["dense_fraction"] for r in rows], "s-", color=CE_COLORS["SAE spliced"],
            label=f"dense (> {rows[0]['dense_threshold']:.0%} of tokens)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width (latents)")
    ax.set_ylabel("% of latents")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(True, alpha=0.3)
    ax = axes[1, 0]
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(rows):
        _density_panel(ax, r["density_histogram"], f"{r['width']:,}", cmap(i / max(1, len(rows) - 1)))
    ax.legend(frameon=False, fontsize=8)
    ax = axes[1, 1]
    for i, m in enumerate(data["matches"]):
        h = m["max_cos_histogram"]
        ax.stairs(h["counts"], h["edges"], linewidth=1.5, color=cmap(i / max(1, len(data["matches"]))),
                  label=f"{m['small_width']:,}→{m['large_width']:,}: {m['split']:,} split, {m['matched']:,} matched")  # fmt: skip
    ax.axvline(data["matches"][0]["threshold"] if data["matches"] else 0.6, color="#888888", linestyle=":")
    ax.set_xlabel("max decoder cosine of a latent to the next width's latents")
    ax.set_ylabel("live latents")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(True, alpha=0.3)
    sub = f"{data['hook']}" + (f" -> {data['target']}" if data["target"] != data["hook"] else "")
    sub += f" · {rows[0]['tokens']:,} held-out positions ({data['positions']})"
    fig.suptitle((title + "\n" if title else "") + sub, fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def save_sweep_png(data: dict, path: str | Path, title: str | None = None) -> Path:
    return _save(sweep_figure(data, title), path)
