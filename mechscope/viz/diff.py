"""Pictures of a model diff (input: :meth:`mechscope.diff.report.DiffResult.to_dict`; no torch here,
matplotlib imported on use with the Agg backend).

Panels: the mean ``‖tuned − base‖`` by layer × position (heatmap, log colour scale: BOS and late
layers dwarf the rest), the tokens the mean difference promotes at the best layer (bars), the steering
curve (target log-prob shift per coefficient), and, with a crosscoder, the histogram of relative decoder
norms with the class bands.
"""

from __future__ import annotations

from pathlib import Path

from mechscope.viz.tokens import clip, visible


def diff_figure(data: dict):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    xc = data.get("crosscoder")
    fig = plt.figure(figsize=(13, 8.4 if xc else 4.6), dpi=110)
    grid = fig.add_gridspec(2 if xc else 1, 3, width_ratios=[1.6, 1, 1])
    ax_h, ax_t, ax_s = (fig.add_subplot(grid[0, i]) for i in range(3))
    norms = data["norm_by_position"]
    layers = [r["layer"] for r in data["layers"]]
    flat = [v for row in norms for v in row if v > 0]
    lo = min(flat) if flat else 1e-6
    hi = max(flat) if flat else 1.0
    cmap = plt.get_cmap("magma").copy()
    cmap.set_bad("#d9d9d9")  # exactly zero (grey): no difference at all
    grid_vals = [[v if v > 0 else float("nan") for v in row] for row in norms]
    img = ax_h.imshow(grid_vals, aspect="auto", cmap=cmap, norm=LogNorm(vmin=lo / 2, vmax=max(hi, lo)),
                      origin="lower")  # fmt: skip
    ax_h.set_yticks(range(len(layers)), [str(x) for x in layers], fontsize=7)
    ax_h.set_xlabel("position (0 = BOS)")
    ax_h.set_ylabel("layer (resid_post)")
    ax_h.set_title("mean ‖tuned − base‖ by layer × position (grey: zero)", fontsize=9, loc="left")
    fig.colorbar(img, ax=ax_h, fraction=0.04)
    toks = data["promoted_tokens"][:20][::-1]
    ax_t.barh(range(len(toks)), [t["logit"] for t in toks], color="#1b9e77")
    ax_t.set_yticks(range(len(toks)), [clip(visible(t["token"]), 16) for t in toks], fontsize=7)
    ax_t.set_xlabel("lens logit of the mean difference")
    ax_t.set_title(f"promoted at layer {data['best_layer']}", fontsize=9, loc="left")
    steer = data["steer"]
    ax_s.plot([s["coef"] for s in steer], [s["target_logprob_shift"] for s in steer], marker="o", color="#d95f02")
    ax_s.axhline(0, color="grey", linewidth=0.6)
    ax_s.set_xlabel(f"coefficient (× mean Δ at layer {data['steer_layer']})")
    ax_s.set_ylabel("target log-prob shift (nats)")
    ax_s.set_title(clip("targets: " + ", ".join(visible(t) for t in data["targets"]), 48), fontsize=9, loc="left")
    if xc and xc.get("rel_norms"):
        ax_r = fig.add_subplot(grid[1, :2])
        rel = [r for r, live in zip(xc["rel_norms"], xc.get("live", [True] * len(xc["rel_norms"]))) if live]
        ax_r.hist(rel, bins=50, range=(0, 1), color="#7570b3")
        for a, b, c in ((0, 0.1, "#e7298a"), (0.3, 0.7, "#66a61e"), (0.9, 1.0, "#e6ab02")):
            ax_r.axvspan(a, b, color=c, alpha=0.12)
        ax_r.set_yscale("log")
        ax_r.set_xlabel("relative decoder norm r = ‖d_tuned‖ / (‖d_base‖ + ‖d_tuned‖)   (live latents)")
        ax_r.set_ylabel("latents")
        c = xc["counts"]
        ax_r.set_title(f"crosscoder width {xc['width']}, k {xc['k']}, layer {xc['layer']}, FVU {xc['fvu']:.3f}: "
                       f"base-only {c['base_only']}, shared {c['shared']}, tuned-only {c['tuned_only']}",
                       fontsize=9, loc="left")  # fmt: skip
        ax_l = fig.add_subplot(grid[1, 2])
        ax_l.axis("off")
        rows = [f"{r['latent']:>5} r={r['rel_norm']:.2f} " + clip(" ".join(visible(t) for t in r["top_tokens"][:5]), 34)
                for r in xc["tuned_only"][:10]]  # fmt: skip
        ax_l.text(0, 1, "tuned-only latents: top logits\n" + "\n".join(rows), family="monospace", fontsize=7,
                  va="top", transform=ax_l.transAxes)  # fmt: skip
    fig.suptitle(f"{data['base']} → {data['tuned']}: {data['prompts']} prompts, {data['tokens']} tokens", fontsize=10)
    import warnings

    with warnings.catch_warnings():  # control-character glyphs missing from the font
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    return fig


def save_diff_png(data: dict, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from mechscope.io import atomic_path

    path = Path(path)
    fig = diff_figure(data)
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
